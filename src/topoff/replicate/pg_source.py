"""A PostgreSQL source behind the replicate engine's source interface (source.py): the
snapshot (read.py), the table's description (describe.py), the inserter/updater refresh
(read.py's keyset batches, the xmin rule, fastcopy.py's binary COPY where safe) and the
snapshot-method refresh (snapshot.py, change.py).

The inserter/updater refresh, inside the caller's target transaction:

* first run: the rows straight into the table made in that transaction;
* with a key: the refresh's rows merged by key (upsert); an inserter whose new rows were
  never read copies them straight in (:func:`_fast_path`), the re-read ones merged;
* without a key: the whole lookback window read and replaced in the target (ranges.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

from topoff.errors import ConfigError
from topoff.pgtypes import parse_type
from topoff.replicate import fastcopy, overlap, parallel, stream
from topoff.replicate.attached import attached_unread
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.describe import TableInfo, bound_hint, describe
from topoff.replicate.ranges import replace_range
from topoff.replicate.read import Refresh, open_measured
from topoff.replicate.shape import Index, source_indexes
from topoff.replicate.snapshot import refresh_snapshot
from topoff.replicate.source import Request
from topoff.replicate.state import TableState
from topoff.targets.base import TableDef, Target
from topoff.targets.merge import merge


class PostgresSession:
    """One snapshot of a PostgreSQL source (a standby unless allowed), for one refresh."""

    engine = "postgresql"

    def __init__(self, source: ReplicateSource) -> None:
        self.conn, self.as_of, self.as_of_why, self.receiver_hidden_from = open_measured(
            source.url, source.allow_primary)

    def describe(self, t: ReplicateTable) -> TableInfo:
        return describe(self.conn, t)

    def incremental(self, engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
                    request: Request, first: bool, fast: bool) -> tuple[int, TableState]:
        return _incremental(engine, self.conn, info, tdef, state, request, first, fast)

    def snapshot(self, engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
                 force: bool, first: bool, fast: bool) -> tuple[str, int, TableState]:
        return refresh_snapshot(engine, self.conn, info, tdef, state, force, first, fast)

    def attached_unread(self, info: TableInfo, state: TableState) -> str | None:
        return attached_unread(self.conn, info, state)

    def indexes(self, info: TableInfo) -> list[Index]:
        return source_indexes(self.conn, info)

    def finish(self) -> None:
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _statements(r: Refresh) -> Callable[[str], Iterator[sql.Composable]]:
    def statements(fmt: str) -> Iterator[sql.Composable]:
        r.format, r.single = fmt, True
        return (b.statement for b in r.batches())
    return statements


def _staged(engine: Target, tdef: TableDef, r: Refresh,
            counter: list[int]) -> AbstractContextManager[str]:
    """The refresh's rows staged for a merge (binary COPY where safe: fastcopy.py)."""
    return fastcopy.stage(engine, tdef, list(r.info.columns), r.conn, _statements(r), counter,
                          fastcopy.binary_ok(engine, r.conn, r.info, tdef))


