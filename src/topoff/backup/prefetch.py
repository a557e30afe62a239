"""Read-ahead in a thread: decompression overlaps with writing the files, as ``zstd -d |
tar -x`` overlaps in two processes. zstd releases the GIL while it decompresses and the
writes release it too, so the two threads do run in parallel.

A fixed pool of buffers (``depth`` x 1 MiB) goes round between the reading thread, which
fills them with ``readinto``, and the consumer, which takes views of them (``chunk``:
no copy) or copies out of them (``readinto``). Memory stays constant.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

SIZE = 1 << 20


class Prefetch:
    """``src`` (an object with ``readinto``) read ahead by a thread. ``close()`` then
    ``join()`` once the source has ended or been cut off (the reading thread may be
    inside ``src.readinto`` until then)."""

    def __init__(self, src: Any, size: int = SIZE, depth: int = 4) -> None:
        self._src = src
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        for _ in range(depth):
            self._free.put(bytearray(size))
        self._full: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self._cur: bytearray | None = None
        self._pos = self._end = 0
        self._eof = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="prefetch")
        self._thread.start()

    def _run(self) -> None:
        try:
            while (buf := self._free.get()) is not None:
                n = self._src.readinto(buf)
                self._full.put((buf, n))
                if not n:
                    return
        except BaseException as e:  # zstd's error, or the source's
            self._full.put((e, 0))

    def _next(self) -> None:
        if self._cur is not None:
            self._free.put(self._cur)
            self._cur = None
        item, n = self._full.get()
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        if not n:
            self._eof = True
            return
        self._cur, self._pos, self._end = item, 0, n

    def chunk(self, limit: int) -> memoryview:
        """Up to ``limit`` bytes, a view valid until the next call; empty at the end."""
        if self._pos >= self._end:
            if self._eof:
                return memoryview(b"")
            self._next()
            if self._cur is None:
                return memoryview(b"")
        assert self._cur is not None
        end = min(self._end, self._pos + limit)
        view = memoryview(self._cur)[self._pos : end]
        self._pos = end
        return view

    def readinto(self, buffer: Any) -> int:
        view = self.chunk(len(buffer))
        buffer[: len(view)] = view
        return len(view)

    def read(self, n: int = -1) -> bytes:
        return bytes(self.chunk(SIZE if n is None or n < 0 else n))

    def drain(self) -> None:
        """Read on to the end of the source (what follows the tar's end)."""
        while self.chunk(SIZE):
            pass

    def close(self) -> None:
        """Stop reading ahead: the thread ends after its current ``readinto``."""
        self._free.put(None)

    def join(self) -> None:
        self._thread.join()
