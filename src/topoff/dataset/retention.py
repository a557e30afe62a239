"""``topoff prune``: remove old incremental days and old full exports, never what a consumer
of the newest full export still needs.

Kept, whatever the limits say:

* the newest full export, and the newest ``keep_full`` ones;
* every publication made after the newest full export (a replica built from it applies
  them; they are the only way to bring it up to date). A dataset without any full export
  has nothing to bring up to date: its days are removed by age like any other.

Removed: incremental partitions (all revisions) whose day began more than ``keep_days``
days ago, and full exports older than the newest ``keep_full``. The index is rewritten
first (readers stop seeing them), then the files are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from topoff.dataset import layout
from topoff.dataset.index import Index, Publication, read_index
from topoff.errors import ConfigError
from topoff.stores.base import Store

log = logging.getLogger("topoff")


@dataclass
class PruneResult:
    removed: list[Publication] = field(default_factory=list)
    kept: list[Publication] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    dry_run: bool = False


def plan_prune(index: Index, keep_days: int | None, keep_full: int,
               now: datetime | None = None) -> tuple[list[Publication], list[Publication]]:
    """(to remove, to keep) under the rules in the module docstring."""
    if keep_full < 1:
        raise ConfigError("--keep-full must be at least 1",
                          hint="the newest full export is always kept")
    now = now or datetime.now(UTC)
    fulls = index.fulls()
    newest_full = fulls[-1] if fulls else None
    keep_fulls = {p.id for p in fulls[-keep_full:]}
    cutoff = (now.astimezone(UTC) - timedelta(days=keep_days)).date() if keep_days else None
    remove, keep = [], []
    for p in index.publications:
        if p.kind == layout.FULL:
            (keep if p.id in keep_fulls else remove).append(p)
            continue
        needed = newest_full is not None and p.sequence > newest_full.sequence
        window = p.window_obj
        old = cutoff is not None and window is not None and window.start.date() < cutoff
        (remove if old and not needed else keep).append(p)
    return remove, keep


def prune(store: Store, dataset: str | None, keep_days: int | None, keep_full: int = 1,
          dry_run: bool = False, now: datetime | None = None) -> PruneResult:
    index = read_index(store, dataset)
    if index is None:
        return PruneResult(dry_run=dry_run)
    remove, keep = plan_prune(index, keep_days, keep_full, now)
    result = PruneResult(removed=remove, kept=keep, dry_run=dry_run)
    names: list[str] = []
    for p in remove:
        files = store.list(p.id + "/")
        names.extend(f.name for f in files)
        result.files += len(files)
        result.bytes += sum(f.size for f in files)
    if dry_run or not remove:
        return result
    index.remove({p.id for p in remove})
    store.write_bytes(layout.INDEX, index.dumps())
    for name in names:
        store.delete(name)
    for p in remove:
        log.info("pruned %s", p.id)
    return result