def _text(conn: psycopg.Connection, expr: sql.Composable) -> str | None:
    row = conn.execute(sql.SQL("SELECT ({})::text").format(expr)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _fast_path(engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
               request: Request) -> bool:
    """Whether an inserter refresh may COPY its new rows straight into the table: rows
    above the stored watermark were never read, so only a row deleted and inserted again
    under the same key can already be there, and the key index refuses it (the refresh
    then runs again the slow way, see :func:`refresh`)."""
    return (info.table.method == "inserter" and bool(info.key) and bool(tdef.primary_key)
            and state.cursor is not None and request.kind == "refresh"
            and engine.capabilities.primary_keys)


def _split(engine: Target, conn: psycopg.Connection, info: TableInfo, tdef: TableDef,
           state: TableState) -> tuple[int, TableState]:
    """An inserter's refresh in two reads of the same snapshot at once: the new rows
    (above the watermark) copied straight into the table, while a second connection
    reads the rows read again (at or below it: the boundary, late commits) aside; those
    are then staged and merged by key (no key is in both parts: one snapshot)."""
    cols = list(info.columns)
    old = Refresh(conn, info, state, part="old")
    if old.upper is None:
        return 0, old.next_state(0)
    binary = fastcopy.binary_ok(engine, conn, info, tdef)
    fmt = "binary" if binary else "csv"
    new = Refresh(conn, info, state, part="new")
    # the read again runs aside (overlap.py), its window scanned while the new rows move
    with overlap.Aside(conn, list(_statements(old)(fmt)), binary) as aside:
        counter = [0]
        moved = fastcopy.copy_into(engine, tdef, cols, conn, _statements(new), counter, binary)
        with fastcopy.stage_blocks(engine, tdef, cols, aside.blocks(), binary) as stage:
            moved += merge(engine, tdef, cols, stage, "upsert-unique")
    return moved, new.next_state(counter[0] + aside.counter[0])


def _incremental(engine: Target, conn: psycopg.Connection, info: TableInfo, tdef: TableDef,
                 state: TableState, request: Request, first: bool,
                 fast: bool = True) -> tuple[int, TableState]:
    cols = list(info.columns)
    if first:  # a table made in this transaction: straight in, nothing to merge
        r = Refresh(conn, info, state)
        counter = [0]
        moved = parallel.first_copy(engine, tdef, conn, info, r.condition, _statements(r), counter)
        return moved, r.next_state(counter[0])
    if request.kind == "repull" and (request.lo is not None or request.hi is not None):
        return _repull_range(engine, conn, info, tdef, state, request), state
    if request.kind == "repull":
        state = TableState()
    if fast and _fast_path(engine, info, tdef, state, request):
        return _split(engine, conn, info, tdef, state)
    whole = not info.key
    r = Refresh(conn, info, state, whole_window=whole)
    counter = [0]
    with _staged(engine, tdef, r, counter) as stage:
        if r.upper is None:
            moved = 0
        elif whole:
            lo = _text(conn, r.far) if r.far is not None else None
            moved = replace_range(engine, tdef, stage, cols, lo, r.upper, False)
        else:  # a key: unique in the source's snapshot, and the table's key index
            moved = merge(engine, tdef, cols, stage, "upsert-unique" if fast else "upsert")
    return moved, r.next_state(counter[0])


def range_read(conn: psycopg.Connection, info: TableInfo, request: Request
               ) -> tuple[sql.Composable, str | None, str] | None:
    """A ranged repull's COPY of ``lo <= cursor <= hi`` (``--from``/``--to``, typed by the
    source; no ``--to``: up to ``max(cursor)``) and its bounds as the cursor's text; None
    when the table is empty. A bound that is no value of the cursor is a ConfigError."""
    t = info.table
    if not t.cursor:
        raise ConfigError(f"{t.qualified} is a snapshot table: it has no cursor range",
                          hint="repull it whole (without --from and --to)")
    c = sql.Identifier(t.cursor)
    parts: list[sql.Composable] = []
    for op, value in ((">=", request.lo), ("<=", request.hi)):
        if value is not None:
            parts.append(sql.SQL("{} {} {}").format(c, sql.SQL(op), sql.Literal(value)))
    if t.where:
        parts.append(sql.SQL("({})").format(sql.SQL(t.where)))  # checked by describe
    stmt = sql.SQL("COPY (SELECT {cols} FROM {t} WHERE {cond}) TO STDOUT WITH (FORMAT csv)"
                   ).format(cols=sql.SQL(", ").join(sql.Identifier(x.name) for x in info.columns),
                            t=info.ident, cond=sql.SQL(" AND ").join(parts))
    ctype = sql.SQL(parse_type(next(x.type for x in info.columns if x.name == t.cursor)).ddl())
    try:  # the bounds as the cursor's values: a mistyped one is a ConfigError
        lo = _text(conn, sql.SQL("{}::{}").format(sql.Literal(request.lo), ctype)) \
            if request.lo is not None else None
        hi = _text(conn, sql.SQL("{}::{}").format(sql.Literal(request.hi), ctype)) \
            if request.hi is not None else \
            _text(conn, sql.SQL("(SELECT max({}) FROM {})").format(c, info.ident))
    except psycopg.DataError as e:
        raise ConfigError(f"--from/--to is not a value of {t.qualified}.{t.cursor}: "
                          f"{(e.diag.message_primary or str(e)).splitlines()[0]}",
                          hint=bound_hint(info.cursor_kind in ("int", "numeric"))) from None
    if request.lo is not None and request.hi is not None and _text(conn, sql.SQL(
            "{}::{} > {}::{}").format(sql.Literal(lo), ctype, sql.Literal(hi), ctype)
            ) == "true":
        raise ConfigError(f"--from {request.lo[:40]} is after --to {request.hi[:40]}: no "
                          f"row of {t.qualified} is in that range", hint="swap the two bounds")
    if hi is None:  # an empty table
        return None
    return stmt, lo, hi


def _repull_range(engine: Target, conn: psycopg.Connection, info: TableInfo, tdef: TableDef,
                  state: TableState, request: Request) -> int:
    read = range_read(conn, info, request)
    if read is None:
        return 0
    stmt, lo, hi = read
    cols = list(info.columns)
    counter = [0]
    with engine.stage_csv(tdef, cols, stream.copy(conn, stmt, counter)) as stage:
        if info.key:
            return merge(engine, tdef, cols, stage, "upsert")
        return replace_range(engine, tdef, stage, cols, lo, hi, True)


