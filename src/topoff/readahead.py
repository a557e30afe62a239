"""An iterator advanced by a thread of its own, a few items ahead of its consumer: what
sync's Iceberg build (read, check and convert the next batch while this one is written)
and replicate's copies (read the source while the target takes the rows) both need."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

from topoff.workers import carried

T = TypeVar("T")

_END = object()
#: the producers started and not joined yet, with the event that stops each
_live: dict[threading.Thread, threading.Event] = {}
_lock = threading.Lock()
#: how long the program waits for its producers to end when it exits (seconds)
STOP_WAIT = 30.0


def stop_all(timeout: float = STOP_WAIT) -> None:
    """Stop every producer still running and wait for them to end, up to ``timeout``
    seconds in all: what the ``topoff`` program does before it exits. A producer an
    interrupted consumer left (Ctrl-C, SIGTERM) may be inside pyarrow's CSV reader, whose
    reads ahead run in Arrow's threads and call back into Python: the exit then hung (it
    waits for Arrow's threads, which wait for the interpreter) or aborted ("terminate
    called ..."). It ends after its current item (the signal cancelled the statements of
    one reading a server); one still waiting on a server that does not answer is left."""
    with _lock:
        live = list(_live.items())
    for _, stop in live:
        stop.set()
    deadline = time.monotonic() + timeout
    for worker, _ in live:
        worker.join(max(0.0, deadline - time.monotonic()))
        if not worker.is_alive():
            with _lock:
                _live.pop(worker, None)


def ahead(items: Iterator[T], depth: int = 1, name: str = "topoff-read") -> Iterator[T]:
    """``items`` produced by a thread named ``name``, at most ``depth`` of them waiting.
    The thread starts when the result is first advanced. An exception of the producer is
    raised here, in the consumer's order; a consumer that stops early (closes the result)
    stops the producer after its current item and waits for it; the producer closes
    ``items`` (a generator is closed by the thread that runs it). An interrupted consumer
    (Ctrl-C, SIGTERM) does not wait: the producer may be waiting on a server that has
    nothing to send; the ``topoff`` program stops and waits for it before it exits
    (:func:`stop_all`)."""
    waiting: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                waiting.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, raised there
            put(_END, e)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=carried(produce), name=name, daemon=True)
    with _lock:
        _live[worker] = stop
    worker.start()
    interrupted = False
    try:
        while True:
            item, error = waiting.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stop.set()
        if not interrupted:
            worker.join()
            with _lock:
                _live.pop(worker, None)


_NEXT = object()


def _flat(streams: Iterator[Iterator[T]]) -> Iterator[object]:
    for stream in streams:
        yield from stream  # closed with this generator
        yield _NEXT


def ahead_each(streams: Iterator[Iterator[T]], name: str = "topoff-read"
               ) -> Iterator[Iterator[T]]:
    """Each stream of ``streams`` (made when the one before it has ended) produced by ONE
    thread (``ahead``), which goes on to the next stream as soon as the consumer has taken
    the last item of one: the next stream's first item is read while the consumer still
    works on that last item. The same bound: at most one item waiting. The streams must
    be consumed in order, each to its end; closing the result stops the thread."""
    flat = ahead(_flat(streams), name=name)

    def one() -> Iterator[T]:
        for item in flat:
            if item is _NEXT:
                return
            yield item  # type: ignore[misc]

    try:
        while True:
            yield one()
    finally:
        close = getattr(flat, "close", None)
        if close is not None:
            close()
