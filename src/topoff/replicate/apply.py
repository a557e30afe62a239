"""One refresh of one table into the target: ONE target transaction holding the lock of
the table, the staged rows, the one merge (targets/merge.py) and the state row.

* inserter with a key, updater: the refresh's rows (watermark - boundary, plus rows
  committed since the previous run inside the lookback window) are merged by key
  ("upsert"): a row read again at the boundary replaces itself.
* inserter without a key: the read covers the whole lookback window (every row, not only
  the newly committed ones) and replaces that window in the target (rows with
  ``lookback-start < cursor <= upper``): a row read again is never doubled. It costs a
  re-read of the lookback window at every run; give such a table a key when you can.
* snapshot: see snapshot.py (the xmin rule or the content hash decides; a changed table
  gets only what changed, or is rebuilt whole, in the same transaction).

The source is read in one snapshot (read.py, change.py); a recovery conflict rolls the
target transaction back and the whole refresh starts again from the stored state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError, TargetError
from topoff.pgtypes import parse_type
from topoff.replicate import fastcopy, parallel, stream
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.describe import TableInfo, describe
from topoff.replicate.read import Refresh, open_snapshot
from topoff.replicate.shape import build_keys, follow_columns, source_indexes, table_def
from topoff.replicate.snapshot import refresh_snapshot
from topoff.replicate.state import TableState
from topoff.replicate.store import StateStore
from topoff.safety import retry_on_recovery_conflict
from topoff.targets.base import TableDef, TableRef, Target
from topoff.targets.merge import merge


@dataclass(frozen=True)
class Request:
    kind: str = "refresh"  # refresh | repull | resync
    lo: str | None = None  # repull: cursor range (inclusive), as text of the cursor's type
    hi: str | None = None


@dataclass(frozen=True)
class Result:
    status: str  # ok | unchanged | paused | locked
    rows: int
    lag_seconds: float | None
    notes: tuple[str, ...] = ()


def lock_name(source: str, table: str) -> str:
    return f"replicate:{source}:{table}"


def landing(source: ReplicateSource, t: ReplicateTable) -> TableRef:
    return TableRef(source.landing_schema, t.name)


def _statements(r: Refresh) -> Callable[[str], Iterator[sql.Composable]]:
    def statements(fmt: str) -> Iterator[sql.Composable]:
        r.format, r.single = fmt, True
        return (b.statement for b in r.batches())
    return statements


def _straight(engine: Target, tdef: TableDef, r: Refresh, counter: list[int]) -> int:
    """The refresh's rows straight into the table (binary COPY where safe: fastcopy.py)."""
    return fastcopy.copy_into(engine, tdef, list(r.info.columns), r.conn, _statements(r),
                              counter, fastcopy.binary_ok(engine, r.conn, r.info, tdef))


def _staged(engine: Target, tdef: TableDef, r: Refresh,
            counter: list[int]) -> AbstractContextManager[str]:
    """The refresh's rows staged for a merge (binary COPY where safe: fastcopy.py)."""
    return fastcopy.stage(engine, tdef, list(r.info.columns), r.conn, _statements(r), counter,
                          fastcopy.binary_ok(engine, r.conn, r.info, tdef))


def _cast(engine: Target, table: TableDef, text: str) -> str:
    """A cursor value (PostgreSQL's text of it) as a literal of the target's column type."""
    from topoff.targets.duckdb.types import duckdb_type  # imports duckdb: only for it

    col = next(c for c in table.columns if c.name == table.cursor)
    typ = parse_type(col.type).ddl() if engine.capabilities.native_types else duckdb_type(col)
    return f"CAST({engine.literal(text)} AS {typ})"


def _replace_range(engine: Target, table: TableDef, stage: str, columns: list[Column],
                   lo: str | None, hi: str, lo_inclusive: bool) -> int:
    """Delete the target rows whose cursor is in the range, insert the staged ones."""
    c = engine.ident(table.cursor or "")
    cond = f"{c} <= {_cast(engine, table, hi)}"
    if lo is not None:
        cond += f" AND {c} {'>=' if lo_inclusive else '>'} {_cast(engine, table, lo)}"
    engine.execute(f"DELETE FROM {engine.ident(table.target.schema, table.target.name)} "
                   f"WHERE {cond}")
    return merge(engine, replace(table, primary_key=[]), columns, stage, "initial")


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
    """An inserter's refresh in two reads of the same snapshot: the rows read again (at or
    below the watermark: the boundary, late commits) staged and merged by key, then the
    new ones (above it) copied straight into the table."""
    cols = list(info.columns)
    old = Refresh(conn, info, state, part="old")
    if old.upper is None:
        return 0, old.next_state(0)
    counter = [0]
    with _staged(engine, tdef, old, counter) as stage:
        moved = merge(engine, tdef, cols, stage, "upsert-unique")
    new = Refresh(conn, info, state, part="new")
    moved += _straight(engine, tdef, new, counter)
    return moved, new.next_state(counter[0])


