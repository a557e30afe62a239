"""``topoff export incremental``: one window (by default yesterday, UTC) as a new partition,
and a new revision of any recent day whose rows changed since it was published.

Late rows. A cursor such as datanommer's ``timestamp`` is the time a message was sent, not
when its row committed, so rows can arrive after their day was published. Each run
re-checks the ``lookback_days`` days before the window, in the same snapshot:

1. (PostgreSQL) ``count(*)`` of the day, and how many visible rows in it were written
   by a transaction at or after the xmin of the snapshot that published the day's latest
   revision (cheap: the cursor index, no hashing). Any row that entered the day since then
   has such an xmin, and a removed row changes the count, so *same count and no newer row*
   means the day is unchanged.
2. Otherwise (or when that xmin is too old to compare, or the table is a view, or the
   source has no ``xmin_change_detection``: see topoff.sources.base) the day's content
   hash decides: a hash of its rows' exported text, so any change in that text counts
   (``cs1``, the rows as exported, or the server's own such as ``rt1``: pg_queries.py).

A changed day gets a new revision that replaces the old one for consumers. A window is
exported only once it has ended, and once the standby has replayed past its end
(``pg_last_xact_replay_timestamp``, or the WAL receiver's last report when the primary is
quiet: see :class:`topoff.safety.ReplayState`), unless ``force`` is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from topoff import __version__
from topoff.config import Config
from topoff.dataset import layout
from topoff.dataset.cleanup import remove_dead_leftovers
from topoff.dataset.index import Index, read_index
from topoff.dataset.layout import Window
from topoff.dataset.lock import dataset_lock
from topoff.dataset.manifest import Manifest, TableEntry
from topoff.dataset.publish import publish, remove_files
from topoff.dataset.readme import incremental_readme
from topoff.export.full import ExportResult, _namer, table_entry
from topoff.export.previous import latest_table_entry, previous_entry
from topoff.export.recheck_log import Phases, log_window
from topoff.export.runner import CopyUnit, HashUnit, Hook, Runner
from topoff.export.split import Joiner, joined_sha256, part_namer, sub_windows, window_counts
from topoff.export.windows import check_closed, days_back
from topoff.sources.base import (
    STREAM_HASH,
    Source,
    SourceKind,
    SourceSnapshot,
    SourceTable,
    comparable_algorithm,
    rows_digest,
    source_class,
    stream_hashable,
)
from topoff.stores.base import Store

log = logging.getLogger("topoff")


@dataclass
class TablePlan:
    table: SourceTable
    export: bool  # write this table's rows again
    previous: TableEntry | None = None
    previous_pub: str | None = None
    how: str = "new"  # new | changed | unchanged-xmin | unchanged-hash | changed-count ...
    rows_before: int | None = None
    rows_now: int | None = None
    #: (count, hash) already computed in this snapshot (snapshot tables are hashed first)
    counted: tuple[int, str] | None = None


@dataclass
class WindowPlan:
    window: Window
    revision: int
    previous_pub: str | None
    tables: list[TablePlan] = field(default_factory=list)
    is_target: bool = False

    @property
    def pub_id(self) -> str:
        return layout.incremental_id(self.window, self.revision)

    @property
    def changed(self) -> bool:
        return self.previous_pub is None or any(tp.export for tp in self.tables)


def _same_shape(entry: TableEntry, t: SourceTable) -> bool:
    return [(c.name, c.type) for c in entry.columns] == [(c.name, c.type) for c in t.columns]


def _check_window(source: Source, info: SourceSnapshot, t: SourceTable, window: Window,
                  prev: Manifest, entry: TableEntry, prev_id: str) -> TablePlan:
    """Has this table's part of the window changed since the previous revision?"""
    plan = TablePlan(t, export=True, previous=entry, previous_pub=prev_id,
                     rows_before=entry.rows)
    if not _same_shape(entry, t):
        plan.how = "columns-changed"
        return plan
    reader = source.reader()
    counted = reader.changed_since(t, window, prev.snapshot, info) \
        if source.capabilities.xmin_change_detection and prev.engine == \
        source.capabilities.engine else None
    if counted is not None:
        count, newer = counted
        plan.rows_now = count
        if count == entry.rows and newer == 0:
            plan.export, plan.how = False, "unchanged-xmin"
            return plan
        if count != entry.rows:
            plan.how = "changed-count"
            return plan
    algorithm = comparable_algorithm(entry.content_hash, t, source.hash_algorithm())
    if algorithm is None:
        # no hash, or one of an algorithm this version does not compute (e.g. rh1)
        plan.how = "no-comparable-hash"
        return plan
    if algorithm == STREAM_HASH:  # the window's rows as the export writes them
        count, sha = rows_digest(reader.rows(t, window, ordered=True))
        digest: str | None = f"{STREAM_HASH}:{sha}"
    else:
        count, digest = reader.count_hash(t, window, algorithm)
    plan.rows_now = count
    if count == entry.rows and digest == entry.content_hash:
        plan.export, plan.how = False, "unchanged-hash"
    else:
        plan.how = "changed-hash"
    return plan


