"""The type a PostgreSQL column's values are of, domains seen through.

``pg_type.typbasetype`` of a domain over another domain is that other domain, and the
element type of an array of a domain (``posint[]``) is the domain: one step of ``CASE WHEN
t.typtype = 'd' THEN t.typbasetype`` leaves either taken for a type of its own (its text
compared, a DuckDB VARCHAR). :data:`VALUE_TYPE` follows a column's type through every
domain, and through the domains of an array's element type (then to the array of the
element's base type), to ``v (typid, typmod)``: the values' own type and modifier (the
innermost domain's, as ``varchar(3)`` of ``CREATE DOMAIN code AS varchar(3)``), its
``pg_type`` row joined as ``t``."""

from __future__ import annotations

#: ``v (typid, typmod)`` and ``JOIN pg_type t`` for the attribute ``a``: the type its
#: values are of (an array of one whose element type is a domain over an array, which no
#: array type names, stays the array of the domain)
VALUE_TYPE = """
CROSS JOIN LATERAL (
    WITH RECURSIVE chain (oid, mod, elem, depth) AS (
        SELECT a.atttypid, a.atttypmod, false, 0
      UNION ALL
        SELECT CASE WHEN d.typtype = 'd' THEN d.typbasetype ELSE d.typelem END,
               CASE WHEN d.typtype = 'd' THEN d.typtypmod ELSE c.mod END,
               c.elem OR d.typtype <> 'd', c.depth + 1
        FROM chain c JOIN pg_catalog.pg_type d ON d.oid = c.oid
        WHERE c.depth < 64 AND (d.typtype = 'd' OR (
            NOT c.elem AND d.typlen = -1 AND d.typelem <> 0 AND EXISTS (
                SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = d.typelem
                AND e.typtype = 'd'))))
    SELECT CASE WHEN c.elem THEN b.typarray ELSE c.oid END, c.mod
    FROM chain c JOIN pg_catalog.pg_type b ON b.oid = c.oid
    WHERE NOT c.elem OR b.typarray <> 0
    ORDER BY c.depth DESC LIMIT 1) v (typid, typmod)
JOIN pg_catalog.pg_type t ON t.oid = v.typid
"""
