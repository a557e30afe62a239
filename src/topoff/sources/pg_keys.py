"""PostgreSQL columns that compare otherwise than their text: ``citext`` (or a domain over
it, an array of either) and a nondeterministic collation take ``'abc'`` and ``'ABC'`` for
one value, which a replica (text in DuckDB, PostgreSQL and Iceberg) and a dataset's
upsert tell apart. A
merge by such a key would keep a respelled key's old row beside the new one, so such keys
are refused for merges (replicate's inserter and updater, the export's upsert) and not
suggested for an upsert (discover.py)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

_FOLDING_Q = """
WITH RECURSIVE made (attrelid, attnum, typ, arr, depth) AS (
    SELECT a.attrelid, a.attnum, a.atttypid, false, 0
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL  -- a domain's base type, an array's element type
    SELECT m.attrelid, m.attnum, CASE WHEN t.typtype = 'd' THEN t.typbasetype
                                      ELSE t.typelem END, m.arr OR t.typtype <> 'd',
           m.depth + 1
    FROM made m JOIN pg_catalog.pg_type t ON t.oid = m.typ
    WHERE m.depth < 8 AND (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0))
), citext AS (
    SELECT m.attrelid, m.attnum, bool_and(m.arr) AS arr
    FROM made m JOIN pg_catalog.pg_type t ON t.oid = m.typ
    WHERE t.typname = 'citext' GROUP BY m.attrelid, m.attnum
)
SELECT a.attrelid, a.attname, c.attnum IS NOT NULL, coalesce(c.arr, false), coll.collname
FROM pg_catalog.pg_attribute a
LEFT JOIN citext c ON c.attrelid = a.attrelid AND c.attnum = a.attnum
LEFT JOIN pg_catalog.pg_collation coll ON coll.oid = a.attcollation
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
  AND (c.attnum IS NOT NULL OR {nondeterministic})
ORDER BY a.attrelid, a.attnum
"""

HINT = ("set key = [...] to columns that compare as their text, or to this key if its "
        'values are never respelled; or use method = "snapshot"')


def _folding(conn: psycopg.Connection, oids: Sequence[int]) -> list[tuple[int, str, str]]:
    """(relation, column, why) of every column of ``oids`` that folds text."""
    nondeterministic = ("NOT coalesce(coll.collisdeterministic, true)"
                        if conn.info.server_version >= 120000 else "false")
    rows = conn.execute(_FOLDING_Q.format(nondeterministic=nondeterministic),
                        (list(oids), list(oids))).fetchall()
    return [(oid, name, ("is an array of citext" if arr else "is citext") if citext else
             f"has the nondeterministic collation {coll}")
            for oid, name, citext, arr, coll in rows]


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
