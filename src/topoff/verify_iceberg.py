"""``topoff verify iceberg:catalog.toml --against SOURCE``: the Iceberg side of verify.

Each table's current snapshot is read through pyiceberg (a scan streamed as Arrow record
batches, one data file at a time, so deletes are applied as any Iceberg reader applies
them) into a scratch DuckDB database in a temporary directory (DuckDB spills to disk:
bounded memory whatever the table's size), then counted and hashed per UTC day (or whole)
with the DuckDB replica's canonical text (topoff.canonical), and compared with the source
hashed the same way, as ``topoff verify`` does for a DuckDB replica.

Compared exactly: every column, with these spellings: floats by 17 significant digits (one
ulp is a difference), decimals by their text, timestamps by their microsecond, dates by
their day number, bytes by their hex, and every column Iceberg holds as ``string``
(intervals, times, uuids, json, unconstrained numerics...) by the text COPY wrote. Arrays
of floats are the one exception: Iceberg holds them as ``list<float/double>`` and the
source's array text writes the shortest decimal of each element, which the two engines do
not spell alike; they are left out of the hash (the report's notes name them).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from topoff.canonical import DUCKDB_LIST_ELEMENTS, case_twin, duck_ident, pg_array_text
from topoff.dataset.layout import Window, full_time
from topoff.dataset.manifest import Column
from topoff.errors import NoReplicaError, TargetError
from topoff.pgtypes import family
from topoff.sources.base import open_source
from topoff.sync.plan import rebase_hint
from topoff.targets.base import TableDef
from topoff.targets.duckdb.target import DuckDBTarget
from topoff.targets.iceberg import read
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.table import TableLedger, replica_tables, state_of
from topoff.targets.iceberg.types import array_delimiter

log = logging.getLogger("topoff")


def _window_end(publication: str | None) -> datetime | None:
    """Where the rows a publication brought end: its window's end, or the start of a full
    export's snapshot day."""
    if not publication:
        return None
    if publication.startswith("full/"):
        taken = full_time(publication)
        return datetime(taken.year, taken.month, taken.day, tzinfo=UTC)
    parts = publication.split("/")
    try:
        return Window.from_label(parts[1]).end if len(parts) == 3 else None
    except ValueError:
        return None


def _cutoff(ledgers: list[TableLedger]) -> datetime | None:
    ends = [e for lg in ledgers if (e := _window_end(lg.publication)) is not None]
    return max(ends) if ends else None


def _compared(definition: TableDef) -> tuple[TableDef, list[str], list[str]]:
    """The table as compared (arrays of floats left out), the select list that loads it
    into DuckDB (arrays of text elements as PostgreSQL's array text), and notes."""
    keep: list[Column] = []
    select: list[str] = []
    notes: list[str] = []
    for c in definition.columns:
        f = family(c.type, c.enum)
        ident = duck_ident(c.name)
        twin = case_twin([k.name for k in keep], c.name)
        if twin is not None:
            notes.append(f"{definition.source}.{c.name}: not compared (DuckDB, where the "
                         f"Iceberg table is hashed, takes it for column {twin})")
            continue
        if f.kind == "array" and f.element is not None and f.element.kind == "float":
            notes.append(f"{definition.source}.{c.name} ({c.type}): not compared (Iceberg "
                         "holds a list of floats; the source's array text spells them "
                         "differently)")
            continue
        if f.kind == "array" and f.element is not None \
                and f.element.kind not in DUCKDB_LIST_ELEMENTS:
            text = pg_array_text(ident, family("text"), array_delimiter(c))
            select.append(f"{text} AS {ident}")
        else:
            select.append(ident)
        keep.append(c)
    table = TableDef(definition.source, definition.target, definition.method, keep,
                     definition.primary_key, definition.cursor, definition.cursor_type,
                     definition.cursor_timezone)
    return table, select, notes


