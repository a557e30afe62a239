"""Is this MariaDB server a replica? By default topoff reads replicas only.

A server counts as a replica when ``@@read_only`` is on or replication is configured on
it (``SHOW SLAVE STATUS`` / ``SHOW REPLICA STATUS`` has a row). Anything else is a primary
and is refused (SafetyError, exit 4) unless the caller allows a primary. Reading
``@@read_only`` needs no privilege; the replication status needs REPLICA MONITOR
(MariaDB 10.5.9+) or REPLICATION CLIENT (MySQL, older MariaDB): without it a writable
server is refused as a primary, with a hint saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SafetyError, SourceError, primary_hint

_DENIED = {1227, 1142, 1044, 1045}  # ER_SPECIFIC_ACCESS_DENIED_ERROR and friends


@dataclass(frozen=True)
class Role:
    """What the server said about itself."""

    read_only: bool
    replicating: bool | None  # None: the user may not read the replication status
    version: str

    @property
    def is_replica(self) -> bool:
        return self.read_only or bool(self.replicating)


def _scalar(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        row = cur.fetchone()
        return row[0] if row else None
    finally:
        cur.close()


def replication_state(conn: Any) -> tuple[str, int | None]:
    """(running | stopped | hidden | none, Seconds_Behind_Master): ``stopped`` when a
    replication connection's Seconds_Behind_Master is NULL (its SQL thread stopped, or its
    I/O thread not connected), ``hidden`` when the user may not read the status; the
    largest of several connections (SHOW ALL SLAVES STATUS)."""
    for stmt in ("SHOW ALL SLAVES STATUS", "SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        cur = conn.cursor(dictionary=True)
        try:
            cur.execute(stmt)
            rows = cur.fetchall()
        except my_errors.Error as e:
            if e.errno in _DENIED:
                return "hidden", None
            continue  # a syntax this server does not have: try the next spelling
        finally:
            cur.close()
        if not rows:
            return "none", None
        behind = [r.get("Seconds_Behind_Master", r.get("Seconds_Behind_Source")) for r in rows]
        if any(b is None for b in behind):
            return "stopped", None
        return "running", max(int(b) for b in behind)
    return "hidden", None


def utc_now(conn: Any) -> datetime:
    cur = conn.cursor()
    try:
        cur.execute("SELECT UTC_TIMESTAMP(6)")
        (now,) = cur.fetchone()
    finally:
        cur.close()
    return now.replace(tzinfo=UTC)


def replayed_until(behind: int | None, measured_at: datetime) -> datetime | None:
    """The primary's time up to which a replica ``behind`` seconds back at ``measured_at``
    has applied everything; None when replication is stopped or hidden."""
    if behind is None:
        return None
    # Seconds_Behind_Master counts whole seconds: one more for the part of a second
    return measured_at - timedelta(seconds=behind + 1)


_UNKNOWN = {"stopped": "replication is stopped on the replica (Seconds_Behind_Master is "
            "NULL)", "hidden": "this user cannot see the replica's replication status "
            "(GRANT REPLICA MONITOR, or REPLICATION CLIENT)"}


def complete_as_of(conn: Any, role: Role) -> tuple[datetime | None, str]:
    """The time (the primary's clock, as far as the replica's clock agrees) up to which a
    snapshot begun next on ``conn`` holds every commit, read before it begins: a replica's
    clock less Seconds_Behind_Master, a primary's (or a replica replicating nothing) clock.
    None when replication is stopped or hidden, with why."""
    measured_at = utc_now(conn)
    state, behind = replication_state(conn) if role.is_replica else ("none", None)
    if state == "none":
        return measured_at, ""
    return replayed_until(behind, measured_at), _UNKNOWN.get(state, "")


def server_role(conn: Any) -> Role:
    try:
        read_only = str(_scalar(conn, "SELECT @@global.read_only")).upper() not in (
            "0", "OFF", "NONE")
        version = str(_scalar(conn, "SELECT VERSION()"))
    except my_errors.Error as e:
        raise SourceError(f"cannot read the server's role: {e.msg}",
                          hint="check that the source is a MariaDB or MySQL server") from None
    state, _ = replication_state(conn)
    return Role(read_only=read_only, replicating=None if state == "hidden" else state != "none",
                version=version)


def require_replica(conn: Any, where: str, allow_primary: bool = False,
                    command: str = "topoff export") -> Role:
    """The server's role; a primary is refused unless ``allow_primary`` (the hint names the
    options of ``command``, errors.primary_hint)."""
    role = server_role(conn)
    if role.is_replica or allow_primary:
        return role
    source, allow = primary_hint(command)
    if role.replicating is None:
        hint = ("grant REPLICA MONITOR (or REPLICATION CLIENT) so that topoff can see the "
                f"replication, point {source} at a read-only replica, or {allow}")
    else:
        hint = f"point {source} at a replica (read_only=ON), or {allow}"
    raise SafetyError(f"{where} is a primary (read_only is off and no replication is "
                      "configured): refusing to read it", hint=hint)
