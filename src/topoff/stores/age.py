"""An encrypting store: wraps another store and keeps every object encrypted with age.

Like Litestream's encrypting client, the wrapper sits between topoff and a plain store:
``write()`` encrypts to one or more age recipients (``age1...`` public keys, or ssh-ed25519
/ ssh-rsa public keys) and ``open_read()`` decrypts with identities (the key file
``age-keygen`` writes). Objects are standard age files: ``age -d -i key.txt`` decrypts them,
and files encrypted by the ``age`` program are read back.

Streaming with constant memory: pyrage pulls from a reader and pushes to a writer, so it
runs in a thread joined to the caller's stream by a bounded queue (a few 64 KiB chunks).

Names are not encrypted (listings show them); sizes in listings are those of the stored,
encrypted objects (a little larger than the plain data).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

import pyrage

from topoff.errors import IntegrityError, StoreError, TopoffError
from topoff.stores.base import FileMissing, ObjectOptions, Store, StoreWrapper, check_name
from topoff.stores.hashing import HashingWriter

_CHUNK = 64 * 1024
_DEPTH = 8  # chunks waiting in the queue: memory stays about 8 x 64 KiB per stream
_EOF = b""


class _Aborted(Exception):
    """The other side of the pipe gave up."""


class _Pipe:
    """A bounded, thread-safe byte pipe: ``write`` blocks when it is full, ``read`` when
    it is empty; either side can abort, and the other side then raises :class:`_Aborted`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self._pending = b""
        self._offset = 0
        self._aborted = threading.Event()
        self._ended = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _CHUNK):
            self._put(bytes(view[start : start + _CHUNK]))
        return len(view)

    def flush(self) -> None:
        pass

    def close_writing(self) -> None:
        self._put(_EOF)

    def _put(self, item: bytes) -> None:
        while True:
            if self._aborted.is_set():
                raise _Aborted
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1) -> bytes:
        # pyrage reads 8 KiB at a time: read on from an offset, never copy the chunk's rest
        while self._offset >= len(self._pending) and not self._ended:
            if self._aborted.is_set():
                raise _Aborted
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item == _EOF:
                self._ended = True
            self._pending, self._offset = item or b"", 0
        start = self._offset
        end = len(self._pending) if n is None or n < 0 else start + n
        data = self._pending[start:end]
        self._offset = start + len(data)
        return data

    def abort(self) -> None:
        self._aborted.set()


def replace_type(options: ObjectOptions | None) -> ObjectOptions:
    if options is None:
        return ObjectOptions(content_type="application/octet-stream")
    return dataclasses.replace(options, content_type="application/octet-stream")


#: the largest identity file read (age-keygen writes about 200 bytes; an ssh key a few KiB)
MAX_IDENTITY_FILE = 1024 * 1024


def load_identities(path: Path | str, error: type[TopoffError] = StoreError) -> list[Any]:
    """The identities in an age key file (``age-keygen`` output; ``#`` lines are comments)
    or an unencrypted ssh private key. The key itself never appears in an error; ``error``
    is the kind raised (a store's own key: StoreError; a key the user passed: ConfigError)."""
    try:
        with open(path, "rb") as f:  # a key file is small: /dev/zero is no key file
            raw = f.read(MAX_IDENTITY_FILE + 1)
        if len(raw) > MAX_IDENTITY_FILE:
            raise error(f"the age identity file {path} is larger than "
                        f"{MAX_IDENTITY_FILE // 1024} KiB",
                        hint="give the file age-keygen wrote (AGE-SECRET-KEY-1...)")
        text = raw.decode()
    except OSError as exc:
        raise error(f"cannot read the age identity file {path}: {exc.strerror or exc}",
                    hint="check the path and its permissions (the file age-keygen wrote, "
                    "AGE-SECRET-KEY-1...)") from None
    except UnicodeDecodeError:
        raise error(f"the age identity file {path} is not text",
                    hint="give the file age-keygen wrote (AGE-SECRET-KEY-1...)") from None
    if "PRIVATE KEY-----" in text:
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except Exception:
            raise error(f"{path} is not a usable ssh private key",
                        hint="use an ssh key without a passphrase, or an age key") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise error(f"line {number} of the age identity file {path} is not an age "
                        f"secret key", hint="each line must be AGE-SECRET-KEY-1... or a # "
                        "comment (use a file written by age-keygen)") from None
    if not found:
        raise error(f"no age identity in {path}",
                    hint="create one with: age-keygen -o key.txt")
    return found


