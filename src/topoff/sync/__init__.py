"""``topoff sync FROM TARGET``: build a replica from the newest full export, then top it off
with every newer partition (see plan.py for the order, apply.py for the transactions)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from topoff.dataset import layout
from topoff.dataset.index import Index, Publication, read_index, read_manifest
from topoff.dataset.manifest import Manifest, TableEntry
from topoff.errors import ConfigError, IntegrityError, NotPublishedError, StoreError, TargetError
from topoff.stores import Store, StoreOptions, open_store
from topoff.stores.base import check_name
from topoff.sync.apply import (
    Hook,
    SchemaChangeError,
    apply_partition,
    load_full,
    pass_over,
)
from topoff.sync.fetch import Fetcher, removed_meanwhile
from topoff.sync.landing import check_schema_option
from topoff.sync.lock import drop_unused_ledger, ensure_ledger, lock_dataset
from topoff.sync.plan import plan_sync, rebase_hint, select_tables
from topoff.targets import Target, new_duckdb_file, open_target, remove_duckdb_file
from topoff.targets.base import ReplicaState
from topoff.targets.errors import FileNamer, engine_errors
from topoff.targets.iceberg import is_iceberg
from topoff.targets.ledger import Ledger

log = logging.getLogger("topoff")


@dataclass
class SyncOptions:
    tables: list[str] | None = None
    since: date | None = None
    rebase: bool = False
    schema: str | None = None
    #: primary key indexes in the replica (None: what the target does by default)
    primary_keys: bool | None = None
    cache_dir: Path | None = None
    store_options: StoreOptions | None = None
    #: DuckDB replicas: the memory DuckDB may use (None: $TOPOFF_DUCKDB_MEMORY_LIMIT or 1GB)
    memory_limit: str | None = None
    hook: Hook | None = None
    #: progress callbacks: (name, total bytes) -> on_bytes, and (what, total steps) -> advance
    download_progress: Callable[[str, int], Callable[[int], None] | None] | None = None
    step_progress: Callable[[str, int], Callable[[int], None] | None] | None = None


@dataclass
class SyncResult:
    dataset: str
    base_loaded: str | None = None
    applied: list[str] = field(default_factory=list)
    passed_over: list[str] = field(default_factory=list)
    #: rows written by this run (a row replaced by a newer revision counts each time)
    rows: int = 0
    #: rows the replica's tables of this dataset hold after the run
    rows_held: int = 0
    downloaded_bytes: int = 0
    seconds: float = 0.0
    last_sequence: int = 0


def _settings_match(state: ReplicaState, opts: SyncOptions, origin: str, target: str) -> None:
    """A replica keeps the tables, start day and schema it was built with."""
    def same(wanted: list[str], have: list[str] | None) -> bool:
        if have is None:
            return False
        resolved = {next((h for h in have if w in (h, h.split(".", 1)[1])), w) for w in wanted}
        return resolved == set(have)

    if opts.tables is not None and not same(opts.tables, state.tables):
        raise ConfigError(
            f"the replica was built with tables {state.tables or 'all'}; --tables differs",
            hint=rebase_hint(origin, target) + " --tables ...")
    if opts.since is not None and opts.since != state.since:
        raise ConfigError(f"the replica was built with --since {state.since or 'none'}",
                          hint=rebase_hint(origin, target) + " --since ...")
    if opts.primary_keys is not None and opts.primary_keys != state.primary_keys:
        raise ConfigError(
            f"the replica was built {'with' if state.primary_keys else 'without'} primary keys",
            hint=rebase_hint(origin, target) + (" --primary-keys" if opts.primary_keys
                                                 else " --no-primary-keys"))
    if opts.schema is not None and opts.schema != state.schema:
        raise ConfigError(f"the replica was built into schema {state.schema or '(source)'}",
                          hint=rebase_hint(origin, target) + " --schema ...")


def _unapplied_source(store: Store, index: Index, target: Target, state: ReplicaState,
                      entry: TableEntry, origin: str, target_location: str,
                      cache: dict[str, Manifest]) -> tuple[Publication, Manifest] | None:
    """Where to load a table that a partition marks unchanged since ``ref``, when this
    replica never got ``ref``'s rows: it passed over ``ref`` (a revision superseded by the
    partition, or a newer full export). None when the replica already holds them: it
    applied ``ref``, or was built from a full export made at or after it."""
    ref = entry.unchanged_since
    assert ref is not None
    pub = index.get(ref)
    removed = next((r for r in index.removed if r["id"] == ref), None) if pub is None else None
    sequence = pub.sequence if pub else (removed["sequence"] if removed else None)
    if sequence is not None and sequence <= state.base_sequence:
        return None
    if Ledger(target).applied_steps(state.dataset, ref):
        return None
    if pub is None:
        raise TargetError(
            f"{entry.qualified} is unchanged since {ref}, which this replica did not apply "
            f"and {origin} no longer has", hint=rebase_hint(origin, target_location))
    if ref not in cache:
        cache[ref] = _read_manifest(store, pub)
    held = cache[ref].tables.get(entry.qualified)
    if held is None:
        raise TargetError(f"{entry.qualified} is unchanged since {ref}, which does not hold it",
                          hint="the dataset is damaged; " + rebase_hint(origin, target_location))
    if held.unchanged_since:  # chains are collapsed when published; follow one anyway
        return _unapplied_source(store, index, target, state, held, origin, target_location,
                                 cache)
    return pub, cache[ref]


def sync(origin: str, target_location: str, opts: SyncOptions | None = None) -> SyncResult:
    """Bring the replica at ``target_location`` up to date with the dataset at ``origin``.

    Engine failures (a full disk, a refused permission, a malformed file, Ctrl-C) are
    raised as the TopoffError they mean (targets/errors.py). A DuckDB file this call
    created is removed again when the call fails before the replica's tables were made.
    """
    opts = opts or SyncOptions()
    started = time.monotonic()
    if is_iceberg(target_location):  # its own loop: the ledger lives in each Iceberg table
        from topoff.sync.iceberg import run

        result = SyncResult("")
        run(origin, target_location, opts, result, _read_manifest)
        result.seconds = time.monotonic() - started
        return result
    created = new_duckdb_file(target_location)
    store = open_store(origin, opts.store_options)
    try:
        target = open_target(target_location, memory_limit=opts.memory_limit)
    except BaseException:
        store.close()
        raise
    done = False
    had_ledger = _has_ledger(target)
    try:
        with engine_errors(target.url):
            result = _sync(store, target, origin, target_location, opts)
            result.rows_held = rows_held(target, result.dataset)
        done = True
    except Exception:
        if not had_ledger and created is None and not _holds_data(target):
            drop_unused_ledger(target)  # nothing loaded: the target as it was found
        raise
    finally:
        if not done and created is not None and not _holds_data(target):
            target.close()
            remove_duckdb_file(created)
        target.close()
        store.close()
    result.seconds = time.monotonic() - started
    return result


def rows_held(target: Target, dataset: str) -> int:
    """Rows in the replica's tables of ``dataset``."""
    defs = list(Ledger(target).table_defs(dataset).values())
    there = target.existing_tables(t.target for t in defs)
    return target.count_all(t for t in defs if t.target in there)


