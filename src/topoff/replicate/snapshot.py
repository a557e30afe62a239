"""One refresh of a snapshot-method table, inside the caller's target transaction.

Has it changed (change.py)? The xmin rule where it applies, else the content hash.
Unchanged: nothing is written but the state. Changed:

* **only what changed** when the xmin rule decided and the table has the source's primary
  key as its key (and no column changed): the rows committed since the previous run
  (``xmin`` at or after its snapshot xmin) are staged and merged by key (upsert); then, if
  the target holds more rows than the source shows, the source's keys are staged and the
  target rows whose key is no longer there are deleted. The target's count must then
  equal the source's, else the table is rebuilt whole (below), same transaction;
* **rebuilt whole** otherwise: every row deleted and the source's copied in.

Either way the rows and the state commit together: readers see the old table until the
commit, then the new one, never a partial or empty one; the table is never dropped, so
privileges granted on it stay.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import psycopg
from psycopg import sql

from topoff.errors import IntegrityError
from topoff.replicate import change, fastcopy, parallel, stream
from topoff.replicate.describe import _PK_Q, TableInfo
from topoff.replicate.read import Marks, snapshot_marks
from topoff.replicate.state import TableState
from topoff.replicate.watermark import committed_since
from topoff.targets.base import TableDef, Target
from topoff.targets.merge import clear, merge

log = logging.getLogger("topoff")

def _source_key_is_primary(conn: psycopg.Connection, info: TableInfo) -> bool:
    """Whether the table's key is the source's primary key (unique, never NULL), and
    every key column is replicated."""
    (pk,) = conn.execute(_PK_Q, (info.oid,)).fetchone()  # type: ignore[misc]
    names = {c.name for c in info.columns}
    return bool(info.key) and set(pk or ()) == set(info.key) and set(info.key) <= names


def _since(info: TableInfo, state: TableState, marks: Marks, fmt: str) -> sql.Composable:
    """COPY of the rows committed since the previous run (``fmt``: csv or binary)."""
    return sql.SQL("COPY (SELECT {cols} FROM {t} WHERE {since}) TO STDOUT WITH (FORMAT {f})"
                   ).format(cols=fastcopy.select_list(info.columns, fmt == "binary"),
                            t=info.ident, since=committed_since(state.xmin, marks.xmax),
                            f=sql.SQL("binary" if fmt == "binary" else "csv"))


def _by_key(engine: Target, conn: psycopg.Connection, info: TableInfo, tdef: TableDef,
            state: TableState, marks: Marks, count: int, fast: bool) -> int | None:
    """Apply only what changed since ``state``; the rows written, or None when the target
    does not end up with the source's row count (the caller rebuilds it)."""
    cols = list(info.columns)
    counter = [0]
    binary = fastcopy.binary_ok(engine, conn, info, tdef)
    with fastcopy.stage(engine, tdef, cols, conn, lambda fmt: [_since(info, state, marks, fmt)],
                        counter, binary) as stage:
        moved = merge(engine, tdef, cols, stage, "upsert-unique" if fast else "upsert")
    held = engine.count(tdef)
    if held > count:  # deleted on the source (or a key changed): drop the keys it lost
        keys = [c for c in cols if c.name in info.key]
        names = sql.SQL(", ").join(sql.Identifier(k) for k in info.key)
        stmt = sql.SQL("COPY (SELECT {k} FROM {t}) TO STDOUT WITH (FORMAT csv)").format(
            k=names, t=info.ident)
        before = held
        with engine.stage_csv(tdef, keys, stream.copy(conn, stmt, [0])) as stage:
            same = " AND ".join(f"s.{engine.ident(k)} = t.{engine.ident(k)}"
                                for k in info.key)
            target = engine.ident(tdef.target.schema, tdef.target.name)
            engine.execute(f"DELETE FROM {target} AS t WHERE NOT EXISTS "
                           f"(SELECT 1 FROM {stage} AS s WHERE {same})")
        held = engine.count(tdef)
        moved += before - held
    if held != count:
        log.warning("%s: the replica holds %d rows where the source shows %d after applying "
                    "the changes; copying it whole", info.table.qualified, held, count)
        return None
    return moved


def refresh_snapshot(engine: Target, conn: psycopg.Connection, info: TableInfo,
                     tdef: TableDef, state: TableState, force: bool, first: bool,
                     fast: bool = True) -> tuple[str, int, TableState]:
    """``(status, rows written, next state)`` of a snapshot table; ``force``: copy it whole
    (a repull, a column change)."""
    marks = snapshot_marks(conn)
    sig = change.signature(conn, info)
    new = TableState(xmin=marks.xmin, run_at=marks.taken_at, rows=0, relation=sig)
    verdict = None if first or force else change.by_xmin(conn, info, state, sig, marks.xmax)
    count: int | None = None  # the rows the source shows, to check the copy against
    content: str | None = None
    if verdict is not None:
        if not verdict.changed:  # the very same rows: the stored hash (if any) still holds
            return "unchanged", 0, replace(new, content=state.content)
        count, content = verdict.rows, f"{verdict.rows}:"
        if _source_key_is_primary(conn, info) and tdef.primary_key:
            moved = _by_key(engine, conn, info, tdef, state, marks, count, fast)
            if moved is not None:
                return "ok", moved, replace(new, rows=moved, content=content)
    elif sig is None or (not first and not force and change.has_hash(state.content)):
        found = change.detect(conn, info, state.content)
        if not found.changed and not force and not first:
            return "unchanged", 0, replace(new, content=found.content)
        count, content = found.rows, found.content
    counter = [0]
    cols = list(info.columns)
    if first or engine.capabilities.name == "postgresql":
        # every row deleted, the new ones copied straight in, in the one transaction:
        # readers see the old rows until the commit (MVCC), no stage written and read
        if not first:
            clear(engine, tdef, "snapshot", None)
        moved = (parallel.first_copy if first else parallel.one_copy)(
            engine, tdef, conn, info, None, lambda fmt: [change.copy_all(info, fmt)], counter)
    else:
        rows = stream.copy(conn, change.copy_all(info), counter)
        with engine.stage_csv(tdef, cols, rows) as stage:
            moved = merge(engine, tdef, cols, stage, "snapshot")
    if count is not None and counter[0] != count:
        raise IntegrityError(f"{info.table.qualified}: read {counter[0]} rows, "
                             f"its count was {count} in the same snapshot",
                             hint="this is a bug in topoff; report it")
    return "ok", moved, replace(new, rows=moved, content=content or f"{counter[0]}:")
