"""Per-table row counts and content hashes, computed the same way at backup and drill time.

At backup time they run in the dump's own snapshot (the coordinator's transaction whose
snapshot pg_dump imports), so they describe exactly what the dump holds.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from topoff.canonical import pg_row_hash
from topoff.dataset.manifest import Column

_TABLES_Q = """
SELECT n.nspname, c.relname, c.oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
_COLUMNS_Q = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def table_hashes(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """``{"schema.table": {"rows": n, "hash": "..."}}`` for every user table."""
    out: dict[str, dict[str, Any]] = {}
    for schema, name, oid in conn.execute(_TABLES_Q).fetchall():
        cols = [Column(n, t, nullable) for n, t, nullable in
                conn.execute(_COLUMNS_Q, [oid]).fetchall()]
        ident = sql.Identifier(schema, name)
        if cols:
            q = sql.SQL("SELECT {} FROM {}").format(pg_row_hash(cols, "exact"), ident)
        else:
            q = sql.SQL("SELECT count(*), '0' FROM {}").format(ident)
        rows, digest = conn.execute(q).fetchone()  # type: ignore[misc]
        out[f"{schema}.{name}"] = {"rows": int(rows), "hash": str(digest)}
    return out
