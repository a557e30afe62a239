"""``topoff sync DATASET iceberg:catalog.toml``: build Iceberg tables from the newest full
export, then top them off with every newer partition, each change to a table in ONE
Iceberg commit (a transaction: its deletes, its appends and its ledger properties).

* full export: the tables are created (with ``topoff.step = schema``), then each data file
  is one commit (``file:N``); the last file of a table marks it ``ready``. A load killed
  midway resumes at the first file a table's properties do not count.
* append partition: delete the rows whose cursor is in the window, append the partition's
  rows (so a new revision of a day replaces the day);
* upsert partition: for each batch of rows, delete the rows with their keys, append them;
* snapshot: delete every row, append the new ones.

Iceberg commits one table at a time: a publication touching several tables is one commit
per table. Each table records the sequence it has applied, so a sync killed between two
tables' commits resumes with the tables still behind: nothing twice, nothing missing.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThan,
    Or,
)

from topoff.dataset.bounds import cursor_bounds
from topoff.dataset.index import Publication
from topoff.dataset.manifest import Column, Manifest, TableEntry
from topoff.errors import ConfigError, TargetError
from topoff.sync.fetch import Fetcher
from topoff.targets.iceberg.rows import batches, gathered
from topoff.targets.iceberg.table import TableLedger, summary
from topoff.targets.iceberg.types import iceberg_type

log = logging.getLogger("topoff")
#: Arrow bytes gathered before they are written as data files (bounds memory and file count)
WRITE_BYTES = 64 << 20
#: rows per delete-by-key of an upsert (the filter lists every key)
UPSERT_ROWS = 2000

Hook = Callable[..., None]


def _append(txn: Any, table: Any, tables: Iterator[pa.Table], props: dict[str, str]) -> int:
    """Every table of ``tables`` as data files of one append snapshot; the rows written."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    rows = 0
    with txn.update_snapshot(snapshot_properties=props).fast_append() as snap:
        for t in tables:
            rows += t.num_rows
            if t.num_rows == 0:
                continue
            for f in _dataframe_to_data_files(table_metadata=txn.table_metadata,
                                              write_uuid=snap.commit_uuid, df=t, io=table.io):
                snap.append_data_file(f)
    return rows


def _window_filter(entry: TableEntry, manifest: Manifest) -> BooleanExpression:
    assert entry.cursor and entry.cursor_type and manifest.window is not None
    b = cursor_bounds(entry.cursor_type, entry.cursor_timezone, manifest.window)
    # pyiceberg's predicates take (term, literal) positionally; its pydantic fields mislead mypy
    return And(GreaterThanOrEqual(entry.cursor, b.lo),  # type: ignore[call-arg, arg-type]
               LessThan(entry.cursor, b.hi))  # type: ignore[call-arg, arg-type]


def _key_filter(keys: list[str], t: pa.Table) -> BooleanExpression:
    if len(keys) == 1:
        return In(keys[0], set(t.column(keys[0]).to_pylist()))  # type: ignore[call-arg, arg-type]
    rows = zip(*(t.column(k).to_pylist() for k in keys), strict=True)
    terms = [And(*(EqualTo(k, v)  # type: ignore[call-arg, arg-type]
                   for k, v in zip(keys, row, strict=True))) for row in rows]
    out: BooleanExpression = terms[0]
    for term in terms[1:]:
        out = Or(out, term)
    return out


def check_columns(ledger: TableLedger, entry: TableEntry, pub: Publication) -> list[Column]:
    """The columns ``entry`` adds to the table; TargetError (nothing changed) when it drops
    one or changes a type."""
    from topoff.sync.apply import SchemaChangeError, _schema_changes

    try:
        return _schema_changes(ledger.definition, entry, pub)
    except SchemaChangeError as e:
        raise TargetError(e.message, hint=e.hint) from None


