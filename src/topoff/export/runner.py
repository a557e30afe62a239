"""Runs an export's units of work (COPY a table or a part of one, hash a table) in parallel.

Each of ``jobs`` threads holds its own connection in the shared snapshot. When one unit
fails, every running statement is cancelled and the first real error is raised; the store
names written so far are kept in :attr:`Runner.written` so the caller can remove them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from topoff.dataset.manifest import DataFile
from topoff.export.chunks import ChunkedWriter, compressor
from topoff.export.copy_out import CopyReader
from topoff.export.session import SnapshotSession
from topoff.safety import is_connection_lost, is_recovery_conflict
from topoff.sources.catalog import SourceTable
from topoff.stores.base import Store

Hook = Callable[..., None]


@dataclass
class CopyUnit:
    #: what the result is filed under (e.g. "public.messages" or "2026-11-20/public.messages")
    key: str
    table: SourceTable
    statement: sql.Composable
    name_for: Callable[[int], tuple[str, str]]
    part: int = 0
    #: whether the rows' sha256 (CopyResult.content_sha256) is wanted: it costs a pass
    #: over every CSV byte, so only units whose content hash is their rows' hash ask
    hash_content: bool = False


@dataclass
class HashUnit:
    key: str
    table: SourceTable
    statement: sql.Composable


@dataclass
class CopyResult:
    files: list[DataFile] = field(default_factory=list)
    rows: int = 0
    #: sha256 of the data rows as COPY gave them (see ChunkedWriter.content_sha256); ""
    #: unless the unit asked for it (CopyUnit.hash_content)
    content_sha256: str = ""


class Runner:
    def __init__(self, session: SnapshotSession, store: Store, jobs: int, chunk_bytes: int,
                 level: int, hook: Hook | None = None,
                 on_rows: Callable[[str, int], None] | None = None) -> None:
        self.session = session
        self.store = store
        self.jobs = max(1, jobs)
        self.chunk_bytes = chunk_bytes
        self.level = level
        self.hook = hook
        self.on_rows = on_rows
        self.written: list[str] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._failed = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[CopyUnit | HashUnit, Future[Any]]] = []

    def _conn(self) -> psycopg.Connection:
        if self.jobs == 1:
            assert self.session.conn is not None
            return self.session.conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.session.worker()
        return conn

    def _copy(self, unit: CopyUnit) -> CopyResult:
        if self.hook:
            self.hook("table_start", table=unit.table.qualified, key=unit.key, part=unit.part)
        conn = self._conn()
        last = [0]

        def progress(rows: int) -> None:
            if self.on_rows is not None:
                self.on_rows(unit.table.qualified, rows - last[0])
                last[0] = rows

        cctx = getattr(self._local, "cctx", None)
        if cctx is None:  # one per thread: its zstd worker and buffers serve every unit
            cctx = self._local.cctx = compressor(self.level)
        writer = ChunkedWriter(self.store, unit.name_for, self.chunk_bytes, self.level, progress,
                               hash_content=unit.hash_content, cctx=cctx)
        try:
            writer.write_from(CopyReader(conn, unit.statement))
            files = writer.close()
        except BaseException as e:
            writer.abort(e)  # may raise the store's own error (e.g. disk full) instead
            raise
        finally:
            with self._lock:
                self.written.extend(writer.written)
        progress(writer.rows)
        if self.hook:
            self.hook("table_done", table=unit.table.qualified, key=unit.key, rows=writer.rows)
        return CopyResult(files, writer.rows, writer.content_sha256)

    def _hash(self, unit: HashUnit) -> tuple[int, str]:
        row = self._conn().execute(unit.statement).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def _run_one(self, unit: CopyUnit | HashUnit) -> Any:
        if self._failed.is_set():
            return None
        try:
            return self._copy(unit) if isinstance(unit, CopyUnit) else self._hash(unit)
        except BaseException:
            if not self._failed.is_set():
                self._failed.set()
                self.session.cancel_all()
            raise

    # -- batches: submit() as work becomes known, results() once at the end -------------
    def __enter__(self) -> Runner:
        if self.jobs > 1:
            _ = self.session.snapshot_id  # exported here, before workers need it
            self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                            thread_name_prefix="topoff-export")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            if exc and exc[0] is not None:
                self._failed.set()
                self.session.cancel_all()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def submit(self, units: list[CopyUnit | HashUnit]) -> None:
        """Start units: on the workers (jobs > 1), or right here on the coordinator."""
        for u in units:
            if self._pool is None:
                fut: Future[Any] = Future()
                fut.set_result(self._run_one(u))  # a failure propagates from here
            else:
                fut = self._pool.submit(self._run_one, u)
            self._pending.append((u, fut))

    def results(self) -> dict[str, list[Any]]:
        """Results per unit key, in submission order; raises the first failure."""
        futures = [f for _, f in self._pending]
        wait(futures, return_when=FIRST_EXCEPTION)
        if self._failed.is_set():
            for f in futures:
                f.cancel()
        wait(futures)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
        if errors:
            # A conflict with recovery or a lost connection (the standby restarted) is the
            # cause; the other workers' errors follow from it (our cancels, a snapshot that
            # vanished with the coordinator's session).
            cause = next((e for e in errors if is_recovery_conflict(e)), None) or next(
                (e for e in errors if is_connection_lost(e)), None)
            raise cause or next(
                (e for e in errors if not isinstance(e, psycopg.errors.QueryCanceled)), errors[0])
        out: dict[str, list[Any]] = {}
        for u, f in self._pending:
            out.setdefault(u.key, []).append(f.result())
        return out

    def run(self, units: list[CopyUnit | HashUnit]) -> dict[str, list[Any]]:
        """Run units and return their results (a whole export in one batch)."""
        with self:
            self.submit(units)
            return self.results()
