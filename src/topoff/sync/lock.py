"""One sync per dataset and target at a time.

A DuckDB file is locked by DuckDB itself (a second process cannot open it: TargetError).
A PostgreSQL replica accepts many sessions, so two syncs of the same dataset would apply
the same partition twice (one fails on the ledger's primary key). Each sync therefore
holds a session advisory lock named after its dataset for as long as it runs; a second
sync waits for the first to finish, then finds the replica up to date. The lock goes
with the session: a killed sync never leaves it behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging

from topoff.targets import Target
from topoff.targets.ledger import Ledger

log = logging.getLogger("topoff")


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` (stable across servers and versions)."""
    digest = hashlib.sha256(f"topoff:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


#: held while the ledger tables are created (two datasets' first syncs at once)
LEDGER_LOCK = "ledger"


def _shared_server(target: Target) -> bool:
    return target.capabilities.concurrent_writers


def lock_dataset(target: Target, dataset: str) -> None:
    """Wait until no other sync of ``dataset`` is writing to ``target``, then hold it
    until the target is closed."""
    if not _shared_server(target):
        return
    key = lock_key(f"dataset:{dataset}")
    P = target.P
    if target.execute(f"SELECT pg_try_advisory_lock({P})", [key])[0][0]:
        return
    log.warning("another sync of %s into %s is running; waiting for it to finish "
                "(Ctrl-C to stop)", dataset, target.url)
    target.execute(f"SELECT pg_advisory_lock({P})", [key])
    log.info("the other sync of %s finished; going on", dataset)


def ensure_ledger(target: Target) -> None:
    """Create the ledger tables if missing, one process at a time. On a shared server the
    sync then holds the ledger lock shared until it ends: :func:`drop_unused_ledger` drops
    the ledger only while no other sync holds it."""
    if not _shared_server(target):
        if not Ledger(target).has_ledger():  # else six statements to create nothing
            Ledger(target).ensure_ledger()
        return
    key = lock_key(LEDGER_LOCK)
    P = target.P
    target.execute(f"SELECT pg_advisory_lock_shared({P})", [key])
    if Ledger(target).has_ledger():
        return
    target.execute(f"SELECT pg_advisory_unlock_shared({P})", [key])
    target.execute(f"SELECT pg_advisory_lock({P})", [key])
    try:
        Ledger(target).ensure_ledger()
        target.execute(f"SELECT pg_advisory_lock_shared({P})", [key])
    finally:
        with contextlib.suppress(Exception):  # the session may be gone: the lock with it
            target.execute(f"SELECT pg_advisory_unlock({P})", [key])


def drop_unused_ledger(target: Target) -> None:
    """Drop the ledger a failed first sync created, when it holds no replica and no other
    sync is using it (the target is left as the sync found it)."""
    with contextlib.suppress(Exception):  # best effort: the failure is what is reported
        if not _shared_server(target):
            Ledger(target).drop_if_empty()
            return
        key = lock_key(LEDGER_LOCK)
        P = target.P
        target.execute(f"SELECT pg_advisory_unlock_shared({P})", [key])
        if not target.execute(f"SELECT pg_try_advisory_lock({P})", [key])[0][0]:
            return  # another sync holds it
        try:
            Ledger(target).drop_if_empty()
        finally:
            target.execute(f"SELECT pg_advisory_unlock({P})", [key])