def plan_windows(source: Source, info: SourceSnapshot, store: Store,
                 index: Index | None, tables: list[SourceTable], window: Window,
                 lookback_days: int, cache: dict[str, Manifest]) -> list[WindowPlan]:
    """What each window needs; ``cache`` holds manifests already read from the store."""
    cursor_tables = [t for t in tables if t.config.cursor]
    plans = []
    for w in [*days_back(window, lookback_days), window]:
        prev_id, prev_rev, prev = previous_entry(index, store, w, cache)
        if prev_id is None and w != window and index is not None and any(
                r.get("label") == w.label for r in index.removed):
            log.info("%s: removed by retention; not re-checked", w.label)
            continue
        wp = WindowPlan(w, prev_rev + 1, prev_id, is_target=(w == window))
        for t in cursor_tables:
            entry = prev.tables.get(t.qualified) if prev else None
            if prev is None or entry is None or prev_id is None:
                wp.tables.append(TablePlan(t, export=True))
            else:
                wp.tables.append(_check_window(source, info, t, w, prev, entry, prev_id))
        plans.append(wp)
    # Snapshot tables travel with the target window's publication, when they changed.
    target = plans[-1]
    for t in (t for t in tables if not t.config.cursor):
        pub_id, entry = latest_table_entry(index, store, t.qualified, cache)
        count, digest = _table_hash(source, t)
        same = (entry is not None and digest is not None and entry.content_hash == digest
                and entry.rows == count
                and _same_shape(entry, t))
        target.tables.append(TablePlan(
            t, export=not same, previous=entry, previous_pub=pub_id,
            how="unchanged-hash" if same else ("changed-hash" if entry else "new"),
            rows_before=entry.rows if entry else None, rows_now=count,
            counted=(count, digest) if count is not None and digest is not None else None))
    return plans


def _table_hash(source: Source, t: SourceTable) -> tuple[int | None, str | None]:
    """count and content hash of a whole table: the server's, or ``cs1`` of its rows in
    key order when the server computes none; (None, None) when neither can be had."""
    algorithm = source.hash_algorithm()
    if algorithm is not None:
        return source.reader().count_hash(t, None, algorithm)
    if not t.primary_key:  # no one order to hash the rows in
        return None, None
    count, sha = rows_digest(source.reader().rows(t, None, ordered=True))
    return count, f"{STREAM_HASH}:{sha}"


def _entry_for(tp: TablePlan, results: dict[str, list], key: str) -> TableEntry:
    entry = table_entry(tp.table)
    if not tp.export:
        assert tp.previous is not None
        entry.rows = tp.previous.rows
        entry.content_hash = tp.previous.content_hash
        entry.unchanged_since = tp.previous.unchanged_since or tp.previous_pub
        return entry
    copies = results[key]
    entry.files = sorted((f for c in copies for f in c.files), key=lambda f: f.path)
    entry.rows = sum(c.rows for c in copies)
    if tp.counted is None and key + "#hash" not in results:
        if len(copies) > 1:  # one ordered read in parts (split.py)
            entry.content_hash = f"{STREAM_HASH}:{joined_sha256(copies)}"
            return entry
        [copy] = copies  # one ordered read: its rows' hash is the content hash
        entry.content_hash = f"{STREAM_HASH}:{copy.content_sha256}" \
            if copy.content_sha256 else None  # (rows without a key have no one order)
        return entry
    count, digest = tp.counted or results[key + "#hash"][0]
    if count != entry.rows:
        raise RuntimeError(f"{tp.table.qualified}: COPY gave {entry.rows} rows but count(*) "
                           f"in the same snapshot gave {count}")
    entry.content_hash = digest
    return entry


def _units_for(wp: WindowPlan, source: Source, jobs: int = 1,
               counts: dict[str, int | None] | None = None) -> list[CopyUnit | HashUnit]:
    """Read (and, for cursor tables without a key, hash) units of the tables a window plan
    exports; a big window's parts first (split.py), so that the workers start on them.
    ``counts``: rows of the window per table, else the re-check's count (``rows_now``)."""
    units: list[CopyUnit | HashUnit] = []
    parts: list[CopyUnit | HashUnit] = []
    for tp in wp.tables:
        if not tp.export:
            continue
        key = f"{wp.window.label}/{tp.table.qualified}"
        cursor_w = wp.window if tp.table.config.cursor else None
        subs = sub_windows(tp.table, wp.window, (counts or {}).get(
            tp.table.qualified, tp.rows_now), jobs) if cursor_w else []
        if len(subs) > 1:
            joiner = Joiner(len(subs))
            parts += [CopyUnit(key, tp.table, part_namer(wp.pub_id, tp.table, wp.window, i),
                               window=w, part=i, ordered=True, hash_content=i == 0,
                               spool=i > 0, then=joiner) for i, w in enumerate(subs)]
            continue
        algorithm = source.hash_algorithm()
        hashed = bool(tp.table.config.cursor) and not stream_hashable(tp.table) \
            and algorithm is not None
        units.append(CopyUnit(key, tp.table, _namer(wp.pub_id, tp.table, wp.window),
                              window=cursor_w, ordered=True,
                              hash_content=tp.counted is None and not hashed
                              and stream_hashable(tp.table)))
        if hashed:
            assert algorithm is not None
            units.append(HashUnit(key + "#hash", tp.table, cursor_w, algorithm))
    return parts + units


