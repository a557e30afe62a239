"""A thread pool that stops with its caller: when the thread waiting for the results is
interrupted (Ctrl-C, SIGTERM through the CLI), the tasks still running are interrupted too.

Python delivers a signal to the main thread only; a worker waiting for a server (a COPY
whose rows are long in coming, a statement waiting for a lock) would keep the command
alive until its statement ends, and the interpreter waits for the pool's threads before
it exits. So the statements running on the PostgreSQL connections a task opened
(:func:`opened`, called by ``topoff.sources.postgres.connect``) are cancelled, and a
KeyboardInterrupt is raised in the task's thread, as the main thread got one: the task's
transactions roll back; a task not started yet is cancelled. Then the pool is waited for,
and the interrupt goes on in the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_task = threading.local()


def opened(conn: Any) -> None:
    """A connection opened in this thread: cancelled if it is a pool's task interrupted."""
    conns = getattr(_task, "conns", None)
    if conns is not None:
        conns.append(conn)


def _interrupt(ident: int, error: type[BaseException] | None = KeyboardInterrupt) -> None:
    """Raise ``error`` in the thread ``ident`` at its next Python instruction (None: take
    back one not raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), None if error is None else ctypes.py_object(error))


class Workers:
    """``with Workers(n, name) as pool``: ``pool.submit`` and ``pool.map`` as a
    ThreadPoolExecutor's, the tasks interrupted when the ``with`` block is. ``conns``:
    connections opened outside the tasks that the tasks use, cancelled too."""

    def __init__(self, jobs: int, name: str, conns: Iterable[Any] = ()) -> None:
        self._pool = ThreadPoolExecutor(jobs, thread_name_prefix=name)
        self._conns = list(conns)
        self._lock = threading.Lock()
        self._running: dict[int, list[Any]] = {}  # thread -> its task's connections
        self._interrupted: set[int] = set()

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        def task() -> R:
            ident = threading.get_ident()
            with self._lock:
                self._running[ident] = _task.conns = []
            try:
                return fn(*args)
            finally:  # an interrupt is raised inside the task, or not at all
                with self._lock:
                    self._running.pop(ident, None)
                    _task.conns = None
                    late = ident in self._interrupted
                if late:
                    _interrupt(ident, None)

        return self._pool.submit(task)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        futures = [self.submit(fn, x) for x in items]
        return [f.result() for f in futures]

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self._pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                conns = list(self._conns)
                for ident, theirs in self._running.items():
                    self._interrupted.add(ident)
                    _interrupt(ident)
                    conns += theirs
            for conn in conns:  # wakes a task waiting on its server
                if hasattr(conn, "cancel_safe") and not conn.closed:
                    with contextlib.suppress(Exception):
                        conn.cancel_safe(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
