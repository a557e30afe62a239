"""PostgreSQL columns that compare otherwise than their text: ``citext`` (or a domain over
it) and a nondeterministic collation take ``'abc'`` and ``'ABC'`` for one value, which a
replica (text in DuckDB, PostgreSQL and Iceberg) and a dataset's upsert tell apart. A
merge by such a key would keep a respelled key's old row beside the new one, so such keys
are refused for merges (replicate's inserter and updater, the export's upsert) and not
suggested for an upsert (discover.py)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

_FOLDING_Q = """
SELECT a.attrelid, a.attname, 'citext' IN (t.typname, coalesce(bt.typname, '')), coll.collname
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_catalog.pg_collation coll ON coll.oid = a.attcollation
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
  AND ('citext' IN (t.typname, coalesce(bt.typname, '')) OR {nondeterministic})
ORDER BY a.attrelid, a.attnum
"""

HINT = ("set key = [...] to columns that compare as their text, or to this key if its "
        'values are never respelled; or use method = "snapshot"')


def _folding(conn: psycopg.Connection, oids: Sequence[int]) -> list[tuple[int, str, str]]:
    """(relation, column, why) of every column of ``oids`` that folds text."""
    nondeterministic = ("NOT coalesce(coll.collisdeterministic, true)"
                        if conn.info.server_version >= 120000 else "false")
    rows = conn.execute(_FOLDING_Q.format(nondeterministic=nondeterministic),
                        (list(oids),)).fetchall()
    return [(oid, name, "is citext" if citext else
             f"has the nondeterministic collation {coll}") for oid, name, citext, coll in rows]


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
