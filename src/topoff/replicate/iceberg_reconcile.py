"""``topoff replicate --reconcile`` on an Iceberg replica: one table compared with its
source row by row, as the Iceberg columns hold the values, and repaired in ONE commit.

* The source is read whole in one snapshot by the refresh's own read plan (a repull's:
  iceberg_pull.py, iceberg_pull_maria.py) and converted exactly as a refresh converts it
  (:func:`topoff.targets.iceberg.replica.csv_batches`): a row compares equal when it is
  what a refresh would have written. The table is read at its current snapshot.
* Both land in a throwaway DuckDB file (spilled to disk past :data:`MEMORY`: memory stays
  bounded whatever the table's size), where a join by key finds the keys only in the table
  (deleted on the source, or held twice), and the source's rows the table lacks or holds
  with other values. Values compare as the column's type; floats (and lists of them) by
  their shortest round-trip text, so that -0 differs from 0 and NaN equals NaN.
* The repair is one commit that asserts the snapshot the table was read at: the rows of
  every differing key deleted (copy-on-write, as an upsert deletes), the source's rows
  appended. The state properties are not touched: the watermark stays where the last
  refresh left it. A refresh committing meanwhile makes it fail whole (LockedError: run it
  again); nothing differing, nothing is committed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from topoff.errors import ConfigError, LockedError, SourceError, TargetError
from topoff.replicate.apply import landing
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.describe import TableInfo
from topoff.replicate.iceberg_apply import IcebergReplica, follow, state_of
from topoff.replicate.iceberg_pull import Pull, pull
from topoff.replicate.pg_source import PostgresSession
from topoff.replicate.repair import ReconcileReport
from topoff.replicate.shape import table_def
from topoff.replicate.source import Request, open_session
from topoff.replicate.state import TableState
from topoff.targets.iceberg.quiet import no_empty_delete_warning
from topoff.targets.iceberg.replica import csv_batches
from topoff.targets.iceberg.replica_write import KEY_ROWS
from topoff.targets.iceberg.rows import arrow_schema
from topoff.targets.iceberg.txn import transaction
from topoff.targets.iceberg.write import append, committing, delete_keys, key_filter

#: DuckDB's memory for the comparison; the rest spills to its temporary directory
MEMORY = "256MB"
#: rows per batch handed between DuckDB and the Iceberg writer
BATCH_ROWS = 100_000
#: composite keys per delete (pyiceberg's OR-of-ANDs filter grows with each)
COMPOSITE_KEY_ROWS = 2000


def _col(target: pa.Schema, name: str) -> str:
    """A column's name in DuckDB: its position in the table (DuckDB's names ignore the case
    of letters, Iceberg's do not: "A" and "a" are two columns here)."""
    return f"c{target.get_field_index(name)}"


def _value(alias: str, target: pa.Schema, name: str) -> str:
    """Column ``name`` of ``alias`` as the comparison takes it: floats (and lists of them)
    as their shortest round-trip text, other types as they are."""
    t = target.field(name).type
    floats = pa.types.is_floating(t) or (
        pa.types.is_large_list(t) and pa.types.is_floating(t.value_type))
    col = f"{alias}.{_col(target, name)}"
    return f"CAST({col} AS VARCHAR)" if floats else col


def _reader(target: pa.Schema, names: list[str], batches: Iterator[pa.RecordBatch],
            failed: list[BaseException]) -> pa.RecordBatchReader:
    """The ``names`` columns of ``batches`` as ``target`` types them, named for DuckDB
    (:func:`_col`); an exception of the batches' is kept in ``failed`` (DuckDB reports it
    as its own error, without the hint)."""
    schema = pa.schema([target.field(n) for n in names])
    inside = pa.schema([pa.field(_col(target, n), target.field(n).type) for n in names])

    def cast() -> Iterator[pa.RecordBatch]:
        try:
            for b in batches:
                yield pa.RecordBatch.from_arrays(b.select(names).cast(schema).columns,
                                                 schema=inside)
        except BaseException as e:
            failed.append(e)
            raise
    return pa.RecordBatchReader.from_batches(inside, cast())


def _as_target(batch: pa.RecordBatch, target: pa.Schema, names: list[str]) -> pa.Table:
    """A batch DuckDB gives back (columns named by :func:`_col`) as ``target`` names and
    types its ``names`` columns."""
    schema = pa.schema([target.field(n) for n in names])
    return pa.Table.from_arrays([batch.column(i).cast(f.type) for i, f in enumerate(schema)],
                                schema=schema)


