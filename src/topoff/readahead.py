"""An iterator advanced by a thread of its own, a few items ahead of its consumer: what
sync's Iceberg build (read, check and convert the next batch while this one is written)
and replicate's copies (read the source while the target takes the rows) both need."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

from topoff.workers import carried

T = TypeVar("T")

_END = object()


def ahead(items: Iterator[T], depth: int = 1, name: str = "topoff-read") -> Iterator[T]:
    """``items`` produced by a thread named ``name``, at most ``depth`` of them waiting.
    The thread starts when the result is first advanced. An exception of the producer is
    raised here, in the consumer's order; a consumer that stops early (closes the result)
    stops the producer after its current item and waits for it; the producer closes
    ``items`` (a generator is closed by the thread that runs it). An interrupted consumer
    (Ctrl-C, SIGTERM) does not wait: the producer may be waiting on a server that has
    nothing to send; the daemon thread ends with the process."""
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
