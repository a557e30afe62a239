"""PostgreSQL columns that compare otherwise than their text: ``citext`` (or a domain over
it, an array of either, a composite type, range or multirange holding it) and a
nondeterministic collation (of the column, or within its type) take ``'abc'`` and
``'ABC'`` for one value, which a replica (text in DuckDB, PostgreSQL and Iceberg) and a
dataset's upsert tell apart. A merge by such a key would keep a respelled key's old row
beside the new one, so such keys are refused for merges (replicate's inserter and
updater, the export's upsert) and not suggested for an upsert (discover.py)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

_FOLDING_Q = """
WITH RECURSIVE made (attrelid, attnum, typ, coll, via, depth) AS (
    SELECT a.attrelid, a.attnum, a.atttypid, a.attcollation, ''::text, 0
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL  -- what a value of the type holds, compared as its own type (and collation)
    SELECT m.attrelid, m.attnum, n.typ, n.coll, CASE WHEN m.via = '' THEN n.via
                                                     ELSE m.via END, m.depth + 1
    FROM made m JOIN pg_catalog.pg_type t ON t.oid = m.typ
    CROSS JOIN LATERAL (
        SELECT t.typbasetype, m.coll, '' WHERE t.typtype = 'd'
      UNION ALL
        SELECT t.typelem, m.coll, 'an array of'
        WHERE t.typtype <> 'd' AND t.typcategory = 'A' AND t.typelem <> 0
      UNION ALL
        SELECT f.atttypid, f.attcollation, 'a composite type holding'
        FROM pg_catalog.pg_attribute f
        WHERE t.typtype = 'c' AND f.attrelid = t.typrelid AND f.attnum > 0
          AND NOT f.attisdropped
      UNION ALL
        SELECT r.rngsubtype, r.rngcollation, 'a range of'
        FROM pg_catalog.pg_range r WHERE t.typtype = 'r' AND r.rngtypid = t.oid
      {multirange}
    ) n (typ, coll, via)
    WHERE m.depth < 16  -- no type holds itself; a bound all the same
), found AS (
    SELECT DISTINCT ON (m.attrelid, m.attnum) m.attrelid, m.attnum,
           t.typname = 'citext' AS citext, m.via, coll.collname
    FROM made m JOIN pg_catalog.pg_type t ON t.oid = m.typ
    LEFT JOIN pg_catalog.pg_collation coll ON coll.oid = m.coll
    WHERE t.typname = 'citext' OR {nondeterministic}
    ORDER BY m.attrelid, m.attnum, t.typname = 'citext' DESC, m.depth
)
SELECT f.attrelid, a.attname, f.citext, f.via, f.collname
FROM found f JOIN pg_catalog.pg_attribute a ON a.attrelid = f.attrelid AND a.attnum = f.attnum
ORDER BY f.attrelid, f.attnum
"""
#: PostgreSQL 14's multiranges hold ranges of their range type's subtype
_MULTIRANGE = """UNION ALL
        SELECT r.rngsubtype, r.rngcollation, 'a multirange of'
        FROM pg_catalog.pg_range r WHERE t.typtype = 'm' AND r.rngmultitypid = t.oid"""

HINT = ("set key = [...] to columns that compare as their text, or to this key if its "
        'values are never respelled; or use method = "snapshot"')


def _folding(conn: psycopg.Connection, oids: Sequence[int]) -> list[tuple[int, str, str]]:
    """(relation, column, why) of every column of ``oids`` that folds text: citext or a
    nondeterministic collation, in the column's type or held by it (an array's elements,
    a composite's fields, a range's or multirange's bounds, through domains)."""
    version = conn.info.server_version
    nondeterministic = ("NOT coalesce(coll.collisdeterministic, true)"
                        if version >= 120000 else "false")
    query = _FOLDING_Q.format(nondeterministic=nondeterministic,
                              multirange=_MULTIRANGE if version >= 140000 else "")
    rows = conn.execute(query, (list(oids),)).fetchall()
    return [(oid, name, (f"is {via} citext" if via else "is citext") if citext else
             f"is {via} a string of the nondeterministic collation {coll}" if via else
             f"has the nondeterministic collation {coll}")
            for oid, name, citext, via, coll in rows]


def folding_columns(conn: psycopg.Connection, oids: Sequence[int]) -> dict[int, set[str]]:
    """The columns of each relation of ``oids`` that compare text folded."""
    out: dict[int, set[str]] = {}
    for oid, name, _why in _folding(conn, oids):
        out.setdefault(oid, set()).add(name)
    return out


def folding_key(conn: psycopg.Connection, oid: int, key: Sequence[str]) -> str | None:
    """Why a column of ``key`` (of the relation ``oid``) compares text that differs as
    equal, or None."""
    if not key:
        return None
    for _oid, name, why in _folding(conn, [oid]):
        if name in key:
            return f"key column {name!r} {why} ('abc' and 'ABC' may be one key)"
    return None
