"""Per-table replication state, kept in the target beside the data.

One row per replicated table in ``topoff.replicate_tables`` (the ``topoff`` schema the sync
ledger uses too): where it lands, its method, its :class:`TableState` (watermark, xmin,
content hash), whether it is paused, when it was last refreshed, the rows moved in total,
and the table's definition as last applied (columns and key, to notice column changes).

Every write runs in the caller's transaction (``engine.transaction()``), the one that also
holds the refresh's rows: data and state commit together or not at all, so a run killed
at any moment and run again neither loses nor duplicates rows. Statements hold constants
and the driver's placeholder only; values are bound. What is read back is untrusted:
:meth:`TableState.from_json` checks the state, and a definition that does not parse is an
IntegrityError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from topoff.errors import IntegrityError
from topoff.pgtypes import parse_type
from topoff.replicate.state import TableState
from topoff.targets.base import TableDef, TableRef, Target

DDL = [
    "CREATE SCHEMA IF NOT EXISTS topoff",
    """CREATE TABLE IF NOT EXISTS topoff.replicate_tables (
        source text NOT NULL, source_table text NOT NULL, target_schema text NOT NULL,
        target_name text NOT NULL, method text NOT NULL, state text NOT NULL,
        definition text, paused boolean NOT NULL, updated_at timestamptz,
        rows_total bigint NOT NULL, PRIMARY KEY (source, source_table))""",
]
_COLUMNS = ("source, source_table, target_schema, target_name, method, state, paused, "
            "updated_at, rows_total")


@dataclass(frozen=True)
class StoredTable:
    source: str  # source name in the config (e.g. "matomo")
    table: str  # source table qualified "schema.name"
    target: TableRef  # where it lands
    method: str
    state: TableState
    paused: bool
    updated_at: datetime | None  # last successful refresh (target clock, tz-aware UTC)
    rows_total: int


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise IntegrityError("stored replication state is invalid: updated_at is not a time",
                             hint="drop the row of topoff.replicate_tables to start again")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StateStore:
    """The ``topoff.replicate_tables`` rows of one target."""

    def __init__(self, engine: Target) -> None:
        self.engine = engine

    def _run(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.engine.execute(statement.replace("{P}", self.engine.P), params or [])

    def ensure(self) -> None:
        """Create the state table if missing (one process at a time on a shared server)."""
        if self.engine.table_exists(TableRef("topoff", "replicate_tables")):
            return
        with self.engine.transaction():
            self.engine.lock_wait("replicate-state")
            for ddl in DDL:
                self.engine.execute(ddl)

    def _row(self, r: tuple[Any, ...]) -> StoredTable:
        for i in (0, 1, 2, 3, 4):
            if not isinstance(r[i], str) or not r[i] or len(r[i]) > 1024:
                raise IntegrityError("stored replication state is invalid: a name is not a "
                                     "short text", hint="drop the row of "
                                     "topoff.replicate_tables to start again")
        rows = r[8]
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise IntegrityError("stored replication state is invalid: rows_total",
                                 hint="drop the row of topoff.replicate_tables to start again")
        return StoredTable(r[0], r[1], TableRef(r[2], r[3]), r[4], TableState.from_json(r[5]),
                           bool(r[6]), _utc(r[7]), rows)

    def all(self) -> list[StoredTable]:
        if not self.engine.table_exists(TableRef("topoff", "replicate_tables")):
            return []
        return [self._row(r) for r in self._run(
            f"SELECT {_COLUMNS} FROM topoff.replicate_tables ORDER BY source, source_table")]

    def get(self, source: str, table: str) -> StoredTable | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM topoff.replicate_tables WHERE source = {{P}} "
                         "AND source_table = {P}", [source, table])
        return self._row(rows[0]) if rows else None

    def definition(self, source: str, table: str) -> TableDef | None:
        """The table as last applied (columns, key, cursor), or None before its first build."""
        rows = self._run("SELECT target_schema, target_name, definition FROM "
                         "topoff.replicate_tables WHERE source = {P} AND source_table = {P}",
                         [source, table])
        if not rows or rows[0][2] is None:
            return None
        schema, name, text = rows[0]
        try:
            d = TableDef.from_row(table, schema, name, text)
            names = {c.name for c in d.columns}
            for c in d.columns:
                if not isinstance(c.name, str) or not 0 < len(c.name) <= 1024:
                    raise TypeError("column name")
                parse_type(c.type)  # TypeNameError (a ValueError) for anything else
                if c.enum is not None and not all(isinstance(x, str) for x in c.enum):
                    raise TypeError("enum labels")
            if len(names) != len(d.columns) or not set(d.primary_key) <= names:
                raise ValueError("key")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise IntegrityError(f"stored definition of {source}.{table} is invalid",
                                 hint="resync the table (topoff replicate --resync)") from None
        return d

    def write(self, source: str, table: str, target: TableRef, method: str,
              state: TableState, definition: TableDef | None, moved: int,
              paused: bool = False, refreshed: bool = True) -> None:
        """Store the table's row (replacing it), in the caller's transaction."""
        old = self.get(source, table)
        total = (old.rows_total if old else 0) + moved
        stamp = "now()" if refreshed else "{P}"
        params: list[Any] = [source, table, target.schema, target.name, method,
                             state.to_json(), definition.to_json() if definition else None,
                             paused]
        if not refreshed:
            params.append(old.updated_at if old else None)
        params.append(total)
        self._run("DELETE FROM topoff.replicate_tables WHERE source = {P} AND "
                  "source_table = {P}", [source, table])
        self._run("INSERT INTO topoff.replicate_tables (source, source_table, target_schema, "
                  "target_name, method, state, definition, paused, updated_at, rows_total) "
                  f"VALUES ({{P}}, {{P}}, {{P}}, {{P}}, {{P}}, {{P}}, {{P}}, {{P}}, {stamp}, "
                  "{P})", params)

    def set_paused(self, source: str, table: str, target: TableRef, method: str,
                   paused: bool) -> None:
        """Pause or resume a table (a row is made for a table never refreshed)."""
        old = self.get(source, table)
        if old is None:
            self.write(source, table, target, method, TableState(), None, 0, paused,
                       refreshed=False)
            return
        self._run("UPDATE topoff.replicate_tables SET paused = {P} WHERE source = {P} AND "
                  "source_table = {P}", [paused, source, table])

    def forget(self, source: str, table: str) -> None:
        self._run("DELETE FROM topoff.replicate_tables WHERE source = {P} AND "
                  "source_table = {P}", [source, table])
