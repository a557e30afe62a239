"""A writer that hashes and counts what passes through it on its way to another stream.

Exports and backups record the size and SHA-256 of what they store; wrapping the store's
writer (or a compressor in front of it) gets both in the same pass as the write itself.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO


class HashingWriter(io.RawIOBase):
    """Forwards every write to ``inner`` and keeps ``size`` and the SHA-256 of the bytes.

    Closing the writer does not close ``inner`` unless ``close_inner`` is set: the store's
    ``with`` block usually owns the inner stream.
    """

    def __init__(self, inner: BinaryIO, close_inner: bool = False) -> None:
        super().__init__()
        self._inner = inner
        self._close_inner = close_inner
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = 0
        # the inner stream may take fewer bytes than offered (a raw stream): pass the rest too
        while written < len(view):
            n = self._inner.write(view[written:])
            written += len(view) - written if n is None else n
        self._hash.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        if not self.closed:
            self._inner.flush()

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()  # flushes the inner stream first
            finally:
                if self._close_inner:
                    self._inner.close()

    def hexdigest(self) -> str:
        """SHA-256 of everything written so far, as 64 lowercase hex digits."""
        return self._hash.hexdigest()