def _materialize(duck: DuckDBTarget, iceberg: Any, table: TableDef, select: list[str]) -> None:
    """The current rows of ``iceberg`` as a DuckDB table, batch by batch."""
    ref = table.target
    duck.execute(f"CREATE SCHEMA IF NOT EXISTS {duck_ident(ref.schema)}")
    names = [c.name for c in table.columns]
    reader = read.reader(iceberg, tuple(names) or ("*",))
    duck.con.register("topoff_iceberg_rows", reader)
    try:
        duck.execute(f"CREATE TABLE {duck.ident(ref.schema, ref.name)} AS SELECT "
                     f"{', '.join(select) or '1 AS topoff_none'} FROM topoff_iceberg_rows")
    finally:
        duck.con.unregister("topoff_iceberg_rows")


def verify_iceberg(location: str, source_url: str, allow_primary: bool = False,
                   dataset: str | None = None) -> Any:
    from topoff.verify import VerifyReport, _compare_table, _notes, choose_dataset

    settings = read_settings(location)
    catalog = open_catalog(settings, create=False)
    every = replica_tables(catalog, settings.namespace)
    datasets = sorted({lg.dataset for _, lg in every.values()})
    dataset = choose_dataset(datasets, location, dataset)
    tables = {s: tl for s, tl in every.items() if tl[1].dataset == dataset}
    state = state_of(tables, dataset)
    if state is None:
        raise NoReplicaError(f"{location} holds no replica of {dataset}",
                          hint=f"datasets here: {', '.join(datasets)}")
    if state.status != "ready":
        raise TargetError(f"the replica of {dataset} is still being built",
                          hint="run `topoff sync` until it finishes, then verify")
    cutoff = _cutoff([lg for _, lg in tables.values()])
    report = VerifyReport(dataset, cutoff, hint=(
        "if the source is right, " + rebase_hint(state.origin, location)
        + " (or sync again first when a publication is pending)"))
    with tempfile.TemporaryDirectory(prefix="topoff-verify-") as scratch, \
            open_source(source_url, allow_primary, "topoff verify") as source:
        duck = DuckDBTarget(Path(scratch) / "iceberg.duckdb")
        try:
            source.open()
            verifier = source.verifier()
            for name, (iceberg, ledger) in sorted(tables.items()):
                table, select, notes = _compared(ledger.definition)
                try:
                    _materialize(duck, iceberg, table, select)
                except FileNotFoundError as e:
                    raise _missing(iceberg, name, e) from None
                # each table up to the window it applied: a sync stopped between two
                # tables' commits leaves them one publication apart
                t = _compare_table(verifier, duck, table, None,
                                   _window_end(ledger.publication) or cutoff)
                report.tables.append(t)
                report.notes.extend(_notes(table) + notes)
                duck.execute(f"DROP TABLE {duck.ident(table.target.schema, table.target.name)}")
                log.info("%s: %s (%d rows over %d days)", name,
                         "equal" if t.equal else f"{len(t.differences)} differences",
                         t.compared_rows, t.days)
        finally:
            duck.close()
    return report


def _missing(iceberg: Any, name: str, e: FileNotFoundError) -> TargetError:
    """A file of the table's snapshot (read at the start of verify) is gone: replaced by a
    sync or a compaction and deleted by an expiry since, when the table's current snapshot
    is another, whose files are all there; else the warehouse lost it."""
    from topoff.targets.iceberg.reachable import current_files_present

    planned = iceberg.current_snapshot()
    try:
        iceberg.refresh()
        changed = iceberg.current_snapshot() is not None and planned is not None and \
            iceberg.current_snapshot().snapshot_id != planned.snapshot_id and \
            current_files_present(iceberg)
    except OSError:
        changed = False
    if changed:
        return TargetError(f"{name} changed while it was verified (another writer committed "
                           "and an expiry deleted files of the snapshot verify was reading)",
                           hint="run verify again (once no sync, compaction or expiry runs)")
    return TargetError(f"{name}: a file of its current snapshot is missing "
                       f"({e.strerror or type(e).__name__})",
                       hint="the warehouse lost a file: restore it, or rebuild the replica")
