"""Files of a publication on local disk, each checked against its manifest before use.

A local store is read in place (hashed first); HTTP and S3 files are downloaded into a
cache named by their sha256, so a download interrupted by a kill resumes where it stopped
and nothing is fetched twice. A file whose size or sha256 differs from the manifest is
refused (and dropped from the cache): nothing is applied from it.

The cache (by default the user's) is shared by every sync running at once, in other
processes and threads (two replicas of one dataset): a cached file is downloaded, checked
and removed by one of them at a time (a lock file beside it), and each sync that uses it
holds a shared lock on it until it is released, so that it is removed only when no other
sync still needs it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from topoff.dataset import checks, layout
from topoff.dataset.index import Index, read_index
from topoff.dataset.manifest import DataFile
from topoff.errors import IntegrityError, TargetError, TopoffError
from topoff.stores.base import FileMissing, Store, check_name
from topoff.stores.download import BLOCK, disk_error, fetch_to_file
from topoff.stores.local import LocalStore
from topoff.sync.scan import scan

#: characters DuckDB's read_csv treats as a glob pattern in a file name
GLOB_CHARACTERS = frozenset("*?[]{}")

Progress = Callable[[str, int], Callable[[int], None] | None]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "topoff" / "downloads"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _matches(path: Path, f: DataFile) -> bool:
    return path.stat().st_size == f.bytes and _sha256(path) == f.sha256


class MissingFile(IntegrityError):
    """A file the dataset lists (a manifest, a data file) is not in the store."""


@contextlib.contextmanager
def removed_meanwhile(store: Store, index: Index, origin: str) -> Iterator[None]:
    """A file of the dataset found missing while the block reads it, from a publication
    that the store's index no longer lists, was removed by the producer's retention
    (``topoff prune``) since this sync read ``index``: a TargetError says so, where the
    file alone would call the dataset damaged. A file missing from a publication still
    listed (a manifest the index lists, a data file a manifest lists) is a damaged
    dataset, an IntegrityError, whichever store serves it."""
    try:
        yield
    except (FileMissing, MissingFile) as exc:
        try:
            now = read_index(store)
        except TopoffError:
            now = None
        gone = [p.id for p in index.publications if now is not None and now.get(p.id) is None]
        if not gone:
            if isinstance(exc, MissingFile):
                raise
            raise MissingFile(f"{exc.message}, though the dataset lists it",
                              hint="republish the dataset") from None
        raise TargetError(f"{', '.join(gone)} {'was' if len(gone) == 1 else 'were'} removed "
                          f"from {origin} while this sync read it (the publisher's "
                          "retention: topoff prune)",
                          hint="run the sync again: it goes on from what is published now, "
                          "or says how to rebuild the replica; what this run committed is "
                          "kept") from None


class Fetcher:
    def __init__(self, store: Store, cache_dir: Path | None = None,
                 progress: Progress | None = None) -> None:
        self.store = store
        self.cache_dir = cache_dir or default_cache_dir()
        self.progress = progress
        self.downloaded_bytes = 0
        #: cached files in use by this sync: a descriptor holding a shared lock on each,
        #: and how many of its fetches have not been released yet
        self._held: dict[Path, list[int]] = {}
        self._lock = threading.Lock()  # an Iceberg sync fetches from a reading thread too

    def fetch(self, pub_id: str, f: DataFile) -> Path:
        """The verified local path of a publication's data file: its size and sha256 match
        the manifest, and it decompresses to the rows (and at most the bytes) declared."""
        path = self._fetch(pub_id, f)
        try:
            scan(path, f, layout.in_publication(pub_id, f.path))
        except IntegrityError:
            self.release(path)
            raise
        return path

    def locate(self, pub_id: str, f: DataFile) -> Path:
        """The local path of a data file for a reader that checks its size, sha256, rows and
        decompressed bytes itself while it reads it (one pass): a local store's file is not
        hashed nor scanned here; a download is checked as it arrives, as by :meth:`fetch`."""
        if not isinstance(self.store, LocalStore):
            return self._fetch(pub_id, f)
        checks.publication_id(pub_id, "publication")
        checks.sha256(f.sha256, f"{f.path} sha256")
        return _in_place(self.store, check_name(layout.in_publication(pub_id, f.path)))

    def _fetch(self, pub_id: str, f: DataFile) -> Path:
        checks.publication_id(pub_id, "publication")
        checks.sha256(f.sha256, f"{f.path} sha256")  # it names the cached copy
        name = check_name(layout.in_publication(pub_id, f.path))
        cached = self.cache_dir / f"{f.sha256}.csv.zst"
        if isinstance(self.store, LocalStore):
            path = _in_place(self.store, name)
            if not _matches_in(self.store, name, f):
                raise _mismatch(name, self.store.url)
            if GLOB_CHARACTERS.isdisjoint(str(path)):
                return path
        with self._lock:
            if cached in self._held:  # this sync has it already (two files of one content)
                self._held[cached][1] += 1
                return cached
        with _exclusive(cached):
            if isinstance(self.store, LocalStore):
                # a target may read such a name as a pattern: hand it a name of our own
                if not cached.exists() or not _matches(cached, f):
                    _link(path, cached)
            else:
                self._download(name, f, cached)
            self._hold(cached)
        return cached

    def _hold(self, path: Path) -> None:
        """This sync uses ``path`` until it releases it: a shared lock says so."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise disk_error(exc, path) from exc
        fcntl.flock(fd, fcntl.LOCK_SH)
        with self._lock:
            if path in self._held:  # another thread of this sync got it meanwhile
                self._held[path][1] += 1
                os.close(fd)
            else:
                self._held[path] = [fd, 1]

    def _download(self, name: str, f: DataFile, path: Path) -> None:
        """The cached copy of ``name`` at ``path``, downloaded (or continued) unless it is
        there and matches the manifest (its lock held)."""
        if path.exists():
            if _matches(path, f):
                return
            _remove(path)  # the cached copy is what is damaged: download it again
        on_bytes = self.progress(name, f.bytes) if self.progress else None
        resumed = path.with_name(path.name + ".part").exists()
        size, digest = fetch_to_file(self.store, name, path, expected_size=f.bytes,
                                     on_bytes=on_bytes)
        if digest != f.sha256 and resumed:
            # the .part an earlier run left may be what is damaged (a crash can leave zeros
            # in it): drop it and download the whole file once before blaming the publisher
            _remove(path)
            on_bytes = self.progress(name, f.bytes) if self.progress else None
            size, digest = fetch_to_file(self.store, name, path, expected_size=f.bytes,
                                         on_bytes=on_bytes)
        self.downloaded_bytes += size
        if digest != f.sha256:
            _remove(path)
            raise _mismatch(name, self.store.url)

    def release(self, path: Path) -> None:
        """Drop a downloaded file once it is applied, unless another sync still uses it
        (files of a local store stay)."""
        with self._lock:
            held = self._held.get(path)
            if held is None:
                return
            held[1] -= 1
            if held[1]:
                return
            del self._held[path]
        with _exclusive(path):
            os.close(held[0])
            with contextlib.suppress(OSError):
                probe = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no other user
                    _remove(path)
                finally:
                    os.close(probe)

    def close(self) -> None:
        """Let go of the cached files this sync did not release (they stay for the next
        run)."""
        with self._lock:
            while self._held:
                os.close(self._held.popitem()[1][0])


