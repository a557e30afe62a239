"""One refresh read of an inserter/updater table, in ONE snapshot of the source.

The snapshot is REPEATABLE READ, READ ONLY on a standby (topoff.safety refuses a primary
unless allowed). Inside it, in this order: the snapshot's xmin and xmax
(``pg_current_snapshot()``, 64-bit), the upper bound ``max(cursor)`` (the same snapshot as
the rows, so no row below it can be missed and none above it is read), then the rows in
keyset batches by ``(cursor, key)``, each streamed by ``COPY (SELECT ...) TO STDOUT`` as
CSV (the dataset's text form, under topoff's session settings) with bounded memory.

Without a key, a batch holds whole cursor groups (mimeo's rule); a group larger than
``batch_rows`` is a SourceError naming the value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from topoff.errors import SourceError
from topoff.export.copy_out import copy_rows
from topoff.pgtypes import parse_type
from topoff.replicate.describe import TableInfo
from topoff.replicate.fastcopy import select_list
from topoff.replicate.state import TableState
from topoff.replicate.watermark import (
    INT_FIRST,
    before_first,
    bound,
    committed_since,
    zone_or_none,
)
from topoff.safety import begin_statement, check_standby, complete_as_of
from topoff.sources.postgres import connect

Position = tuple[str, ...]
log = logging.getLogger("topoff")


@dataclass(frozen=True)
class Marks:
    """The snapshot's transaction horizon (64-bit IDs) and the source's clock."""

    xmin: int
    xmax: int
    taken_at: datetime


def open_snapshot(url: str, allow_primary: bool,
                  application_name: str = "topoff replicate") -> psycopg.Connection:
    """Connect (autocommit), refuse a primary unless allowed, and begin the snapshot."""
    return open_measured(url, allow_primary, application_name)[0]


def open_measured(url: str, allow_primary: bool, application_name: str = "topoff replicate"
                  ) -> tuple[psycopg.Connection, datetime | None, str, str | None]:
    """:func:`open_snapshot`, and the primary's time up to which the snapshot is complete
    (read just before it begins: topoff.safety.complete_as_of), or None and why not; and
    the role the standby's WAL receiver is hidden from when that time is only the last
    replayed commit's for that reason (a lag counted from it is an upper bound)."""
    conn = connect(url, application_name=application_name, autocommit=True)
    try:
        in_recovery = check_standby(conn, url, allow_primary, application_name)
        as_of, why, hidden = complete_as_of(conn, in_recovery)
        conn.execute(begin_statement(in_recovery))
    except BaseException:
        conn.close()
        raise
    return conn, as_of, why, conn.info.user if hidden else None


def snapshot_marks(conn: psycopg.Connection) -> Marks:
    if conn.info.server_version >= 130000:
        q = ("SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint, "
             "now() FROM pg_current_snapshot() AS s")
    else:
        q = ("SELECT txid_snapshot_xmin(s), txid_snapshot_xmax(s), now() "
             "FROM txid_current_snapshot() AS s")
    row = conn.execute(q).fetchone()
    assert row is not None
    return Marks(int(row[0]), int(row[1]), row[2])


@dataclass(frozen=True)
class Batch:
    statement: sql.Composable  # COPY (SELECT ...) TO STDOUT (FORMAT csv)
    #: the (cursor, key) position of the batch's last row; None for the last batch
    last: Position | None


