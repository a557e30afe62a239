"""Deleting backups past a threshold, never the newest finished one.

A backup (finished or failed, never ongoing) whose start is older than ``keep_days`` is
removed, except the newest ``keep_last`` finished backups (at least one: the newest
finished backup is never removed, however old). The encrypted object goes first, then the
catalog objects with ``started.json`` last, so an interrupted prune never leaves a catalog
entry that claims a finished backup whose pieces are partly gone without saying so (it
then shows as failed). An object that the store's Object Lock still retains is reported
as "retained until DATE" and the backup stays listed; that is not an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from topoff.backup.catalog import read_catalog
from topoff.backup.names import catalog_key, data_key
from topoff.errors import StoreError
from topoff.stores.base import Store

log = logging.getLogger("topoff")


@dataclass
class PruneOutcome:
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    retained: list[tuple[str, str]] = field(default_factory=list)  # (name, until)
    kept: list[str] = field(default_factory=list)


def _retained_until(exc: StoreError) -> str | None:
    """The date a lock keeps an object until, when ``exc`` says it is locked."""
    until = getattr(exc, "until", None)
    if isinstance(until, datetime):
        return until.date().isoformat()
    if hasattr(exc, "until") or type(exc).__name__ == "Retained":
        return "a legal hold is lifted"
    text = exc.message.lower()
    if "lock" in text or "retain" in text or "retention" in text:
        return "its lock expires"
    return None


def _remove(store: Store, name: str) -> None:
    remove = getattr(store, "purge", store.delete)  # every version, where the store keeps them
    remove(data_key(name))
    leaves = [i.name for i in store.list(catalog_key(name, ""))]
    started = catalog_key(name, "started.json")
    for key in sorted(k for k in leaves if k != started):
        remove(key)
    remove(started)


def prune(store: Store, keep_days: int, keep_last: int = 1, dry_run: bool = False,
          now: datetime | None = None) -> PruneOutcome:
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=keep_days)
    entries = read_catalog(store)
    finished = [e.name for e in entries if e.status == "finished"]
    protected = set(finished[-max(keep_last, 1):])
    out = PruneOutcome(dry_run)
    for e in entries:
        try:
            started = datetime.fromisoformat(e.start_time)
        except ValueError:
            started = None
        old = started is not None and started.tzinfo is not None and started < cutoff
        if e.name in protected or e.status == "ongoing" or not old:
            out.kept.append(e.name)
            continue
        if dry_run:
            out.removed.append(e.name)
            continue
        try:
            _remove(store, e.name)
        except StoreError as exc:
            until = _retained_until(exc)
            if until is None:
                raise
            out.retained.append((e.name, until))
            continue
        log.info("removed backup %s", e.name)
        out.removed.append(e.name)
    return out
