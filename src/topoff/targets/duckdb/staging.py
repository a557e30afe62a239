"""Rows handed to a DuckDB replica other than as dataset files: a replicate refresh's rows
staged in a temporary table (Python values, or PostgreSQL's text of them), and CSV
streamed from a live source, spooled to files under the replica's tmp directory and read
as the dataset's files are (types.py's typed SELECT, the same widening and checks)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from topoff.canonical import duck_ident
from topoff.dataset.manifest import Column
from topoff.errors import TargetError
from topoff.targets.base import LoadSpec, TableDef
from topoff.targets.duckdb.spool import spool_error, spool_file
from topoff.targets.duckdb.types import stored_as_text, typed_select
from topoff.targets.merge import merge

if TYPE_CHECKING:
    from topoff.targets.duckdb.target import DuckDBTarget

_names = itertools.count(1)
#: stage_csv loads its spool file into the stage each time it holds this many bytes
SPOOL_BYTES = 64 << 20


def stage_name() -> str:
    """A temporary table's name no other stage of this process has."""
    return f"topoff_stage_{next(_names)}"


@contextlib.contextmanager
def stage_rows(target: DuckDBTarget, table: TableDef, columns: Sequence[Column],
               rows: Iterable[Sequence[Any]], text: bool = False) -> Iterator[str]:
    """A temporary table of ``rows`` in ``table``'s column types; ``text``: the rows are
    PostgreSQL's text of the values, converted as a load converts the CSV files."""
    names = ", ".join(duck_ident(c.name) for c in columns)
    stage = stage_name()
    raw = stage_name() if text else stage
    shape = (f"({', '.join(duck_ident(c.name) + ' VARCHAR' for c in columns)})" if text
             else f"AS SELECT {names} FROM {target.table_ref(table.target)} LIMIT 0")
    target.execute(f"CREATE TEMP TABLE {raw} {shape}")
    try:
        marks = ", ".join("?" for _ in columns)
        it = iter(rows)
        while batch := list(itertools.islice(it, 10000)):
            target.con.executemany(f"INSERT INTO {raw} VALUES ({marks})", batch)
        if text:  # PostgreSQL's text, read as a load reads the CSV files
            widened = target.widened(table)
            target.widen_misfits(table, columns, widened, raw)
            try:
                target.execute(f"CREATE TEMP TABLE {stage} AS "
                               f"{typed_select(raw, columns, widened)}")
            except (duckdb.ConversionException, duckdb.OutOfRangeException) as e:
                first = str(e).strip().splitlines()[0]
                raise TargetError(
                    f"{table.source}: a value does not fit its DuckDB column ({first})",
                    hint="DuckDB cannot hold this value (timestamps after 294246 AD); "
                    "replicate into PostgreSQL, or correct the value on the source"
                ) from None
            target.execute(f"DROP TABLE {raw}")
        yield stage
    finally:
        with contextlib.suppress(duckdb.Error):  # an aborted transaction drops them
            target.execute(f"DROP TABLE IF EXISTS {stage}")
            target.execute(f"DROP TABLE IF EXISTS {raw}")


def _spooled(target: DuckDBTarget, table: TableDef, columns: list[Column],
             chunks: Iterable[bytes], take: Callable[[str, set[str]], None]) -> None:
    """Spool the CSV to files under the replica's tmp directory; each time one holds
    SPOOL_BYTES (and at the end), hand ``take`` its typed SELECT (types.py)."""
    tmp = Path(str(target.path) + ".tmp")
    widened = target.widened(table)
    it = iter(chunks)
    while True:
        with spool_file(target.path, tmp) as spool:
            size = 0
            try:
                for chunk in it:
                    spool.write(chunk)
                    size += len(chunk)
                    if size >= SPOOL_BYTES:
                        break
                spool.flush()
            except OSError as e:
                raise spool_error(target.path, e, tmp) from e
            if size:
                spec = LoadSpec(table, [Path(spool.name)], extra={"plain": True})
                target.widen_misfits(table, columns, widened, target.csv_source(spec, columns))
                take(target.typed_csv(spec, columns, widened), widened)
        if size < SPOOL_BYTES:
            return


@contextlib.contextmanager
def stage_csv(target: DuckDBTarget, table: TableDef, columns: Sequence[Column],
              chunks: Iterable[bytes]) -> Iterator[str]:
    """A temporary table of the CSV rows ``chunks`` (COPY's CSV of a live source)."""
    stage = stage_name()
    names = ", ".join(duck_ident(c.name) for c in columns)
    target.execute(f"CREATE TEMP TABLE {stage} AS SELECT {names} FROM "
                   f"{target.table_ref(table.target)} LIMIT 0")
    staged = target.widened(table)

    def take(select: str, widened: set[str]) -> None:
        # a column widened by this file (types.py) is widened in the stage too
        for c in columns:
            if c.name in widened and c.name not in staged:
                ident = duck_ident(c.name)
                target.execute(f"ALTER TABLE {stage} ALTER COLUMN {ident} SET DATA TYPE "
                               f"VARCHAR USING {stored_as_text(ident, c)}")
                staged.add(c.name)
        target.execute(f"INSERT INTO {stage} {select}")

    try:
        _spooled(target, table, list(columns), chunks, take)
        yield stage
    finally:
        target.execute(f"DROP TABLE IF EXISTS {stage}")


def copy_csv(target: DuckDBTarget, table: TableDef, columns: Sequence[Column],
             chunks: Iterable[bytes]) -> int:
    """The CSV rows ``chunks`` inserted into ``table`` (a first build); how many."""
    done = [0]

    def take(select: str, widened: set[str]) -> None:
        done[0] += merge(target, table, list(columns), f"({select})", "initial")

    _spooled(target, table, list(columns), chunks, take)
    return done[0]