class Refresh:
    """The read plan of one refresh; ``conn`` is inside the snapshot (open_snapshot)."""

    def __init__(self, conn: psycopg.Connection, info: TableInfo, state: TableState,
                 whole_window: bool = False, part: str | None = None) -> None:
        """``whole_window``: read every row of the lookback window, not only those committed
        since the previous run (a table without a key replaces that window whole).
        ``part``: only the rows above the stored watermark (``"new"``: never read before)
        or only those at or below it (``"old"``: read again); None: both."""
        t = info.table
        self.whole_window = whole_window
        if part not in (None, "new", "old") or (part and state.cursor is None):
            raise ValueError(f"bad part {part!r} for a refresh from {state.cursor!r}")
        self.part = part
        #: the lower end of the lookback window (None on a first run), for the caller
        self.far: sql.Composable | None = None
        if not t.cursor or info.cursor_kind is None:
            raise ValueError(f"{t.qualified} has no cursor")
        self.conn, self.info, self.state = conn, info, state
        self.cursor = sql.Identifier(t.cursor)
        self.order = [t.cursor, *(k for k in info.key if k != t.cursor)]
        self.marks = snapshot_marks(conn)
        row = conn.execute(sql.SQL("SELECT max({c})::text FROM {t}{w}").format(
            c=self.cursor, t=info.ident, w=self._operator_where(" WHERE "))).fetchone()
        self.upper: str | None = self._not_ahead(row[0] if row else None)
        self.condition = self._condition()
        #: the COPY format of the batches: "csv", or "binary" (fastcopy.py)
        self.format = "csv"
        #: with a key, one COPY of every row instead of keyset batches (a caller that
        #: takes all the rows in one target transaction: batches would change nothing)
        self.single = False

    def _no_endless_upper(self) -> None:
        """A largest cursor value nothing can follow (infinity, NaN) would become a watermark
        no later row is ever above: refuse (the refresh rolls back), rather than stop
        reading new rows."""
        if self.upper is None or self.upper.lower() not in ("infinity", "nan"):
            return
        t = self.info.table
        test = (f"isfinite({t.cursor})" if self.info.cursor_kind in ("timestamptz",
                "timestamp", "date") else f"{t.cursor} <> 'NaN'")
        raise SourceError(
            f"{t.qualified}: cursor column {t.cursor} holds {self.upper}, which no later "
            "value is above: the table would never take a new row",
            hint=f"leave such rows out with a row condition, e.g. where = \"{test}\" in "
            f"[replicate.sources.{t.source}.tables.{t.name}]")

    def _not_ahead(self, found: str | None) -> str | None:
        """``max(cursor)``, or the source's clock at the snapshot where a time cursor's
        largest value lies ahead of it (a bogus far date would become a watermark every
        later row is below): rows ahead of the clock are read once their time has come.
        A ``timestamp`` or ``date`` cursor is read in its zone (cursor_timezone, else the
        server's TimeZone; a zone Python does not know: UTC)."""
        kind = self.info.cursor_kind
        if found is None or kind not in ("timestamptz", "timestamp", "date") \
                or found.lower() in ("infinity", "-infinity"):
            return found  # integers have no clock; infinity is refused (next_state)
        now = self.marks.taken_at
        if kind != "timestamptz":
            zone = self._zone()
            now = (now.astimezone(zone) if zone is not None else now).replace(tzinfo=None)
        clock = now.date().isoformat() if kind == "date" else now.isoformat(sep=" ")
        cast = sql.SQL(kind)
        ahead, far, text = self.conn.execute(sql.SQL(
            "SELECT {f}::{k} > {n}::{k}, {f}::{k} > {n}::{k} + interval '5 minutes', "
            "({n}::{k})::text").format(f=sql.Literal(found), n=sql.Literal(clock), k=cast)
        ).fetchone() or (False, False, None)
        if not ahead:
            return found
        t = self.info.table
        (log.warning if far else log.debug)(
            "%s.%s: cursor values up to %s lie ahead of the source's clock (%s%s): the "
            "watermark stops there, and those rows are read once their time has come",
            t.source, t.qualified, found, text,
            "" if kind == "timestamptz" else f" in {t.cursor_timezone or 'its TimeZone'}")
        return str(text)

    def _operator_where(self, glue: str) -> sql.Composable:
        w = self.info.table.where  # checked by describe.check_where
        return sql.SQL(glue + "({})").format(sql.SQL(w)) if w else sql.SQL("")

    def _zone(self) -> ZoneInfo | None:
        name = self.info.table.cursor_timezone
        if name is None:
            row = self.conn.execute(
                "SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'").fetchone()
            name = row[0] if row else None
        return zone_or_none(name)

    def _first(self) -> int | None:
        """The first value of an integer cursor's type (None for other types)."""
        t = self.info.table
        ctype = next((c.type for c in self.info.columns if c.name == t.cursor), None)
        if self.info.cursor_kind != "int" or ctype is None:
            return None
        return INT_FIRST.get(parse_type(ctype).base)

    def _condition(self) -> sql.Composable:
        """Rows of this refresh: below the snapshot's max(cursor); above the watermark, or
        committed since the previous run inside the lookback window (a view, or a table
        without a key: the whole lookback window)."""
        t, c = self.info.table, self.cursor
        parts: list[sql.Composable] = [sql.SQL("{} <= {}").format(c, sql.Literal(self.upper))]
        w = self.state.cursor
        if w is not None:
            kind = self.info.cursor_kind or ""
            zone = self._zone() if kind == "timestamp" else None
            lookback = max(t.lookback, t.boundary)
            far = None if isinstance(lookback, timedelta) and \
                before_first(self.conn, w, lookback, kind) else \
                bound(w, lookback, kind, zone, self._first())
            self.far = far
            if far is not None:  # None: the window reaches back past the type's first value
                parts.append(sql.SQL("{} > {}").format(c, far))
            if self.info.has_xmin and not self.whole_window:
                # the rows above the watermark, and those committed since the previous run
                # (late commits, updates, a repeated hour) within the lookback; a row at or
                # below the watermark with an older xmin was visible to the previous run,
                # which read it: no boundary to read again (unless xmin cannot tell)
                parts.append(sql.SQL("({c} > {w} OR {since})").format(
                    c=c, w=sql.Literal(w),
                    since=committed_since(self.state.xmin, self.marks.xmax)))
            if self.part is not None:
                op = ">" if self.part == "new" else "<="
                parts.append(sql.SQL("{} {} {}").format(c, sql.SQL(op), sql.Literal(w)))
        if t.where:
            parts.append(self._operator_where(""))
        return sql.SQL(" AND ").join(parts)

    def _pos(self, names: list[str]) -> sql.Composable:
        return sql.SQL("ROW({})").format(sql.SQL(", ").join(map(sql.Identifier, names)))

    def _after(self, after: Position | None, names: list[str]) -> sql.Composable:
        if after is None:
            return sql.SQL("true")
        return sql.SQL("{} > ROW({})").format(
            self._pos(names), sql.SQL(", ").join(map(sql.Literal, after)))

    def _copy(self, extra: sql.Composable, ordered: bool = True) -> sql.Composable:
        cols = select_list(self.info.columns, self.format == "binary")
        order = sql.SQL(" ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, self.order))) if ordered else sql.SQL("")
        return sql.SQL("COPY (SELECT {cols} FROM {t} WHERE {cond} AND {extra}{order}) "
                       "TO STDOUT WITH (FORMAT {fmt})").format(
            cols=cols, t=self.info.ident, cond=self.condition, extra=extra, order=order,
            fmt=sql.SQL("binary" if self.format == "binary" else "csv"))

    def batches(self, after: Position | None = None) -> Iterator[Batch]:
        """Keyset batches of at most ``batch_rows`` rows, each starting after the previous
        one's last (cursor, key); ``after`` resumes an interrupted refresh."""
        if self.upper is None:
            return
        names, n = self.order, self.info.table.batch_rows
        self._no_null_keys()
        if self.info.key and (self.single or self.part == "old"):
            # one COPY, in no particular order: no walk through the rows to find batch
            # ends, and the planner picks the scan (a key makes the order irrelevant)
            yield Batch(self._copy(sql.SQL("true"), ordered=False), None)
            return
        # output names p0, p1...: ORDER BY must sort by the columns, not by their text
        texts = sql.SQL(", ").join(sql.SQL("{}::text AS {}").format(
            sql.Identifier(k), sql.Identifier(f"p{i}")) for i, k in enumerate(names))
        while True:
            start = self._after(after, names)
            rows = self.conn.execute(sql.SQL(
                "SELECT {texts} FROM {t} WHERE {cond} AND {start} ORDER BY {order} "
                "OFFSET {skip} LIMIT 2").format(
                    texts=texts, t=self.info.ident, cond=self.condition, start=start,
                    order=sql.SQL(", ").join(map(sql.Identifier, names)),
                    skip=sql.Literal(n - 1))).fetchall()
            if not rows:  # fewer than batch_rows left: the last COPY (maybe of no row)
                yield Batch(self._copy(start), None)
                return
            last: Position = tuple(rows[0])
            if any(v is None for v in last):
                raise SourceError(
                    f"{self.info.table.qualified}: a key or cursor column is NULL in a row "
                    "inside the refresh", hint="use NOT NULL key columns (set key = [...])")
            if self.info.key or len(rows) == 1 or rows[1][0] != last[0]:
                yield Batch(self._copy(sql.SQL("{} AND {} <= ROW({})").format(
                    start, self._pos(names), sql.SQL(", ").join(map(sql.Literal, last)))), last)
                after = last
                continue
            # no key, and the group at the batch's end goes on: stop before that group
            (first,) = self.conn.execute(sql.SQL(  # type: ignore[misc]
                "SELECT min({c})::text FROM {t} WHERE {cond} AND {start}").format(
                    c=self.cursor, t=self.info.ident, cond=self.condition,
                    start=start)).fetchone()
            if first == last[0]:
                raise SourceError(
                    f"{self.info.table.qualified}: more than {n} rows share the cursor value "
                    f"{last[0]}, and the table has no key to page through them",
                    hint=f"set key = [...] for {self.info.table.qualified} (a NOT NULL unique "
                    "column), or raise batch_rows")
            before = sql.SQL("{} < {}").format(self.cursor, sql.Literal(last[0]))
            (prev,) = self.conn.execute(sql.SQL(  # type: ignore[misc]
                "SELECT max({c})::text FROM {t} WHERE {cond} AND {start} AND {before}").format(
                    c=self.cursor, t=self.info.ident, cond=self.condition, start=start,
                    before=before)).fetchone()
            yield Batch(self._copy(sql.SQL("{} AND {}").format(start, before)), (prev,))
            after = (prev,)

    def _no_null_keys(self) -> None:
        """A row with a NULL key column would fall outside every keyset batch: refuse."""
        cols = {c.name: c for c in self.info.columns}
        nullable = [k for k in self.info.key if k not in cols or cols[k].nullable]
        if not nullable:
            return
        (found,) = self.conn.execute(sql.SQL(  # type: ignore[misc]
            "SELECT EXISTS (SELECT 1 FROM {t} WHERE {cond} AND ({nulls}))").format(
                t=self.info.ident, cond=self.condition, nulls=sql.SQL(" OR ").join(
                    sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in nullable))
        ).fetchone()
        if found:
            raise SourceError(
                f"{self.info.table.qualified}: a key column is NULL in a row inside the "
                "refresh", hint="use NOT NULL key columns (set key = [...])")

    def rows(self, batch: Batch) -> Iterator[memoryview]:
        """The batch's rows as CSV lines (one buffer per row), streamed."""
        return copy_rows(self.conn, batch.statement)

    def next_state(self, rows: int) -> TableState:
        """The state after this refresh: the watermark is ``upper``."""
        self._no_endless_upper()
        return TableState(cursor=self.upper if self.upper is not None else self.state.cursor,
                          key=None, xmin=self.marks.xmin, run_at=self.marks.taken_at,
                          rows=rows, content=None)
