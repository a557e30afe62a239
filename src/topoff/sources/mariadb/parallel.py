"""Parallel readers for a MariaDB source: worker connections in the export's one snapshot,
and big tables read as primary-key ranges.

Workers. ``jobs`` more connections start ``START TRANSACTION WITH CONSISTENT SNAPSHOT``
and report their binlog snapshot position (snapshot.py). When every one reports the
coordinator's position they saw the same commits: they share its snapshot. When the
replica applied a commit in between, the coordinator and the workers start again together
(snapshot.shared_snapshot: a few attempts), and then under a global read lock of at most
about a second when the user has RELOAD. When none of that proves one snapshot (no binlog
to compare, a replica that never stops applying, no RELOAD) the export falls back to one
reader, with a log line: it is slower, never inconsistent.

Ranges. A table of more than ``split_bytes`` whose primary key is one integer column is
read as several ranges ``lo <= key < hi``; the bounds are keys found by ``ORDER BY key
LIMIT 1 OFFSET n`` in the snapshot, each strictly after the one before, so sparse keys
(1, 2, 10^15, 2^63-1) give at most ``parts - 1`` queries and never a walk over the key
space. The first range is open below and the last above: together they cover every row.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SourceError
from topoff.sources.mariadb import snapshot as snap
from topoff.sources.mariadb.connect import MariaTarget, connect_target
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.fields import select_list
from topoff.sources.mariadb.reader import MariaSourceTable, where_sql
from topoff.sources.mariadb.types import literal, quote_ident

log = logging.getLogger("topoff")

#: integer column types whose values are compared and written as Python ints
_INT_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")


@dataclass(frozen=True)
class KeyRange:
    """``lo <= column < hi`` (None: open on that side)."""

    column: str
    lo: int | None
    hi: int | None

    def condition(self) -> str:
        c = quote_ident(self.column)
        conds = ([f"{c} >= {int(self.lo)}"] if self.lo is not None else []) + \
            ([f"{c} < {int(self.hi)}"] if self.hi is not None else [])
        return " AND ".join(conds) or "TRUE"


def _same(a: snap.SnapshotPosition, b: snap.SnapshotPosition) -> bool:
    return a.known and (a.binlog_file, a.binlog_position) == (b.binlog_file, b.binlog_position)


def close_all(conns: list[Any]) -> None:
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def open_workers(target: MariaTarget, coordinator: Any, jobs: int,
                 position: snap.SnapshotPosition
                 ) -> tuple[list[Any], snap.SnapshotPosition]:
    """``jobs`` connections in the coordinator's snapshot, and the (possibly new) shared
    position. ``([], position)``: they could not be shown to share one snapshot; the
    coordinator then holds a snapshot of its own (started again) and reads alone."""
    conns = [connect_target(target) for _ in range(jobs)]
    try:
        proven = snap.positions_prove(coordinator)
        # the usual case, an idle moment: the workers see what the coordinator sees
        if proven and position.known and all(_same(snap.begin(c), position) for c in conns):
            return conns, position
        snap.rollback([coordinator, *conns])
        if proven:
            try:
                return conns, snap.shared_snapshot([coordinator, *conns])
            except SourceError as e:
                reason = e.message
        else:
            reason = ("a replica without log_slave_updates (or whose replication status "
                      "this user cannot see): its binlog position does not move with the "
                      "commits it applies")
        lock = connect_target(target)
        try:
            return conns, snap.shared_snapshot([coordinator, *conns], lock_conn=lock)
        except SourceError as e:
            reason += f"; {e.message}"
        finally:
            close_all([lock])
    except BaseException:
        snap.rollback([coordinator])
        close_all(conns)
        raise
    close_all(conns)
    snap.rollback([coordinator])
    position = snap.shared_snapshot([coordinator])
    log.warning("reading with one connection: the workers could not be shown to share one "
                "snapshot (%s)", reason)
    return [], position


def _one(conn: Any, sql: str, what: str) -> Any:
    cur = None
    try:
        cur = conn.cursor()
        cur.execute(sql)
        row = cur.fetchone()
        if cur.with_rows:
            cur.fetchall()
    except my_errors.Error as e:
        raise read_failed(f"planning the parallel read of {what}", e,
                          hint="check the connection to the source") from None
    finally:
        if cur is not None:
            with contextlib.suppress(my_errors.Error):
                cur.close()
    return None if row is None else row[0]


def table_bytes(conn: Any, t: MariaSourceTable) -> int:
    """The table's data size from the server's statistics (an estimate)."""
    assert t.maria is not None
    size = _one(conn, "SELECT DATA_LENGTH FROM information_schema.TABLES WHERE "
                f"TABLE_SCHEMA = {literal(t.maria.schema)} AND "
                f"TABLE_NAME = {literal(t.maria.name)}", t.qualified)
    return int(size or 0)


def int_key(t: MariaSourceTable) -> str | None:
    """The table's primary key when it is one integer column (what ranges split on)."""
    assert t.maria is not None
    if len(t.maria.primary_key) != 1:
        return None
    name = t.maria.primary_key[0]
    native = t.maria.column(name).native.lower()
    return name if native.split("(")[0].split()[0] in _INT_TYPES else None


def key_ranges(conn: Any, t: MariaSourceTable, parts: int) -> list[KeyRange]:
    """Up to ``parts`` ranges of about the same number of rows (from the row estimate)."""
    assert t.maria is not None
    key = int_key(t)
    if key is None or parts < 2:
        return []
    step = max(1, int(t.est_rows) // parts)
    k = quote_ident(key)
    bounds: list[int] = []
    for _ in range(parts - 1):
        after = f" WHERE {k} >= {bounds[-1]}" if bounds else ""
        found = _one(conn, f"SELECT {k} FROM {t.maria.qualified}{after} ORDER BY {k} "
                           f"LIMIT 1 OFFSET {step}", t.qualified)
        if found is None:
            break
        value = int(found)
        if bounds and value <= bounds[-1]:  # cannot happen with a unique key; never loop
            break
        bounds.append(value)
    if not bounds:
        return []
    edges: list[int | None] = [None, *bounds, None]
    return [KeyRange(key, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def part_sql(t: MariaSourceTable, part: KeyRange) -> str:
    """The SELECT of one range's rows (with the table's filter, when it has one)."""
    assert t.maria is not None
    where, _ = where_sql(t, None)
    cond = part.condition()
    where = f"{where} AND {cond}" if where else f" WHERE {cond}"
    return f"SELECT {select_list(t.exported)} FROM {t.maria.qualified}{where}"


def connection_ids(conns: list[Any]) -> list[int]:
    """The server's ids of ``conns`` (read while they are idle, for :func:`kill_queries`)."""
    ids = []
    for c in conns:
        with contextlib.suppress(Exception):
            ids.append(int(c.connection_id))
    return ids


def kill_queries(target: MariaTarget, ids: list[int]) -> None:
    """Interrupt whatever the connections ``ids`` are running (another worker failed),
    from a connection of its own: the workers' own are busy reading."""
    if not ids:
        return
    with contextlib.suppress(Exception):
        killer = connect_target(target)
        try:
            cur = killer.cursor()
            for i in ids:
                with contextlib.suppress(my_errors.Error):
                    cur.execute(f"KILL QUERY {int(i)}")
        finally:
            close_all([killer])
