"""``topoff iceberg expire``: drop old snapshots of an Iceberg replica's tables, and the
files only they referred to.

Each top-off adds snapshots; a day replaced by its revision, a snapshot table published
again and a compaction leave files that only older snapshots refer to. Expiring the
snapshots older than a while keeps the metadata small; once the expiry is committed, the
files only the expired snapshots referred to (reachable.py) are deleted, so the warehouse
holds what the remaining snapshots can read. The current snapshot of each table is never
expired (its data and the ledger in the table's properties stay as they are); a table
expired down to its current snapshot can still be read, topped off and resumed
(docs/iceberg.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from topoff.errors import TargetError
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.metafiles import prune
from topoff.targets.iceberg.reachable import Files, only_expired
from topoff.targets.iceberg.replica import replicated_tables
from topoff.targets.iceberg.table import replica_tables

log = logging.getLogger("topoff")


@dataclass
class Expired:
    table: str
    expired: int
    kept: int
    #: files only the expired snapshots referred to: deleted (or, in a dry run, to delete)
    files: int = 0
    bytes: int = 0
    #: of those, files that could not be deleted (left as orphans, with a warning)
    left: int = 0
    #: metadata JSON files older than those the table keeps (metafiles.py): deleted
    metadata: int = 0
    metadata_bytes: int = 0


def _delete(table: Any, files: Files) -> int:
    """Delete ``files`` (those already gone are fine); how many could not be."""
    failed: list[str] = []
    for path in sorted(files.paths):
        try:
            table.io.delete(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed.append(f"{path} ({e.strerror or type(e).__name__})")
    if failed:
        log.warning("%s: %d files only expired snapshots referred to could not be deleted "
                    "(first: %s); they are orphans now, removed by the engines' orphan-file "
                    "removal", table.name(), len(failed), failed[0])
    return len(failed)


def _commit(table: Any, old: list[int], before: list[Any]) -> tuple[list[int], list[Any]]:
    """Expire the snapshots ``old`` of ``table`` (read as ``before``), then read the table
    again (with whatever another writer committed meanwhile). Another expiry that removed
    some of them first (the catalog refuses to remove a snapshot that is gone): the table
    is read again and those still there are expired, that expiry deleting the files of
    its own. (the snapshots this run expired, the snapshots as that commit found them)"""
    for _ in range(3):
        if not old:
            break
        try:
            table.maintenance.expire_snapshots().by_ids(old).commit()
            break
        except ValueError:  # "Snapshot with snapshot id ... does not exist"
            table.refresh()
            before = table.metadata.snapshots
            there = {s.snapshot_id for s in before}
            old = [i for i in old if i in there]
    else:
        raise TargetError(f"{table.name()}: other expiries kept removing the snapshots this "
                          "one expires", hint="run one expiry at a time, then run it again")
    table.refresh()
    return old, before


def expire(location: str, older_than: timedelta, dry_run: bool = False) -> list[Expired]:
    """Expire the snapshots older than ``older_than`` of every table topoff made."""
    settings = read_settings(location)
    catalog = open_catalog(settings, create=False)  # nothing to make: no table, no work
    # in milliseconds, as the snapshots' times: an age before year 1 is no datetime
    cutoff = datetime.now(UTC).timestamp() * 1000 - older_than.total_seconds() * 1000
    out = []
    found = [(s, t) for s, (t, _) in replica_tables(catalog, settings.namespace).items()]
    found += replicated_tables(catalog)  # topoff replicate's, in their own namespaces
    for source, table in sorted(found, key=lambda f: f[0]):
        e = _expire(table, source, cutoff, dry_run)
        e.metadata, e.metadata_bytes = prune(table, dry_run)
        out.append(e)
    return out


def _expire(table: Any, source: str, cutoff: float, dry_run: bool) -> Expired:
    """Expire the snapshots of ``table`` older than ``cutoff`` (ms), but its current one.
    A dry run that finds a manifest gone (an expiry running now deleted it) reads the
    table again: what is left is what this one would expire."""
    for _ in range(3):
        try:
            return _expire_once(table, source, cutoff, dry_run)
        except FileNotFoundError:
            if not dry_run:
                raise
            table.refresh()
    raise TargetError(f"{source}: other expiries kept removing the snapshots this dry run "
                      "reads", hint="run one expiry at a time, then run it again")


def _expire_once(table: Any, source: str, cutoff: float, dry_run: bool) -> Expired:
    current = table.current_snapshot()
    total = len(table.metadata.snapshots)
    old = [s.snapshot_id for s in table.metadata.snapshots
           if s.timestamp_ms < cutoff
           and (current is None or s.snapshot_id != current.snapshot_id)]
    if not old:
        return Expired(source, 0, total)
    before = table.metadata.snapshots
    if dry_run:
        files = only_expired(table.io, [s for s in before if s.snapshot_id in old],
                             [s for s in before if s.snapshot_id not in old])
        return Expired(source, len(old), total - len(old), len(files.paths),
                       sum(files.sizes.values()))
    old, before = _commit(table, old, before)
    remaining = table.metadata.snapshots
    ids = {s.snapshot_id for s in remaining}
    try:
        files = only_expired(table.io, [s for s in before if s.snapshot_id in old
                                        and s.snapshot_id not in ids], remaining)
    except FileNotFoundError:  # a manifest another expiry running now deleted
        log.warning("%s: another expiry deleted files of these snapshots meanwhile; the "
                    "files only they referred to that are left are orphans now, removed "
                    "by `topoff iceberg remove-orphans`", source)
        files = Files()
    left = _delete(table, files)
    return Expired(source, len(old), total - len(old), len(files.paths),
                   sum(files.sizes.values()), left)
