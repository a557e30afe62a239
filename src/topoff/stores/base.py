"""The store interface: list, read, write and delete of immutable named files.

All of topoff's logic (publication order, manifests, retention, downloads that resume)
lives above this interface; a store only moves bytes. Names are relative, ``/``-separated
keys built by :mod:`topoff.dataset.layout` (the only module that builds them).

Guarantees every store gives:

* :meth:`Store.write` is atomic: the file becomes visible under its name only when the
  ``with`` block ends without an exception (temp name then rename on disk, a completed
  multipart upload on S3). On an exception nothing is left under the name.
* A published name is never overwritten: :meth:`Store.write` creates a new name and raises
  :class:`FileExists` (leaving the existing file as it was) when the name is taken, even
  when two writers race (a hard link on disk, ``If-None-Match: *`` on S3). Only the few
  files that are meant to change (``index.json``, ``index.html``, the lock) are written
  with ``replace=True``.
* :meth:`Store.open_read` streams; nothing reads a whole file into memory except
  :meth:`Store.read_bytes`, which is meant for manifests and indexes.
* Missing files raise :class:`FileMissing`; every other failure raises
  :class:`~topoff.errors.StoreError` with a hint.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, cast

from topoff.errors import StoreError


class FileMissing(StoreError):
    """The named file does not exist in the store."""


class FileExists(StoreError):
    """A new file was to be created under a name that another file already has."""


@dataclass(frozen=True)
class FileInfo:
    name: str
    size: int
    #: last change as seconds since the epoch, when the store tells (listings)
    modified: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ObjectOptions:
    """Per-object settings a writer asks for, carried through the store interface as data.

    A store applies what it supports and refuses what it cannot honour with a
    :class:`~topoff.errors.StoreError` (a lock asked of a store without object lock must not
    be dropped silently).
    """

    #: keep the object undeletable for this many days (S3 Object Lock retention)
    lock_days: int | None = None
    #: "COMPLIANCE" (nobody can shorten it) or "GOVERNANCE" (privileged users can)
    lock_mode: str = "COMPLIANCE"
    #: Content-Type where the store records one
    content_type: str | None = None


@dataclass(frozen=True)
class StoreOptions:
    """Settings a store may need; each store reads only its own."""

    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    #: "path" (https://host/bucket/key), "virtual" (https://bucket.host/key) or "auto";
    #: None: path with a custom endpoint, else botocore's choice
    s3_addressing_style: str | None = None
    http_timeout: float = 30.0  # seconds for a connection, and for each read
    #: a download slower than this on average (bytes a second) over any window of
    #: http_rate_window seconds is given up on (StoreError); 0 turns the check off
    http_min_rate: int = 1024
    http_rate_window: float = 60.0
    #: seconds from sending a request to having its answer's status line and headers,
    #: every redirect on the way included; 0: no bound beyond http_timeout for each read
    http_answer_timeout: float = 60.0
    retries: int = 5
    backoff: float = 0.5  # seconds before the first retry; doubles on each further one


class Retained(StoreError):
    """The object is under an Object Lock retention (or legal hold) and cannot be deleted yet.

    Not a failure for a caller pruning old backups: it reports "retained until DATE" and
    moves on. ``until`` is None for a legal hold (no date).
    """

    def __init__(self, message: str, until: datetime | None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.until = until


@dataclass(frozen=True)
class ObjectVersion:
    """One version of an object in a versioned bucket (or a delete marker)."""

    name: str
    version_id: str
    size: int
    latest: bool
    delete_marker: bool = False
    modified: float | None = field(default=None, compare=False)


def refuse_lock(store: Store, options: ObjectOptions | None, why: str) -> None:
    """Raise a StoreError when ``options`` ask for a lock that ``store`` cannot honour."""
    if options is not None and options.lock_days is not None:
        raise StoreError(
            f"{why}: cannot keep objects in {store.url} for {options.lock_days} days",
            hint="store locked backups in an S3 bucket created with Object Lock enabled, "
            "or drop the lock setting",
        )


def check_name(name: str) -> str:
    """Refuse names that could escape the store's root or are not plain relative keys."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError(f"invalid file name in store: {name!r}", hint="this is a bug in topoff")
    return name


