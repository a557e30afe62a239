"""``topoff prune``: remove old incremental days and old full exports, never what a consumer
of the newest full export still needs.

Kept, whatever the limits say:

* the newest full export, and the newest ``keep_full`` ones;
* every publication made after the newest full export (a replica built from it applies
  them; they are the only way to bring it up to date). A dataset without any full export
  has nothing to bring up to date: its days are removed by age like any other.

Removed: incremental partitions (all revisions) whose window begins on a UTC date before
the last ``keep_days`` days (15 on Nov 30: before Nov 15), and full exports older than the
newest ``keep_full``. The index is rewritten first (readers stop seeing them), then the
files are deleted. Files that no publication
lists (left by a killed export) go too once older than the grace period
(:mod:`topoff.dataset.cleanup`).

``keep_days`` must be greater than the exporter's ``lookback_days``: an export re-checks
the ``lookback_days`` days before the one it publishes for late rows, and a day already
removed is not re-checked (its late rows would reach no replica), so such a combination is
refused (:func:`check_keep_days`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from topoff.dataset import layout
from topoff.dataset.cleanup import DEFAULT_GRACE, Orphans, find_orphans, remove_orphans
from topoff.dataset.html import write_html
from topoff.dataset.index import Index, Publication, read_index
from topoff.dataset.lock import dataset_lock
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
    orphans: Orphans = field(default_factory=Orphans)
    grace: timedelta = DEFAULT_GRACE


def check_keep_days(keep_days: int | None, lookback_days: int,
                    lookback_option: bool = False) -> None:
    """Refuse a retention that removes days the next export must still re-check (the hint
    names --lookback-days where the command has it: ``lookback_option``)."""
    if keep_days is not None and keep_days <= lookback_days:
        lower = "--lookback-days or [export] lookback_days" if lookback_option else \
            "[export] lookback_days in the config"
        raise ConfigError(
            f"keeping {keep_days} days (--keep-days, [retention] keep_days) would remove days "
            f"that exports still re-check for late rows (lookback_days is {lookback_days}): "
            f"their late rows would reach no replica",
            hint=f"keep at least {lookback_days + 1} days, or lower {lower}")


def describe(keep_days: int | None, keep_full: int) -> str:
    """The retention in words (for index.html)."""
    days = f"days are kept {keep_days} days" if keep_days else "days are kept"
    return (f"Retention: incremental {days}, the newest {keep_full} full export(s), and "
            f"everything published after the newest full export.")


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
    remove: list[Publication] = []
    keep: list[Publication] = []
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
          dry_run: bool = False, now: datetime | None = None, *,
          lookback_days: int | None = None, grace: timedelta = DEFAULT_GRACE,
          wait: bool = False) -> PruneResult:
    """Apply retention, then remove unlisted files older than ``grace``.

    With ``lookback_days`` (the exporter's), a ``keep_days`` that would drop days still
    re-checked is refused. The dataset's lock is held meanwhile: held by an export or
    another prune, DatasetLocked is raised before anything is removed, or with ``wait``
    the prune waits for it (a store from ``dataset_lock`` is one whose lock the caller
    holds already). Where nothing is published, nothing is done (no lock is made there).
    """
    if lookback_days is not None:
        check_keep_days(keep_days, lookback_days)
    index = read_index(store, dataset)
    if index is None:  # no publication, and no file counts as unlisted: see find_orphans
        return PruneResult(dry_run=dry_run, grace=grace)
    with dataset_lock(store, index.dataset, wait) as locked:
        return _prune(locked, index.dataset, keep_days, keep_full, dry_run, now, grace)


def _prune(store: Store, dataset: str, keep_days: int | None, keep_full: int,
           dry_run: bool, now: datetime | None, grace: timedelta) -> PruneResult:
    now = now or datetime.now(UTC)
    index = read_index(store, dataset)  # again: it may have changed while the lock was waited for
    remove, keep = plan_prune(index, keep_days, keep_full, now) if index else ([], [])
    result = PruneResult(removed=remove, kept=keep, dry_run=dry_run, grace=grace)
    names: list[str] = []
    for p in remove:
        files = store.list(p.id + "/")
        names.extend(f.name for f in files)
        result.files += len(files)
        result.bytes += sum(f.size for f in files)
    if not dry_run and remove and index is not None:
        index.remove({p.id for p in remove})
        store.write_bytes(layout.INDEX, index.dumps(), replace=True)
        for name in names:
            store.delete(name)
        for p in remove:
            log.info("pruned %s", p.id)
    if not dry_run and index is not None:  # the page says what retention applies
        write_html(store, index, describe(keep_days, keep_full))
    # Orphans are looked for after the index is final: files just removed are not counted.
    result.orphans = find_orphans(store, index, grace, now)
    if not dry_run:
        remove_orphans(store, result.orphans)
        for where, count in result.orphans.groups():
            log.info("removed %d unpublished files in %s", count, where)
    return result
