"""Interrupting work that waits on a server: the connections to cancel, and a thread pool
that stops with its caller.

Python runs a signal's handler (Ctrl-C, SIGTERM through the CLI: KeyboardInterrupt) in the
main thread only, between two of its instructions. A statement that waits on its server (a
COPY whose rows are long in coming, a query waiting for a lock) inside a driver's C code,
or in another thread, would keep the command alive until it ends. So every source and
target connection topoff opens is recorded here (:func:`opened`) with a way to cancel what
it runs, and :func:`cancel_all` cancels them: the CLI calls it from a thread of its own as
soon as the signal arrives (cli/signals.py), and :class:`Workers` when the thread waiting
for its tasks is interrupted; the waiting call then returns with an error, and the
interrupt goes on.

The connections are recorded per :class:`Run`, not per process: a command, or the calls
of one thread of a program (and the threads topoff starts for them, which carry their
caller's run: :func:`carried`). Interrupting one run cancels its statements only, never
those of another thread's independent call in the same program.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

class Run:
    """The connections one run opened (weakly: a connection that is garbage is dropped),
    each with a way to cancel the statement it runs."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[weakref.ref[Any], Callable[[Any], None]]] = {}
        self._lock = threading.Lock()
        with _runs_lock:
            _runs.add(self)

    def add(self, conn: Any, cancel: Callable[[Any], None]) -> None:
        key = id(conn)
        mine = weakref.ref(self)

        def gone(_: object) -> None:
            run = mine()
            if run is not None:
                with run._lock:
                    run._open.pop(key, None)

        with self._lock:
            self._open[key] = (weakref.ref(conn, gone), cancel)

    def cancel(self) -> None:
        """Cancel the statement each of this run's open connections runs."""
        with self._lock:
            entries = list(self._open.values())
        for ref, cancel in entries:
            conn = ref()
            if conn is not None:
                with contextlib.suppress(Exception):
                    cancel(conn)


_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_runs_lock = threading.Lock()
_current: ContextVar[Run | None] = ContextVar("topoff_run", default=None)


def current_run() -> Run:
    """The run of this thread's calls (made on first use: a thread's calls share one)."""
    run = _current.get()
    if run is None:
        run = Run()
        _current.set(run)
    return run


@contextlib.contextmanager
def new_run() -> Iterator[Run]:
    """A run of its own for the block (a command): what it and its threads open."""
    run = Run()
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


def carried(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn``, to be called once in another thread as part of the caller's run (a thread
    starts with no run: its connections would not be cancelled with the caller's)."""
    current_run()
    context = contextvars.copy_context()

    def in_run(*args: Any, **kwargs: Any) -> R:
        return context.run(fn, *args, **kwargs)

    return in_run


def _cancel_pg(conn: Any) -> None:
    if not conn.closed:
        conn.cancel_safe(timeout=5)


def opened(conn: Any, cancel: Callable[[Any], None] = _cancel_pg) -> None:
    """Record a connection of this run (a psycopg one unless ``cancel`` says how to cancel
    its statement) until it is garbage: :func:`cancel_all` cancels what it runs."""
    current_run().add(conn, cancel)


def cancel_all() -> None:
    """Cancel the statement every open connection of this run runs (it is stopping)."""
    current_run().cancel()


def cancel_every_run() -> None:
    """Cancel the statements of every run of the process (the topoff program stopping)."""
    with _runs_lock:
        runs = list(_runs)
    for run in runs:
        run.cancel()


def _interrupt(ident: int, error: type[BaseException] | None = KeyboardInterrupt) -> None:
    """Raise ``error`` in the thread ``ident`` at its next Python instruction (None: take
    back one not raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), None if error is None else ctypes.py_object(error))


class Workers:
    """``with Workers(n, name) as pool``: ``pool.submit`` and ``pool.map`` as a
    ThreadPoolExecutor's. When the ``with`` block is interrupted, a task not started is
    cancelled, and each running task gets a KeyboardInterrupt in its own thread and its
    statement cancelled (:func:`cancel_all`: the tasks carry their caller's run): its
    transaction rolls back. Then the pool is waited for, and the interrupt goes on in the
    caller."""

    def __init__(self, jobs: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(jobs, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._interrupted: set[int] = set()

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        def task() -> R:
            ident = threading.get_ident()
            with self._lock:
                self._running.add(ident)
            try:
                return fn(*args)
            finally:  # an interrupt is raised inside the task, or not at all
                with self._lock:
                    self._running.discard(ident)
                    late = ident in self._interrupted
                if late:
                    _interrupt(ident, None)

        return self._pool.submit(carried(task))

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
                for ident in self._running:
                    self._interrupted.add(ident)
                    _interrupt(ident)
            cancel_all()  # wakes a task waiting on its server
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
