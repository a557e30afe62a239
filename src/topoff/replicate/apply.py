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

The source is read in one snapshot, by the session of its engine (source.py: PostgreSQL
in pg_source.py, MariaDB in maria_source.py); a recovery conflict rolls the target
transaction back and the whole refresh starts again from the stored state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import psycopg

from topoff.errors import ConfigError, TargetError, TopoffError
from topoff.replicate.config import ReplicateSource, ReplicateTable
from topoff.replicate.describe import TableInfo
from topoff.replicate.shape import build_keys, follow_columns, table_def
from topoff.replicate.source import Request, SourceSession, measured, open_session
from topoff.replicate.state import TableState, same_identity
from topoff.replicate.store import StateStore
from topoff.safety import retry_on_recovery_conflict
from topoff.targets.base import TableDef, TableRef, Target
from topoff.targets.errors import classify
from topoff.targets.names import too_long

_REFRESH = Request()
__all__ = ["Request", "Result", "landing", "lock_name", "refresh", "replaced"]
log = logging.getLogger("topoff")


@dataclass(frozen=True)
class Result:
    status: str  # ok | unchanged | paused | locked
    rows: int
    lag_seconds: float | None
    notes: tuple[str, ...] = ()
    #: the lag is an upper bound: this role cannot see the standby's WAL receiver
    lag_bound_role: str | None = None


def lock_name(source: str, table: str) -> str:
    return f"replicate:{source}:{table}"


def landing(source: ReplicateSource, t: ReplicateTable) -> TableRef:
    return TableRef(source.landing_schema, t.name)


def _fits(engine: Target, source: ReplicateSource, t: ReplicateTable, d: TableDef) -> None:
    """TargetError for a name the target would cut (PostgreSQL: over 63 bytes), before
    anything is made or changed."""
    found = too_long(d, engine.max_name_bytes)
    if found is None:
        return
    what, name = found
    where = f"[replicate.sources.{source.name}.tables.{t.name}]"
    raise TargetError(
        f"{source.name}.{t.qualified}: its {what} {name!r:.80} has {len(name.encode())} "
        f"bytes; {engine.url} holds names of {engine.max_name_bytes} bytes at most",
        hint={"column": f"leave it out with exclude = [...] in {where}, or use a DuckDB or "
                        "Iceberg target",
              "schema": f"set a shorter target_schema for source {source.name}, or use a "
                        "DuckDB or Iceberg target"}.get(
            what, "a table lands under its source name: use a DuckDB or Iceberg target"))


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


def target_lost(engine: Target, exc: Exception) -> TopoffError | None:
    """The failure of a refresh whose session on a PostgreSQL target ended under it (the
    server restarted, an administrator ended it) as the target's TargetError, else None: a
    lost connection is otherwise the source's, retried in a new snapshot."""
    conn = getattr(engine, "conn", None)
    if not isinstance(conn, psycopg.Connection) or not (conn.broken or conn.closed):
        return None
    return classify(exc, engine.url) or TargetError(
        f"lost the connection to {engine.url}", hint="check that the server is running and "
        "reachable, then run the same command again; what was committed is kept")


class _Locked(Exception):
    pass


def replaced(state: TableState, info: TableInfo, src: SourceSession) -> bool:
    """Whether the source table is another one than the table ``state`` was built from (one
    dropped and created again under its name), or holds rows the watermark says were read
    but never were (a partition or inheritance child attached since, attached.py): the
    watermark says nothing of them (rows below it would never be read). Logs a warning
    saying so; the caller then rebuilds the table as at its first load."""
    t = info.table
    if t.method == "snapshot":
        return False  # a snapshot table's change detection sees a new table by itself
    member = src.attached_unread(info, state)
    if member is not None:
        log.warning("%s.%s: %s was attached to the source table since the previous refresh, "
                    "with rows below the watermark that were never read; its replica is "
                    "built again from the start", t.source, t.qualified, member)
        return True
    if same_identity(state.identity, info.identity):
        return False
    log.warning("%s.%s: the source table is another table than the one replicated (%s, "
                "was %s: created again under its name, rebuilt by the server, or another "
                "server); its replica is built again from the start", t.source, t.qualified,
                info.identity, state.identity)
    return True


def refresh(engine: Target, source: ReplicateSource, t: ReplicateTable,
            request: Request = _REFRESH, attempts: int = 5,
            backoff: float = 2.0) -> Result:
    """One refresh (or repull, or resync) of ``t`` into ``engine``, in one transaction."""
    store = StateStore(engine)
    store.ensure()
    where = landing(source, t)
    before = store.get(source.name, t.qualified)
    if before is not None and before.paused and request.kind == "refresh":
        return Result("paused", 0, None)

    name = f"{source.name}.{t.qualified}"
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
            if stored is not None and stored.target != where:
                raise ConfigError(
                    f"{source.name}.{t.qualified} is replicated into {stored.target.schema}."
                    f"{stored.target.name}, and the config now lands it in {where.schema}."
                    f"{where.name}", hint="run topoff replicate --resync for the table to "
                    "move it there, or set target_schema back")
            state = stored.state if stored else TableState()
            src = open_session(source)
            try:
                info = src.describe(t)
                if stored is not None and replaced(state, info, src):  # as a --resync
                    engine.drop_table(stored.target)
                    store.forget(source.name, t.qualified)
                    stored, state = None, TableState()
                current = table_def(info, where)
                _fits(engine, source, t, current)
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
                    status, moved, new = src.snapshot(
                        engine, info, tdef, state,
                        request.kind == "repull" or bool(notes), first, fast[0])
                    new = measured(src, new, state, name)
                else:
                    moved, new = src.incremental(engine, info, tdef, state, request, first,
                                                 fast[0])
                    new = replace(measured(src, new, state, name), identity=info.identity,
                                  relation=info.members)
                    status = "ok"
                indexes = src.indexes(info) if first else []
                src.finish()
            finally:
                src.close()
            if first:
                build_keys(engine, tdef, indexes)
            store.write(source.name, t.qualified, where, t.method, new, tdef, moved, paused)
        return Result(status, moved, new.lag_seconds(datetime.now(UTC)), tuple(notes),
                      new.receiver_hidden_from)

    def run(attempt: int) -> Result:
        try:
            return once(attempt)
        except Exception as e:
            lost = target_lost(engine, e)
            if lost is not None:  # not the source's: no retry on the dead connection
                raise lost from e
            if not fast[0] or not is_duplicate_key(e):
                raise
            fast[0] = False  # rolled back: again, merging the new rows by key too
            return once(attempt)

    try:
        return retry_on_recovery_conflict(run, attempts, backoff,
                                          f"refreshing {source.name}.{t.qualified}")
    except _Locked:
        return Result("locked", 0, None)

