"""Reading a backup: the store's reader, through a sha256, into a decrypting child process
(``age -d``, else pyrage in a Python child; see :mod:`topoff.backup.decrypter`), whose
output a zstd reader drains; nothing lands whole anywhere.

Writing goes through the store layer's :class:`topoff.stores.age.EncryptingStore` (see
:mod:`topoff.backup.pipeline`). Reading stays here: a restore must hash the encrypted bytes
it reads to compare them with the catalog, and ``EncryptingStore.open_read`` yields only
the decrypted ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, cast

import pyrage
import zstandard

from topoff.backup.catalog import Entry
from topoff.backup.decrypter import CHUNK, DecryptProcess, secret_lines
from topoff.backup.prefetch import Prefetch
from topoff.errors import IntegrityError, StoreError


class HashingReader:
    """Counts and hashes the encrypted bytes read from the store (the reading side of
    :class:`topoff.stores.hashing.HashingWriter`). Past ``limit`` bytes (the size the
    catalog declares) it raises instead of handing them on."""

    def __init__(self, src: BinaryIO, limit: int | None = None) -> None:
        self.src = src
        self.sha = hashlib.sha256()
        self.size = 0
        self.limit = limit
        self.too_large = False

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        if self.limit is not None and self.size + len(data) > self.limit:
            self.too_large = True
            raise too_large(self.limit)
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


def too_large(limit: int) -> IntegrityError:
    return IntegrityError(f"the backup object holds more than the {limit} bytes its "
                          "catalog entry declares",
                          hint="the object was changed or replaced; restore another backup")


class PlainLimit:
    """The decompressed stream, raising once it yields more than ``limit`` bytes (what the
    catalog entry declares it decompresses to): a small object that decompresses hugely
    never fills the restore's disk."""

    def __init__(self, src: Any, limit: int, why: str) -> None:
        self.src, self.limit, self.why = src, limit, why
        self.size = 0

    def readinto(self, buf: Any) -> int:
        n = int(self.src.readinto(buf))
        self.size += n
        if self.size > self.limit:
            raise IntegrityError(f"the backup decompresses to more than {self.limit} bytes "
                                 f"({self.why})",
                                 hint="the object was not written by topoff backup or was "
                                 "changed; restore another backup")
        return n


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


@contextlib.contextmanager
def decrypting_reader(src: BinaryIO, identities: Sequence[Any], entry: Entry,
                      ) -> Iterator[tuple[BinaryIO, HashingReader]]:
    """Yield (plain stream, hasher over the encrypted bytes read) of ``entry``'s object.

    Reading stops with an IntegrityError as soon as more encrypted bytes arrive than the
    catalog's ``size``, or more decompressed ones than its ``plain_size`` (when the entry
    predates it, the operator's ``max_plain``; with neither it is refused at once).

    The plain stream (``read``, ``readinto``, ``chunk``) is zstd's reader over the decrypted
    bytes, read ahead by a thread (:mod:`topoff.backup.prefetch`). age
    keys decrypt in a separate process (:mod:`topoff.backup.decrypter`: the ``age``
    program, else a pyrage child), in parallel with the caller; an ssh identity, whose key
    pyrage keeps inside, decrypts in a thread of this process."""
    limit = entry.plain_limit  # before anything is read or started
    hashed = HashingReader(src, entry.size)
    why = "the size its catalog entry declares" if entry.plain_size is not None else \
        "--max-plain-size: its catalog entry declares no plain_size"
    keys = secret_lines(identities)
    if keys is None:
        with _decrypting_thread(hashed, identities, limit, why) as plain:
            yield plain, hashed
        return
    child = DecryptProcess(hashed, keys)
    ahead = Prefetch(PlainLimit(zstd_reader(child.start()), limit, why))
    ok = False
    failure: BaseException | None = None
    try:
        yield cast(BinaryIO, ahead), hashed
        ahead.drain()
        ok = True
    except BaseException as e:
        failure = e
    finally:
        ahead.close()
        child.finish(ok)  # the child ended or killed: the read-ahead thread sees the end
        ahead.join()
    if failure is not None and not isinstance(failure, Exception):
        raise failure  # KeyboardInterrupt (Ctrl-C, SIGTERM): the child is gone already
    if (fed := child.feed_error) is not None:  # reading the store failed
        if isinstance(fed, OSError) and not isinstance(fed, BrokenPipeError):
            raise StoreError(f"reading the backup from the store failed: "
                             f"{fed.strerror or type(fed).__name__}",
                             hint="check the store and run the restore again") from fed
        raise decrypt_error(fed) from fed
    if (err := child.failure()) is not None:
        raise err
    if failure is not None:
        _reraise(failure)
    if child.broken:  # the child ended without reading it all: hash the rest (size check)
        hashed.drain()


def zstd_reader(source: Any) -> BinaryIO:
    """zstd's streaming reader, asking for 1 MiB of compressed input at a time (fewer
    calls back into Python than its default 128 KiB), across frames as ``zstd -d`` does."""
    return zstandard.ZstdDecompressor().stream_reader(
        source, read_size=CHUNK, read_across_frames=True, closefd=False)


def _reraise(failure: BaseException) -> None:
    if isinstance(failure, zstandard.ZstdError):
        raise IntegrityError("the backup does not decompress (corrupted object)",
                             hint="restore another backup (topoff backups list)") from failure
    raise failure


@contextlib.contextmanager
def _decrypting_thread(hashed: HashingReader, identities: Sequence[Any], limit: int,
                       why: str) -> Iterator[BinaryIO]:
    r, w = os.pipe()
    reader, writer = os.fdopen(r, "rb", buffering=0), os.fdopen(w, "wb")

    def run() -> None:
        try:
            pyrage.decrypt_io(hashed, writer, list(identities))
            hashed.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    worker = _Worker(run)
    worker.start()
    failure: BaseException | None = None
    plain = Prefetch(PlainLimit(zstd_reader(reader), limit, why))
    try:
        yield plain  # type: ignore[misc]
        plain.drain()
    except BaseException as e:
        failure = e
    finally:
        plain.close()
        reader.close()  # a decrypting thread still writing gets EPIPE and stops
        worker.join()
        plain.join()
    if hashed.too_large:
        raise too_large(hashed.limit or 0)
    if worker.error is not None and not isinstance(worker.error, BrokenPipeError):
        raise decrypt_error(worker.error) from worker.error
    if failure is not None:
        _reraise(failure)


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
