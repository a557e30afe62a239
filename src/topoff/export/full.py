"""``topoff export full``: every configured table from one snapshot, as a new publication."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg import sql

from topoff import __version__
from topoff.config import Config
from topoff.dataset import layout
from topoff.dataset.index import Publication, read_index
from topoff.dataset.manifest import Manifest, TableEntry
from topoff.dataset.publish import publish, remove_files, write_file
from topoff.dataset.readme import full_readme
from topoff.errors import IntegrityError
from topoff.export.queries import copy_statement, hash_algorithm, hash_query
from topoff.export.runner import CopyResult, CopyUnit, HashUnit, Hook, Runner
from topoff.export.session import SnapshotSession
from topoff.safety import retry_on_recovery_conflict
from topoff.sources.catalog import SourceTable, introspect, post_data_sql, pre_data_sql
from topoff.stores.base import Store

log = logging.getLogger("topoff")

#: a plain table larger than this is read as several page ranges in parallel
SPLIT_BYTES = 64 * 1024 * 1024
PAGE = 8192


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


def lock_tables(conn, tables: list[SourceTable]) -> None:  # type: ignore[no-untyped-def]
    """ACCESS SHARE locks, as pg_dump takes: DDL on the primary now conflicts visibly
    (a recovery conflict on a standby) instead of changing a table under the export."""
    lockable = [t.ident for t in tables if t.relkind in ("r", "p", "m", "f", "v")]
    if lockable:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
            sql.SQL(", ").join(lockable)))


def _page_ranges(t: SourceTable, jobs: int) -> list[sql.Composable | None]:
    """Split a big plain table into ctid page ranges (TID range scans, PostgreSQL 14+)."""
    size = t.pages * PAGE
    if jobs < 2 or t.relkind != "r" or t.config.filter or size < SPLIT_BYTES:
        return [None]
    parts = min(jobs * 4, max(2, size // SPLIT_BYTES))
    step = -(-t.pages // parts)
    bounds = list(range(0, t.pages, step))
    out: list[sql.Composable | None] = []
    for i, lo in enumerate(bounds):
        cond = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({lo},0)"))
        if i + 1 < len(bounds):  # the last range is open: pages added since are read too
            cond = cond + sql.SQL(" AND ctid < {}::tid").format(sql.Literal(f"({bounds[i + 1]},0)"))
        out.append(cond)
    return out


def _namer(pub_id: str, t: SourceTable, window: layout.Window | None = None):  # type: ignore[no-untyped-def]
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
                on_rows=None) -> ExportResult:  # type: ignore[no-untyped-def]
    """Export every configured table in one snapshot and publish it; returns what was made."""
    assert config.source_url is not None
    started = time.monotonic()
    written: list[str] = []

    def attempt(n: int) -> ExportResult:
        with SnapshotSession(config.source_url or "", config.allow_primary) as session:
            info = session.open()
            if hook:
                hook("snapshot", info=info, attempt=n)
            assert session.conn is not None
            tables = introspect(session.conn, config)
            lock_tables(session.conn, tables)
            pub_id = layout.full_id(info.time)
            existing = read_index(store, config.dataset)
            if existing is not None and existing.get(pub_id) is not None:
                # Its files would be written over the published ones (same names).
                raise IntegrityError(
                    f"{pub_id} is already published in {store.url}",
                    hint="full exports are named after their snapshot time, to the second: "
                    "run this one again")
            log.info("full export %s: %d tables from %s (%s, replay LSN %s)", pub_id, len(tables),
                     info.database, "standby" if info.in_recovery else "PRIMARY", info.lsn)
            units: list[CopyUnit | HashUnit] = []
            for t in sorted(tables, key=lambda t: -t.pages):
                name_for = _namer(pub_id, t)
                for i, cond in enumerate(_page_ranges(t, config.export.jobs)):
                    units.append(CopyUnit(t.qualified, t, copy_statement(t, extra=cond),
                                          name_for, part=i))
                if t.config.method == "snapshot":
                    units.append(HashUnit(t.qualified + "#hash", t, hash_query(
                        t, None, hash_algorithm(info.server_version_num))))
            runner = Runner(session, store, config.export.jobs, config.export.chunk_bytes,
                            config.export.compression_level, hook, on_rows)
            try:
                results = runner.run(units)
            finally:
                written.extend(runner.written)
            entries = {}
            for t in tables:
                entry = table_entry(t)
                copies: list[CopyResult] = results[t.qualified]
                entry.files = sorted((f for c in copies for f in c.files), key=lambda f: f.path)
                entry.rows = sum(c.rows for c in copies)
                if t.config.method == "snapshot":
                    count, digest = results[t.qualified + "#hash"][0]
                    _check_count(t, entry.rows, count)
                    entry.content_hash = digest
                entries[t.qualified] = entry
            manifest = Manifest(
                kind=layout.FULL, publication=pub_id, dataset=config.dataset,
                created_at=datetime.now(UTC).isoformat(), tool_version=__version__,
                source=info.source_json(config.source_url or ""),
                snapshot=info.to_manifest(), tables=entries,
            )
            manifest.schema_files["pre_data"] = write_file(
                store, pub_id, layout.PRE_DATA, pre_data_sql(tables).encode())
            written.append(layout.in_publication(pub_id, layout.PRE_DATA))
            manifest.schema_files["post_data"] = write_file(
                store, pub_id, layout.POST_DATA, post_data_sql(tables).encode())
            written.append(layout.in_publication(pub_id, layout.POST_DATA))
            for t in tables:
                manifest.tables[t.qualified].post_data = t.post_data + t.foreign_keys
            store.write_bytes(layout.in_publication(pub_id, layout.README),
                              full_readme(manifest).encode())
            written.append(layout.in_publication(pub_id, layout.README))
            pubs = publish(store, config.dataset, [manifest])
            return ExportResult(pubs, [manifest])

    def cleanup() -> None:
        remove_files(store, written)
        written.clear()

    try:
        result = retry_on_recovery_conflict(attempt, config.export.retry_attempts,
                                            config.export.retry_backoff, "full export", cleanup)
    except BaseException:
        cleanup()
        raise
    result.seconds = time.monotonic() - started
    return result


def _check_count(t: SourceTable, copied: int, counted: int) -> None:
    if copied != counted:
        raise RuntimeError(f"{t.qualified}: COPY gave {copied} rows but count(*) in the same "
                           f"snapshot gave {counted}")
