"""One writer per dataset: a lock object in the store, with an owner and an expiry.

``lock.json`` at the dataset root is created only if no such object exists (an exclusive
create: a hard link on disk, ``If-None-Match: *`` on S3), so of two exports started at the
same moment exactly one gets it; the other waits (``--wait``) or stops with a
:class:`DatasetLocked` error naming the holder, before it writes anything.

The holder renews the expiry while it runs (every ``ttl / 5``), never once it released
the lock or dropped it unreleased; a renewal that fails warns and is tried again. A lock
whose expiry has passed (its holder was killed or its host stopped) may be taken over, by
a compare and swap, so two runs never both take over the same stale lock; on the same
host a lock whose process is gone is stale at once. Every write of ``index.json`` checks
first that this run still holds the lock, so a run that stalled past its expiry and lost
the lock publishes nothing. Clocks of hosts that share a store are assumed to agree
within a fraction of ``ttl``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from topoff.dataset import layout
from topoff.errors import StoreError
from topoff.stores.base import FileExists, FileMissing, ObjectOptions, Store, StoreWrapper

log = logging.getLogger("topoff")

#: a lock not renewed for this long is stale
DEFAULT_TTL = 300.0
#: how often a waiting run looks at the lock again
POLL = 1.0
#: the tokens of the locks this process holds (acquired, not released nor dropped): a
#: lock.json of this process's with another token is one a run of it could not release
#: (the store unreachable as it ended), held by no one
_HELD: set[str] = set()
_HELD_MUTEX = threading.Lock()


class DatasetLocked(StoreError):
    """Another export (or prune) holds the dataset's lock."""


@dataclass(frozen=True)
class Holder:
    """What a lock object says about its owner (read from the store: untrusted)."""

    host: str
    pid: int
    started_at: str
    expires_at: datetime
    token: str

    @classmethod
    def parse(cls, raw: bytes) -> Holder | None:
        try:
            d = json.loads(raw)
            expires = datetime.fromisoformat(str(d["expires_at"]))
            if expires.tzinfo is None:
                return None
            return cls(str(d["host"])[:200], int(d["pid"]), str(d["started_at"])[:40],
                       expires, str(d["token"])[:100])
        except (ValueError, KeyError, TypeError, OverflowError):
            return None

    def stale(self, now: datetime) -> bool:
        if now >= self.expires_at or self.left_here():
            return True
        if self.host == socket.gethostname() and self.pid > 0:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True  # its process is gone (a pid reused since only makes us wait)
            except OSError:
                pass
        return False

    def left_here(self) -> bool:
        """Whether it is a lock of this process that no run of it holds any more."""
        if self.host != socket.gethostname() or self.pid != os.getpid():
            return False
        with _HELD_MUTEX:
            return self.token not in _HELD

    def gone(self) -> bool:
        """Whether its run is known to be over (on this host, no such pid, or a lock this
        process left)."""
        if self.left_here():
            return True
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass
        return False

    def describe(self) -> str:
        return (f"pid {self.pid} on {self.host!r} since {self.started_at[:19]} "
                f"(expires {self.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)")