class Store(ABC):
    """A place that holds datasets: a local directory, an HTTP site, an S3 prefix."""

    #: how the store is shown to people (never includes credentials)
    url: str
    #: stores that can only be read (HTTP) say so, and refuse write/delete with a hint
    read_only: bool = False

    @abstractmethod
    def list(self, prefix: str = "") -> list[FileInfo]:
        """Every file whose name starts with ``prefix``, sorted by name."""

    @abstractmethod
    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        """A stream of the file's bytes from ``offset`` on; the caller closes it."""

    @abstractmethod
    def write(self, name: str, replace: bool = False,
              options: ObjectOptions | None = None,
              ) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writable stream; the file appears under ``name`` only if the block succeeds.

        Without ``replace`` an existing file is never overwritten: :class:`FileExists`.
        ``options`` carries per-object settings (see :class:`ObjectOptions`).
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the file; removing a missing file is not an error."""

    def stat(self, name: str) -> FileInfo | None:
        """Size of one file, or None when it does not exist."""
        for info in self.list(name):
            if info.name == name:
                return info
        return None

    def read_bytes(self, name: str) -> bytes:
        """The whole file: only for small files such as manifests and the index."""
        with self.open_read(name) as f:
            return f.read()

    def write_bytes(self, name: str, data: bytes, replace: bool = False) -> None:
        with self.write(name, replace=True) if replace else self.write(name) as f:
            f.write(data)

    def purge(self, name: str) -> None:
        """Remove the file and every older version the store keeps of it (S3 versioned
        buckets); :class:`Retained` when a lock keeps a version. Default: :meth:`delete`."""
        self.delete(name)

    def swap_bytes(self, name: str, expected: bytes, data: bytes | None) -> bool:
        """Compare and swap: if the file holds exactly ``expected``, replace it by ``data``
        (or remove it when ``data`` is None) and return True; otherwise change nothing and
        return False. Two writers never both succeed from the same ``expected``."""
        raise read_only_error(self)

    def list_all(self, prefix: str = "") -> builtins.list[FileInfo]:
        """Like :meth:`list`, with files being written (or left by a killed writer) too."""
        return self.list(prefix)

    def scan(self, prefix: str = "") -> Iterator[FileInfo]:
        """The files of :meth:`list` in no set order, read as they are consumed where the
        store can (S3's pages, a directory's entries): a caller that stops early never
        holds the whole listing. Default: :meth:`list`."""
        return iter(self.list(prefix))

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release connections; the store is not used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class StoreWrapper(Store):
    """A store seen through another: every call goes to ``inner`` unless a subclass
    changes it (the store seen through a held dataset lock, the encrypting store)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.read_only = inner.read_only

    def list(self, prefix: str = "") -> list[FileInfo]:
        return self.inner.list(prefix)

    def list_all(self, prefix: str = "") -> builtins.list[FileInfo]:
        return self.inner.list_all(prefix)

    def scan(self, prefix: str = "") -> Iterator[FileInfo]:
        return self.inner.scan(prefix)

    def stat(self, name: str) -> FileInfo | None:
        return self.inner.stat(name)

    def open_read(self, name: str, offset: int = 0) -> BinaryIO:
        return self.inner.open_read(name, offset)

    def write(self, name: str, replace: bool = False,
              options: ObjectOptions | None = None,
              ) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.inner.write(name, replace=replace, options=options)

    def swap_bytes(self, name: str, expected: bytes, data: bytes | None) -> bool:
        return self.inner.swap_bytes(name, expected, data)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def purge(self, name: str) -> None:
        self.inner.purge(name)


def read_only_error(store: Store) -> StoreError:
    return StoreError(
        f"{store.url} is read-only (HTTP stores can be read, not written)",
        hint="publish to a local directory that your web server serves, or to s3://bucket/prefix",
    )


class BodyEndedEarly(Exception):
    """The connection ended before the length the server announced (treated as a broken link)."""


class ResumingReader(io.RawIOBase):
    """A remote file read as a stream that reopens itself where it stopped when the link breaks.

    Shared by the HTTP and S3 stores. A subclass implements :meth:`_open` (start a response
    at a byte position, return an object with ``read(n)`` and ``close()``, and set ``_end``
    when the server tells the length), :meth:`_is_transient` (which errors are worth a
    reconnect) and :meth:`_failed` (turn the final error into a StoreError with a hint).
    Every read that makes progress resets the retry count, so a long download survives
    any number of separate outages, each shorter than the retry budget.
    """

    def __init__(self, offset: int, options: StoreOptions) -> None:
        super().__init__()
        self._pos = offset
        self._end: int | None = None
        self._body: Any = None
        self._options = options

    def _open(self, pos: int) -> Any:
        raise NotImplementedError

    def _is_transient(self, exc: Exception) -> bool:
        return False

    def _failed(self, exc: Exception) -> StoreError:
        return StoreError(f"reading failed: {type(exc).__name__}", hint="check the network")

    def start(self) -> BinaryIO:
        """Open now (so a missing file fails here, not on the first read); wrap in a buffer."""
        self._read(0)
        return cast(BinaryIO, io.BufferedReader(self, buffer_size=256 * 1024))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self._read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._drop()
        super().close()

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()

    def _read(self, n: int) -> bytes:
        failures = 0
        while True:
            try:
                if self._body is None:
                    self._body = self._open(self._pos)
                if n == 0:
                    return b""
                data = self._body.read(n)
                if not data and self._end is not None and self._pos < self._end:
                    raise BodyEndedEarly(f"connection closed at byte {self._pos} of {self._end}")
                self._pos += len(data)
                return data
            except StoreError:
                self._drop()
                raise
            except Exception as exc:
                self._drop()
                transient = isinstance(exc, BodyEndedEarly) or self._is_transient(exc)
                if not transient or failures >= self._options.retries:
                    raise self._failed(exc) from exc
                # Exponential backoff: the server or the network may need a moment to recover.
                time.sleep(self._options.backoff * 2**failures)
                failures += 1
