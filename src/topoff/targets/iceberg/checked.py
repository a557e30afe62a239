"""A data file checked against its manifest entry while it is read, in one pass: the size
and sha256 of its compressed bytes, its decompressed bytes (at most what the manifest
declares, exactly that when it declares it) and its rows.

The same checks as sync/fetch.py and sync/scan.py make before a target sees a file (the
caller builds a Checked with scan.py's bound), for a reader that parses the file as it
arrives instead of reading it three times (hash, decompress to count, parse). A bound is
enforced as soon as it is passed (a zstd bomb stops at the cap); the sha256 is known at
the end of the file, and :meth:`Checked.finish` raises there: whoever consumes the rows
commits them only after the whole file has been read.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from topoff.dataset.manifest import DataFile
from topoff.errors import IntegrityError

#: bytes read at once when the rest of a damaged file is hashed
DRAIN = 1 << 20


class _Reader(io.RawIOBase):
    """A read-only stream that hands each block it reads to ``seen``."""

    def __init__(self, inner: BinaryIO, seen: Callable[[bytes], None]) -> None:
        self.inner, self.seen = inner, seen

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        block = self.inner.read(size if size is not None and size >= 0 else DRAIN)
        self.seen(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[:len(block)] = block
        return len(block)


class Checked:
    """The checks of one data file against ``f``, its manifest entry; ``name`` is its path
    in the publication, ``cap`` the most bytes it may decompress to (sync/scan.py's
    size_cap: the manifest's ``uncompressed_bytes`` when it has them)."""

    def __init__(self, f: DataFile, name: str, cap: int) -> None:
        self.f, self.name, self.cap = f, name, cap
        self.digest = hashlib.sha256()
        self.size = self.plain = self.rows = 0
        self.raw: BinaryIO | None = None

    def compressed(self, raw: BinaryIO) -> BinaryIO:
        """The file's bytes (``raw``, read once), hashed and counted as they are read."""
        self.raw = raw
        return cast(BinaryIO, _Reader(raw, self._compressed))

    def decompressed(self, text: BinaryIO) -> BinaryIO:
        """``text`` (the decompressed stream), counted against the manifest's bound."""
        return cast(BinaryIO, _Reader(text, self._plain))

    def _plain(self, block: bytes) -> None:
        self.plain += len(block)
        if self.plain > self.cap:
            raise self._refused(f"decompresses to more than {self.cap:,} bytes")

    def _compressed(self, block: bytes) -> None:
        self.size += len(block)
        if self.size > self.f.bytes:
            raise self._mismatch()
        self.digest.update(block)

    def add_rows(self, n: int) -> None:
        self.rows += n
        if self.f.rows is not None and self.rows > self.f.rows:
            raise self._refused(f"holds more than the {self.f.rows:,} rows its manifest "
                                "declares")

    def finish(self) -> None:
        """At the end of the file: IntegrityError unless every check passed."""
        assert self.raw is not None
        while block := self.raw.read(DRAIN):  # normally none: the zstd reader read them
            self._compressed(block)
        if self.size != self.f.bytes or self.digest.hexdigest() != self.f.sha256:
            raise self._mismatch()
        if self.f.uncompressed_bytes is not None and self.plain != self.f.uncompressed_bytes:
            raise self._refused(f"decompresses to {self.plain:,} bytes, its manifest says "
                                f"{self.f.uncompressed_bytes:,}")
        if self.f.rows is not None and self.rows != self.f.rows:
            raise self._refused(f"holds {self.rows:,} rows, its manifest says {self.f.rows:,}")

    def damaged(self) -> None:
        """After an error while reading: IntegrityError (sha256) when the file is not the
        one its manifest describes (the rest is hashed, not decompressed); else returns,
        and the caller reports its own error."""
        if self.raw is None:
            return
        try:
            while block := self.raw.read(DRAIN):
                self._compressed(block)
        except OSError:
            return
        if self.size != self.f.bytes or self.digest.hexdigest() != self.f.sha256:
            raise self._mismatch()

    def _mismatch(self) -> IntegrityError:
        return IntegrityError(
            f"{self.name} does not match the size and sha256 in its manifest; nothing of the "
            "commit that reads it was applied",
            hint="the file is damaged (or was changed after publication); ask the publisher "
            "to republish it, then run sync again")

    def _refused(self, why: str) -> IntegrityError:
        return IntegrityError(f"{self.name} {why}; nothing was applied from it",
                              hint="the publication is damaged or was not written by topoff; "
                                   "ask the publisher to republish it")
