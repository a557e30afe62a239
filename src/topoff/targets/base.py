"""What a target (the analytics replica) offers the sync: tables, loads, and the ledger.

The ledger lives in the target, in a ``topoff`` schema, and every change to it is made in
the same transaction as the data it describes (after dlt): a partition's rows and the row
saying it was applied commit together or not at all, so a sync killed at any moment and
run again ends in the same state as one that was never interrupted.

Ledger tables:

* ``topoff.replicas``: one row per dataset kept in this target (where from, which full
  export it was built from, how far it has applied, partial-replica settings).
* ``topoff.tables``: each table's definition as last applied (columns, method, cursor),
  to notice schema changes.
* ``topoff.applied``: one row per applied step (a partition, or a file of a full load).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from topoff.dataset.bounds import Bounds
from topoff.dataset.manifest import Column, TableEntry


@dataclass(frozen=True)
class Capabilities:
    """What a target can do, declared as data (docs/targets.md prints these)."""

    name: str
    #: how files are loaded
    loader: str
    #: primary key indexes are created by default (after the full load); --primary-keys or
    #: --no-primary-keys decides for a replica. Merges use the key either way.
    primary_keys: bool
    #: an index on each table's cursor column (makes window replacement cheap)
    cursor_index: bool
    #: enum columns keep their enum type (else they are text)
    enum_types: bool
    #: PostgreSQL types are kept as they are (else mapped, see the target's types module)
    native_types: bool
    #: several processes may sync into it at once (one per dataset)
    concurrent_writers: bool


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class ReplicaState:
    dataset: str
    origin: str
    base: str
    base_sequence: int
    status: str = "loading"  # loading | ready
    last_sequence: int = 0
    tables: list[str] | None = None  # qualified source names, None = all
    since: date | None = None
    schema: str | None = None  # every table goes into this schema (else its own)
    primary_keys: bool = True  # primary key indexes created in the replica
    updated_at: datetime | None = None


@dataclass
class TableDef:
    """A table as the ledger remembers it (a manifest entry without its files)."""

    source: str  # qualified name in the dataset
    target: TableRef
    method: str
    columns: list[Column]
    primary_key: list[str]
    cursor: str | None
    cursor_type: str | None
    cursor_timezone: str
    #: the table's schema and name in the dataset (``source`` joins them with a dot, which
    #: is ambiguous when a name holds one); None in ledgers written before they were kept
    source_parts: tuple[str, str] | None = None

    @classmethod
    def from_entry(cls, entry: TableEntry, target: TableRef) -> TableDef:
        return cls(entry.qualified, target, entry.method, list(entry.columns),
                   list(entry.primary_key), entry.cursor, entry.cursor_type,
                   entry.cursor_timezone, (entry.schema, entry.name))

    def to_json(self) -> str:
        d: dict[str, Any] = {"method": self.method, "columns": [c.to_json() for c in self.columns],
             "primary_key": self.primary_key, "cursor": self.cursor,
             "cursor_type": self.cursor_type, "cursor_timezone": self.cursor_timezone}
        if self.source_parts is not None:
            d["source_schema"], d["source_name"] = self.source_parts
        return json.dumps(d)

    def source_ref(self) -> TableRef:
        """The table in the source database this replica table was exported from."""
        if self.source_parts is not None:
            return TableRef(*self.source_parts)
        if f"{self.target.schema}.{self.target.name}" == self.source:
            return self.target
        schema, name = self.source.split(".", 1)
        return TableRef(schema, name)

    @classmethod
    def from_row(cls, source: str, schema: str, name: str, definition: str) -> TableDef:
        d = json.loads(definition)
        return cls(source, TableRef(schema, name), d["method"],
                   [Column(c["name"], c["type"], c.get("nullable", True), c.get("enum"))
                    for c in d["columns"]], d["primary_key"], d["cursor"], d["cursor_type"],
                   d["cursor_timezone"],
                   (d["source_schema"], d["source_name"]) if "source_schema" in d else None)


@dataclass
class LoadSpec:
    """How to put files into a table."""

    table: TableDef
    files: Sequence[Path]
    #: replace the rows whose cursor falls in these bounds (append partitions)
    window: Bounds | None = None
    #: append | upsert | snapshot | initial (into a fresh table, no merge)
    mode: str = "initial"
    #: only rows whose cursor is at least this (partial replicas)
    since: datetime | date | None = None
    extra: dict[str, Any] = field(default_factory=dict)


LEDGER_DDL = [
    "CREATE SCHEMA IF NOT EXISTS topoff",
    """CREATE TABLE IF NOT EXISTS topoff.replicas (
        dataset text PRIMARY KEY, origin text NOT NULL, base text NOT NULL,
        base_sequence bigint NOT NULL, status text NOT NULL, last_sequence bigint NOT NULL,
        tables text, since date, target_schema text, primary_keys boolean NOT NULL,
        updated_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS topoff.tables (
        dataset text NOT NULL, source_table text NOT NULL, target_schema text NOT NULL,
        target_name text NOT NULL, definition text NOT NULL,
        PRIMARY KEY (dataset, source_table))""",
    """CREATE TABLE IF NOT EXISTS topoff.applied (
        dataset text NOT NULL, publication text NOT NULL, step text NOT NULL,
        sequence bigint NOT NULL, kind text NOT NULL, window_label text, revision integer,
        rows bigint, manifest_sha256 text, applied_at timestamptz NOT NULL,
        PRIMARY KEY (dataset, publication, step))""",
]


class Target(ABC):
    """The replica. Methods that change data run inside :meth:`transaction`."""

    capabilities: Capabilities
    url: str
    #: the placeholder of the driver ("%s" for psycopg, "?" for duckdb)
    P: str = "?"

    # -- connection ------------------------------------------------------------------------
    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Commit at the end of the block, roll back on an exception."""

    @abstractmethod
    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (names in it are constants or quoted by :meth:`ident`)."""

    @abstractmethod
    def ident(self, *names: str) -> str:
        """A quoted, qualified identifier."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release the connection."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tables ----------------------------------------------------------------------------
    @abstractmethod
    def table_exists(self, ref: TableRef) -> bool: ...

    @abstractmethod
    def create_table(self, table: TableDef) -> None:
        """CREATE SCHEMA IF NOT EXISTS, then the table (no keys: they come after the load)."""

    @abstractmethod
    def add_column(self, table: TableDef, column: Column) -> None: ...

    @abstractmethod
    def create_keys(self, table: TableDef, primary_key: bool = True) -> None:
        """The primary key (when ``primary_key``) and the cursor index (as the capabilities
        say), once the table holds its first rows."""

    def drop_table(self, ref: TableRef) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.ident(ref.schema, ref.name)}")

    @abstractmethod
    def load(self, spec: LoadSpec) -> int:
        """Load the files as ``spec.mode`` says; return the number of rows loaded."""

    @abstractmethod
    def hash_rows(self, table: TableDef, by_day: bool, since: datetime | date | None = None,
                  window: Bounds | None = None) -> dict[str | None, tuple[int, str]]:
        """count and canonical hash (topoff.canonical), per UTC day of the cursor or whole
        (keyed None), of the rows at or after ``since`` and inside ``window``."""

    @abstractmethod
    def day_expression(self, table: TableDef) -> object | None:
        """SQL for the UTC day of a row's window, or None when the cursor's zone needs one
        query per window (a ``timestamp without time zone`` kept in local time)."""

    def stored_columns(self, table: TableDef) -> list[Column]:
        """The columns as the replica holds them (``verify`` hashes the source alike)."""
        return table.columns

    def max_cursor(self, table: TableDef) -> Any:
        if not table.cursor:
            return None
        return self.execute(f"SELECT max({self.ident(table.cursor)}) FROM "
                            f"{self.ident(table.target.schema, table.target.name)}")[0][0]

    def count(self, table: TableDef) -> int:
        ref = table.target
        return int(self.execute(f"SELECT count(*) FROM {self.ident(ref.schema, ref.name)}")[0][0])

    # -- ledger ----------------------------------------------------------------------------
    def ensure_ledger(self) -> None:
        with self.transaction():
            for ddl in LEDGER_DDL:
                self.execute(ddl)

    def has_ledger(self) -> bool:
        return self.table_exists(TableRef("topoff", "replicas"))

    def replicas(self) -> list[str]:
        if not self.has_ledger():
            return []
        return [r[0] for r in self.execute("SELECT dataset FROM topoff.replicas ORDER BY 1")]

    def read_replica(self, dataset: str) -> ReplicaState | None:
        P = self.P
        rows = self.execute(
            "SELECT dataset, origin, base, base_sequence, status, last_sequence, tables, since, "
            f"target_schema, primary_keys, updated_at FROM topoff.replicas WHERE dataset = {P}",
            [dataset])
        if not rows:
            return None
        r = rows[0]
        return ReplicaState(r[0], r[1], r[2], int(r[3]), r[4], int(r[5]),
                            json.loads(r[6]) if r[6] else None, r[7], r[8], bool(r[9]), r[10])

    def write_replica(self, s: ReplicaState) -> None:
        P = self.P
        self.execute(f"DELETE FROM topoff.replicas WHERE dataset = {P}", [s.dataset])
        self.execute(
            "INSERT INTO topoff.replicas (dataset, origin, base, base_sequence, status, "
            "last_sequence, tables, since, target_schema, primary_keys, updated_at) VALUES "
            f"({P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, now())",
            [s.dataset, s.origin, s.base, s.base_sequence, s.status, s.last_sequence,
             json.dumps(s.tables) if s.tables is not None else None, s.since, s.schema,
             s.primary_keys])

    def table_defs(self, dataset: str) -> dict[str, TableDef]:
        P = self.P
        rows = self.execute("SELECT source_table, target_schema, target_name, definition FROM "
                            f"topoff.tables WHERE dataset = {P} ORDER BY 1", [dataset])
        return {r[0]: TableDef.from_row(*r) for r in rows}

    def write_table_def(self, dataset: str, t: TableDef) -> None:
        P = self.P
        self.execute(f"DELETE FROM topoff.tables WHERE dataset = {P} AND source_table = {P}",
                     [dataset, t.source])
        self.execute("INSERT INTO topoff.tables (dataset, source_table, target_schema, "
                     f"target_name, definition) VALUES ({P}, {P}, {P}, {P}, {P})",
                     [dataset, t.source, t.target.schema, t.target.name, t.to_json()])

    def applied_steps(self, dataset: str, publication: str) -> set[str]:
        P = self.P
        return {r[0] for r in self.execute(
            f"SELECT step FROM topoff.applied WHERE dataset = {P} AND publication = {P}",
            [dataset, publication])}

    def record_step(self, dataset: str, publication: str, step: str, sequence: int, kind: str,
                    window_label: str | None, revision: int | None, rows: int | None,
                    manifest_sha256: str | None) -> None:
        P = self.P
        self.execute(
            "INSERT INTO topoff.applied (dataset, publication, step, sequence, kind, "
            "window_label, revision, rows, manifest_sha256, applied_at) VALUES "
            f"({P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, now())",
            [dataset, publication, step, sequence, kind, window_label, revision, rows,
             manifest_sha256])

    def applied(self, dataset: str, limit: int = 20) -> list[tuple[Any, ...]]:
        P = self.P
        return self.execute(
            "SELECT publication, sequence, kind, window_label, revision, sum(rows), "
            f"max(applied_at) FROM topoff.applied WHERE dataset = {P} "
            "GROUP BY publication, sequence, kind, window_label, revision "
            f"ORDER BY sequence DESC LIMIT {int(limit)}", [dataset])

    def forget(self, dataset: str) -> None:
        """Drop the dataset's tables and ledger rows (``--rebase``), in the caller's txn."""
        for t in self.table_defs(dataset).values():
            self.drop_table(t.target)
        P = self.P
        for table in ("applied", "tables", "replicas"):
            self.execute(f"DELETE FROM topoff.{table} WHERE dataset = {P}", [dataset])


def iter_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk
