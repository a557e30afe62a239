"""A MariaDB (or MySQL) source behind the replicate engine's source interface (source.py).

One refresh reads in ONE consistent snapshot (``START TRANSACTION WITH CONSISTENT
SNAPSHOT, READ ONLY`` on a replica; a primary only with ``allow_primary``), with the
export's building blocks (sources/mariadb/): its catalog and type mapping, its CSV lines.

* **inserter / updater**: MariaDB rows carry no xmin. A refresh reads
  ``watermark - boundary < cursor <= upper``, ``upper`` being ``max(cursor)`` in the same
  snapshot, in keyset batches by (cursor, key) (maria_read.py), and merges them by key
  (upsert); without a key the window is replaced in the target (ranges.py). Cursor values
  are compared at full precision (maria_read.py). A transaction that commits more than
  ``boundary`` after its rows' cursor values were set is not seen (docs/replicate.md).
* **snapshot**: count and ``my1`` content hash of the replicated rows in the snapshot
  (the export's window hash, over the very CSV lines the replica loads); unchanged: the
  state only; changed: rebuilt whole in the caller's one target transaction.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from mysql.connector import errors as my_errors

from topoff.dataset.logical import LogicalError
from topoff.errors import ConfigError, IntegrityError, SourceError
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.describe import TableInfo, cursor_kind, kept_columns, lex_problem
from topoff.replicate.maria_cursor import Cursor, not_ahead, server_zone
from topoff.replicate.maria_read import KeysetRead, count_hash, created, lines, query
from topoff.replicate.ranges import replace_range
from topoff.replicate.shape import Index
from topoff.replicate.source import Request
from topoff.replicate.state import TableState
from topoff.sources.mariadb import snapshot as snap
from topoff.sources.mariadb.catalog import MariaTable, key_refusal, read_table
from topoff.sources.mariadb.connect import connect_target, parse_url
from topoff.sources.mariadb.safety import complete_as_of, require_replica
from topoff.sources.mariadb.source import _column
from topoff.sources.mariadb.types import literal, quote_ident, zero_date_sql
from topoff.targets.base import TableDef, Target
from topoff.targets.merge import clear, merge

#: characters a MariaDB ``where`` may not hold: comments, escapes, statement ends and
#: backtick names (the lexer below knows PostgreSQL's quoting, not those)
_WHERE_REFUSED = re.compile(r"[#;`\\]|--|/\*")


def _where_checked(conn: Any, t: ReplicateTable, mt: MariaTable) -> None:
    """The operator's ``where`` is one row condition: lexed, then EXPLAINed (runs nothing)."""
    text = t.where or ""
    where = f"[replicate.sources.{t.source}.tables.{t.name}]"
    problem = "it is empty" if not text.strip() else (
        "a comment, backslash, backtick or semicolon" if _WHERE_REFUSED.search(text)
        else lex_problem(text))
    if problem:
        raise ConfigError(f"where in {where} is not one row condition: {problem}",
                          hint='write one SQL boolean expression, like where = "site_id = 3"')
    cur = conn.cursor()
    try:
        cur.execute(f"EXPLAIN SELECT 1 FROM {mt.qualified} WHERE ({text})")
        cur.fetchall()
    except my_errors.Error as e:
        raise ConfigError(f"where in {where} is not a valid row condition on {t.qualified}: "
                          f"{e.msg}", hint="write one SQL boolean expression over the "
                          "table's columns") from None
    finally:
        cur.close()


class WindowRead(NamedTuple):
    blocks: Iterator[bytes]  # CSV rows
    counter: list[int]  # the rows read so far
    lo: str | None  # the exclusive lower bound (None: from the start)
    hi: str  # the inclusive upper bound: the next watermark