class StoreLock:
    """The dataset lock of one run; see the module docstring."""

    def __init__(self, store: Store, dataset: str, ttl: float = DEFAULT_TTL) -> None:
        self.store = store
        self.dataset = dataset
        self.ttl = ttl
        self.token = secrets.token_hex(16)
        self.started_at = datetime.now(UTC).isoformat()
        self.raw: bytes | None = None
        self.lost: str | None = None
        #: taken over from a holder whose process is gone: the unlisted files of the
        #: dataset are that run's leftovers (cleanup.remove_dead_leftovers)
        self.after_dead = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        """Acquired and not released yet (it may have been lost since: see check)."""
        return self.raw is not None

    def _body(self) -> bytes:
        expires = datetime.now(UTC) + timedelta(seconds=self.ttl)
        return (json.dumps({"dataset": self.dataset, "host": socket.gethostname(),
                            "pid": os.getpid(), "started_at": self.started_at,
                            "expires_at": expires.isoformat(), "token": self.token},
                           indent=2) + "\n").encode()

    def acquire(self, wait: bool = False, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            body = self._body()
            try:
                self.store.write_bytes(layout.LOCK, body)
                self.raw = body
                break
            except FileExists:
                pass
            try:
                current = self.store.read_bytes(layout.LOCK)
            except FileMissing:
                continue  # released meanwhile: try again at once
            holder = Holder.parse(current)
            if holder is None:
                raise DatasetLocked(
                    f"{self.store.url}/{layout.LOCK} exists but cannot be read",
                    hint=f"if no export or prune is running on this dataset, remove "
                    f"{layout.LOCK} and run again")
            if holder.stale(datetime.now(UTC)):
                if self.store.swap_bytes(layout.LOCK, current, body):
                    log.warning("took over a stale lock of %s", holder.describe())
                    self.raw = body
                    self.after_dead = holder.gone()
                    break
                continue
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise DatasetLocked(
                    f"{self.dataset} in {self.store.url} is locked by another export: "
                    f"{holder.describe()}",
                    hint="let it finish, or run with --wait; a lock whose holder died "
                    "expires by itself")
            log.info("waiting for the lock held by %s", holder.describe())
            time.sleep(POLL)
        with _HELD_MUTEX:
            _HELD.add(self.token)
        weakref.finalize(self, _forget, self.token)  # dropped without a release
        # the thread holds the lock weakly: one dropped without a release (no one holds
        # it any more) is not renewed for as long as the process lives
        self._thread = threading.Thread(target=_renew_loop,
                                        args=(weakref.ref(self), self._stop, self.ttl / 5),
                                        name="topoff-lock", daemon=True)
        self._thread.start()

    def _renew(self) -> bool:
        """Renew the expiry once; False once the lock is released or lost."""
        with self._mutex:
            if self.raw is None or self.lost or self._stop.is_set():
                return False
            body = self._body()
            try:
                if self.store.swap_bytes(layout.LOCK, self.raw, body):
                    self.raw = body
                else:
                    self.lost = "another run took it over"
                    log.error("lost the lock on %s: %s", self.store.url, self.lost)
                    return False
            except StoreError as exc:  # try again at the next beat; check() tells
                log.warning("could not renew the lock: %s", exc.message)
            return True

    def check(self) -> None:
        """Raise unless this run still holds the lock (called before writing the index)."""
        with self._mutex:
            if self.raw is None:
                raise StoreError("the dataset lock is not held", hint="this is a bug in topoff")
            try:
                current = self.store.read_bytes(layout.LOCK)
            except FileMissing:
                current = None
            mine = Holder.parse(self.raw)
            if self.lost is None and current != self.raw:
                self.lost = "its lock object was removed or replaced"
            if self.lost is None and (mine is None or datetime.now(UTC) >= mine.expires_at):
                self.lost = "it expired before it could be renewed"
            if self.lost is not None:
                raise DatasetLocked(
                    f"this run no longer holds the lock on {self.store.url} ({self.lost}); "
                    f"nothing was published",
                    hint="another export may have run meanwhile; run this one again")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _forget(self.token)
        with self._mutex:
            raw, self.raw = self.raw, None
            if raw is not None and not self.lost:
                with contextlib.suppress(StoreError):
                    self.store.swap_bytes(layout.LOCK, raw, None)


def _forget(token: str) -> None:
    with _HELD_MUTEX:
        _HELD.discard(token)


def _renew_loop(ref: weakref.ref[StoreLock], stop: threading.Event, beat: float) -> None:
    while not stop.wait(beat):
        lock = ref()
        if lock is None or not lock._renew():
            return
        del lock  # not kept between beats


class LockedStore(StoreWrapper):
    """A store seen through a held lock: the index is written only while the lock is held."""

    def __init__(self, store: Store, lock: StoreLock) -> None:
        super().__init__(store)
        self.lock = lock

    def write(self, name: str, replace: bool = False, options: ObjectOptions | None = None,
              ) -> contextlib.AbstractContextManager[BinaryIO]:
        if name == layout.INDEX:
            self.lock.check()
        return super().write(name, replace, options)

    def __getattr__(self, name: str) -> Any:  # store-specific extras (S3 uploads, root)
        return getattr(self.inner, name)


@contextlib.contextmanager
def dataset_lock(store: Store, dataset: str, wait: bool = False,
                 ttl: float = DEFAULT_TTL) -> Iterator[Store]:
    """Hold the dataset's lock for the block; yields the store to publish through.

    A store this yielded is one whose lock the caller holds: given it again while its
    block runs, it is yielded as it is; after its block ended, its lock is taken again.
    (A lock is of the store's location, where lock.json is: the index there names the
    dataset, and an export of another dataset is refused when it reads it.)"""
    if isinstance(store, LockedStore):
        if store.lock.held:  # already held by this run
            yield store
            return
        store = store.inner  # released: no longer held by anyone through it
    lock = StoreLock(store, dataset, ttl)
    lock.acquire(wait)
    try:
        yield LockedStore(store, lock)
    finally:
        lock.release()
