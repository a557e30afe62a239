"""Files that no publication lists: what a killed or failed export left behind.

An export writes its data files and manifest before ``index.json`` lists them; if it is
killed (SIGKILL, a reboot, a full disk) they stay: a whole unpublished ``full/<stamp>/``
directory, temp files (``.<name>.tmp-<hex>``) next to where a file was being written, an
unfinished multipart upload on S3. ``topoff prune`` (and an export's own retention step)
removes them once they are older than a grace period, so that a running export's files,
which are new, are never touched.

Never removed: anything where there is no ``index.json`` (a lost index must not make a
whole dataset look unpublished), a file of a publication that ``index.json`` lists,
``index.json``, ``index.html``, the lock, anything outside ``full/`` and ``incremental/``
(other files a site may keep at the dataset root), anything whose age the store cannot
tell, and anything newer than the grace period.

An export that took over the lock of a run whose process is gone (same host) removes that
run's unlisted files at once, grace period or not (remove_dead_leftovers): no other run can
be writing them, and a rerun of the same day would otherwise meet its own publication's
names taken ("already exists") until the grace period ended.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from topoff.dataset import layout
from topoff.dataset.index import Index
from topoff.dataset.lock import LockedStore
from topoff.stores.base import FileInfo, Store

log = logging.getLogger("topoff")

#: how old an unlisted file must be before it is removed
DEFAULT_GRACE = timedelta(hours=6)

# Temp names the local store writes next to a file's final name.
_TEMP = re.compile(r"^\.(.+)\.tmp-[0-9a-f]+$")
_ROOT_FILES = {layout.INDEX, layout.INDEX_HTML, layout.LOCK}


@dataclass
class Orphans:
    files: list[FileInfo] = field(default_factory=list)
    #: unfinished S3 multipart uploads: (name, upload id)
    uploads: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def groups(self) -> list[tuple[str, int]]:
        """(directory, number of files) in name order, for short reports."""
        counts: dict[str, int] = {}
        for f in self.files:
            where = layout.publication_of(f.name) or f.name.rpartition("/")[0] or "."
            counts[where] = counts.get(where, 0) + 1
        return sorted(counts.items())


def _orphan(name: str, listed: set[str]) -> bool:
    base = name.rpartition("/")[2]
    temp = _TEMP.match(base)
    if "/" not in name:  # at the root: only temp files of topoff's own root files
        return bool(temp and temp.group(1) in _ROOT_FILES)
    if name.split("/", 1)[0] not in (layout.FULL, layout.INCREMENTAL):
        return False
    return bool(temp) or layout.publication_of(name) not in listed


def find_orphans(store: Store, index: Index | None, grace: timedelta,
                 now: datetime) -> Orphans:
    """Unlisted files older than ``grace``; none at all where there is no index.json (a
    lost index must not make a whole dataset look unpublished)."""
    if index is None:
        return Orphans()
    listed = {p.id for p in index.publications}
    cutoff = now.timestamp() - grace.total_seconds()
    found = Orphans()
    for f in store.list_all():
        if f.modified is not None and f.modified <= cutoff and _orphan(f.name, listed):
            found.files.append(f)
    list_uploads = getattr(store, "list_uploads", None)
    if list_uploads is not None:
        for name, upload_id, started in list_uploads():
            # an upload never completed is no file of any publication
            ours = name in _ROOT_FILES or name.split("/", 1)[0] in (layout.FULL,
                                                                   layout.INCREMENTAL)
            if started <= cutoff and ours:
                found.uploads.append((name, upload_id))
    return found


def remove_orphans(store: Store, orphans: Orphans) -> None:
    for f in orphans.files:
        store.delete(f.name)
    for name, upload_id in orphans.uploads:
        store.abort_upload(name, upload_id)  # type: ignore[attr-defined]


def remove_dead_leftovers(store: Store, index: Index | None) -> None:
    """Under a lock taken over from a run whose process is gone: the files no publication
    lists (that run's, killed before it published) removed now (the module docstring); once
    per lock. Nothing where there is no index.json."""
    if not isinstance(store, LockedStore) or not store.lock.after_dead or index is None:
        return
    store.lock.after_dead = False
    listed = {p.id for p in index.publications}
    found = Orphans([f for f in store.list_all() if _orphan(f.name, listed)])
    if not found.files:
        return
    remove_orphans(store, found)
    log.warning("removed %d files (%.1f MB) no publication lists, left by the killed run "
                "whose lock this one took over: %s", len(found.files), found.bytes / 1e6,
                ", ".join(g for g, _ in found.groups()[:5]))