def _has_ledger(target: Target) -> bool:
    """Whether the target holds the ledger tables; when unsure, yes."""
    try:
        return Ledger(target).has_ledger()
    except Exception:
        return True


def _holds_data(target: Target) -> bool:
    """Whether the target holds a replica (its tables were created: a later sync resumes
    the load); when unsure, yes."""
    try:
        return bool(Ledger(target).replicas())
    except Exception:
        return True


_HOSTILE_HINT = "the dataset is damaged or hostile; nothing of it was applied: tell its publisher"


def _read_manifest(store: Store, pub: Publication) -> Manifest:
    """The publication's manifest, once every name it and the index give is a plain path
    inside the store (both are untrusted: '..' or a leading '/' is refused before use)."""
    try:
        check_name(pub.manifest)
    except StoreError:
        raise IntegrityError(f"index.json names a manifest outside the dataset: "
                             f"{pub.manifest!r}", hint=_HOSTILE_HINT) from None
    manifest = read_manifest(store, pub)
    for entry in manifest.tables.values():
        for f in entry.files:
            try:
                check_name(layout.in_publication(pub.id, f.path))
            except StoreError:
                raise IntegrityError(
                    f"publication {pub.id} names a data file outside itself: {f.path!r}",
                    hint=_HOSTILE_HINT) from None
    return manifest