def parse_recipients(recipients: Sequence[str],
                     error: type[TopoffError] = StoreError) -> list[Any]:
    """age (``age1...``) and ssh (``ssh-ed25519 ...``, ``ssh-rsa ...``) public keys; a
    secret key given by mistake is refused without being shown."""
    parsed = []
    for text in recipients:
        text = text.strip()
        if text.startswith("AGE-SECRET-KEY-") or "PRIVATE KEY-----" in text:
            raise error("a secret key was given as a recipient",
                        hint="give the public key (age1..., printed by age-keygen -y FILE); "
                        "keep the secret key for restores only")
        try:
            if text.startswith("ssh-"):
                parsed.append(pyrage.ssh.Recipient.from_str(text))
            else:
                parsed.append(pyrage.x25519.Recipient.from_str(text))
        except Exception:
            shown = text[:12] + "..." if len(text) > 12 else text
            raise error(f"invalid age recipient {shown!r}",
                        hint="give public keys: age1... (age-keygen -y key.txt) or "
                        "ssh-ed25519 ...") from None
    return parsed


class _Recording:
    """The stored stream as pyrage writes to it: the first error it raises is kept, so the
    message names it (a full disk) instead of pyrage's own EncryptError that wraps it."""

    def __init__(self, out: Any, failure: list[BaseException]) -> None:
        self.out = out
        self.failure = failure

    def write(self, data: Any) -> int:
        try:
            return int(self.out.write(data))
        except BaseException as exc:
            self.failure.append(exc)
            raise

    def flush(self) -> None:
        self.out.flush()


class EncryptingStore(StoreWrapper):
    """``inner`` with every object encrypted on write and decrypted on read."""

    def __init__(self, inner: Store, recipients: Sequence[str] = (),
                 identities: Sequence[Any] = ()) -> None:
        super().__init__(inner)
        self._recipients = parse_recipients(recipients)
        self._identities = list(identities)

    def close(self) -> None:
        self.inner.close()

    @contextlib.contextmanager
    def write(self, name: str, replace: bool = False,
              options: ObjectOptions | None = None) -> Iterator[BinaryIO]:
        if not self._recipients:
            raise StoreError(f"no age recipients to encrypt {name} for {self.url}",
                             hint="give at least one public key (age1...)")
        check_name(name)
        # what is stored is ciphertext, whatever the plain data's type; a lock passes on
        options = replace_type(options)
        with self.inner.write(name, replace=replace, options=options) as out:
            pipe = _Pipe()
            failure: list[BaseException] = []
            stored = HashingWriter(out)
            writer = _Writer(pipe, stored)

            def encrypt() -> None:
                try:
                    pyrage.encrypt_io(pipe, _Recording(stored, failure), self._recipients)
                except BaseException as exc:
                    failure.append(exc)
                    pipe.abort()

            thread = threading.Thread(target=encrypt, name="age-encrypt", daemon=True)
            thread.start()
            try:
                yield cast(BinaryIO, writer)
                pipe.close_writing()
            except _Aborted:
                thread.join()
                raise self._encrypt_failed(name, failure) from None
            except BaseException:
                pipe.abort()
                thread.join()
                raise
            thread.join()
            if failure:
                raise self._encrypt_failed(name, failure)

    def swap_bytes(self, name: str, expected: bytes, data: bytes | None) -> bool:
        """Compare the plain bytes, then swap the stored ciphertext with the inner store's
        own compare and swap (as atomic as the inner store's)."""
        try:
            stored = self.inner.read_bytes(name)
        except FileMissing:
            return False
        if not self._identities:
            raise StoreError(f"no age identity to decrypt {name} from {self.url}",
                             hint="give the identity file that matches the recipients")
        reader = _DecryptingReader(self, name, cast(BinaryIO, io.BytesIO(stored)))
        with io.BufferedReader(reader.start(), _CHUNK) as f:  # decrypts and authenticates
            if f.read() != expected:
                return False
        new = None if data is None else pyrage.encrypt(data, self._recipients)
        return self.inner.swap_bytes(name, stored, new)

    def _encrypt_failed(self, name: str, failure: list[BaseException]) -> StoreError:
        exc = failure[0] if failure else None
        if isinstance(exc, StoreError):
            return exc
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else type(exc).__name__
        return StoreError(f"encrypting {name} for {self.url} failed: {why}",
                          hint="check the store (disk space, network) and run again")

    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        if not self._identities:
            raise StoreError(f"no age identity to decrypt {name} from {self.url}",
                             hint="give the identity file (age-keygen output) that matches "
                             "the recipients the backups were encrypted to")
        source = self.inner.open_read(name)
        reader = _DecryptingReader(self, name, source)
        stream = io.BufferedReader(reader.start(), _CHUNK)
        remaining = offset
        while remaining > 0:  # age streams are read from the start; skip to the offset
            skipped = len(stream.read(min(remaining, 1 << 20)))
            if not skipped:
                break
            remaining -= skipped
        return cast(BinaryIO, stream)


