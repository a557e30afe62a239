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


def _replication_rows(conn: Any) -> int | None:
    """Rows of the replication status, None when the user may not read it."""
    for stmt in ("SHOW ALL SLAVES STATUS", "SHOW REPLICA STATUS", "SHOW SLAVE STATUS"):
        cur = conn.cursor()
        try:
            cur.execute(stmt)
            return len(cur.fetchall())
        except my_errors.Error as e:
            if e.errno in _DENIED:
                return None
            continue  # a syntax this server does not have: try the next spelling
        finally:
            cur.close()
    return None


def server_role(conn: Any) -> Role:
    try:
        read_only = str(_scalar(conn, "SELECT @@global.read_only")).upper() not in (
            "0", "OFF", "NONE")
        version = str(_scalar(conn, "SELECT VERSION()"))
    except my_errors.Error as e:
        raise SourceError(f"cannot read the server's role: {e.msg}",
                          hint="check that the source is a MariaDB or MySQL server") from None
    rows = _replication_rows(conn)
    return Role(read_only=read_only, replicating=None if rows is None else rows > 0,
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
