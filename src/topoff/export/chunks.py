"""Rows from COPY, compressed and hashed on their way to the store, in files of bounded size.

Memory stays constant: rows are gathered into a small buffer, compressed by a streaming
zstd writer whose output is hashed and counted as it is written to the store. A new file
begins, with the CSV header again, once the current one holds ``chunk_bytes`` of CSV; a
file always ends at a row boundary (libpq hands COPY data over one row at a time).

zstd compresses in a thread of its own (``threads=1``: libzstd's worker, outside the GIL),
so reading the next rows from the server overlaps compressing the previous ones, as in a
``psql | zstd`` pipeline. The data rows (not the headers) are also hashed as they pass
(:attr:`ChunkedWriter.content_sha256`): with rows in a fixed order, that is a hash of
the exported text itself, at no extra read of the source.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable

import zstandard

from topoff.dataset.manifest import DataFile
from topoff.errors import StoreError
from topoff.stores.base import Store
from topoff.stores.hashing import HashingWriter

BUFFER = 1 << 20  # CSV bytes gathered before a compressor call
COMPRESS_THREADS = 1  # libzstd's own worker thread: compression overlaps reading


class ChunkedWriter:
    """Writes CSV rows into ``name_for(n)`` files (n = 1, 2, ...) and records each file.

    ``written`` holds the store names written so far, so a failed export can remove them.
    """

    def __init__(self, store: Store, name_for: Callable[[int], tuple[str, str]],
                 chunk_bytes: int, level: int = 3,
                 on_progress: Callable[[int], None] | None = None,
                 hash_content: bool = True) -> None:
        self.store = store
        self.name_for = name_for  # chunk number -> (store name, name relative to publication)
        self.chunk_bytes = chunk_bytes
        self.cctx = zstandard.ZstdCompressor(level=level, threads=COMPRESS_THREADS)
        # of the data rows of every file, in order; None when nobody needs it (a full
        # export): a sha256 of every CSV byte costs ~1 s of CPU per GB
        self.content = hashlib.sha256() if hash_content else None
        self.on_progress = on_progress
        self.files: list[DataFile] = []
        self.written: list[str] = []
        self.header: bytes | None = None
        self.rows = 0
        self._chunk = 0
        self._open: contextlib.ExitStack | None = None
        self._sink: HashingWriter | None = None
        self._zw: zstandard.ZstdCompressionWriter | None = None
        self._buf = bytearray()
        self._skip = 0  # header bytes at the start of the buffer, not part of the content
        self._csv_bytes = 0
        self._chunk_rows = 0
        self._relative = ""
        self._name = ""

    def _start(self) -> None:
        self._chunk += 1
        name, self._relative = self.name_for(self._chunk)
        stack = contextlib.ExitStack()
        out = stack.enter_context(self.store.write(name))
        self._name = name
        self._open = stack
        self._sink = HashingWriter(out)
        self._zw = self.cctx.stream_writer(self._sink, closefd=False)
        self._csv_bytes = 0
        self._chunk_rows = 0
        assert self.header is not None
        self._buf += self.header
        self._skip = len(self.header)

    def _flush(self) -> None:
        if self._buf and self._zw is not None:
            view = memoryview(self._buf)
            try:
                if self.content is not None:
                    self.content.update(view[self._skip:])
                self._zw.write(view)
            finally:
                view.release()
            self._skip = 0
            self._buf.clear()

    @property
    def content_sha256(self) -> str:
        """sha256 of the data rows written so far (headers left out), in order; "" when
        the writer was made with ``hash_content=False``."""
        return self.content.hexdigest() if self.content is not None else ""

    def _finish(self) -> None:
        assert self._zw is not None and self._sink is not None and self._open is not None
        self._flush()
        self._zw.flush(zstandard.FLUSH_FRAME)
        self._open.close()  # the store makes the file visible now
        self.written.append(self._name)  # only files this run made (a name may be taken)
        assert self.header is not None
        self.files.append(DataFile(self._relative, self._sink.size, self._sink.hexdigest(),
                                   self._chunk_rows,
                                   uncompressed_bytes=len(self.header) + self._csv_bytes))
        self._open = self._sink = self._zw = None

    def write_rows(self, rows: Iterable[bytes]) -> None:
        """Consume COPY output: the first row is the CSV header, each later one a data row."""
        it = iter(rows)
        if self.header is None:
            first = next(it, None)
            if first is None:
                return
            self.header = bytes(first)
        # The loop runs once per row and does as little as it can: append, count, and one
        # comparison against the next point where something must happen (the buffer is
        # full, or the file holds chunk_bytes of CSV). CSV bytes are counted from the
        # buffer's length there, not row by row.
        buf, limit, progress, count = self._buf, self.chunk_bytes, self.on_progress, 0
        if self._zw is not None:
            count = self._chunk_rows
        until = self._until()
        for row in it:
            if until < 0:  # no file open: start one (its header goes into the buffer)
                self._start()
                count = 0
                until = self._until()
            buf += row
            count += 1
            if len(buf) >= until:
                self._chunk_rows = count
                if self._csv_bytes + len(buf) - self._skip >= limit:
                    self._csv_bytes += len(buf) - self._skip
                    self.rows += count
                    self._finish()
                    count, until = 0, -1
                    continue
                self._csv_bytes += len(buf) - self._skip
                self._flush()
                until = self._until()
                if progress is not None:
                    progress(self.rows + count)
        self._chunk_rows = count

    def _until(self) -> int:
        """The buffer length at which write_rows must stop and look: -1 with no file open."""
        if self._zw is None:
            return -1
        return min(BUFFER, self.chunk_bytes - self._csv_bytes + self._skip)

    def close(self) -> list[DataFile]:
        """Finish the last file. A table with no rows still gets one file (its header)."""
        if self._zw is None and not self.files and self.header is not None:
            self._start()
        if self._zw is not None:
            self._csv_bytes += len(self._buf) - self._skip  # the rows still in the buffer
            self.rows += self._chunk_rows
            self._finish()
        return self.files

    def abort(self, error: BaseException | None = None) -> None:
        """Drop the file being written (nothing appears under its name).

        ``error`` is what went wrong; the store sees it and may answer with a StoreError of
        its own (a full disk, a denied write), which is raised then in its place.
        """
        if self._open is None:
            return
        stack, self._open = self._open, None
        self._sink = self._zw = None
        error = error or RuntimeError("aborted")
        try:
            stack.__exit__(type(error), error, error.__traceback__)
        except StoreError as answer:
            if answer is not error:
                raise answer from error
        except BaseException:
            pass  # the caller raises the original error
