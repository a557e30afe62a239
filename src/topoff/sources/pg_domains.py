"""The type a PostgreSQL column's values are of, domains seen through.

``pg_type.typbasetype`` of a domain over another domain is that other domain: one step of
``CASE WHEN t.typtype = 'd' THEN t.typbasetype`` leaves a domain over a domain over
``interval`` a domain, taken for a type of its own (its text compared, a DuckDB VARCHAR).
:data:`VALUE_TYPE` joins ``t`` to the column's innermost domain instead (the one whose
base is no domain: its ``typbasetype`` and ``typtypmod`` are the values' type), or to the
column's own type when it is no domain, so that the one step reaches the base type."""

from __future__ import annotations

#: ``JOIN pg_type t`` for the attribute ``a``: its innermost domain, or its own type
VALUE_TYPE = """
JOIN pg_catalog.pg_type t ON t.oid = coalesce((
    WITH RECURSIVE chain (oid, depth) AS (
        SELECT a.atttypid, 0
      UNION ALL
        SELECT d.typbasetype, c.depth + 1
        FROM chain c JOIN pg_catalog.pg_type d ON d.oid = c.oid
        WHERE d.typtype = 'd' AND c.depth < 64)
    SELECT c.oid FROM chain c ORDER BY c.depth DESC LIMIT 1 OFFSET 1), a.atttypid)
"""
