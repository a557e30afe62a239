"""Deleting backups past a threshold, never the newest finished one.

A backup (finished or failed, never ongoing) whose start is older than ``keep_days`` is
removed, except the newest ``keep_last`` finished backups (at least one: the newest
finished backup is never removed, however old). The encrypted object goes first, then the
catalog objects with ``started.json`` last, so an interrupted prune never leaves a catalog
entry that claims a finished backup whose pieces are partly gone without saying so (it
then shows as failed). Ctrl-C or SIGTERM once the object is gone does not stop the removal
of its entry: the signals after the first are only noted (cli/signals.py), so the entry
goes before the command reports the interruption. An object that the store's Object Lock
still retains is reported as "retained until DATE" and the backup stays listed; that is not
an error.

Removing goes through the store's ``purge``: on a versioned S3 bucket a plain delete only
hides an object behind a delete marker (the data stays, and is billed), so every version
is removed. A versioned bucket without a lifecycle rule that expires noncurrent versions
gets a one-line warning: versions written by anything but prune are kept forever there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from topoff.backup.catalog import finished_by_start, parse_time, read_catalog
from topoff.backup.names import catalog_key, data_keys
from topoff.errors import StoreError
from topoff.stores.base import Retained, Store

log = logging.getLogger("topoff")


@dataclass
class PruneOutcome:
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    retained: list[tuple[str, str]] = field(default_factory=list)  # (name, until)
    kept: list[str] = field(default_factory=list)
    #: one line about the bucket's settings (versions kept forever), or None
    warning: str | None = None


def _retained_until(exc: Retained) -> str:
    """The day a lock keeps an object until (a legal hold has no date)."""
    if exc.until is None:
        return "a legal hold is lifted"
    return exc.until.astimezone(UTC).date().isoformat()


def _remove(store: Store, name: str) -> None:
    try:
        for key in data_keys(name):  # every version, where the store keeps them
            store.purge(key)
        _remove_leftovers(store, name)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: an entry whose object is gone goes too
        if any(store.stat(key) is not None for key in data_keys(name)):
            raise
        _remove_entry(store, name)
        raise
    try:
        _remove_entry(store, name)
    except KeyboardInterrupt:  # the object is gone: the entry must not stay finished
        _remove_entry(store, name)
        raise


def _remove_entry(store: Store, name: str) -> None:
    """The catalog objects of a backup whose object is removed, ``started.json`` last."""
    leaves = [i.name for i in store.list(catalog_key(name, ""))]
    started = catalog_key(name, "started.json")
    for key in sorted(k for k in leaves if k != started):
        store.purge(key)
    store.purge(started)


def _remove_leftovers(store: Store, name: str) -> None:
    """What a killed backup left of its object: a temp file next to it in a directory
    (``.NAME.tmp-XXXX``), a multipart upload never completed on S3."""
    keys = data_keys(name)
    for key in keys:
        folder, _, leaf = key.rpartition("/")
        for f in store.list_all(f"{folder}/.{leaf}.tmp-"):
            store.delete(f.name)
    list_uploads = getattr(store, "list_uploads", None)
    if list_uploads is not None:
        for key, upload_id, _ in list_uploads():
            if key in keys:
                store.abort_upload(key, upload_id)  # type: ignore[attr-defined]


def versions_warning(store: Store) -> str | None:
    """A warning when the store is a versioned bucket that keeps old versions forever."""
    bucket_info = getattr(store, "bucket_info", None)
    if bucket_info is None:
        return None
    try:
        info = bucket_info()
    except StoreError as exc:  # the settings may not be readable with a prune-only key
        log.debug("bucket settings not readable: %s", exc.message)
        return None
    if not info.versioned or info.expires_noncurrent:
        return None
    return (f"{store.url} is a versioned bucket without a lifecycle rule that expires "
            "noncurrent versions: prune removes every version of what it deletes, anything "
            "else overwritten or deleted there is kept (and billed) forever")


def prune(store: Store, keep_days: int, keep_last: int = 1, dry_run: bool = False,
          now: datetime | None = None) -> PruneOutcome:
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=keep_days)
    entries = read_catalog(store)
    # the newest finished backups by their start time, read as a time: a start that is
    # not one, or lies in the future, takes no place among them (such a backup is not
    # old either, so it is kept as well)
    dated = finished_by_start(entries, now)
    protected = {e.name for e in dated[-max(keep_last, 1):]}
    out = PruneOutcome(dry_run, warning=versions_warning(store))
    for e in entries:
        started = parse_time(e.start_time)
        old = started is not None and started < cutoff
        if e.name in protected or e.status == "ongoing" or not old:
            out.kept.append(e.name)
            continue
        if dry_run:
            out.removed.append(e.name)
            continue
        try:
            _remove(store, e.name)
        except Retained as exc:
            out.retained.append((e.name, _retained_until(exc)))
            log.debug("%s", exc.message)
            continue
        log.info("removed backup %s", e.name)
        out.removed.append(e.name)
    return out
