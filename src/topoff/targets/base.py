"""What a target (the analytics replica) offers as an engine: tables, loads, reads.

The sync ledger is not here: ledger.py keeps it (state, stored in the target in the same
transaction as the data); merge.py holds the one merge every target and caller shares.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

from topoff.dataset.bounds import Bounds
from topoff.dataset.logical import Logical
from topoff.dataset.manifest import Column, TableEntry


@dataclass(frozen=True)
class Capabilities:
    """What a target can do, declared as data that the code reads (never a test of the
    target's class or name); docs/targets.md prints these (tests/test_targets_merge.py
    checks the page against them)."""

    name: str
    #: how files are loaded (documentation only)
    loader: str
    #: primary key indexes are created by default (after the full load); --primary-keys or
    #: --no-primary-keys decides for a replica. Merges use the key either way.
    #: Read by: sync (the default of a new replica), Target.create_keys.
    primary_keys: bool
    #: an index on each table's cursor column (makes window replacement cheap).
    #: Read by: Target.create_keys.
    cursor_index: bool
    #: enum columns keep their enum type (else they are text). Read by: create_table.
    enum_types: bool
    #: PostgreSQL types are kept as they are (else mapped, see the target's types module).
    #: Read by: verify (how the source is hashed to compare with the replica).
    native_types: bool
    #: several processes may sync into it at once (one per dataset); they take advisory
    #: locks. Read by: sync.lock.
    concurrent_writers: bool
    #: files go straight into the table when no merge by key is needed (initial, snapshot,
    #: append without --since), and an append whose rows collide with a key retries
    #: through a staging merge from a savepoint. Read by: the target's load.
    load_in_place: bool
    #: ``topoff replicate --jobs N`` refreshes several tables at once, each through its own
    #: connection or catalog (else one after the other). Read by: replicate.engine.
    parallel_tables: bool
    #: a word about a value, printed after it in docs/targets.md (field name -> note)
    notes: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


#: the rows of docs/targets.md's capability table: field name -> what it means
CAPABILITY_LABELS = {
    "loader": "loader",
    "primary_keys": "primary key indexes by default (`--primary-keys` / `--no-primary-keys` "
                    "decide)",
    "cursor_index": "index on each table's cursor (cheap window replacement)",
    "enum_types": "enum columns keep their enum type",
    "native_types": "PostgreSQL types kept as they are",
    "concurrent_writers": "several processes syncing at once (one per dataset)",
    "load_in_place": "files loaded straight into the table, no staging copy",
    "parallel_tables": "`topoff replicate --jobs N` refreshes several tables at once",
}


def capability_table(targets: Sequence[Capabilities]) -> str:
    """The markdown table docs/targets.md prints, from the declared capabilities."""
    def cell(c: Capabilities, name: str) -> str:
        value = getattr(c, name)
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        return f"{text} ({c.notes[name]})" if name in c.notes else text

    lines = ["| capability | " + " | ".join(c.name for c in targets) + " |",
             "|---|" + "---|" * len(targets)]
    lines += [f"| {label} | " + " | ".join(cell(c, name) for c in targets) + " |"
              for name, label in CAPABILITY_LABELS.items()]
    return "\n".join(lines) + "\n"


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
                   [Column(c["name"], c["type"], c.get("nullable", True), c.get("enum"),
                           cast(Logical, Logical.from_json(c["logical"], "column")
                                if c.get("logical") else None),  # None: derived from type
                           c.get("native")) for c in d["columns"]],
                   d["primary_key"], d["cursor"], d["cursor_type"],
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


class Target(ABC):
    """The replica. Methods that change data run inside :meth:`transaction`."""

    capabilities: Capabilities
    url: str
    #: the placeholder of the driver ("%s" for psycopg, "?" for duckdb)
    P: str = "?"
    #: names are compared without the case of ASCII letters (DuckDB), even quoted
    folds_case: bool = False
    #: the longest name (schema, table, column) the engine holds whole, in UTF-8 bytes;
    #: None: no limit topoff needs to know of
    max_name_bytes: int | None = None

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

    @abstractmethod
    def literal(self, value: str) -> str:
        """A string constant, quoted by the engine's rules (merge.py casts it)."""

    @abstractmethod
    def run_count(self, statement: str) -> int:
        """Run one INSERT or DELETE; return the rows it changed."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release the connection."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tables ----------------------------------------------------------------------------
    @abstractmethod
    def table_exists(self, ref: TableRef) -> bool: ...

    def existing_tables(self, refs: Iterable[TableRef]) -> set[TableRef]:
        """Those of ``refs`` that :meth:`table_exists` finds."""
        return {r for r in refs if self.table_exists(r)}

    @abstractmethod
    def create_table(self, table: TableDef) -> None:
        """CREATE SCHEMA IF NOT EXISTS, then the table (no keys: they come after the load)."""

    @abstractmethod
    def add_column(self, table: TableDef, column: Column) -> None: ...

    def create_keys(self, table: TableDef, primary_key: bool | None = None) -> None:
        """The primary key (when ``primary_key``, by default as the capabilities say) and
        the cursor index (as the capabilities say), once the table holds its first rows."""
        relation = self.ident(table.target.schema, table.target.name)
        if primary_key is None:
            primary_key = self.capabilities.primary_keys
        if table.primary_key and primary_key:
            keys = ", ".join(self.ident(k) for k in table.primary_key)
            self.execute(f"ALTER TABLE {relation} ADD PRIMARY KEY ({keys})")
        if table.cursor and self.capabilities.cursor_index:
            self.execute(f"CREATE INDEX ON {relation} ({self.ident(table.cursor)})")

    def drop_column(self, table: TableDef, name: str) -> None:
        self.execute(f"ALTER TABLE {self.ident(table.target.schema, table.target.name)} "
                     f"DROP COLUMN {self.ident(name)}")

    def change_column_type(self, table: TableDef, column: Column, keep_values: bool) -> None:
        """Give ``column`` its (new) type: its values cast, or NULL (a table whose rows are
        all replaced in the same transaction)."""
        raise NotImplementedError

    # -- locks (held by the current transaction) --------------------------------------------
    def try_lock(self, name: str) -> bool:
        """Take the lock ``name`` until the current transaction ends; False when another
        session holds it. A target with one writer (its file is locked) always has it."""
        return True

    def lock_wait(self, name: str) -> None:  # noqa: B027 - an optional hook
        """Wait for the lock ``name``, held until the current transaction ends."""

    def drop_table(self, ref: TableRef) -> None:
        self.execute(f"DROP TABLE IF EXISTS {self.ident(ref.schema, ref.name)}")

    @abstractmethod
    def load(self, spec: LoadSpec) -> int:
        """Load the files as ``spec.mode`` says (through merge.py); return the rows loaded."""

    @abstractmethod
    def stage_rows(self, table: TableDef, columns: Sequence[Column],
                   rows: Iterable[Sequence[Any]], text: bool = False
                   ) -> AbstractContextManager[str]:
        """A temporary table shaped like ``table``'s ``columns`` and holding ``rows`` (Python
        values, streamed in: constant memory), for :func:`topoff.targets.merge.merge`;
        dropped at the end of the block. Runs in the caller's transaction. ``text``: the
        values are PostgreSQL's text of each value (what COPY writes; None for NULL), read
        as a load reads files."""

    def stage_csv(self, table: TableDef, columns: Sequence[Column],
                  chunks: Iterable[bytes]) -> AbstractContextManager[str]:
        """Like :meth:`stage_rows`, from CSV bytes as ``COPY ... TO STDOUT (FORMAT csv)``
        writes them (no header; any split into chunks), streamed: constant memory."""
        raise NotImplementedError

    def copy_csv(self, table: TableDef, columns: Sequence[Column],
                 chunks: Iterable[bytes]) -> int:
        """CSV rows (as :meth:`stage_csv` takes them) straight into ``table``, which the
        caller's transaction just created: nothing to merge. Returns the rows loaded."""
        with self.stage_csv(table, columns, chunks) as stage:
            from topoff.targets.merge import merge

            return merge(self, table, columns, stage, "initial")

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

    def count_all(self, tables: Iterable[TableDef]) -> int:
        """The rows of all ``tables`` together, in one query."""
        counts = " UNION ALL ".join(
            f"SELECT count(*) AS n FROM {self.ident(t.target.schema, t.target.name)}"
            for t in tables)
        if not counts:
            return 0
        return int(self.execute(f"SELECT coalesce(sum(n), 0) FROM ({counts}) AS c")[0][0])


def iter_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk
