"""How ``topoff verify`` reads a PostgreSQL source: the source table's column kinds, and
count and canonical hash of its rows (the same queries a PostgreSQL replica is hashed with,
so equal data gives equal hashes)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from topoff.dataset.bounds import Bounds
from topoff.pgtypes import family

if TYPE_CHECKING:
    from topoff.targets.base import TableDef
from topoff.pg_hash import hash_table
from topoff.sources.pg_changes import lock_unchanged, schema_changes
from topoff.sources.pg_domains import VALUE_TYPE
from topoff.sources.pg_errors import server_error

#: the kinds whose canonical text needs functions of their own type
_TYPED = {"float", "interval", "date", "timestamp", "timestamptz", "bytea"}

_COLUMNS_Q = (
    "SELECT a.attname, format_type(v.typid, v.typmod), "
    "t.typtype = 'e' OR (t.typelem <> 0 AND EXISTS (SELECT FROM pg_type e WHERE "
    "e.oid = t.typelem AND e.typtype = 'e')) FROM pg_attribute a " + VALUE_TYPE
    + " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped")
#: the table as the snapshot has it (to_regclass would look the name up as it is now)
_REL_Q = ("SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
          "c.relnamespace WHERE n.nspname = %s AND c.relname = %s")


class PgVerifier:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def mismatch(self, table: TableDef) -> str | None:
        """Why the source's table cannot be hashed like the replica's, or None."""
        ref = table.source_ref()
        rel = self.conn.execute(_REL_Q, (ref.schema, ref.name)).fetchone()
        if rel is None:
            return "the table is missing on the source"
        self._lock(ref.schema, ref.name, *rel)
        found = self.conn.execute(_COLUMNS_Q, [rel[0]]).fetchall()
        if not found:
            return "the table is missing on the source"
        types = {name: family(pg_type, [] if is_enum else None).kind
                 for name, pg_type, is_enum in found}
        gone = [c.name for c in table.columns if c.name not in types]
        if gone:
            return f"column(s) {', '.join(gone)} missing on the source"
        changed = [c.name for c in table.columns if types[c.name] != family(c.type, c.enum).kind
                   and {types[c.name], family(c.type, c.enum).kind} & _TYPED]
        if changed:
            return f"column(s) {', '.join(changed)} changed type on the source"
        return None

    def _lock(self, schema: str, name: str, oid: int, relkind: str) -> None:
        """ACCESS SHARE, held to the end of verify's transaction, as an export takes it: a
        migration replayed from now on waits for verify or cancels it; one replayed since
        its snapshot began (the table rewritten, truncated, renamed, a column dropped or
        renamed) is a SourceError naming the table (pg_changes.py)."""
        lock_unchanged(self.conn, [(sql.Identifier(schema, name), relkind, oid)], "verify",
                       f"{schema}.{name}")

    def hash(self, table: TableDef, by_day: bool, since: datetime | date | None,
             window: Bounds | None, profile: str) -> dict[str | None, tuple[int, str]]:
        """count and canonical hash, whole or per UTC day (``table`` names the source's
        table as its target)."""
        ref = table.source_ref()
        try:
            with schema_changes(f"{ref.schema}.{ref.name}", "verify"):
                return hash_table(self.conn, table, by_day, since, window, profile)
        except psycopg.Error as e:
            error = server_error(e, f"verify of {ref.schema}.{ref.name}")
            if error is None:
                raise
            raise error from e