def apply_table(table: Any, ledger: TableLedger, entry: TableEntry, paths: list[Path],
                pub: Publication, manifest: Manifest, added: list[Column],
                hook: Hook | None = None) -> int:
    """One publication's files into one table, in one Iceberg commit. ``entry`` and
    ``manifest`` are those of the publication that holds the rows: ``pub`` itself, or the
    one it marks the table unchanged since (when this replica passed over that one)."""
    mode = {"append": "append", "upsert": "upsert"}.get(entry.method, "snapshot")
    ledger.sequence, ledger.publication = pub.sequence, pub.id
    ledger.definition.columns.extend(added)
    props = summary(ledger, manifest.revision, pub.manifest_sha256)
    with table.transaction() as txn, warnings.catch_warnings():
        # "Delete operation did not match any records": a window or key that is new
        warnings.simplefilter("ignore", UserWarning)
        if added:
            with txn.update_schema() as upd:
                for c in added:
                    upd.add_column(c.name, iceberg_type(c))
        schema = txn.table_metadata.schema()
        stream = (b for p in paths for b in batches(p, f"{pub.id} {entry.qualified}",
                                                    list(entry.columns), schema))
        if mode == "append" and manifest.window is not None and entry.cursor_type:
            txn.delete(_window_filter(entry, manifest), snapshot_properties=props)
        elif mode == "snapshot" or (mode == "append" and manifest.window is None):
            txn.delete(AlwaysTrue(), snapshot_properties=props)
        if mode == "upsert":
            if not entry.primary_key:
                raise TargetError(f"{entry.qualified}: an upsert table without a primary key",
                                  hint="the dataset is damaged; tell its publisher")
            rows = 0
            for t in gathered(stream, 0):
                for start in range(0, t.num_rows, UPSERT_ROWS):
                    part = t.slice(start, UPSERT_ROWS)
                    txn.delete(_key_filter(list(entry.primary_key), part),
                               snapshot_properties=props)
                    rows += _append(txn, table, iter([part]), props)
            if rows == 0:
                _append(txn, table, iter(()), props)
        else:
            rows = _append(txn, table, gathered(stream, WRITE_BYTES), props)
        if hook:  # inside the transaction: a failure here commits nothing
            hook("table_applied", publication=pub.id, table=entry.qualified)
        txn.set_properties(ledger.properties())
    return rows


def load_file(table: Any, ledger: TableLedger, entry: TableEntry, path: Path, n: int,
              pub: Publication, hook: Hook | None = None) -> int:
    """The n-th data file of a full export into its table, in one commit."""
    ledger.step = "ready" if n == len(entry.files) else f"file:{n}"
    if ledger.ready:
        ledger.sequence, ledger.publication = pub.sequence, pub.id
    props = summary(ledger, None, pub.manifest_sha256)
    with table.transaction() as txn:
        schema = txn.table_metadata.schema()
        stream = batches(path, f"{pub.id}/{entry.files[n - 1].path}", list(entry.columns),
                         schema)
        rows = _append(txn, table, gathered(stream, WRITE_BYTES), props)
        if hook:
            hook("file_loaded", publication=pub.id, table=entry.qualified,
                 file=entry.files[n - 1].path)
        txn.set_properties(ledger.properties())
    return rows


def refuse_options(opts: Any) -> None:
    """Sync options an Iceberg replica does not take."""
    if opts.since is not None:
        raise ConfigError("--since is not supported for an Iceberg replica",
                          hint="sync without --since (Iceberg tables hold every day)")
    if opts.schema is not None:
        raise ConfigError("--schema is not supported for an Iceberg replica",
                          hint="set 'namespace' in the catalog file instead")
    if opts.primary_keys:
        raise ConfigError("--primary-keys is not supported for an Iceberg replica",
                          hint="Iceberg tables have no indexes; leave the option out")


def fetch_all(fetcher: Fetcher, pub: Publication, entry: TableEntry) -> list[Path]:
    return [fetcher.fetch(pub.id, f) for f in entry.files]