def _load(con: Any, name: str, reader: pa.RecordBatchReader,
          failed: list[BaseException]) -> None:
    """Table ``name`` of DuckDB made from ``reader``; a failure of the reader is raised as
    itself."""
    import duckdb

    con.register(f"{name}_rows", reader)
    try:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_rows")
    except duckdb.Error:
        if failed:
            raise failed[0] from None
        raise
    finally:
        con.unregister(f"{name}_rows")


def reconcile_iceberg(location: str, s: ReplicateSource, t: ReplicateTable
                      ) -> ReconcileReport:
    """Compare ``t``'s Iceberg table with the source and make it equal (module text)."""
    started = time.monotonic()
    name = f"{s.name}.{t.qualified}"
    table, h = IcebergReplica(location).load(s, t)
    if table is None or h is None or state_of(h) is None:
        raise TargetError(f"{name} has not been replicated yet",
                          hint=f"run topoff replicate --table {name} first")

    def conflict() -> LockedError:
        return LockedError(f"{name}: another run committed to its Iceberg table while it "
                           "was reconciled; nothing was changed",
                           hint="run the reconcile again")

    def failed(why: str) -> TargetError:
        return TargetError(f"reconciling {name} failed ({why}); nothing was committed",
                           hint="fix the warehouse (or the temporary directory's space), "
                           "then run it again")

    src = open_session(s)
    p: Pull | None = None
    try:
        with committing(conflict, failed):
            info = src.describe(t)
            if not info.key:
                raise ConfigError(f"{t.qualified} has no primary key to reconcile by",
                                  hint=f"set key = [...] in [replicate.sources.{s.name}."
                                  f"tables.{t.name}] (NOT NULL unique columns)")
            _, added, dropped, notes = follow(h.definition, table_def(info, landing(s, t)),
                                              t.drop_columns)
            if added or dropped or notes:
                raise TargetError(f"{name}: the source's columns changed since the last "
                                  f"refresh", hint=f"refresh it first: topoff replicate "
                                  f"--table {name}")
            snapshot_id = table.metadata.current_snapshot_id
            schema = table.metadata.schema()
            p = _every_row(src, info)
            converted = csv_batches(p.blocks, list(info.columns), schema, name)
            try:
                return _compare_and_repair(table, snapshot_id, schema, converted, info, name,
                                           started)
            finally:  # its reader thread out of the source's blocks before they close
                converted.close()
    finally:
        close = getattr(p.blocks, "close", None) if p is not None else None
        if close is not None:
            close()
        src.close()


def _every_row(src: Any, info: TableInfo) -> Pull:
    """Every row of the table in the source's snapshot, as a whole repull reads them."""
    if isinstance(src, PostgresSession):
        return pull(src.conn, info, TableState(), Request("repull"), False, True)
    from topoff.replicate.iceberg_pull_maria import MariaSession, pull_maria

    assert isinstance(src, MariaSession)
    return pull_maria(src, info, TableState(), Request("repull"), False, True)


def _compare_and_repair(table: Any, snapshot_id: int | None, schema: Any,
                        converted: Iterator[pa.RecordBatch], info: TableInfo, name: str,
                        started: float) -> ReconcileReport:
    import duckdb
    from pyiceberg.table.update import AssertRefSnapshotId

    target = arrow_schema(schema)
    compared = [c.name for c in info.columns if c.name in set(target.names)]
    keys = list(info.key)
    with tempfile.TemporaryDirectory(prefix="topoff-reconcile-") as tmp:
        con = duckdb.connect(f"{tmp}/compare.duckdb", config={
            "memory_limit": MEMORY, "temp_directory": f"{tmp}/spill"})
        try:
            con.execute("SET TimeZone = 'UTC'")
            errors: list[BaseException] = []
            _load(con, "s", _reader(target, target.names, converted, errors), errors)
            scan = table.scan(selected_fields=tuple(compared)).to_arrow_batch_reader()
            _load(con, "d", _reader(target, compared, iter(scan), errors), errors)
            _no_null_keys(con, target, keys, name)
            report, gone, rows = _diff(con, target, compared, keys)
            if not gone and not rows:
                return _report(con, report, started)
            props = {"topoff.replicate.source": name, "topoff.replicate.reconciled": "true"}
            with transaction(table) as txn, no_empty_delete_warning():
                txn._apply((), (AssertRefSnapshotId(  # type: ignore[call-arg]
                    snapshot_id=snapshot_id, ref="main"),))
                _delete(txn, table, con, gone, keys, target, props)
                written = append(txn, table, _batches(con, rows, target), props)
            if written != report[0]:
                raise TargetError(f"{name}: {written} rows written where {report[0]} differ",
                                  hint="run the reconcile again")
            return _report(con, report, started)
        finally:
            con.close()


