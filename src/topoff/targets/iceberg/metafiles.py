"""How many metadata JSON files an Iceberg table topoff made keeps.

Each commit writes the table's whole metadata to a new ``NNNNN-uuid.metadata.json`` and the
catalog swaps it in; the metadata log names the previous ones. Every commit topoff makes
sets the table properties below (with the ledger): pyiceberg then keeps the
:data:`PREVIOUS_VERSIONS` newest previous files in the log and deletes the file a commit
drops from it. A table made before these properties, or whose old files a commit could not
delete, is bounded by ``topoff iceberg expire`` (:func:`prune`): it sets the properties and
deletes the metadata files older than the oldest one the log keeps. No such file can become
current again: a commit is swapped in only on top of the current metadata, whose version
is higher (a commit in progress writes the next version).

Time travel is not bounded by these files: every snapshot the table keeps is in its
current metadata (docs/iceberg.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger("topoff")

#: previous metadata files a table keeps (a reader that resolved one has that many commits
#: of the table to read it; a nightly top-off commits a table about once a night)
PREVIOUS_VERSIONS = 10
DELETE_AFTER_COMMIT = "write.metadata.delete-after-commit.enabled"
PREVIOUS_MAX = "write.metadata.previous-versions-max"

_VERSION = re.compile(r"([0-9]+)-[^/]*\.metadata\.json")


def bound() -> dict[str, str]:
    """The table properties that bound a table's metadata files (set at every commit)."""
    return {DELETE_AFTER_COMMIT: "true", PREVIOUS_MAX: str(PREVIOUS_VERSIONS)}


def bounded(table: Any) -> bool:
    props = table.properties
    return all(props.get(k) == v for k, v in bound().items())


def _version(path: str) -> int | None:
    m = _VERSION.fullmatch(path.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def _listed(table: Any) -> tuple[Any, dict[str, int]]:
    """The file system of the table's metadata files, and each (path: size)."""
    from pyarrow.fs import FileSelector, FileType

    scheme, netloc, current = table.io.parse_location(table.metadata_location)
    fs = table.io.fs_by_scheme(scheme, netloc)
    listed = fs.get_file_info(FileSelector(current.rsplit("/", 1)[0], allow_not_found=True))
    return fs, {f.path: f.size or 0 for f in listed
                if f.type == FileType.File and _version(f.path) is not None}


def prune(table: Any, dry_run: bool) -> tuple[int, int]:
    """Set the bound on ``table`` (one commit, whose log pyiceberg trims to it, deleting
    what it drops) and delete its metadata files older than the oldest its log keeps;
    (files, bytes) deleted, or that would be in a dry run."""
    fs, before = _listed(table)
    if not dry_run and not bounded(table):
        with table.transaction() as txn:
            txn.set_properties(bound())
        table.refresh()
    kept = [table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)]
    if dry_run:  # what the bound would keep of the log
        kept = kept[:1] + kept[1:][-PREVIOUS_VERSIONS:]
    versions = [v for v in map(_version, kept) if v is not None]
    if len(versions) != len(kept):  # not pyiceberg's names: nothing known to be older
        return 0, 0
    old = [p for p in _listed(table)[1] if (_version(p) or 0) < min(versions)]
    if dry_run:
        return len(old), sum(before.get(p, 0) for p in old)
    for path in old:
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s: old metadata file %s could not be deleted (%s)",
                        table.name(), path, e.strerror or type(e).__name__)
    gone = set(before) - set(_listed(table)[1])
    return len(gone), sum(before[p] for p in gone)
