"""A replica in a PostgreSQL database (a server you run; any role that may create tables)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import zstandard
from psycopg import sql

from topoff.dataset.bounds import Bounds
from topoff.dataset.manifest import Column
from topoff.errors import SourceError, TargetError
from topoff.pg_hash import day_sql, hash_table
from topoff.pgtypes import parse_type
from topoff.sources.postgres import connect, display_url
from topoff.targets.base import Capabilities, LoadSpec, TableDef, TableRef, Target
from topoff.targets.merge import clear, merge, reads_twice

CAPABILITIES = Capabilities(
    name="postgresql",
    loader="`COPY FROM STDIN`, streamed from the zstd files",
    primary_keys=True,
    cursor_index=True,
    enum_types=True,
    native_types=True,
    concurrent_writers=True,
    load_in_place=True,
    parallel_tables=True,
    notes={"native_types": "text for types it cannot recreate",
           "load_in_place": "`COPY` into the table; a key collision retries through a "
                            "staging merge from a savepoint"},
)
_stage_names = itertools.count(1)
BLOCK = 1 << 20


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (the same as topoff.sync.lock's)."""
    digest = hashlib.sha256(f"topoff:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def column_type(c: Column) -> sql.Composable | None:
    """The column's type in the replica, built from parsed parts (never the manifest's text):
    a built-in type as it is; None for an enum (the target makes its own type); text for a
    user-defined type (composite, range, domain of an extension...): its text form. A
    source's enum held in text (MariaDB's ENUM, whose values include '', which no
    PostgreSQL enum label can be) stays text."""
    t = parse_type(c.type)  # checked when the manifest was read
    if c.enum is not None and t.user:
        return None
    if t.user:
        return sql.SQL("text")
    return sql.SQL(t.ddl())  # pgtypes' constants and integers only


def enum_name(c: Column) -> str:
    """The replica's name for an enum: the source type's own name (unquoted, shortened)
    and a hash of its labels, so two enums never share a type unless their labels agree."""
    bare = parse_type(c.type).base.rsplit(".", 1)[-1].strip('"').replace('""', '"')
    bare = bare.encode()[:40].decode(errors="ignore")  # type names hold 63 bytes
    digest = hashlib.sha256(json.dumps(c.enum or []).encode()).hexdigest()[:8]
    return f"{bare}_{digest}"


class PostgresTarget(Target):
    capabilities = CAPABILITIES
    P = "%s"
    max_name_bytes = 63  # NAMEDATALEN - 1: longer names are cut, with a NOTICE

    def __init__(self, url: str) -> None:
        self.url = display_url(url)
        try:
            self.conn = connect(url, "topoff sync", autocommit=True)
        except SourceError as e:
            raise TargetError(e.message, hint=e.hint) from None
        (in_recovery,) = self.conn.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
        if in_recovery:
            self.conn.close()
            raise TargetError(f"{self.url} is a read-only standby; a replica must be writable",
                              hint="give the URL of a database you can write to")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(statement, list(params) or None)
        return cur.fetchall() if cur.description else []

    def ident(self, *names: str) -> str:
        return sql.Identifier(*names).as_string(self.conn)

    def literal(self, value: str) -> str:
        return sql.Literal(value).as_string(self.conn)

    def run_count(self, statement: str) -> int:
        return max(self.conn.execute(statement).rowcount, 0)

    def _table(self, ref: TableRef) -> sql.Composable:
        return sql.Identifier(ref.schema, ref.name)

    # -- tables ----------------------------------------------------------------------------
    def table_exists(self, ref: TableRef) -> bool:
        return bool(self.execute("SELECT to_regclass(%s) IS NOT NULL",
                                 [self.ident(ref.schema, ref.name)])[0][0])

    def _ensure_enum(self, schema: str, c: Column) -> sql.Composable:
        """The replica's enum type for ``c`` in ``schema``: created from the labels (as
        literals), or reused when it exists with exactly those labels."""
        name = enum_name(c)
        labels = list(c.enum or [])
        found = self.execute(
            "SELECT t.typtype, (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) "
            "FROM pg_enum e WHERE e.enumtypid = t.oid) FROM pg_type t JOIN pg_namespace n "
            "ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typname = %s",
            [schema, name])
        ident = sql.Identifier(schema, name)
        if not found:
            self.conn.execute(sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
                ident, sql.SQL(", ").join(sql.Literal(v) for v in labels)))
        elif found[0][0] != "e" or list(found[0][1] or []) != labels:
            raise TargetError(
                f"type {schema}.{name} already exists in {self.url} and is not the enum "
                f"column {c.name} needs", hint="drop that type, or sync into another schema "
                "with --schema")
        return ident

    def _type(self, table: TableDef, c: Column) -> sql.Composable:
        if c.enum is not None and not self.capabilities.enum_types:
            return sql.SQL("text")
        t = column_type(c)
        if t is None:
            dims = parse_type(c.type).dims
            return self._ensure_enum(table.target.schema, c) + sql.SQL("[]" * dims)
        return t

    def create_table(self, table: TableDef) -> None:
        ref = table.target
        self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(ref.schema)))
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c.name), self._type(table, c))
            for c in table.columns)
        self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._table(ref), cols))

    def add_column(self, table: TableDef, column: Column) -> None:
        self.conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
            self._table(table.target), sql.Identifier(column.name),
            self._type(table, column)))

    def change_column_type(self, table: TableDef, column: Column, keep_values: bool) -> None:
        """The values are cast (``col::type``), or else through their text (an enum that
        gained a label: two enum types have no cast between them)."""
        c = sql.Identifier(column.name)
        typ = self._type(table, column)
        alter = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}")
        if not keep_values:
            self.conn.execute(alter.format(self._table(table.target), c, typ,
                                           sql.SQL("NULL::{}").format(typ)))
            return
        try:
            with self.conn.transaction():  # a savepoint
                self.conn.execute(alter.format(self._table(table.target), c, typ,
                                               sql.SQL("{}::{}").format(c, typ)))
        except psycopg.Error:
            self.conn.execute(alter.format(self._table(table.target), c, typ,
                                           sql.SQL("{}::text::{}").format(c, typ)))

    def try_lock(self, name: str) -> bool:
        return bool(self.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_key(name)])[0][0])

    def lock_wait(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(name)])

    def _has_primary_key(self, ref: TableRef) -> bool:
        return bool(self.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass(%s) "
            "AND indisprimary)", [self.ident(ref.schema, ref.name)])[0][0])

    # -- loading ---------------------------------------------------------------------------
    def _copy_into(self, relation: sql.Composable, columns: list[Column],
                   files: Sequence[Path]) -> int:
        """COPY the files into ``relation``; return the rows COPY reported."""
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
            relation, names)
        dctx = zstandard.ZstdDecompressor()
        rows = 0
        for path in files:
            # one COPY per file: each file starts with its own header line
            with path.open("rb") as raw, dctx.stream_reader(raw) as reader, \
                    self.conn.cursor() as cur:
                with cur.copy(statement) as copy:
                    while block := reader.read(BLOCK):
                        copy.write(block)
                rows += max(cur.rowcount, 0)
        return rows

    def load(self, spec: LoadSpec) -> int:
        table = spec.table
        columns: list[Column] = spec.extra.get("columns") or table.columns
        if (self.capabilities.load_in_place and spec.since is None
                and spec.mode in ("initial", "snapshot", "append")):
            # Straight into the table, as psql would: no staging copy.
            target = self._table(table.target)
            clear(self, table, spec.mode, spec.window)
            if not reads_twice(table, spec.mode):
                return self._copy_into(target, columns, spec.files)
            if self._has_primary_key(table.target):  # else only a merge finds moved rows
                try:
                    with self.conn.transaction():  # a savepoint
                        return self._copy_into(target, columns, spec.files)
                except psycopg.errors.UniqueViolation:
                    pass  # a row moved here from another window: merge on the key below
        with self._stage(table) as stage:
            self._copy_into(sql.Identifier(stage), columns, spec.files)
            return merge(self, table, columns, self.ident(stage), spec.mode, spec.window,
                         spec.since)

    @contextlib.contextmanager
    def _stage(self, table: TableDef) -> Iterator[str]:
        """An empty temporary table shaped like ``table`` (gone at commit at the latest)."""
        stage = f"topoff_stage_{next(_stage_names)}"
        self.conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
            sql.Identifier(stage), self._table(table.target)))
        yield stage
        self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(stage)))

    @contextlib.contextmanager
    def stage_rows(self, table: TableDef, columns: Sequence[Column],
                   rows: Iterable[Sequence[Any]], text: bool = False) -> Iterator[str]:
        # COPY's text format: strings are read by each type's input function either way
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        with self._stage(table) as stage, self.conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(stage), names)) as copy:
                for row in rows:
                    copy.write_row(row)
            yield self.ident(stage)

    def _copy_csv_into(self, relation: sql.Composable, columns: Sequence[Column],
                       chunks: Iterable[bytes]) -> int:
        """COPY CSV bytes (whole rows, any block size) into ``relation``; rows copied."""
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        with self.conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                    relation, names)) as copy:
                for chunk in chunks:
                    copy.write(chunk)
            return max(cur.rowcount, 0)

    @contextlib.contextmanager
    def stage_csv(self, table: TableDef, columns: Sequence[Column],
                  chunks: Iterable[bytes]) -> Iterator[str]:
        with self._stage(table) as stage:
            self._copy_csv_into(sql.Identifier(stage), columns, chunks)
            yield self.ident(stage)

    def copy_csv(self, table: TableDef, columns: Sequence[Column],
                 chunks: Iterable[bytes]) -> int:
        return self._copy_csv_into(self._table(table.target), columns, chunks)

    # -- reading ---------------------------------------------------------------------------
    def day_expression(self, table: TableDef) -> sql.Composable | None:
        return day_sql(table)

    def hash_rows(self, table: TableDef, by_day: bool,
                  since: datetime | date | None = None,
                  window: Bounds | None = None) -> dict[str | None, tuple[int, str]]:
        return hash_table(self.conn, table, by_day, since, window, profile="exact")


