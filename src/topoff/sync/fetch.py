"""Files of a publication on local disk, each checked against its manifest before use.

A local store is read in place (hashed first); HTTP and S3 files are downloaded into a
cache named by their sha256, so a download interrupted by a kill resumes where it stopped
and nothing is fetched twice. A file whose size or sha256 differs from the manifest is
refused (and dropped from the cache): nothing is applied from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from topoff.dataset import checks, layout
from topoff.dataset.index import Index, read_index
from topoff.dataset.manifest import DataFile
from topoff.errors import IntegrityError, TargetError, TopoffError
from topoff.stores.base import FileMissing, Store, check_name
from topoff.stores.download import BLOCK, fetch_to_file
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
    """A data file its manifest lists is not in the (local) store."""


@contextlib.contextmanager
def removed_meanwhile(store: Store, index: Index, origin: str) -> Iterator[None]:
    """A file of the dataset found missing while the block reads it, from a publication
    that the store's index no longer lists, was removed by the producer's retention
    (``topoff prune``) since this sync read ``index``: a TargetError says so, where the
    file alone would call the dataset damaged. A file missing from a publication still
    listed stays what it is."""
    try:
        yield
    except (FileMissing, MissingFile):
        try:
            now = read_index(store)
        except TopoffError:
            now = None
        gone = [p.id for p in index.publications if now is not None and now.get(p.id) is None]
        if not gone:
            raise
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
            # a target may read such a name as a pattern: hand it a name of our own
            return _link(path, cached)
        path = cached
        if path.exists():
            if _matches(path, f):
                return path
            self.release(path)  # the cached copy is what is damaged: download it again
        on_bytes = self.progress(name, f.bytes) if self.progress else None
        resumed = path.with_name(path.name + ".part").exists()
        size, digest = fetch_to_file(self.store, name, path, expected_size=f.bytes,
                                     on_bytes=on_bytes)
        if digest != f.sha256 and resumed:
            # the .part an earlier run left may be what is damaged (a crash can leave zeros
            # in it): drop it and download the whole file once before blaming the publisher
            self.release(path)
            on_bytes = self.progress(name, f.bytes) if self.progress else None
            size, digest = fetch_to_file(self.store, name, path, expected_size=f.bytes,
                                         on_bytes=on_bytes)
        self.downloaded_bytes += size
        if digest != f.sha256:
            self.release(path)
            raise _mismatch(name, self.store.url)
        return path

    def release(self, path: Path) -> None:
        """Drop a downloaded file once it is applied (files of a local store stay)."""
        if not isinstance(self.store, LocalStore) or not path.is_relative_to(self.store.root):
            with contextlib.suppress(OSError):
                path.unlink()


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