def _remove(path: Path) -> None:
    """Remove a cached file and what is left of its download."""
    for p in (path, path.with_name(path.name + ".part")):
        with contextlib.suppress(OSError):
            p.unlink()


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One sync at a time downloads, checks or removes the cached file ``path``, in every
    process and thread: an exclusive lock on ``path.lock``, which the holder removes with
    the file (a waiter that then holds a removed lock file takes the new one)."""
    lock = path.with_name(path.name + ".lock")
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise disk_error(exc, lock) from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        if not path.exists():
            with contextlib.suppress(OSError):
                lock.unlink()
        os.close(fd)


def _in_place(store: LocalStore, name: str) -> Path:
    """The path of a data file read where it is: a regular file of the store, reached
    through no link below its root (a link or a FIFO there is refused, exit 5)."""
    try:
        return store.regular_file(name)
    except FileMissing:
        raise MissingFile(f"{name} is listed in its manifest but missing from {store.url}",
                          hint="republish the dataset") from None


def _matches_in(store: LocalStore, name: str, f: DataFile) -> bool:
    """Whether a local store's file has the manifest's size and sha256, read through the
    store (which follows no link and opens no special file)."""
    digest = hashlib.sha256()
    with store.open_read(name) as src:
        if os.fstat(src.fileno()).st_size != f.bytes:
            return False
        while block := src.read(BLOCK):
            digest.update(block)
    return digest.hexdigest() == f.sha256


def _link(path: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(path, dest)
    except OSError:
        shutil.copyfile(path, dest)
    return dest


def _mismatch(name: str, where: str) -> IntegrityError:
    return IntegrityError(
        f"{name} from {where} does not match the sha256 in its manifest; nothing was applied",
        hint="the file is damaged (or was changed after publication); ask the publisher to "
        "republish it, then run sync again")
