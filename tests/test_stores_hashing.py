"""The hashing writer: the size and SHA-256 of what passes through, in the same pass."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import zstandard

from topoff.stores.hashing import HashingWriter
from topoff.stores.local import LocalStore


class _Trickle(io.RawIOBase):
    """A raw stream that takes at most 7 bytes per write (short writes must be retried)."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        chunk = bytes(memoryview(b)[:7])
        self.data += chunk
        return len(chunk)


def test_counts_and_hashes_what_reaches_the_store(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3_000_001)
    store = LocalStore(tmp_path)
    with store.write("a.bin") as f:
        hashing = HashingWriter(f)
        view = memoryview(data)
        for start in range(0, len(data), 65_537):
            hashing.write(view[start : start + 65_537])
        hashing.write(b"")
    assert hashing.size == len(data) == (tmp_path / "a.bin").stat().st_size
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashing.tell() == len(data)


def test_under_a_compressor_hashes_the_stored_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.write("t.csv.zst") as f:
        hashing = HashingWriter(f)
        with zstandard.ZstdCompressor().stream_writer(hashing, closefd=False) as z:
            z.write(b"id,name\n" * 10_000)
    stored = (tmp_path / "t.csv.zst").read_bytes()
    assert hashing.hexdigest() == hashlib.sha256(stored).hexdigest()
    assert hashing.size == len(stored)


def test_short_writes_of_a_raw_stream_are_completed() -> None:
    inner = _Trickle()
    hashing = HashingWriter(inner)  # type: ignore[arg-type]
    assert hashing.write(b"0123456789abcdefghij") == 20
    assert bytes(inner.data) == b"0123456789abcdefghij"
    assert hashing.size == 20


def test_close_leaves_the_inner_stream_open_unless_asked() -> None:
    inner = io.BytesIO()
    HashingWriter(inner).close()
    assert not inner.closed
    HashingWriter(inner, close_inner=True).close()
    assert inner.closed


def test_empty() -> None:
    hashing = HashingWriter(io.BytesIO())
    assert hashing.size == 0
    assert hashing.hexdigest() == hashlib.sha256(b"").hexdigest()
