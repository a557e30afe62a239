"""``topoff export full``: every configured table from one snapshot, as a new publication."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from topoff import __version__
from topoff.config import Config
from topoff.dataset import layout
from topoff.dataset.index import Publication, read_index
from topoff.dataset.lock import dataset_lock
from topoff.dataset.manifest import Manifest, TableEntry
from topoff.dataset.publish import publish, remove_files, write_file
from topoff.dataset.readme import full_readme
from topoff.errors import IntegrityError
from topoff.export.runner import CopyResult, CopyUnit, HashUnit, Hook, Runner
from topoff.sources.base import (
    STREAM_HASH,
    Source,
    SourceKind,
    SourceSnapshot,
    SourceTable,
    source_class,
)
from topoff.stores.base import Store

log = logging.getLogger("topoff")

#: a table larger than this is read as several parts in parallel (when the source can):
#: parts small enough that no worker is left alone with a big one at the end
SPLIT_BYTES = 16 * 1024 * 1024
#: snapshots a full export takes looking for a second no published full export is named
#: after (the next second's is free unless the source's clock stands still)
NAME_TRIES = 3


@dataclass
class ExportResult:
    publications: list[Publication] = field(default_factory=list)
    manifests: list[Manifest] = field(default_factory=list)
    #: what was looked at and left as it was (e.g. days whose content did not change)
    unchanged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for m in self.manifests for t in m.tables.values()
                   if not t.unchanged_since)

    @property
    def bytes(self) -> int:
        return sum(m.total_bytes for m in self.manifests)


def _namer(pub_id: str, t: SourceTable,
           window: layout.Window | None = None) -> Callable[[int], tuple[str, str]]:
    """Chunk names for one table; parts of a split table draw from one counter."""
    lock = threading.Lock()
    counter = [0]

    def name_for(_local_chunk: int) -> tuple[str, str]:
        with lock:
            counter[0] += 1
            n = counter[0]
        rel = layout.data_file(t.config.schema, t.config.name, n, window)
        return layout.in_publication(pub_id, rel), rel

    return name_for


def table_entry(t: SourceTable) -> TableEntry:
    return TableEntry(
        schema=t.config.schema, name=t.config.name, method=t.config.method,
        columns=list(t.columns), primary_key=list(t.primary_key), cursor=t.config.cursor,
        cursor_type=t.cursor_type, cursor_timezone=t.config.cursor_timezone,
        filtered=bool(t.config.filter),
    )


def export_full(config: Config, store: Store, hook: Hook | None = None,
                on_rows: Callable[[str, int], None] | None = None,
                kind: SourceKind | None = None, wait: bool = False) -> ExportResult:
    """Export every configured table in one snapshot and publish it; returns what was made
    (``kind``: the Source class, by default the one the source URL names). The dataset's
    lock is held meanwhile: held by another export, it raises DatasetLocked before
    anything is written, or with ``wait`` waits for it (a store from ``dataset_lock`` is
    one whose lock this run holds already: see dataset/lock.py)."""
    with dataset_lock(store, config.dataset, wait) as locked:
        return _export_full(config, locked, hook, on_rows, kind)


def _export_full(config: Config, store: Store, hook: Hook | None,
                 on_rows: Callable[[str, int], None] | None,
                 kind: SourceKind | None) -> ExportResult:
    assert config.source_url is not None
    started = time.monotonic()
    written: list[str] = []

    kind = kind or source_class(config.source_url)

    def attempt(n: int) -> ExportResult:
        tries = 0
        while True:
            tries += 1
            with kind(config.source_url or "", config.allow_primary) as source:
                info = source.open()
                pub_id = layout.full_id(info.time)
                if not _name_taken(store, config.dataset, pub_id, tries):
                    return export(source, info, pub_id, n)
            # this snapshot is given up: the next one is in a later second
            time.sleep(1.0 - info.time.microsecond / 1e6 + 0.01)

    def export(source: Source, info: SourceSnapshot, pub_id: str, n: int) -> ExportResult:
        if hook:
            hook("snapshot", info=info, attempt=n)
        tables = source.tables(config)
        source.lock(tables)
        log.info("full export %s: %d tables from %s (%s)", pub_id, len(tables),
                 info.database, "standby" if info.in_recovery else "PRIMARY")
        units: list[tuple[float, CopyUnit | HashUnit]] = []  # (estimated bytes, unit)
        algorithm = source.hash_algorithm()
        for t in tables:
            name_for = _namer(pub_id, t)
            snapshot = t.config.method == "snapshot"
            if snapshot and algorithm is None:  # the rows' own hash, read in key order
                units.append((t.size, CopyUnit(t.qualified, t, name_for, ordered=True,
                                               hash_content=bool(t.primary_key))))
                continue
            parts = source.parts(t, config.export.jobs, SPLIT_BYTES) \
                if source.capabilities.page_ranges else [None]
            for i, portion in enumerate(parts):
                units.append((t.size / len(parts),
                              CopyUnit(t.qualified, t, name_for, part=i, portion=portion)))
            if snapshot and algorithm is not None:
                units.append((t.size / 4, HashUnit(t.qualified + "#hash", t, None,
                                                   algorithm)))
        # the biggest pieces first, whatever table they are of: the workers then end
        # at nearly the same moment (no worker left alone with a big table at the end)
        units.sort(key=lambda u: -u[0])
        runner = Runner(source, store, config.export.jobs, config.export.chunk_bytes,
                        config.export.compression_level, hook, on_rows)
        try:
            results = runner.run([u for _, u in units])
        finally:
            written.extend(runner.written)
        entries = {}
        for t in tables:
            entry = table_entry(t)
            copies: list[CopyResult] = results[t.qualified]
            entry.files = sorted((f for c in copies for f in c.files), key=lambda f: f.path)
            entry.rows = sum(c.rows for c in copies)
            if t.qualified + "#hash" in results:
                count, digest = results[t.qualified + "#hash"][0]
                _check_count(t, entry.rows, count)
                entry.content_hash = digest
            elif t.config.method == "snapshot" and copies[0].content_sha256:
                entry.content_hash = f"{STREAM_HASH}:{copies[0].content_sha256}"
            entries[t.qualified] = entry
        manifest = Manifest(
            kind=layout.FULL, publication=pub_id, dataset=config.dataset,
            created_at=datetime.now(UTC).isoformat(), tool_version=__version__,
            source=info.source_json(config.source_url or ""),
            snapshot=info.to_manifest(), tables=entries,
        )
        if source.capabilities.pre_data:
            _schema_files(store, source, manifest, tables, written)
        store.write_bytes(layout.in_publication(pub_id, layout.README),
                          full_readme(manifest).encode())
        written.append(layout.in_publication(pub_id, layout.README))
        pubs = publish(store, config.dataset, [manifest])
        return ExportResult(pubs, [manifest])

    def cleanup() -> None:
        remove_files(store, written)
        written.clear()

    try:
        result = kind.retry(attempt, config.export.retry_attempts, config.export.retry_backoff,
                            "full export", cleanup)
    except BaseException:
        cleanup()
        raise
    result.seconds = time.monotonic() - started
    return result


def _name_taken(store: Store, dataset: str, pub_id: str, tries: int) -> bool:
    """Whether a published full export has this snapshot's name: one whose snapshot began
    in the same second (this export waited for its lock). The name is passed over for a
    new snapshot in the next second, a few times; then IntegrityError."""
    existing = read_index(store, dataset)
    if existing is None or existing.get(pub_id) is None:
        return False
    if tries >= NAME_TRIES:  # the source's clock stands still, or went back
        # its files would be written over the published ones (same names)
        raise IntegrityError(
            f"{pub_id} is already published in {store.url}",
            hint="full exports are named after their snapshot time, to the second: check "
            "the source server's clock, then run this one again")
    log.info("%s is already published: a new snapshot in the next second", pub_id)
    return True


def _schema_files(store: Store, source: Source, manifest: Manifest,
                  tables: list[SourceTable], written: list[str]) -> None:
    """schema/pre-data.sql and post-data.sql, and each table's post-data statements."""
    pub_id = manifest.publication
    manifest.schema_files["pre_data"] = write_file(
        store, pub_id, layout.PRE_DATA, source.pre_data_sql(tables).encode())
    written.append(layout.in_publication(pub_id, layout.PRE_DATA))
    manifest.schema_files["post_data"] = write_file(
        store, pub_id, layout.POST_DATA, source.post_data_sql(tables).encode())
    written.append(layout.in_publication(pub_id, layout.POST_DATA))
    for t in tables:
        manifest.tables[t.qualified].post_data = t.post_data + t.foreign_keys


def _check_count(t: SourceTable, copied: int, counted: int) -> None:
    if copied != counted:
        raise RuntimeError(f"{t.qualified}: COPY gave {copied} rows but count(*) in the same "
                           f"snapshot gave {counted}")
