"""One consistent snapshot shared by every worker, and its binlog position.

Each connection runs ``SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ`` and
``START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY``. MariaDB then reports where in
its binlog that snapshot stands (status ``Binlog_snapshot_file`` / ``_position``, the same
for every transaction that saw the same commits). Workers share the snapshot when they all
report the coordinator's position (mydumper's rule): without a lock topoff checks exactly
that and retries a few times, then fails; with a lock connection (``FLUSH TABLES WITH READ
LOCK``, needs RELOAD) commits stop while the workers start, for a second at most.

The position needs the binlog on the server read (a replica with ``log_slave_updates``);
without it more than one worker can only share a snapshot under the lock.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SourceError
from topoff.sources.mariadb.safety import replication_state

MAX_LOCK_SECONDS = 1.0


@dataclass(frozen=True)
class SnapshotPosition:
    """Where the snapshot stands in the server's binlog (None: the binlog is off)."""

    binlog_file: str | None
    binlog_position: int | None
    gtid: str | None = None  # @@gtid_binlog_pos at the snapshot, when it could be pinned

    def as_dict(self) -> dict[str, Any]:
        return {"engine": "mariadb", "binlog_file": self.binlog_file,
                "binlog_position": self.binlog_position, "gtid": self.gtid}

    @property
    def known(self) -> bool:
        return bool(self.binlog_file) and self.binlog_position is not None


def _exec(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return [tuple(v.decode() if isinstance(v, bytes | bytearray) else v for v in r)
                for r in cur.fetchall()] if cur.with_rows else []
    finally:
        cur.close()


def begin(conn: Any) -> SnapshotPosition:
    """Start a consistent read-only snapshot on ``conn``; its binlog position."""
    try:
        _exec(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _exec(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        status = dict(_exec(conn, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'"))
    except my_errors.Error as e:
        raise SourceError(f"cannot start a consistent snapshot: {e.msg}",
                          hint="the source must be MariaDB 10.3+ or MySQL 8 with InnoDB") from None
    file = str(status.get("Binlog_snapshot_file") or "") or None
    pos_text = str(status.get("Binlog_snapshot_position") or "")
    pos = int(pos_text) if file and pos_text.isdigit() else None
    return SnapshotPosition(file, pos)


def positions_prove(conn: Any) -> bool:
    """Whether two transactions with the same binlog snapshot position saw the same commits
    on this server: every commit it applies goes to its binlog (a server that replicates
    nothing, or a replica with ``log_slave_updates``). A replica without it applies its
    primary's commits unlogged: its position stands still while they change what a new
    snapshot sees. False when that cannot be read."""
    try:
        (updates,) = _exec(conn, "SELECT @@global.log_slave_updates")[0]
    except (my_errors.Error, IndexError):
        return False
    if str(updates).upper() in ("1", "ON"):
        return True
    return replication_state(conn)[0] == "none"


def _pin_gtid(conn: Any, pos: SnapshotPosition) -> SnapshotPosition:
    """The GTID position matching ``pos``, when the binlog has not moved since."""
    try:
        (gtid,) = _exec(conn, "SELECT @@global.gtid_binlog_pos")[0]
        master = _exec(conn, "SHOW MASTER STATUS")
    except (my_errors.Error, IndexError):
        return pos
    if master and (str(master[0][0]), int(master[0][1])) == (pos.binlog_file,
                                                              pos.binlog_position):
        return SnapshotPosition(pos.binlog_file, pos.binlog_position, str(gtid) or None)
    return pos


def rollback(conns: list[Any]) -> None:
    """End the snapshots (a cleanup: a connection the server dropped raises the C
    extension's own error, which is no ``mysql.connector`` error, and nothing is to do)."""
    for c in conns:
        with contextlib.suppress(Exception):
            c.rollback()


def shared_snapshot(conns: list[Any], lock_conn: Any | None = None,
                    attempts: int = 5) -> SnapshotPosition:
    """Start one snapshot on every connection (``conns[0]`` is the coordinator).

    Returns the shared position; raises SourceError when the workers could not be shown to
    share it (the binlog kept moving, or no binlog to compare and no lock).
    """
    if lock_conn is not None:
        return _under_lock(conns, lock_conn)
    last: list[SnapshotPosition] = []
    for attempt in range(attempts):
        last = [begin(c) for c in conns]
        first = last[0]
        if len(conns) > 1 and not first.known:
            rollback(conns)
            raise SourceError(
                "cannot prove that the workers share one snapshot: the source has no binlog",
                hint="enable log_bin (and log_slave_updates on a replica), use one job, or "
                     "give a lock connection (RELOAD privilege)")
        if all(p == first for p in last):
            return _pin_gtid(conns[0], first)
        rollback(conns)
        time.sleep(0.05 * (attempt + 1))
    raise SourceError(
        f"the workers' snapshots differ after {attempts} attempts (binlog positions "
        f"{sorted({(p.binlog_file, p.binlog_position) for p in last}, key=str)})",
        hint="the source commits too often to start the workers together: use fewer jobs "
             "or a lock connection (RELOAD privilege)")


def _under_lock(conns: list[Any], lock_conn: Any) -> SnapshotPosition:
    started = time.monotonic()
    try:
        _exec(lock_conn, "SET SESSION lock_wait_timeout = 1")
        _exec(lock_conn, "FLUSH TABLES WITH READ LOCK")
    except my_errors.Error as e:
        raise SourceError(f"cannot take the global read lock: {e.msg}",
                          hint="grant RELOAD, or export without a lock connection") from None
    try:
        positions = [begin(c) for c in conns]
        try:
            (gtid,) = _exec(lock_conn, "SELECT @@global.gtid_binlog_pos")[0]
        except my_errors.Error:
            gtid = None
    finally:
        _exec(lock_conn, "UNLOCK TABLES")
    held = time.monotonic() - started
    if held > MAX_LOCK_SECONDS * 5:
        rollback(conns)
        raise SourceError(f"the global read lock was held {held:.1f}s",
                          hint="the source is too busy for a short lock: retry later")
    first = positions[0]
    return SnapshotPosition(first.binlog_file, first.binlog_position, str(gtid or "") or None)
