"""Rows from COPY, compressed and hashed on their way to the store, in files of bounded size.

Memory stays constant: rows are gathered into a block buffer of about 1 MiB, compressed by
a streaming zstd writer whose output is hashed and counted as it is written to the store.
A new file begins, with the CSV header again, once the current one holds ``chunk_bytes`` of
CSV; a file always ends at a row boundary (libpq hands COPY data over one row at a time, and
the reader only ever appends whole rows to the block).

The per-row work is one loop in :meth:`topoff.sources.pg_copy.CopyReader.read_into`; all
else here (hashing, compressing, counting bytes, deciding where a file ends) is done once
per block. zstd compresses in a thread of its own (``threads=1``: libzstd's worker, outside
the GIL), so reading the next rows from the server overlaps compressing the previous ones,
as in a ``psql | zstd`` pipeline. The data rows (not the headers) are also hashed as they
pass (:attr:`ChunkedWriter.content_sha256`): with rows in a fixed order, that is a hash of
the exported text itself, at no extra read of the source.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Protocol, cast

import zstandard

from topoff.dataset.manifest import DataFile
from topoff.errors import StoreError
from topoff.sources.base import BLOCK, KEEP, block_buffer
from topoff.stores.base import Store
from topoff.stores.hashing import HashingWriter

COMPRESS_THREADS = 1  # libzstd's own worker thread: compression overlaps reading


def compressor(level: int) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=level, threads=COMPRESS_THREADS)


_SPOOL_HINT = ("free space where temporary files go (TMPDIR), point TMPDIR at a larger "
               "disk, or export with --jobs 1 (a day in one read needs no temporary file)")


def open_spool() -> IO[bytes]:
    """An unlinked temporary file for a later part's rows (export/split.py)."""
    try:
        return tempfile.TemporaryFile(prefix="topoff-part-", buffering=0)  # blocks of 1 MiB
    except OSError as e:
        raise StoreError(f"cannot make a temporary file for a part of the day: {e.strerror}",
                         hint=_SPOOL_HINT) from None


def _spool_write(spool: IO[bytes], data: memoryview) -> None:
    try:
        spool.write(data)
    except OSError as e:
        data.release()  # the traceback keeps this frame: the block must stay resizable
        raise StoreError(f"cannot write the temporary file of a part of the day: "
                         f"{e.strerror}", hint=_SPOOL_HINT) from None


class RowReader(Protocol):
    """Where rows come from (a :class:`topoff.sources.base.RowStream`)."""

    done: bool

    def read_row(self) -> bytes | memoryview | None: ...

    def read_into(self, buf: bytearray, until: int) -> int: ...


class IterReader:
    """Rows from an iterable, read like a CopyReader."""

    def __init__(self, rows: Iterable[bytes | memoryview]) -> None:
        self._it: Iterator[bytes | memoryview] = iter(rows)
        self.done = False

    def read_row(self) -> bytes | memoryview | None:
        row = next(self._it, None)
        self.done = row is None
        return row

    def read_into(self, buf: bytearray, until: int) -> int:
        count = 0
        while len(buf) < until:
            row = next(self._it, None)
            if row is None:
                self.done = True
                break
            buf += row
            count += 1
        return count


class ChunkedWriter:
    """Writes CSV rows into ``name_for(n)`` files (n = 1, 2, ...) and records each file.

    ``written`` holds the store names written so far, so a failed export can remove them.
    """

    def __init__(self, store: Store, name_for: Callable[[int], tuple[str, str]],
                 chunk_bytes: int, level: int = 3,
                 on_progress: Callable[[int], None] | None = None,
                 hash_content: bool = True,
                 cctx: zstandard.ZstdCompressor | None = None,
                 spool: IO[bytes] | None = None, empty_file: bool = True) -> None:
        self.store = store
        self.name_for = name_for  # chunk number -> (store name, name relative to publication)
        self.chunk_bytes = chunk_bytes
        # one compressor (and its worker thread and buffers) may serve a thread's writers one
        # after another: each file is a new frame, the same bytes as from a new compressor
        self.cctx = cctx if cctx is not None else compressor(level)
        # of the data rows of every file, in order; None when nobody needs it (a full
        # export): a sha256 of every CSV byte costs ~1 s of CPU per GB
        self.content = hashlib.sha256() if hash_content and spool is None else None
        # the data rows kept for a hash taken later (a later part of a split window, whose
        # bytes follow the earlier parts' in the content hash: see export/split.py)
        self.spool = spool
        # a writer with no rows makes one file of its header (False: a later part)
        self.empty_file = empty_file
        self.on_progress = on_progress
        self.files: list[DataFile] = []
        self.written: list[str] = []
        self.header: bytes | None = None
        self.rows = 0
        self._chunk = 0
        self._open: contextlib.ExitStack | None = None
        self._sink: HashingWriter | None = None
        self._zw: zstandard.ZstdCompressionWriter | None = None
        self._buf = block_buffer()  # data after its first KEEP bytes
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
        self._zw = self.cctx.stream_writer(cast(IO[bytes], self._sink), closefd=False)
        self._csv_bytes = 0
        self._chunk_rows = 0
        assert self.header is not None
        self._buf += self.header
        self._skip = len(self.header)

    def _flush(self) -> None:
        """Compress (and hash) the block; count its CSV bytes; empty it."""
        buf = self._buf
        if len(buf) > KEEP and self._zw is not None:
            with memoryview(buf)[KEEP:] as view:
                if self.content is not None:
                    self.content.update(view[self._skip:])
                elif self.spool is not None:
                    _spool_write(self.spool, view[self._skip:])
                self._zw.write(view)
            self._csv_bytes += len(buf) - KEEP - self._skip
            self._skip = 0
            del buf[KEEP:]

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

    def write_rows(self, rows: Iterable[bytes | memoryview]) -> None:
        """Consume rows: the first is the CSV header, each later one a data row."""
        self.write_from(IterReader(rows))

    def write_from(self, reader: RowReader) -> None:
        """Consume COPY output: the first row is the CSV header, each later one a data row."""
        if self.header is None:
            first = reader.read_row()
            if first is None:
                return
            self.header = bytes(first)
        buf, limit, progress = self._buf, self.chunk_bytes, self.on_progress
        while not reader.done:
            if self._zw is None:  # a file is started only for a row that exists
                row = reader.read_row()
                if row is None:
                    break
                self._start()
                buf += row
                self._chunk_rows = 1
            until = self._until()
            self._chunk_rows += reader.read_into(buf, until)
            if len(buf) < until:
                break  # the end of the rows: close() finishes the file
            if self._csv_bytes + len(buf) - KEEP - self._skip >= limit:
                self.rows += self._chunk_rows  # this row takes the file to chunk_bytes
                self._finish()
                continue
            self._flush()
            if progress is not None:
                progress(self.rows + self._chunk_rows)

    def _until(self) -> int:
        """The buffer length at which reading stops: the block is full, or the file holds
        chunk_bytes of CSV."""
        return KEEP + min(BLOCK, self._skip + self.chunk_bytes - self._csv_bytes)

    def close(self) -> list[DataFile]:
        """Finish the last file. A table with no rows still gets one file (its header)."""
        if self._zw is None and not self.files and self.header is not None and self.empty_file:
            self._start()
        if self._zw is not None:
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
        del self._buf[KEEP:]
        error = error or RuntimeError("aborted")
        try:
            stack.__exit__(type(error), error, error.__traceback__)
        except StoreError as answer:
            if answer is not error:
                raise answer from error
        except BaseException:
            pass  # the caller raises the original error