class _Writer(io.RawIOBase):
    """What ``EncryptingStore.write`` yields. After the ``with`` block, ``stored`` holds the
    size and SHA-256 of the encrypted object as stored (``stored.size``,
    ``stored.hexdigest()``), for callers that record them."""

    def __init__(self, pipe: _Pipe, stored: HashingWriter) -> None:
        super().__init__()
        self._pipe = pipe
        self.stored = stored

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._pipe.write(data)


class _DecryptingReader(io.RawIOBase):
    """Plain bytes of an age object, decrypted by pyrage in a thread."""

    def __init__(self, store: EncryptingStore, name: str, source: BinaryIO) -> None:
        super().__init__()
        self._store = store
        self._name = name
        self._source = source
        self._pipe = _Pipe()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._decrypt, name="age-decrypt", daemon=True)

    def _decrypt(self) -> None:
        try:
            pyrage.decrypt_io(self._source, self._pipe, self._store._identities)
            self._pipe.close_writing()
        except BaseException as exc:
            self._failure.append(exc)
            self._pipe.abort()

    def start(self) -> _DecryptingReader:
        self._thread.start()
        self._first = self._read(_CHUNK)  # a wrong key or a broken header fails here
        return self

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._first:
            data, self._first = self._first[: len(buffer)], self._first[len(buffer) :]
        else:
            data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _read(self, n: int) -> bytes:
        try:
            return self._pipe.read(n)
        except _Aborted:
            self._thread.join()
            self.close()
            raise self._failed() from None

    def _failed(self) -> StoreError | IntegrityError:
        exc = self._failure[0] if self._failure else None
        where = f"{self._store.url}/{self._name}"
        if isinstance(exc, StoreError):
            return exc
        text = str(exc)
        if "No matching keys" in text:
            return StoreError(f"cannot decrypt {where}: the identity does not match any "
                              "recipient", hint="use the age identity (key file) whose public "
                              "key the object was encrypted to")
        if "Header is invalid" in text or "header" in text.lower():
            return IntegrityError(f"{where} is not an age-encrypted file (bad header)",
                                  hint="was it written without encryption, or damaged?")
        return IntegrityError(f"{where} is truncated or damaged: decryption failed",
                              hint="the stored object does not authenticate; restore it from "
                              "another copy")

    def close(self) -> None:
        if not self.closed:
            self._pipe.abort()
            with contextlib.suppress(Exception):
                self._source.close()
        super().close()