def export_incremental(config: Config, store: Store, window: Window, force: bool = False,
                       hook: Hook | None = None,
                       on_rows: Callable[[str, int], None] | None = None,
                       kind: SourceKind | None = None, wait: bool = False) -> ExportResult:
    """Export ``window`` and republish changed recent days; see the module docstring
    (``kind``: the Source class, by default the one the source URL names). The dataset's
    lock is held meanwhile, as by export_full (``wait``: wait for another export's)."""
    with dataset_lock(store, config.dataset, wait) as locked:
        return _export(config, locked, window, force, hook, on_rows, kind)


def _export(config: Config, store: Store, window: Window, force: bool, hook: Hook | None,
            on_rows: Callable[[str, int], None] | None, kind: SourceKind | None,
            ) -> ExportResult:
    started = time.monotonic()
    written: list[str] = []
    kind = kind or source_class(config.source_url or "")

    def attempt(n: int) -> ExportResult:
        with kind(config.source_url or "", config.allow_primary) as source:
            clock = Phases()
            info = source.open()
            clock.mark("snapshot")
            if hook:
                hook("snapshot", info=info, attempt=n)
            tables = source.tables(config)
            check_closed(info, window, tables, force)
            source.lock(tables)
            index = read_index(store, config.dataset)
            remove_dead_leftovers(store, index)  # a killed run's files: its names are ours
            clock.mark("catalog and index")
            runner = Runner(source, store, config.export.jobs, config.export.chunk_bytes,
                            config.export.compression_level, hook, on_rows)
            try:
                with runner:
                    # A window never published before is exported whatever the recheck of
                    # earlier days finds: its COPYs start now, beside the recheck.
                    early: set[str] = set()
                    manifests: dict[str, Manifest] = {}
                    prev_id, prev_rev, _ = previous_entry(index, store, window, manifests)
                    if prev_id is None:
                        first = WindowPlan(window, prev_rev + 1, None, is_target=True, tables=[
                            TablePlan(t, export=True) for t in tables if t.config.cursor])
                        units = _units_for(first, source, runner.jobs, window_counts(
                            source, [tp.table for tp in first.tables], window, runner.jobs))
                        runner.submit(units)
                        early = {u.key for u in units}
                        clock.mark("counts")
                    plans = plan_windows(source, info, store, index, tables, window,
                                         config.export.lookback_days, manifests)
                    clock.mark("re-check (beside the reads)")
                    to_publish = [wp for wp in plans if wp.changed]
                    runner.submit([u for wp in to_publish
                                   for u in _units_for(wp, source, runner.jobs)
                                   if u.key not in early])
                    results = runner.results()
                    clock.mark("reads")
            finally:
                written.extend(runner.written)
            made: list[Manifest] = []
            rechecked = [{"window": wp.window.label, "table": tp.table.qualified, "result": tp.how,
                          "rows_published": tp.rows_before, "rows_now": tp.rows_now}
                         for wp in plans if not wp.is_target for tp in wp.tables]
            for wp in to_publish:
                entries = {tp.table.qualified: _entry_for(
                    tp, results, f"{wp.window.label}/{tp.table.qualified}") for tp in wp.tables}
                m = Manifest(
                    kind=layout.INCREMENTAL, publication=wp.pub_id, dataset=config.dataset,
                    created_at=datetime.now(UTC).isoformat(), tool_version=__version__,
                    source=info.source_json(config.source_url or ""),
                    snapshot=info.to_manifest(), tables=entries, window=wp.window,
                    revision=wp.revision, previous_revision=wp.previous_pub,
                    rechecked=rechecked if wp.is_target else [],
                )
                store.write_bytes(layout.in_publication(wp.pub_id, layout.README),
                                  incremental_readme(m).encode())
                written.append(layout.in_publication(wp.pub_id, layout.README))
                made.append(m)
            for wp in plans:
                log_window(wp)
            clock.mark("manifests")
            pubs = publish(store, config.dataset, made) if made else []
            clock.mark("publish")
            clock.log()
            unchanged = [wp.window.label for wp in plans if not wp.changed]
            return ExportResult(pubs, made, unchanged)

    def cleanup() -> None:
        remove_files(store, written)
        written.clear()

    try:
        result = kind.retry(attempt, config.export.retry_attempts, config.export.retry_backoff,
                            f"incremental export of {window.label}", cleanup)
    except BaseException:
        cleanup()
        raise
    result.seconds = time.monotonic() - started
    return result
