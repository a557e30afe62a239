"""Putting publications into a target: a full export as resumable steps, then each
partition in one transaction with its ledger row.

A full load is made of steps (create the tables; one step per data file; keys and indexes
last), each a transaction that also records itself in ``topoff.applied``: a load killed
midway resumes at the first step not recorded. A partition is a single transaction: its
files are downloaded and checked first, then every table is changed and the ledger updated
together.

How a partition changes a table depends on its method (the one merge, targets/merge.py):

* append: delete the rows whose cursor falls in the window, insert the partition's rows
  (so a new revision of a day, with late rows, replaces the day exactly);
* upsert: insert, or update on the primary key;
* snapshot: replace every row.

The ledger rows (targets/ledger.py) are written in the same transaction as the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from topoff.dataset.bounds import cursor_bounds, lower_bound
from topoff.dataset.index import Publication
from topoff.dataset.manifest import Column, Manifest, TableEntry
from topoff.errors import IntegrityError, TargetError
from topoff.sync.fetch import Fetcher
from topoff.sync.landing import check_landing
from topoff.targets.base import LoadSpec, ReplicaState, TableDef, TableRef, Target
from topoff.targets.ledger import Ledger

log = logging.getLogger("topoff")
Hook = Callable[..., None]


def target_ref(entry: TableEntry, schema: str | None) -> TableRef:
    return TableRef(schema or entry.schema, entry.name)


def _since(table: TableDef, since: date | None) -> datetime | date | None:
    if since is None or not table.cursor or not table.cursor_type:
        return None
    return lower_bound(table.cursor_type, table.cursor_timezone, since)


def _check_rows(pub: Publication, entry: TableEntry, loaded: int, filtered: bool) -> None:
    if not filtered and loaded != entry.rows:
        raise IntegrityError(
            f"{pub.id} {entry.qualified}: loaded {loaded} rows, the manifest says {entry.rows}",
            hint="the publication is damaged; ask the publisher to republish it")


def load_full(target: Target, fetcher: Fetcher, pub: Publication, manifest: Manifest,
              state: ReplicaState, tables: list[str], hook: Hook | None = None,
              step_done: Callable[[int], None] | None = None) -> int:
    """Build the replica's tables from a full export; returns rows loaded by this call."""
    dataset = state.dataset
    ledger = Ledger(target)
    done = ledger.applied_steps(dataset, pub.id)
    defs = {q: TableDef.from_entry(manifest.tables[q], target_ref(manifest.tables[q],
                                                                     state.schema))
            for q in tables}
    if "schema" not in done:
        check_landing(target, defs.values())
        with target.transaction():
            for d in defs.values():
                target.create_table(d)
                ledger.write_table_def(dataset, d)
            ledger.write_replica(state)
            ledger.record_step(dataset, pub.id, "schema", pub.sequence, pub.kind, None, None,
                               None, pub.manifest_sha256)
        log.info("created %d tables in %s for %s", len(defs), target.url, pub.id)
    total = 0
    for q, d in defs.items():
        entry = manifest.tables[q]
        for n, f in enumerate(entry.files, 1):
            step = f"file:{f.path}"
            if step in done:
                continue
            path = fetcher.fetch(pub.id, f)
            since = _since(d, state.since)
            with target.transaction():
                rows = target.load(LoadSpec(d, [path], mode="initial", since=since,
                                            extra={"columns": entry.columns}))
                if f.rows is not None and since is None and rows != f.rows:
                    raise IntegrityError(f"{pub.id}/{f.path}: loaded {rows} rows, the manifest "
                                         f"says {f.rows}", hint="republish the dataset")
                if hook:
                    hook("file_loaded", publication=pub.id, table=q, file=f.path)
                ledger.record_step(dataset, pub.id, step, pub.sequence, pub.kind, None, None,
                                   rows, pub.manifest_sha256)
            fetcher.release(path)
            total += rows
            log.info("loaded %s file %d/%d (%s rows)", q, n, len(entry.files), f"{rows:,}")
            if step_done:
                step_done(1)
    if "post-data" not in done:
        with target.transaction():
            for d in defs.values():
                target.create_keys(d, state.primary_keys)
            state.status = "ready"
            state.last_sequence = pub.sequence
            ledger.write_replica(state)
            if hook:
                hook("keys_created", publication=pub.id)
            ledger.record_step(dataset, pub.id, "post-data", pub.sequence, pub.kind, None,
                               None, None, pub.manifest_sha256)
        log.info("replica built from %s%s", pub.id,
                 " (primary keys created)" if state.primary_keys else "")
    return total


class SchemaChangeError(TargetError):
    """A partition changes a table in a way the replica cannot follow (a rebase can)."""