class MariaSession:
    """One consistent snapshot of a MariaDB source, for one refresh."""

    engine = "mariadb"

    def __init__(self, source: ReplicateSource) -> None:
        target = parse_url(source.url)
        self.conn = connect_target(target)
        try:
            role = require_replica(self.conn, target.display(), source.allow_primary,
                                   "topoff replicate")
            self.as_of, self.as_of_why = complete_as_of(self.conn, role)
            self.receiver_hidden_from: str | None = None  # a PostgreSQL standby's only
            snap.begin(self.conn)
            ((now,),) = query(self.conn, "SELECT UTC_TIMESTAMP(6)", "reading the clock")
            self.taken_at: datetime = now.replace(tzinfo=UTC)
            # a DATETIME cursor without cursor_timezone is in the server's zone: the
            # repeated hour of its fall-back widens the lower bound
            self.zone = server_zone(self.conn)
        except BaseException:
            self.close()
            raise
        self.tables: dict[str, MariaTable] = {}

    # -- the table ------------------------------------------------------------------

    def describe(self, t: ReplicateTable) -> TableInfo:
        where = f"[replicate.sources.{t.source}.tables.{t.name}]"
        try:
            mt = read_table(self.conn, t.schema, t.name)
        except SourceError as e:
            if "not found" not in e.message:
                raise
            raise ConfigError(f"table {t.qualified} does not exist on source {t.source}, or "
                              "the user may not SELECT it (a MariaDB table is database.table)",
                              hint=f"fix schema or name in {where}, or the source url") from None
        keep = kept_columns(t, [c.name for c in mt.columns])
        kept = [c for c in mt.columns if c.name in keep]
        try:
            columns = tuple(_column(c, f"{t.qualified} column {c.name!r}") for c in kept)
        except LogicalError as e:  # the mapping is ours: a bug, not the user's input
            raise RuntimeError(f"MariaDB type mapping: {e}") from None
        key = tuple(t.key) if t.key else tuple(mt.primary_key)
        if not set(key) <= keep:
            raise ConfigError(f"{where} leaves out {t.qualified}'s primary key "
                              f"({', '.join(key)})", hint="replicate the key columns, or set "
                              "key = [...] to replicated columns")
        # an updater merges changed rows by key; an inserter's rows never change; a key
        # the config names is the user's word that its values are never respelled (a prefix
        # key's, that none is written over one sharing its prefix)
        refused = (key_refusal(mt, key, "the replica") if t.method == "updater"
                   and not t.key else None)
        if refused:  # merged by key as the replica compares: both spellings would stay
            raise ConfigError(f"{where} {t.qualified}: {refused[0]}", hint=refused[1])
        kind = cursor_kind(t, key, {c.name: c.type for c in mt.columns})
        if t.where is not None:
            _where_checked(self.conn, t, mt)
        self.tables[t.qualified] = replace(mt, columns=kept)
        return TableInfo(t, 0, "r", columns, key, kind, engine="mariadb",
                         identity=created(self.conn, mt))

    def attached_unread(self, info: TableInfo, state: TableState) -> str | None:
        """MariaDB/MySQL tables have no inheritance, and partitions are not tables."""
        return None

    def indexes(self, info: TableInfo) -> list[Index]:
        """The source's plain secondary indexes over replicated columns (no prefix index)."""
        mt = self.tables[info.table.qualified]
        rows = query(self.conn, "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM "
                     "information_schema.STATISTICS WHERE TABLE_SCHEMA = "
                     f"{literal(mt.schema)} AND TABLE_NAME = {literal(mt.name)} AND "
                     "INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                     "reading the indexes")
        found: dict[str, list[Any]] = {}
        for name, col, sub in rows:
            found.setdefault(str(name), []).append(None if sub is not None else col)
        kept = {c.name for c in info.columns}
        return [Index(n, tuple(cols)) for n, cols in found.items()
                if all(c is not None and c in kept for c in cols)]

    # -- inserter / updater ---------------------------------------------------------

    def _condition(self, info: TableInfo, upper: str, lower: str | None) -> str:
        t = info.table
        c = quote_ident(t.cursor or "")
        parts = [f"{c} <= {upper}"]
        if lower is not None:
            parts.append(f"{c} > {lower}")
        if t.where:
            parts.append(f"({t.where})")  # checked by _where_checked
        return " AND ".join(parts)

    def _upper(self, info: TableInfo, mt: MariaTable) -> str | None:
        t = info.table
        c = quote_ident(t.cursor or "")
        w = f" WHERE ({t.where})" if t.where else ""
        if mt.column(t.cursor or "").zero_dates:  # never a zero or zero-in-date watermark
            c = f"IF({zero_date_sql(c)}, NULL, {c})"
        ((text,),) = query(self.conn, f"SELECT CAST(MAX({c}) AS CHAR) FROM {mt.qualified}{w}",
                           "reading the cursor's upper bound")
        return None if text is None else str(text)

    def window_read(self, info: TableInfo, state: TableState) -> WindowRead | None:
        """The rows an inserter/updater refresh reads from ``state`` (in keyset batches):
        ``watermark - boundary < cursor <= max(cursor)``; None when the table is empty."""
        t = info.table
        mt = self.tables[t.qualified]
        col = mt.column(t.cursor or "")
        found = self._upper(info, mt)
        if found is None:
            return None
        upper = not_ahead(self.conn, Cursor(col, found, t.qualified), self.taken_at, t)
        lower = None
        if state.cursor is not None:
            lower = Cursor.stored(col, state.cursor, t.qualified).minus(
                t.boundary, t.cursor_timezone or self.zone)
        cond = self._condition(info, upper.sql, lower.sql if lower else None)
        counter = [0]
        blocks = KeysetRead(self.conn, mt, mt.columns, col.name, info.key, cond, t.batch_rows,
                            t.qualified).blocks(counter)
        return WindowRead(blocks, counter, lower.text if lower else None, upper.text)

    def incremental(self, engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
                    request: Request, first: bool, fast: bool) -> tuple[int, TableState]:
        cols = list(info.columns)
        if request.kind == "repull" and (request.lo is not None or request.hi is not None):
            return self._repull_range(engine, info, tdef, request), state
        if request.kind == "repull":
            state = TableState()
        new = TableState(cursor=state.cursor, run_at=self.taken_at)
        read = self.window_read(info, state)
        if read is None:
            return 0, new
        blocks = read.blocks
        if first:
            moved = engine.copy_csv(tdef, cols, blocks)
        else:
            with engine.stage_csv(tdef, cols, blocks) as stage:
                if info.key:
                    moved = merge(engine, tdef, cols, stage, "upsert")
                else:
                    moved = replace_range(engine, tdef, stage, cols, read.lo, read.hi, False)
        return moved, replace(new, cursor=read.hi, rows=read.counter[0])

    def range_read(self, info: TableInfo, request: Request) -> WindowRead | None:
        """The rows of a ranged repull: ``lo <= cursor <= hi`` (``--from``/``--to``, as the
        cursor's values; no ``--to``: up to ``max(cursor)``); None when the table is empty.
        The read's ``lo`` is inclusive here."""
        t = info.table
        mt = self.tables[t.qualified]
        col = mt.column(t.cursor or "")
        lo = Cursor.given(col, request.lo, t.qualified) if request.lo is not None else None
        if request.hi is not None:
            hi: Cursor | None = Cursor.given(col, request.hi, t.qualified)
            if lo is not None and hi is not None and lo.value > hi.value:
                raise ConfigError(f"--from {(request.lo or '')[:40]} is after --to "
                                  f"{request.hi[:40]}: no row of {t.qualified} is in "
                                  "that range",
                                  hint="swap the two bounds")
        else:
            found = self._upper(info, mt)
            hi = Cursor(col, found, t.qualified) if found is not None else None
        if hi is None:  # an empty table
            return None
        c = quote_ident(col.name)
        cond = self._condition(info, hi.sql, None) + (f" AND {c} >= {lo.sql}" if lo else "")
        counter = [0]
        blocks = lines(self.conn, mt.columns, f"FROM {mt.qualified} WHERE {cond}", counter,
                       t.qualified)
        return WindowRead(blocks, counter, lo.text if lo else None, hi.text)

    def _repull_range(self, engine: Target, info: TableInfo, tdef: TableDef,
                      request: Request) -> int:
        read = self.range_read(info, request)
        if read is None:
            return 0
        cols = list(info.columns)
        with engine.stage_csv(tdef, cols, read.blocks) as stage:
            if info.key:
                return merge(engine, tdef, cols, stage, "upsert")
            return replace_range(engine, tdef, stage, cols, read.lo, read.hi, True)

    # -- snapshot -------------------------------------------------------------------

    def snapshot(self, engine: Target, info: TableInfo, tdef: TableDef, state: TableState,
                 force: bool, first: bool, fast: bool) -> tuple[str, int, TableState]:
        t = info.table
        mt = self.tables[t.qualified]
        w = f" WHERE ({t.where})" if t.where else ""  # checked by _where_checked
        count, content = count_hash(self.conn, mt, mt.columns, w, t.qualified)
        new = TableState(run_at=self.taken_at, content=content)
        if not first and not force and content is not None and content == state.content:
            return "unchanged", 0, new
        cols = list(info.columns)
        counter = [0]
        blocks = lines(self.conn, mt.columns, f"FROM {mt.qualified}{w}", counter,
                       t.qualified)
        if first or engine.capabilities.name == "postgresql":
            # every row deleted, the new ones copied in, in the one transaction: readers
            # see the old rows until the commit (MVCC)
            if not first:
                clear(engine, tdef, "snapshot", None)
            moved = engine.copy_csv(tdef, cols, blocks)
        else:
            with engine.stage_csv(tdef, cols, blocks) as stage:
                moved = merge(engine, tdef, cols, stage, "snapshot")
        if counter[0] != count:
            raise IntegrityError(f"{t.qualified}: read {counter[0]} rows, its count was "
                                 f"{count} in the same snapshot",
                                 hint="this is a bug in topoff; report it")
        return "ok", moved, replace(new, rows=moved)

    def finish(self) -> None:
        # a read-only snapshot whose rows were all read: nothing to commit, and nothing to
        # lose when the session ended meanwhile (the driver's own error, no mysql.connector
        # one, says so)
        with contextlib.suppress(Exception):
            self.conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
