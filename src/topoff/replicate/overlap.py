"""A second read of the refresh's snapshot, aside, while the first connection copies.

An inserter's refresh reads two parts of one snapshot (pg_source.py): the rows at or
below the stored watermark that were committed since the previous run (found by their
xmin: a scan of the whole lookback window, that usually finds few or none) and the new
rows above it (copied straight into the table). Read one after the other, the scan of
the window is time the target spends waiting. :class:`Aside` reads the first part on a
second source connection in the SAME snapshot (``pg_export_snapshot`` on the refresh's
connection, ``SET TRANSACTION SNAPSHOT`` on the new one, under the same safety rules as
the parallel first copy: parallel.py), by a thread, into a spool file (memory up to
:data:`SPOOL` bytes, then a temporary file), while the caller copies the new rows on
the first; the caller then stages and merges the spooled rows. An error of the thread
is raised in the caller, as the same exception (a recovery conflict restarts the
refresh); closing the aside cancels a read still running.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from topoff import safety
from topoff.errors import SafetyError
from topoff.replicate import stream
from topoff.replicate.parallel import _params
from topoff.sources.postgres import connect
from topoff.workers import carried

SPOOL = 8 << 20


class Aside:
    """``statements`` (COPY ... TO STDOUT) read on a connection of their own in
    ``conn``'s snapshot, by a thread, started at once; see the module's text."""

    def __init__(self, conn: psycopg.Connection, statements: Sequence[sql.Composable],
                 binary: bool) -> None:
        (self._snapshot,) = conn.execute("SELECT pg_export_snapshot()").fetchone()  # type: ignore[misc]
        (self._recovery,) = conn.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
        self._params = _params(conn)  # its password too, never printed; the same server
        self._statements, self._binary = list(statements), binary
        self.counter = [0]  # the rows read, once :meth:`blocks` has returned them
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115
        self._error: BaseException | None = None
        self._src: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=carried(self._read), name="topoff-replicate-aside",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            src = connect(make_conninfo(**self._params), "topoff replicate aside",
                          autocommit=True)
            with self._lock:
                self._src = src
                if self._stop:
                    return
            (recovery,) = src.execute("SELECT pg_is_in_recovery()").fetchone()  # type: ignore[misc]
            if recovery != self._recovery:
                raise SafetyError("the source changed role during the refresh (promoted?)",
                                  hint="run it again")
            src.execute(safety.begin_statement(bool(recovery), worker=True))
            src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                sql.Literal(self._snapshot)))
            for block in stream.copy_blocks(src, self._statements, self.counter,
                                            binary=self._binary):
                self._spool.write(block)
            src.execute("COMMIT")
        except BaseException as e:  # raised in the caller, by blocks()
            self._error = e

    def blocks(self) -> Iterator[bytes]:
        """The spooled rows (whole rows, or one binary COPY stream), once all are read."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._spool.seek(0)
        while block := self._spool.read(stream.CHUNK):
            yield block

    def close(self) -> None:
        with self._lock:
            self._stop = True
            src = self._src
        if src is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                src.cancel_safe()
        self._thread.join()
        if self._src is not None:
            with contextlib.suppress(Exception):
                self._src.close()
        self._spool.close()

    def __enter__(self) -> Aside:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