def _schema_changes(d: TableDef, entry: TableEntry, pub: Publication) -> list[Column]:
    """Columns the partition adds; raises if it changed or dropped one (nothing changed yet)."""
    have = {c.name: c for c in entry.columns}
    for c in d.columns:
        new = have.get(c.name)
        if new is None:
            raise SchemaChangeError(
                f"{pub.id} no longer has column {c.name} of {entry.qualified}; the replica "
                "cannot follow this change", hint="rebuild the replica with --rebase")
        if new.type != c.type or new.logical != c.logical:
            raise SchemaChangeError(
                f"{pub.id} changed the type of {entry.qualified}.{c.name} from {c.type} to "
                f"{new.type}" + ("" if new.type != c.type else " (another logical type)")
                + "; the replica cannot follow this change",
                hint="rebuild the replica with --rebase")
    known = {c.name for c in d.columns}
    return [c for c in entry.columns if c.name not in known]


#: for a table a publication marks unchanged since an earlier one: the publication (and its
#: manifest) to load it from when the replica never applied that one, else None
Resolver = Callable[[TableEntry], "tuple[Publication, Manifest] | None"]


def apply_partition(target: Target, fetcher: Fetcher, pub: Publication, manifest: Manifest,
                    state: ReplicaState, tables: list[str], hook: Hook | None = None,
                    resolve: Resolver | None = None) -> int:
    """Apply one incremental publication in one transaction; returns rows written.

    A table marked unchanged since an earlier publication is left as it is, unless
    ``resolve`` names a publication to load it from: the replica passed over the one that
    holds its rows (a superseded revision, a newer full export).
    """
    dataset = state.dataset
    ledger = Ledger(target)
    defs = ledger.table_defs(dataset)
    work: list[tuple[TableEntry, TableDef, list[Column], bool]] = []
    for q in tables:
        entry = manifest.tables.get(q)
        if entry is None:
            continue
        d = defs.get(q)
        if d is None:
            work.append((entry, TableDef.from_entry(entry, target_ref(entry, state.schema)),
                         [], True))
        else:
            work.append((entry, d, _schema_changes(d, entry, pub), False))
    check_landing(target, [d for _, d, _, is_new in work if is_new], defs.values())
    sources: dict[str, tuple[Publication, Manifest, TableEntry]] = {}
    for entry, *_ in work:
        if not entry.unchanged_since:
            sources[entry.qualified] = (pub, manifest, entry)
        elif resolve and (found := resolve(entry)) is not None:
            sources[entry.qualified] = (*found, found[1].tables[entry.qualified])
    paths = {q: [fetcher.fetch(p.id, f) for f in e.files] for q, (p, _, e) in sources.items()}
    total = 0
    summary: list[str] = []
    with target.transaction():
        for entry, d, added, is_new in work:
            if is_new:
                target.create_table(d)
                target.create_keys(d, state.primary_keys)
                ledger.write_table_def(dataset, d)
                summary.append(f"{entry.name}: new table")
            for c in added:
                target.add_column(d, c)
                d.columns.append(c)
                summary.append(f"{entry.name}: added column {c.name}")
            if added:
                ledger.write_table_def(dataset, d)
            if entry.qualified not in sources:
                continue
            src_pub, src_manifest, src = sources[entry.qualified]
            mode = {"append": "append", "upsert": "upsert"}.get(entry.method, "snapshot")
            window = None
            if mode == "append" and src_manifest.window is not None and entry.cursor_type:
                window = cursor_bounds(entry.cursor_type, entry.cursor_timezone,
                                       src_manifest.window)
            since = _since(d, state.since)
            rows = target.load(LoadSpec(d, paths[entry.qualified], window=window, mode=mode,
                                        since=since, extra={"columns": src.columns}))
            _check_rows(src_pub, src, rows, since is not None)
            total += rows
            origin = "" if src_pub is pub else f" from {src_pub.id}"
            summary.append(f"{entry.name} {rows:,} rows ({mode}{origin})")
        if hook:
            hook("partition_applied", publication=pub.id)
        state.last_sequence = pub.sequence
        ledger.write_replica(state)
        ledger.record_step(dataset, pub.id, "partition", pub.sequence, pub.kind,
                           manifest.window.label if manifest.window else None, manifest.revision,
                           total, pub.manifest_sha256)
    for path_list in paths.values():
        for p in path_list:
            fetcher.release(p)
    log.info("applied %s: %s", pub.id, "; ".join(summary) or "nothing to change")
    return total


def pass_over(target: Target, state: ReplicaState, pubs: list[tuple[Publication, Any]]) -> None:
    """Record that publications were looked at and are not needed (newer full exports,
    superseded revisions), so the next sync starts after them."""
    if not pubs:
        return
    newest = max(p.sequence for p, _ in pubs)
    if newest <= state.last_sequence:
        return
    with target.transaction():
        state.last_sequence = newest
        Ledger(target).write_replica(state)
    for p, why in pubs:
        log.info("passed over %s: %s", p.id, why)
