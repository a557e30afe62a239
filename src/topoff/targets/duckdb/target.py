"""A replica in a DuckDB file: embedded, no server (the default target)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import duckdb

from topoff.canonical import duck_ident, duckdb_row_hash
from topoff.dataset.bounds import Bounds
from topoff.dataset.manifest import Column
from topoff.errors import TargetError
from topoff.pgtypes import family
from topoff.targets.base import Capabilities, LoadSpec, TableDef, TableRef, Target
from topoff.targets.duckdb import staging
from topoff.targets.duckdb.connect import connect
from topoff.targets.duckdb.load_errors import load_error
from topoff.targets.duckdb.resources import resource_settings
from topoff.targets.duckdb.types import (
    MACROS,
    columns_ddl,
    duckdb_type,
    misfit_check,
    stored_as_text,
    typed_select,
)
from topoff.targets.duckdb.values import check_values
from topoff.targets.merge import cursor_literal, merge, window_condition
from topoff.targets.names import fold

CAPABILITIES = Capabilities(
    name="duckdb",
    loader="`read_csv` of the zstd files (parallel, no decompression step)",
    primary_keys=False,  # ART indexes: see create_keys below
    cursor_index=False,  # zone maps already skip row groups outside a window
    enum_types=False,
    native_types=False,
    concurrent_writers=False,
    load_in_place=False,  # read_csv is a relation: the load is one INSERT ... SELECT
    parallel_tables=False,
    notes={"cursor_index": "zone maps skip row groups", "enum_types": "VARCHAR",
           "native_types": "mapped, below", "concurrent_writers": "one writer per file",
           "load_in_place": "an initial load is one INSERT from `read_csv`; merges stage "
                            "a temporary table"},
)
log = logging.getLogger("topoff")


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"



class DuckDBTarget(Target):
    capabilities = CAPABILITIES
    P = "?"
    folds_case = True

    def __init__(self, path: Path, create: bool = True, memory_limit: str | None = None) -> None:
        self.path = path
        self.url = str(path)
        # Nothing to read and nothing to be made (status, verify): an empty, unsaved database.
        database = ":memory:" if not create and not path.exists() else str(path)
        if database != ":memory:" and path.parent and not path.parent.exists():
            raise TargetError(f"directory {path.parent} does not exist",
                              hint="create it first, or choose another path for the replica")
        config, self.max_line = resource_settings(memory_limit)
        self.memory_limit = config["memory_limit"]
        if database != ":memory:":  # spill next to the replica, not in the working directory
            config["temp_directory"] = str(path) + ".tmp"
        # Nothing to be made (status, verify) is nothing to write: read beside other readers
        self.con = connect(database, cast(dict[str, Any], config), path, read_only=not create)
        # read only, nothing changes the file meanwhile: column types asked once a table
        self._types: dict[TableRef, dict[str, str]] | None = None if create else {}
        # topoff shows its own progress, DuckDB's bar would write into its output; the
        # setting and the macros in one call
        self.con.execute(";\n".join(("SET enable_progress_bar = false", *MACROS)))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.con.execute(statement, list(params))
        return cur.fetchall() if cur.description is not None else []

    def ident(self, *names: str) -> str:
        return ".".join(duck_ident(n) for n in names)

    def literal(self, value: str) -> str:
        return _literal(value)

    def run_count(self, statement: str) -> int:
        return int(self.execute(statement)[0][0])

    def table_ref(self, ref: TableRef) -> str:
        return self.ident(ref.schema, ref.name)

    # -- tables ----------------------------------------------------------------------------
    def table_exists(self, ref: TableRef) -> bool:
        """Whether ``ref``, or a table whose name differs only in the case of its ASCII
        letters (the same name for DuckDB), exists."""
        want = (fold(ref.schema, True), fold(ref.name, True))
        return any((fold(s, True), fold(n, True)) == want for s, n in self.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            "table_catalog = current_database() AND lower(table_schema) = lower(?) AND "
            "lower(table_name) = lower(?)", [ref.schema, ref.name]))

    def existing_tables(self, refs: Iterable[TableRef]) -> set[TableRef]:
        """Those of ``refs`` that exist, as :meth:`table_exists` finds them, in one query."""
        held = {(fold(s, True), fold(n, True)) for s, n in self.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE "
            "table_catalog = current_database()")}
        return {r for r in refs if (fold(r.schema, True), fold(r.name, True)) in held}

    def create_table(self, table: TableDef) -> None:
        ref = table.target
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.ident(ref.schema)}")
        cols = columns_ddl(table.source, list(table.columns))
        self.execute(f"CREATE TABLE {self.table_ref(ref)} ({cols})")

    def add_column(self, table: TableDef, column: Column) -> None:
        self.execute(f"ALTER TABLE {self.table_ref(table.target)} ADD COLUMN "
                     f"{duck_ident(column.name)} {duckdb_type(column)}")

    def change_column_type(self, table: TableDef, column: Column, keep_values: bool) -> None:
        c, typ = duck_ident(column.name), duckdb_type(column)
        using = f"CAST({c} AS {typ})" if keep_values else f"CAST(NULL AS {typ})"
        self.execute(f"ALTER TABLE {self.table_ref(table.target)} ALTER COLUMN {c} "
                     f"SET DATA TYPE {typ} USING {using}")

    # create_keys: the base class's. An ART index is rewritten whole at each checkpoint
    # (1.5 s for 1.5 million rows, whatever the day changed): keys are only created when
    # asked for (--primary-keys). Merges find rows by key with a join, index or not.

    # -- loading ---------------------------------------------------------------------------
    def csv_source(self, spec: LoadSpec, columns: list[Column]) -> str:
        files = ", ".join(_literal(p) for p in spec.files)
        types = ", ".join(f"{_literal(c.name)}: 'VARCHAR'" for c in columns)
        # dataset files: zstd with a header; stage_csv's spool files: plain rows
        header, compression = ("false", "none") if spec.extra.get("plain") else ("true", "zstd")
        # records end in LF (COPY's CSV): told, as DuckDB would take a CR LF inside the
        # first line's quotes for the files' line ending and refuse them
        return (f"read_csv([{files}], header = {header}, columns = {{{types}}}, delim = ',', "
                "quote = '\"', escape = '\"', nullstr = '', allow_quoted_nulls = false, "
                "new_line = '\\n', "
                f"auto_detect = false, compression = '{compression}', "
                f"max_line_size = {self.max_line}, "
                f"buffer_size = {self.max_line})")

    def typed_csv(self, spec: LoadSpec, columns: list[Column], widened: set[str]) -> str:
        select = typed_select(self.csv_source(spec, columns), columns, widened)
        if spec.since is not None and spec.table.cursor:
            select = (f"SELECT * FROM ({select}) WHERE {duck_ident(spec.table.cursor)} >= "
                      f"{cursor_literal(self, spec.table, spec.since)}")
        return select

    # -- columns whose values do not all fit the DuckDB type (types.py: "widened") ---------
    def _stored_types(self, ref: TableRef) -> dict[str, str]:
        if self._types is not None and ref in self._types:
            return self._types[ref]
        types = dict(self.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? AND "
            "table_name = ?", [ref.schema, ref.name]))
        if self._types is not None:
            self._types[ref] = types
        return types

    def widened(self, table: TableDef) -> set[str]:
        """Columns kept as PostgreSQL's text although their type maps to another."""
        stored = self._stored_types(table.target)
        return {c.name for c in table.columns
                if stored.get(c.name) == "VARCHAR" and duckdb_type(c) != "VARCHAR"}

    def stored_columns(self, table: TableDef) -> list[Column]:
        """The columns as the replica holds them: widened ones as text, an unconstrained
        numeric of a replica made before it was kept as text as a double."""
        stored = self._stored_types(table.target)
        out = []
        for c in table.columns:
            kind = family(c.type, c.enum).kind
            if stored.get(c.name) == "VARCHAR" and duckdb_type(c) != "VARCHAR":
                c = Column(c.name, "text", c.nullable, None)
            elif stored.get(c.name) == "DOUBLE" and kind == "numeric_any":
                c = Column(c.name, "double precision", c.nullable, None)
            out.append(c)
        return out

    def widen_misfits(self, table: TableDef, columns: Sequence[Column], widened: set[str],
                       source: str) -> None:
        """Widen the columns whose values in ``source`` (CSV text: files, or staged text
        rows) the DuckDB type cannot hold; then refuse a text in its form that is no value
        (values.py)."""
        checks = {c.name: (c, check) for c in columns if c.name not in widened
                  and (check := misfit_check(duck_ident(c.name), c)) is not None}
        if not checks:
            return check_values(self.con, columns, widened, source)
        flags = ", ".join(f"bool_or({check})" for _, check in checks.values())
        found = self.execute(f"SELECT {flags} FROM {source}")[0]
        target = self.table_ref(table.target)
        for (name, (column, _)), misfit in zip(checks.items(), found, strict=True):
            if misfit:
                c = duck_ident(name)
                self.execute(f"ALTER TABLE {target} ALTER COLUMN {c} SET DATA TYPE VARCHAR "
                             f"USING {stored_as_text(c, column)}")
                widened.add(name)
                log.warning("%s.%s: a value does not fit DuckDB's %s; the column now keeps "
                            "PostgreSQL's text", table.source, name, duckdb_type(column))
        check_values(self.con, columns, widened, source)  # (values.py)

    def load(self, spec: LoadSpec) -> int:
        try:
            return self._load(spec)
        except duckdb.Error as e:
            found = load_error(e, spec.table.source, self.memory_limit, self.max_line)
            if found is None:
                raise  # a malformed file or else: classified by targets/errors.py
            raise found from None

    def _load(self, spec: LoadSpec) -> int:
        table = spec.table
        columns = spec.extra.get("columns") or table.columns
        widened = self.widened(table)
        self.widen_misfits(table, columns, widened, self.csv_source(spec, columns))
        select = self.typed_csv(spec, columns, widened)  # --since applied here
        if spec.mode == "initial":
            return merge(self, table, columns, f"({select})", "initial")
        stage = staging.stage_name()
        self.execute(f"CREATE TEMP TABLE {stage} AS {select}")
        try:
            return merge(self, table, columns, stage, spec.mode, spec.window)
        finally:
            self.execute(f"DROP TABLE IF EXISTS {stage}")

    def stage_rows(self, table: TableDef, columns: Sequence[Column],
                   rows: Iterable[Sequence[Any]], text: bool = False
                   ) -> contextlib.AbstractContextManager[str]:
        return staging.stage_rows(self, table, columns, rows, text)

    def stage_csv(self, table: TableDef, columns: Sequence[Column],
                  chunks: Iterable[bytes]) -> contextlib.AbstractContextManager[str]:
        return staging.stage_csv(self, table, columns, chunks)

    def copy_csv(self, table: TableDef, columns: Sequence[Column],
                 chunks: Iterable[bytes]) -> int:
        return staging.copy_csv(self, table, columns, chunks)

    # -- reading ---------------------------------------------------------------------------
    def day_expression(self, table: TableDef) -> str | None:
        """The UTC day of a row's window as a DATE, or None when it needs per-window queries."""
        assert table.cursor and table.cursor_type
        c = duck_ident(table.cursor)
        kind = family(table.cursor_type).kind
        if kind == "timestamptz":
            return f"CAST(timezone('UTC', {c}) AS DATE)"
        if kind == "date" or (kind == "timestamp" and table.cursor_timezone == "UTC"):
            return f"CAST({c} AS DATE)"
        return None

    def hash_rows(self, table: TableDef, by_day: bool,
                  since: datetime | date | None = None,
                  window: Bounds | None = None) -> dict[str | None, tuple[int, str]]:
        where = []
        if since is not None and table.cursor:
            where.append(f"{duck_ident(table.cursor)} >= {cursor_literal(self, table, since)}")
        if window is not None:
            where.append(window_condition(self, table, window))
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        target = self.table_ref(table.target)
        h = duckdb_row_hash(self.stored_columns(table))
        if by_day:
            day = self.day_expression(table)
            assert day is not None
            rows = self.execute(f"SELECT CAST({day} AS VARCHAR), {h} FROM {target}{cond} "
                                "GROUP BY 1")
            return {r[0]: (int(r[1]), str(r[2])) for r in rows}
        r = self.execute(f"SELECT {h} FROM {target}{cond}")[0]
        return {None: (int(r[0]), str(r[1]))}
