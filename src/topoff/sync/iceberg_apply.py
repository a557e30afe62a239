"""``topoff sync DATASET iceberg:catalog.toml``: build Iceberg tables from the newest full
export, then top them off with every newer partition, each change to a table in ONE
Iceberg commit (a transaction: its deletes, its appends and its ledger properties).

* full export: the tables are created (with ``topoff.step = schema``), then a table's
  files are loaded in commits of up to COMMIT_BYTES (``file:N``: the N first files are
  in); the commit of a table's last files marks it ``ready`` and also applies the
  partitions that follow the full export (sync/iceberg.py). A load killed midway resumes
  at the first file a table's properties do not count. Files are read, checked and
  converted by a second thread (rows.py) while this one writes.
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    LessThan,
)

from topoff.dataset.bounds import cursor_bounds
from topoff.dataset.index import Publication
from topoff.dataset.manifest import Column, DataFile, Manifest, TableEntry
from topoff.errors import ConfigError, IntegrityError, TargetError
from topoff.readahead import ahead
from topoff.sync.fetch import Fetcher
from topoff.sync.scan import size_cap
from topoff.targets.iceberg.checked import Checked
from topoff.targets.iceberg.quiet import no_empty_delete_warning
from topoff.targets.iceberg.rows import batches, gathered
from topoff.targets.iceberg.table import TableLedger, summary, table_name
from topoff.targets.iceberg.txn import transaction
from topoff.targets.iceberg.types import iceberg_type
from topoff.targets.iceberg.write import append, delete_keys, key_filter

log = logging.getLogger("topoff")
#: Arrow bytes gathered before they are written as data files (bounds memory and file count)
WRITE_BYTES = 64 << 20
#: rows per delete-by-key of an upsert (the filter lists every key)
UPSERT_ROWS = 2000
#: compressed bytes of a full export's files loaded into a table in one commit (a kill
#: loses at most this much work; fewer commits: fewer metadata copies)
COMMIT_BYTES = 1 << 30

Hook = Callable[..., None]


def _window_filter(entry: TableEntry, manifest: Manifest) -> BooleanExpression:
    assert entry.cursor and entry.cursor_type and manifest.window is not None
    b = cursor_bounds(entry.cursor_type, entry.cursor_timezone, manifest.window)
    # pyiceberg's predicates take (term, literal) positionally; its pydantic fields mislead mypy
    return And(GreaterThanOrEqual(entry.cursor, b.lo),  # type: ignore[call-arg, arg-type]
               LessThan(entry.cursor, b.hi))  # type: ignore[call-arg, arg-type]


def checked(name: str, f: DataFile) -> Checked:
    """The checks of data file ``f`` while it is read (its decompression bounded as by
    sync/scan.py)."""
    return Checked(f, name, size_cap(f))


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
                hook: Hook | None = None, txn: Any = None,
                given: Iterator[pa.Table] | None = None) -> int:
    """One publication's files into one table, in one Iceberg commit with the ledger's
    properties (or in ``txn``, where the caller sets them, once, and commits). ``entry``
    and ``manifest`` are those of the publication that holds the rows: ``pub`` itself, or
    the one it marks the table unchanged since (when this replica passed over that one).
    ``given``: its rows as publication_rows makes them, read by the caller's thread
    (``paths`` then unused; no column added)."""
    if txn is None:
        with transaction(table) as own:
            rows = apply_table(table, ledger, entry, paths, pub, manifest, added, hook, own)
            own.set_properties(ledger.properties())
            return rows
    mode = {"append": "append", "upsert": "upsert"}.get(entry.method, "snapshot")
    ledger.sequence, ledger.publication = pub.sequence, pub.id
    ledger.definition.columns.extend(added)
    props = summary(ledger, manifest.revision, pub.manifest_sha256)
    with no_empty_delete_warning():  # a window or key that is new
        if added:
            with txn.update_schema() as upd:
                for c in added:
                    upd.add_column((c.name,), iceberg_type(c))  # a tuple: "a.b" is a name
        schema = txn.table_metadata.schema()
        order = iter(paths)  # the files' paths, in their order

        def located(_f: DataFile) -> Path:
            return next(order)

        tables = given if given is not None else \
            ahead(publication_rows(entry, located, pub, schema, []))
        # a table without a snapshot holds no row: no delete to plan (pyiceberg's costs
        # a snapshot producer, 40 ms a table, for nothing)
        empty = txn.table_metadata.current_snapshot() is None
        if empty:
            pass
        elif mode == "append" and manifest.window is not None and entry.cursor_type:
            txn.delete(_window_filter(entry, manifest), snapshot_properties=props)
        elif mode == "snapshot" or (mode == "append" and manifest.window is None):
            txn.delete(AlwaysTrue(), snapshot_properties=props)
        if mode == "upsert":
            if not entry.primary_key:
                raise TargetError(f"{entry.qualified}: an upsert table without a primary key",
                                  hint="the dataset is damaged; tell its publisher")
            if any("." in k for k in entry.primary_key):  # a table made by an earlier version
                table_name(entry)  # refuses it, as for a new table
            rows, keys = 0, list(entry.primary_key)
            numbers, spans = _text_keys(entry, schema, "decimal"), _text_keys(entry, schema,
                                                                               "interval")
            for t in tables:
                _no_null_key(pub, entry, t)
                for start in range(0, t.num_rows, UPSERT_ROWS):
                    part = t.slice(start, UPSERT_ROWS)
                    if numbers or spans:  # 2 and 2.00 one key, 1 day and 24:00:00 one key:
                        # matched by Arrow, not by a filter
                        delete_keys(txn, table, keys, part, props, numbers, spans)
                    else:
                        txn.delete(key_filter(keys, part), snapshot_properties=props)
                    rows += append(txn, table, iter([part]), props)
            if rows == 0:
                append(txn, table, iter(()), props)
        else:
            rows = append(txn, table, tables, props)
        if hook:  # inside the transaction: a failure here commits nothing
            hook("table_applied", publication=pub.id, table=entry.qualified)
    return rows


def publication_rows(entry: TableEntry, locate: Callable[[DataFile], Path],
                     pub: Publication, schema: Any, paths: list[Path]) -> Iterator[pa.Table]:
    """A publication's rows of one table as apply_table writes them (gathered up to
    WRITE_BYTES; an upsert's batch by batch), each file located as it is read (its path
    added to ``paths``) and checked."""
    def stream() -> Iterator[pa.RecordBatch]:
        for f in entry.files:
            paths.append(locate(f))
            name = f"{pub.id}/{f.path}"
            yield from batches(paths[-1], name, list(entry.columns), schema, checked(name, f))

    return gathered(stream(), 0 if entry.method == "upsert" else WRITE_BYTES)


def full_rows(entry: TableEntry, group: list[tuple[int, DataFile]],
              locate: Callable[[DataFile], Path], pub: Publication, schema: Any,
              replaced: Sequence[tuple[TableEntry, Manifest]], paths: list[Path]
              ) -> Iterator[pa.Table]:
    """The rows of a full export's files ``group`` as load_files writes them (gathered,
    less those of the windows ``replaced`` deletes), each file located as it is read (its
    path added to ``paths``) and checked."""
    def stream() -> Iterator[pa.RecordBatch]:
        for _, f in group:
            paths.append(locate(f))
            name = f"{pub.id}/{f.path}"
            yield from batches(paths[-1], name, list(entry.columns), schema, checked(name, f))

    return _outside(gathered(stream(), WRITE_BYTES), replaced)


def _text_keys(entry: TableEntry, schema: Any, kind: str) -> set[str]:
    """The key columns of logical ``kind`` kept as their text: a decimal (no fixed scale,
    or wider than Iceberg's decimal), whose equal numbers may be written otherwise (2 and
    2.00); an interval, whose equal spans may be (1 day and 24:00:00)."""
    from pyiceberg.types import StringType

    kinds = {c.name: c.logical.kind for c in entry.columns}
    return {k for k in entry.primary_key or () if kinds.get(k) == kind
            and isinstance(schema.find_field(k).field_type, StringType)}


def _no_null_key(pub: Publication, entry: TableEntry, t: pa.Table) -> None:
    """IntegrityError when a row of ``t`` has a NULL in a column of the primary key (no
    source holds one; pyiceberg cannot delete by it)."""
    for k in entry.primary_key or ():
        if t.column(k).null_count:
            raise IntegrityError(f"{pub.id} {entry.qualified}: a row whose primary key column "
                                 f"{k} is NULL; nothing of this publication was applied to "
                                 "the table", hint="the publication is damaged; ask the "
                                 "publisher to republish it")


def commit_groups(files: list[DataFile], done: int, limit: int | None = None
                  ) -> list[list[tuple[int, DataFile]]]:
    """The files after the first ``done`` (numbered from 1), in groups of one commit each:
    up to ``limit`` compressed bytes (COMMIT_BYTES), at least one file."""
    limit = COMMIT_BYTES if limit is None else limit
    groups: list[list[tuple[int, DataFile]]] = []
    size = limit
    for n, f in enumerate(files, 1):
        if n <= done:
            continue
        if size + f.bytes > limit and (not groups or groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append((n, f))
        size += f.bytes
    return groups


def load_files(table: Any, ledger: TableLedger, entry: TableEntry,
               group: list[tuple[int, DataFile]], locate: Callable[[DataFile], Path],
               pub: Publication, hook: Hook | None = None, txn: Any = None,
               replaced: Sequence[tuple[TableEntry, Manifest]] = (),
               given: tuple[Iterator[pa.Table], list[Path]] | None = None
               ) -> tuple[int, list[Path]]:
    """Data files of a full export (numbered from 1, consecutive) into their table, in ONE
    commit whose ledger says the last of them is loaded (or in ``txn``, where the caller
    sets the ledger's properties, once, and commits); (rows written, the local paths
    read). Each file is checked while it is read (rows.py): a damaged one commits nothing.
    Rows in the window of a partition of ``replaced`` (which the caller applies in the same
    ``txn``: it deletes that window) are left out: they would be written only to be
    deleted. ``given``: those rows as full_rows makes them, read by the caller's thread, and
    the list their paths go to."""
    if txn is None:
        with transaction(table) as own:
            out = load_files(table, ledger, entry, group, locate, pub, hook, own, replaced,
                             given)
            own.set_properties(ledger.properties())
            return out
    last = group[-1][0]
    ledger.step = "ready" if last == len(entry.files) else f"file:{last}"
    if ledger.ready:
        ledger.sequence, ledger.publication = pub.sequence, pub.id
    props = summary(ledger, None, pub.manifest_sha256)
    if given is not None:
        tables, paths = given
    else:
        paths = []
        tables = ahead(full_rows(entry, group, locate, pub, txn.table_metadata.schema(),
                                 replaced, paths))
    rows = append(txn, table, tables, props)
    if hook:  # inside the transaction: a failure here commits nothing
        for _, f in group:
            hook("file_loaded", publication=pub.id, table=entry.qualified, file=f.path)
    return rows, paths


def replaces_window(entry: TableEntry, manifest: Manifest) -> bool:
    """Whether applying ``entry`` deletes the rows of its window (apply_table's append)."""
    return (entry.method == "append" and manifest.window is not None
            and bool(entry.cursor) and bool(entry.cursor_type))


def _outside(tables: Iterator[pa.Table], replaced: Sequence[tuple[TableEntry, Manifest]]
             ) -> Iterator[pa.Table]:
    """``tables`` less the rows whose cursor is in one of the windows ``replaced`` deletes
    (the same bounds as _window_filter: ``lo <= cursor < hi``; NULL is kept). A table
    with no such row is passed on as it is, and one with some is dropped once its filtered
    copy is made: only one of them is held."""
    windows = [(e.cursor, cursor_bounds(e.cursor_type, e.cursor_timezone, m.window))
               for e, m in replaced if replaces_window(e, m)
               and e.cursor and e.cursor_type and m.window is not None]
    for t in tables:
        inside = None
        for name, b in windows:
            if name not in t.column_names:
                continue
            c = t.column(name)
            hit = pc.and_(pc.greater_equal(c, pa.scalar(b.lo, type=c.type)),
                          pc.less(c, pa.scalar(b.hi, type=c.type)))
            inside = hit if inside is None else pc.or_(inside, hit)
        if inside is not None and pc.any(inside).as_py():
            t = t.filter(pc.invert(pc.fill_null(inside, False)))
        del inside
        yield t
        del t  # not held while the next table is read


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
    """The local paths of a publication's files of one table, each checked as it is read."""
    return [fetcher.locate(pub.id, f) for f in entry.files]