def _no_null_keys(con: Any, target: pa.Schema, keys: list[str], name: str) -> None:
    """A row with a NULL key matches no other row (it would be deleted and appended again
    at every reconcile, never deleted): refused on either side, as the SQL targets do."""
    nulls = " OR ".join(f"{_col(target, k)} IS NULL" for k in keys)
    for side, error in (("s", SourceError("a key column is NULL in a row to reconcile",
                                          hint="reconcile by NOT NULL unique columns "
                                          "(set key = [...])")),
                        ("d", TargetError(f"a key column is NULL in a row of {name}'s Iceberg "
                                          "table; nothing was committed",
                                          hint="the table was written by another writer; "
                                          f"rebuild it: topoff replicate --resync {name}"))):
        if con.execute(f"SELECT EXISTS (SELECT 1 FROM {side} WHERE {nulls})").fetchall()[0][0]:
            raise error


def _diff(con: Any, target: pa.Schema, compared: list[str], keys: list[str]
          ) -> tuple[tuple[int, int, int, int], str, str]:
    """((rows to write, inserted, updated, deleted), the query of the keys to delete, the
    query of the rows to write)."""
    k = [_col(target, n) for n in keys]
    on = " AND ".join(f"s.{c} = d.{c}" for c in k)
    key_list = ", ".join(f"d.{c}" for c in k)
    differs = " OR ".join(f"{_value('s', target, n)} IS DISTINCT FROM {_value('d', target, n)}"
                          for n in compared)
    con.execute(f"CREATE TABLE twice AS SELECT {key_list} FROM d GROUP BY ALL "
                "HAVING count(*) > 1")
    twice_on = " AND ".join(f"w.{c} = s.{c}" for c in k)
    # a key held twice is rewritten whole (its rows deleted, the source's appended)
    con.execute(f"CREATE TABLE changed AS SELECT s.*, d.{k[0]} IS NULL AS new "
                f"FROM (SELECT * FROM s ANTI JOIN twice w ON {twice_on}) s LEFT JOIN d ON {on} "
                f"WHERE d.{k[0]} IS NULL OR ({differs}) "
                f"UNION ALL BY NAME SELECT s.*, false AS new FROM s SEMI JOIN twice w "
                f"ON {twice_on}")
    con.execute(f"CREATE TABLE gone AS SELECT DISTINCT {key_list} FROM d ANTI JOIN s ON {on}")
    (inserted, updated), = con.execute("SELECT count(*) FILTER (WHERE new), "
                                       "count(*) FILTER (WHERE NOT new) FROM changed"
                                       ).fetchall()
    (deleted,), = con.execute("SELECT count(*) FROM gone").fetchall()
    names = ", ".join(_col(target, n) for n in target.names)
    key_cols = ", ".join(k)
    gone = f"SELECT {key_cols} FROM gone UNION ALL SELECT {key_cols} FROM changed WHERE NOT new"
    rows = f"SELECT {names} FROM changed"
    return ((inserted + updated, inserted, updated, deleted),
            gone if deleted or updated else "", rows if inserted or updated else "")


def _batches(con: Any, query: str, target: pa.Schema) -> Iterator[pa.Table]:
    if not query:
        return
    for batch in con.sql(query).to_arrow_reader(BATCH_ROWS):
        yield _as_target(batch, target, target.names)


def _delete(txn: Any, table: Any, con: Any, query: str, keys: list[str], target: pa.Schema,
            props: dict[str, str]) -> None:
    if not query:
        return
    step = KEY_ROWS if len(keys) == 1 else COMPOSITE_KEY_ROWS
    for batch in con.sql(query).to_arrow_reader(step):
        part = _as_target(batch, target, keys)
        if len(keys) == 1:
            delete_keys(txn, table, keys, part, props)
        else:
            txn.delete(key_filter(keys, part), snapshot_properties=props)


def _report(con: Any, counts: tuple[int, int, int, int], started: float) -> ReconcileReport:
    (compared,), = con.execute("SELECT count(*) FROM s").fetchall()
    _, inserted, updated, deleted = counts
    return ReconcileReport(int(compared), 0, inserted, updated, deleted,
                           time.monotonic() - started)