def _file_namer(pub: Publication, manifest: Manifest) -> FileNamer:
    """Which file of the publication a local path (in the store or the cache) is."""
    def name(path: str) -> tuple[str | None, str | None]:
        base = Path(path).name
        for entry in manifest.tables.values():
            for f in entry.files:
                if base == f"{f.sha256}.csv.zst" or path.endswith("/" + f.path):
                    return pub.id, f.path
        return None, base
    return name


def _sync(store: Store, target: Target, origin: str, target_location: str,
          opts: SyncOptions) -> SyncResult:
    index = read_index(store)
    if index is None:
        raise NotPublishedError(f"nothing is published at {store.url} (no index.json)",
                                hint="check the location, or publish with `topoff export full`")
    fetcher = Fetcher(store, opts.cache_dir, opts.download_progress)
    try:
        with removed_meanwhile(store, index, origin):
            return _sync_index(store, index, target, origin, target_location, opts, fetcher)
    finally:
        fetcher.close()


def _sync_index(store: Store, index: Index, target: Target, origin: str,
                target_location: str, opts: SyncOptions, fetcher: Fetcher) -> SyncResult:
    check_schema_option(target, opts.schema)
    ensure_ledger(target)
    lock_dataset(target, index.dataset)  # until the target is closed
    state = Ledger(target).read_replica(index.dataset)
    if state is not None and opts.rebase:
        with target.transaction():
            Ledger(target).forget(index.dataset)
        log.info("rebase: dropped the replica's tables of %s", index.dataset)
        state = None
    if state is not None:
        _settings_match(state, opts, origin, target_location)
    applied = Ledger(target).last_applied(index.dataset) if state is not None else None
    plan = plan_sync(index, state, origin, target_location, applied)
    result = SyncResult(index.dataset, last_sequence=state.last_sequence if state else 0)

    if plan.base is not None:
        manifest = _read_manifest(store, plan.base)
        if state is None:
            tables = select_tables(manifest, opts.tables)
            keys = target.capabilities.primary_keys if opts.primary_keys is None \
                else opts.primary_keys
            state = ReplicaState(index.dataset, store.url, plan.base.id, plan.base.sequence,
                                 tables=tables if opts.tables else None, since=opts.since,
                                 schema=opts.schema, primary_keys=keys)
        tables = state.tables or list(manifest.tables)
        files = sum(len(manifest.tables[q].files) for q in tables)
        log.info("loading %s (%d tables, %d files) into %s", plan.base.id, len(tables), files,
                 target.url)
        step = opts.step_progress("loading the full export", files) if opts.step_progress \
            else None
        with engine_errors(target.url, plan.base.id, _file_namer(plan.base, manifest)):
            result.rows += load_full(target, fetcher, plan.base, manifest, state, tables,
                                     opts.hook, step)
        result.base_loaded = plan.base.id
    assert state is not None
    skips = dict((p.sequence, why) for p, why in plan.skip)
    pending = sorted([*plan.apply, *(p for p, _ in plan.skip)], key=lambda p: p.sequence)
    advance = opts.step_progress("applying partitions", len(plan.apply)) \
        if opts.step_progress and plan.apply else None
    waiting: list = []
    manifests: dict[str, Manifest] = {}
    for pub in pending:
        if pub.sequence in skips:
            waiting.append((pub, skips[pub.sequence]))
            continue
        manifest = _read_manifest(store, pub)
        tables = state.tables or list(manifest.tables)
        try:
            with engine_errors(target.url, pub.id, _file_namer(pub, manifest)):
                result.rows += apply_partition(
                    target, fetcher, pub, manifest, state, tables, opts.hook,
                    resolve=lambda entry: _unapplied_source(store, index, target, state, entry,
                                                            origin, target_location, manifests))
        except SchemaChangeError as e:
            newest = index.newest_full()
            if newest is None or newest.sequence < pub.sequence:
                # a rebase would load the old shape again and stop here again
                e.hint = ("no full export made after this change is published yet: ask the "
                          "publisher for one (`topoff export full`), then sync again with "
                          "--rebase")
            raise
        result.applied.append(pub.id)
        result.passed_over.extend(p.id for p, _ in waiting)
        waiting.clear()
        if advance:
            advance(1)
    pass_over(target, state, waiting)
    result.passed_over.extend(p.id for p, _ in waiting)
    result.last_sequence = state.last_sequence
    result.downloaded_bytes = fetcher.downloaded_bytes
    if not result.applied and result.base_loaded is None:
        log.info("%s is up to date with %s (publication %d)", target.url, store.url,
                 state.last_sequence)
    return result
