"""What one refresh reads from a PostgreSQL source for a target that is not SQL (an Iceberg
table): the same read plan as the SQL path (read.py's Refresh, change.py's verdicts, the
same snapshot and the same next state), handed over as a stream of COPY's CSV blocks and
what those rows replace, instead of being written through a :class:`Target`.

* inserter/updater with a key: the refresh's rows (above the watermark, and those committed
  since the previous run inside the lookback window) replace the rows with their keys;
* without a key: the whole lookback window is read and replaces that window
  (``far < cursor <= upper``);
* snapshot: unchanged (the xmin rule or the content hash, change.py) writes the state
  only; changed, every row is read and replaces the table whole;
* a first load appends into the empty table; a repull reads every row and replaces the
  table whole; a ranged repull (``--from``/``--to``) reads ``lo <= cursor <= hi`` and
  replaces those rows by key (no key: that range), the state as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from topoff.replicate import change, stream
from topoff.replicate.describe import TableInfo
from topoff.replicate.read import Refresh, snapshot_marks
from topoff.replicate.source import Request
from topoff.replicate.state import TableState


@dataclass
class Pull:
    status: str  # ok | unchanged
    replace: str  # all | window | keys | none | state (targets/iceberg/replica_write.py)
    blocks: Iterator[bytes]
    counter: list[int]  # rows read, once ``blocks`` is consumed
    finish: Callable[[int], TableState]  # the next state, given the rows written
    lo: str | None = None
    hi: str | None = None
    expect: int | None = None  # the rows the snapshot's count says the read holds
    cursor: str | None = None  # the watermark this refresh reads up to
    lo_inclusive: bool = False  # window: ``lo <= cursor`` (a ranged repull), not ``lo <``


def is_ranged(request: Request) -> bool:
    """A repull of a cursor range (--from/--to), which leaves the state as it is."""
    return request.kind == "repull" and (request.lo is not None or request.hi is not None)


def _text(conn: psycopg.Connection, expr: sql.Composable) -> str | None:
    row = conn.execute(sql.SQL("SELECT ({})::text").format(expr)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def pull(conn: psycopg.Connection, info: TableInfo, state: TableState, request: Request,
         first: bool, force: bool) -> Pull:
    """The refresh of ``info`` from ``state``, in ``conn``'s snapshot. ``force``: a snapshot
    table copied whole even when unchanged (a repull, a column change)."""
    if info.table.method == "snapshot":
        return _snapshot(conn, info, state, force or request.kind == "repull", first)
    if is_ranged(request) and not first:
        from topoff.replicate.pg_source import range_read

        read = range_read(conn, info, request)
        if read is None:  # an empty table: nothing to replace
            return Pull("ok", "state", iter(()), [0], lambda _: state)
        stmt, lo, hi = read
        counter = [0]
        return Pull("ok", "keys" if info.key else "window", stream.copy(conn, stmt, counter),
                    counter, lambda _: state, lo, hi, lo_inclusive=True)
    whole = request.kind == "repull"
    if whole:
        state = TableState()
    keyed = bool(info.key)
    r = Refresh(conn, info, state, whole_window=not keyed)
    r.single = True
    lo = _text(conn, r.far) if r.far is not None else None
    counter = [0]
    if r.upper is None:  # an empty table: nothing to read, nothing to replace
        return Pull("ok", "state", iter(()), counter, r.next_state)
    blocks = stream.copy(conn, (b.statement for b in r.batches()), counter)
    mode = "none" if first else "all" if whole else "keys" if keyed else "window"
    return Pull("ok", mode, blocks, counter, r.next_state, lo, r.upper, cursor=r.upper)


def _snapshot(conn: psycopg.Connection, info: TableInfo, state: TableState, force: bool,
              first: bool) -> Pull:
    marks = snapshot_marks(conn)
    sig = change.signature(conn, info)
    new = TableState(xmin=marks.xmin, run_at=marks.taken_at, rows=0, relation=sig)
    verdict = None if first or force else change.by_xmin(conn, info, state, sig, marks.xmax)
    count: int | None = None
    content: str | None = None
    if verdict is not None:
        if not verdict.changed:  # the very same rows: the stored hash (if any) still holds
            kept = replace(new, content=state.content)
            return Pull("unchanged", "state", iter(()), [0], lambda _: kept)
        count, content = verdict.rows, f"{verdict.rows}:"
    elif sig is None or (not first and not force and change.has_hash(state.content)):
        found = change.detect(conn, info, state.content)
        if not found.changed and not force and not first:
            kept = replace(new, content=found.content)
            return Pull("unchanged", "state", iter(()), [0], lambda _: kept)
        count, content = found.rows, found.content
    counter = [0]
    blocks = stream.copy(conn, change.copy_all(info), counter)

    def finish(rows: int) -> TableState:
        return replace(new, rows=rows, content=content or f"{rows}:")

    return Pull("ok", "none" if first else "all", blocks, counter, finish, expect=count)