def is_duplicate_key(exc: BaseException) -> bool:
    """A unique violation (SQLSTATE 23505), or no unique index for ON CONFLICT (42P10),
    anywhere in the exception's chain: the fast paths' refusals."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if getattr(e, "sqlstate", None) in ("23505", "42P10"):
            return True
        e = e.__cause__ or e.__context__
    return False


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
            moved = _replace_range(engine, tdef, stage, cols, lo, r.upper, False)
        else:  # a key: unique in the source's snapshot, and the table's key index
            moved = merge(engine, tdef, cols, stage, "upsert-unique" if fast else "upsert")
    return moved, r.next_state(counter[0])


def _repull_range(engine: Target, conn: psycopg.Connection, info: TableInfo, tdef: TableDef,
                  state: TableState, request: Request) -> int:
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
    cols = list(info.columns)
    ctype = sql.SQL(parse_type(next(x.type for x in cols if x.name == t.cursor)).ddl())
    try:  # the bounds as the cursor's values: a mistyped one is a ConfigError
        lo = _text(conn, sql.SQL("{}::{}").format(sql.Literal(request.lo), ctype)) \
            if request.lo is not None else None
        hi = _text(conn, sql.SQL("{}::{}").format(sql.Literal(request.hi), ctype)) \
            if request.hi is not None else \
            _text(conn, sql.SQL("(SELECT max({}) FROM {})").format(c, info.ident))
    except psycopg.DataError as e:
        raise ConfigError(f"--from/--to is not a value of {t.qualified}.{t.cursor}: "
                          f"{(e.diag.message_primary or str(e)).splitlines()[0]}",
                          hint="give cursor values like 2026-01-01 or 2026-01-01 12:00") from None
    if hi is None:  # an empty table
        return 0
    counter = [0]
    with engine.stage_csv(tdef, cols, stream.copy(conn, stmt, counter)) as stage:
        if info.key:
            return merge(engine, tdef, cols, stage, "upsert")
        return _replace_range(engine, tdef, stage, cols, lo, hi, True)


class _Locked(Exception):
    pass


def refresh(engine: Target, source: ReplicateSource, t: ReplicateTable,
            request: Request = Request(), attempts: int = 5,
            backoff: float = 2.0) -> Result:
    """One refresh (or repull, or resync) of ``t`` into ``engine``, in one transaction."""
    store = StateStore(engine)
    store.ensure()
    where = landing(source, t)
    before = store.get(source.name, t.qualified)
    if before is not None and before.paused and request.kind == "refresh":
        return Result("paused", 0, None)

    fast = [True]  # False after a new row's key was found in the table (see _fast_path)

    def once(attempt: int) -> Result:
        notes: list[str] = []
        with engine.transaction():
            if not engine.try_lock(lock_name(source.name, t.qualified)):
                raise _Locked
            stored = store.get(source.name, t.qualified)
            paused = stored.paused if stored else False
            if request.kind == "resync" and stored is not None:
                engine.drop_table(stored.target)
                store.forget(source.name, t.qualified)
                stored = None
            state = stored.state if stored else TableState()
            conn = open_snapshot(source.url, source.allow_primary)
            try:
                info = describe(conn, t)
                current = table_def(info, where)
                tdef = store.definition(source.name, t.qualified) if stored else None
                first = tdef is None
                if first:
                    if engine.table_exists(where):
                        raise TargetError(
                            f"table {where} already exists in {engine.url} and is not "
                            f"replicated from {source.name}.{t.qualified}",
                            hint="drop it, or set another target_schema for the source")
                    engine.create_table(current)
                    tdef = current
                else:
                    assert tdef is not None
                    tdef, notes = follow_columns(engine, tdef, current, t.drop_columns,
                                                 t.method == "snapshot")
                if t.method == "snapshot":
                    # a column change: copied again even when the rows' hash is the same
                    # (an int that became a bigint hashes alike, its column was emptied)
                    status, moved, new = refresh_snapshot(
                        engine, conn, info, tdef, state,
                        request.kind == "repull" or bool(notes), first, fast[0])
                else:
                    moved, new = _incremental(engine, conn, info, tdef, state, request, first,
                                              fast[0])
                    status = "ok"
                indexes = source_indexes(conn, info) if first else []
                conn.execute("COMMIT")
            finally:
                conn.close()
            if first:
                build_keys(engine, tdef, indexes)
            store.write(source.name, t.qualified, where, t.method, new, tdef, moved, paused)
        lag = None
        if new.run_at is not None:
            lag = max(0.0, (datetime.now(UTC) - new.run_at).total_seconds())
        return Result(status, moved, lag, tuple(notes))

    def run(attempt: int) -> Result:
        try:
            return once(attempt)
        except Exception as e:
            if not fast[0] or not is_duplicate_key(e):
                raise
            fast[0] = False  # rolled back: again, merging the new rows by key too
            return once(attempt)

    try:
        return retry_on_recovery_conflict(run, attempts, backoff,
                                          f"refreshing {source.name}.{t.qualified}")
    except _Locked:
        return Result("locked", 0, None)

