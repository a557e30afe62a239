"""What a backup run is asked for and what it returns, and the steps every engine's run
shares (the lock check before any work, the failure recorded in the catalog)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from topoff.backup import catalog
from topoff.backup.names import catalog_key
from topoff.errors import ConfigError, TopoffError
from topoff.redact import redact
from topoff.stores.base import FileExists, ObjectOptions, Store, refuse_lock

log = logging.getLogger("topoff")


@dataclass
class BackupRequest:
    source_url: str
    name: str
    recipients: tuple[str, ...]
    allow_primary: bool = False
    jobs: int = 2
    level: int = 3
    lock_days: int | None = None
    lock_mode: str = "COMPLIANCE"
    workdir: str | None = None


@dataclass
class BackupResult:
    name: str
    key: str
    size: int
    sha256: str
    files: int
    tables: dict[str, dict[str, Any]]
    seconds: float
    #: seconds spent in the dump (pg_dump to stored object) and in the drill's hashes
    phases: dict[str, float] = field(default_factory=dict)
    #: the bytes of the uncompressed stream (the most a restore may decompress)
    plain_size: int = 0


def _taken(store: Store, name: str) -> ConfigError:
    return ConfigError(f"a backup named {name} already exists in {store.url}",
                       hint="choose another --name (catalog entries are never overwritten)")


def write_started(store: Store, name: str, started: dict[str, Any],
                  options: ObjectOptions | None) -> None:
    """started.json, written only if new: a backup of the same name that started at the
    same moment and wrote it first stops this one as :func:`preflight` would have."""
    try:
        catalog.write_object(store, name, "started.json", started, options)
    except FileExists:
        raise _taken(store, name) from None


def preflight(store: Store, name: str, req: BackupRequest) -> ObjectOptions | None:
    """Before any snapshot or dump starts: the name is new in the catalog, and the store
    can keep the requested lock. Returns the objects' lock options."""
    if store.stat(catalog_key(name, "started.json")) is not None:
        raise _taken(store, name)
    options = ObjectOptions(lock_days=req.lock_days, lock_mode=req.lock_mode) \
        if req.lock_days else None
    check_lock(store, options)
    return options


def check_lock(store: Store, options: ObjectOptions | None) -> None:
    """Refuse a lock the store cannot honour before the snapshot and pg_dump start (the
    store would refuse it at the first write anyway; this wastes no work)."""
    if options is None or options.lock_days is None:
        return
    require = getattr(store, "require_object_lock", None)  # S3: the bucket must have it
    if require is not None:
        require()
    else:
        refuse_lock(store, options, "only S3 buckets with Object Lock keep objects locked")


def record_failure(store: Store, name: str, exc: BaseException,
                   options: ObjectOptions | None) -> None:
    if isinstance(exc, TopoffError):
        why = exc.message
    elif isinstance(exc, KeyboardInterrupt):
        why = "interrupted"
    else:
        why = f"{type(exc).__name__}: {exc}"
    try:
        catalog.write_object(store, name, "failed.json",
                             {"name": name, "ended": catalog.now_iso(), "error": redact(why)},
                             options)
    except Exception as e:  # the store itself may be what failed
        log.warning("could not record the failure in the catalog: %s", redact(str(e)))
