"""Runs an export's units of work (read a table or a part of one, hash a table) in parallel.

Each of ``jobs`` threads holds its own reader in the source's shared snapshot (a source
without ``exported_snapshot`` runs every unit on its one reader). When one unit fails,
every running read is cancelled, again until each has stopped (a cancel that reaches a
connection before its query does is lost), and the error that caused the others is
raised; the store names written so far are kept in :attr:`Runner.written` so the caller
can remove them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import IO, Any

from topoff.dataset.layout import Window
from topoff.dataset.manifest import DataFile
from topoff.export.chunks import ChunkedWriter, compressor, open_spool
from topoff.sources.base import Source, SourceReader, SourceTable
from topoff.stores.base import Store
from topoff.workers import carried

Hook = Callable[..., None]

#: seconds between cancels of the reads still running after a failure or an interruption
CANCEL_AGAIN = 0.25


@dataclass
class CopyUnit:
    #: what the result is filed under (e.g. "public.messages" or "2026-11-20/public.messages")
    key: str
    table: SourceTable
    name_for: Callable[[int], tuple[str, str]]
    #: the rows of this window (None: the whole table)
    window: Window | None = None
    #: the index of the part (for hooks), and what the source reads it by (Source.parts)
    part: int = 0
    portion: Any = None
    #: read in (cursor, key) order: the same rows always give the same files
    ordered: bool = False
    #: whether the rows' sha256 (CopyResult.content_sha256) is wanted: it costs a pass
    #: over every CSV byte, so only units whose content hash is their rows' hash ask
    hash_content: bool = False
    #: a later part of a split window (export/split.py): its data rows go to a temporary
    #: file, hashed after the earlier parts' (CopyResult.spool); no file when it has no rows
    spool: bool = False
    #: called with the result on the worker, once the unit's files are written
    then: Callable[[int, CopyResult], None] | None = None


@dataclass
class HashUnit:
    """count(*) and the content hash of a table (of a window) computed by the source."""

    key: str
    table: SourceTable
    window: Window | None
    algorithm: str


@dataclass
class CopyResult:
    files: list[DataFile] = field(default_factory=list)
    rows: int = 0
    #: sha256 of the data rows as COPY gave them (see ChunkedWriter.content_sha256); ""
    #: unless the unit asked for it (CopyUnit.hash_content)
    content_sha256: str = ""
    #: the running sha256 behind content_sha256 (a split window's later parts continue it)
    digest: Any = None
    #: a later part's data rows (CopyUnit.spool), at their end; the caller closes it
    spool: IO[bytes] | None = None
    #: the spool's rows were hashed already, after the earlier parts' (export/split.py)
    joined: bool = False


class Runner:
    def __init__(self, source: Source, store: Store, jobs: int, chunk_bytes: int,
                 level: int, hook: Hook | None = None,
                 on_rows: Callable[[str, int], None] | None = None) -> None:
        self.source = source
        self.store = store
        self.jobs = max(1, jobs) if source.capabilities.exported_snapshot else 1
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

    def _reader(self) -> SourceReader:
        if self.jobs == 1:
            return self.source.reader()
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self.source.worker()
        return reader

    def _copy(self, unit: CopyUnit) -> CopyResult:
        if self.hook:
            self.hook("table_start", table=unit.table.qualified, key=unit.key, part=unit.part)
        reader = self._reader()
        last = [0]

        def progress(rows: int) -> None:
            if self.on_rows is not None:
                self.on_rows(unit.table.qualified, rows - last[0])
                last[0] = rows

        cctx = getattr(self._local, "cctx", None)
        if cctx is None:  # one per thread: its zstd worker and buffers serve every unit
            cctx = self._local.cctx = compressor(self.level)
        # closed by whoever joins the parts' hashes (export/split.py), or below on failure
        spool = open_spool() if unit.spool else None
        writer = ChunkedWriter(self.store, unit.name_for, self.chunk_bytes, self.level, progress,
                               hash_content=unit.hash_content, cctx=cctx, spool=spool,
                               empty_file=not unit.spool)
        try:
            writer.write_from(reader.rows(unit.table, unit.window, unit.portion, unit.ordered))
            files = writer.close()
        except BaseException as e:
            if spool is not None:
                spool.close()
            writer.abort(e)  # may raise the store's own error (e.g. disk full) instead
            raise
        finally:
            with self._lock:
                self.written.extend(writer.written)
        progress(writer.rows)
        if self.hook:
            self.hook("table_done", table=unit.table.qualified, key=unit.key, rows=writer.rows)
        result = CopyResult(files, writer.rows, writer.content_sha256, writer.content, spool)
        if unit.then is not None:
            unit.then(unit.part, result)
        return result

    def _hash(self, unit: HashUnit) -> tuple[int, str | None]:
        return self._reader().count_hash(unit.table, unit.window, unit.algorithm)

    def _run_one(self, unit: CopyUnit | HashUnit) -> Any:
        if self._failed.is_set():
            return None
        try:
            return self._copy(unit) if isinstance(unit, CopyUnit) else self._hash(unit)
        except BaseException:
            if not self._failed.is_set():
                self._failed.set()
                self.source.cancel_all()
            raise

    # -- batches: submit() as work becomes known, results() once at the end -------------
    def __enter__(self) -> Runner:
        if self.jobs > 1:
            self.source.share()  # before workers need it
            self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                            thread_name_prefix="topoff-export")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            if exc and exc[0] is not None:
                self._failed.set()
                self._stop([f for _, f in self._pending])
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _stop(self, futures: list[Future[Any]]) -> None:
        """Cancel the units not begun, and the reads of those running until they end: a
        unit that began before the failure may send its query after the first cancel."""
        for f in futures:
            f.cancel()
        self.source.cancel_all()
        while wait(futures, timeout=CANCEL_AGAIN).not_done:
            self.source.cancel_all()

    def submit(self, units: list[CopyUnit | HashUnit]) -> None:
        """Start units: on the workers (jobs > 1), or right here on the coordinator."""
        for u in units:
            if self._pool is None:
                fut: Future[Any] = Future()
                fut.set_result(self._run_one(u))  # a failure propagates from here
            else:
                fut = self._pool.submit(carried(self._run_one), u)
            self._pending.append((u, fut))

    def results(self) -> dict[str, list[Any]]:
        """Results per unit key, in submission order; raises the first failure."""
        futures = [f for _, f in self._pending]
        wait(futures, return_when=FIRST_EXCEPTION)
        if self._failed.is_set():
            self._stop(futures)
        wait(futures)
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
        if errors:
            raise self.source.main_error([e for e in errors if e is not None])
        out: dict[str, list[Any]] = {}
        for u, f in self._pending:
            out.setdefault(u.key, []).append(f.result())
        return out

    def run(self, units: list[CopyUnit | HashUnit]) -> dict[str, list[Any]]:
        """Run units and return their results (a whole export in one batch)."""
        with self:
            self.submit(units)
            return self.results()
