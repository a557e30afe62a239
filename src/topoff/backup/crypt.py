"""Streams through zstd and age, hashed as the bytes pass; nothing lands whole anywhere.

Writing: the caller writes plain bytes into a zstd stream whose output goes into a pipe;
a thread runs ``pyrage.encrypt_io`` from the pipe into the store's writer, through
:class:`topoff.stores.hashing.HashingWriter`. Reading is the mirror image: the store's
reader, through a sha256, into ``pyrage.decrypt_io`` in a thread, into a pipe that a
zstd reader drains.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import pyrage
import zstandard

from topoff.errors import IntegrityError, StoreError
from topoff.stores.hashing import HashingWriter


class HashingReader:
    """The reading side of :class:`~topoff.stores.hashing.HashingWriter`: counts and hashes
    the encrypted bytes read from the store."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self.sha.hexdigest()

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _Worker(threading.Thread):
    def __init__(self, target: Any) -> None:
        super().__init__(daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as e:
            self.error = e


def _disk(exc: OSError, what: str) -> StoreError:
    return StoreError(f"{what} failed: {exc.strerror or exc}",
                      hint="free space in the store (or its temp directory) and run it again")


@contextlib.contextmanager
def encrypting_writer(dest: BinaryIO, recipients: Sequence[Any], level: int,
                      ) -> Iterator[tuple[BinaryIO, HashingWriter]]:
    """Yield (plain stream, hasher); on a clean exit everything is flushed into ``dest``.

    The hasher (the same :class:`HashingWriter` exports use) sits between age and the
    store, so its size and SHA-256 are those of the stored, encrypted object."""
    r, w = os.pipe()
    reader, writer = os.fdopen(r, "rb"), os.fdopen(w, "wb")
    hashed = HashingWriter(dest)

    def run() -> None:
        try:
            pyrage.encrypt_io(reader, hashed, list(recipients))
        except BaseException:
            reader.close()  # the producer's next write fails (EPIPE) instead of blocking
            raise

    worker = _Worker(run)
    worker.start()
    zw = zstandard.ZstdCompressor(level=level, threads=0).stream_writer(writer, closefd=False)
    ok = False
    try:
        yield zw, hashed  # type: ignore[misc]
        zw.flush(zstandard.FLUSH_FRAME)
        ok = True
    except BrokenPipeError:
        pass  # the encrypting thread stopped: its error is raised below
    finally:
        with contextlib.suppress(OSError):
            writer.close()
        worker.join()
        with contextlib.suppress(OSError):
            reader.close()
        with contextlib.suppress(OSError, ValueError):
            hashed.close()  # not the store's stream: that one is the caller's to finish
    if worker.error is not None:
        err = worker.error
        if isinstance(err, StoreError):
            raise err
        if isinstance(err, OSError):
            raise _disk(err, "writing the backup") from err
        raise StoreError(f"encrypting the backup failed: {err}",
                         hint="check the recipients and the store") from err
    if not ok:
        raise StoreError("the backup stream stopped early", hint="this is a bug in topoff")


@contextlib.contextmanager
def decrypting_reader(src: BinaryIO, identities: Sequence[Any],
                      ) -> Iterator[tuple[BinaryIO, HashingReader]]:
    """Yield (plain stream, hasher over the encrypted bytes read)."""
    hashed = HashingReader(src)
    r, w = os.pipe()
    reader, writer = os.fdopen(r, "rb"), os.fdopen(w, "wb")

    def run() -> None:
        try:
            pyrage.decrypt_io(hashed, writer, list(identities))
            hashed.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    worker = _Worker(run)
    worker.start()
    zr = zstandard.ZstdDecompressor().stream_reader(reader, closefd=False)
    failure: BaseException | None = None
    try:
        yield zr, hashed  # type: ignore[misc]
    except BaseException as e:
        failure = e
    finally:
        reader.close()  # a decrypting thread still writing gets EPIPE and stops
        worker.join()
    if worker.error is not None and not isinstance(worker.error, BrokenPipeError):
        raise decrypt_error(worker.error) from worker.error
    if failure is not None:
        if isinstance(failure, zstandard.ZstdError):
            raise IntegrityError("the backup does not decompress (corrupted object)",
                                 hint="restore another backup (topoff backups list)") from failure
        raise failure


def decrypt_error(err: BaseException) -> Exception:
    if isinstance(err, StoreError | IntegrityError):
        return err
    text = str(err).lower()
    if "no matching keys" in text or "no identity matched" in text:
        return IntegrityError("the backup cannot be decrypted with this identity",
                              hint="pass the age identity whose public key was a recipient "
                              "of this backup (--identity FILE)")
    return IntegrityError(f"the backup cannot be decrypted ({type(err).__name__}): it is "
                          f"corrupted or truncated",
                          hint="restore another backup (topoff backups list)")
