"""Reconcile one replicated table and repair what differs (deletes and missed updates
converge without triggers on the source).

The source is read in ONE snapshot (:func:`topoff.replicate.read.open_snapshot`: a
standby, REPEATABLE READ READ ONLY, nothing created there; a MariaDB replica through
:class:`topoff.replicate.maria_source.MariaSession` and maria_reconcile.py); the replica
in ONE transaction, which also holds the repair:

1. :func:`topoff.replicate.reconcile.reconcile` finds the differing keys by key ranges
   (count + sum of row hashes per range, bisected; exact diff at the leaves);
2. keys only in the replica are staged (``Target.stage_rows``) and deleted by the shared
   merge (mode ``delete-keys``);
3. rows to insert or update are read from the source by key, in batches, in the same
   snapshot, as COPY's text form, staged, and merged (mode ``upsert``).

Memory holds the keys of the differing ranges only (the rows stream from the source
into the stage). A failure anywhere rolls the replica back: nothing is half repaired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError, LockedError, TargetError
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import TableInfo, describe
from topoff.replicate.read import open_snapshot
from topoff.replicate.reconcile import Key, PostgresSide, Side, key_modes, reconcile
from topoff.replicate.shape import same_key
from topoff.sources.base import engine_of
from topoff.targets.base import TableDef, Target
from topoff.targets.merge import merge

#: keys per source read of rows to insert or update
FETCH_BATCH = 1000


@dataclass(frozen=True)
class ReconcileReport:
    compared_rows: int  # rows of the source compared
    ranges_hashed: int  # key ranges whose count and hash were computed (on both sides)
    inserted: int  # rows only in the source, now in the replica
    updated: int  # rows with other values in the replica, now as in the source
    deleted: int  # rows only in the replica, now deleted
    seconds: float

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted


def _columns(info: TableInfo, engine: Target, table: TableDef
             ) -> tuple[list[Column], list[Column]]:
    """The compared columns: the source's that the replica has, as the source types them
    and as the replica stores them."""
    stored = {c.name: c for c in engine.stored_columns(table)}
    missing = [k for k in info.key if k not in stored]
    if missing:
        raise TargetError(f"{table.target}: key column {missing[0]} is not in the replica",
                          hint="resync the table, or set key = [...] to columns it has")
    source = [c for c in info.columns if c.name in stored]
    return source, [Column(c.name, stored[c.name].type, c.nullable, stored[c.name].enum)
                    for c in source]


def _sides(conn: psycopg.Connection, info: TableInfo, engine: Target, table: TableDef,
           source_cols: list[Column], stored_cols: list[Column]) -> tuple[Side, Side]:
    where = sql.SQL(info.table.where) if info.table.where else None  # checked by describe
    modes = key_modes(source_cols, info.key, stored_cols)
    relation = engine.ident(table.target.schema, table.target.name)
    if engine.capabilities.native_types:  # a PostgreSQL replica: the same types, exactly
        target_conn = getattr(engine, "conn", None)
        if not isinstance(target_conn, psycopg.Connection):
            raise TargetError(f"{engine.url} offers no PostgreSQL connection to reconcile on",
                              hint="reconcile into a PostgreSQL or DuckDB replica")
        src = PostgresSide(conn, info.ident, source_cols, info.key, where=where, modes=modes)
        tgt = PostgresSide(target_conn, sql.SQL(relation), stored_cols, info.key,
                           modes=modes)
        return src, tgt
    from topoff.replicate.reconcile_duckdb import DuckDBSide

    src = PostgresSide(conn, info.ident, stored_cols, info.key, profile="duckdb", where=where,
                       modes=modes)
    return src, DuckDBSide(engine, relation, stored_cols, info.key, modes)


def _source_rows(conn: psycopg.Connection, info: TableInfo, columns: Sequence[Column],
                 keys: Sequence[Key]) -> Iterator[tuple[str | None, ...]]:
    """The rows of ``keys`` as COPY's text of each value, read in batches in the snapshot."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    key_row = sql.SQL("ROW({})").format(sql.SQL(", ").join(map(sql.Identifier, info.key)))
    where = sql.SQL(" AND ({})").format(sql.SQL(info.table.where)) if info.table.where \
        else sql.SQL("")
    for i in range(0, len(keys), FETCH_BATCH):
        wanted = sql.SQL(", ").join(
            sql.SQL("ROW({})").format(sql.SQL(", ").join(map(sql.Literal, k)))
            for k in keys[i:i + FETCH_BATCH])
        stmt = sql.SQL("COPY (SELECT {} FROM {} WHERE {} IN ({}){}) TO STDOUT").format(
            names, info.ident, key_row, wanted, where)
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            yield from copy.rows()


def reconcile_table(source_conn_url: str, allow_primary: bool, table: ReplicateTable,
                    engine: Target, target_def: TableDef,
                    threshold: int = 1000, lock: str | None = None) -> ReconcileReport:
    """Compare ``table`` on the source with its replica ``target_def`` in ``engine`` and make
    the replica equal the source (see the module text); returns what changed. The source
    is PostgreSQL or MariaDB, by its URL (MariaDB: maria_reconcile.py)."""
    started = time.monotonic()
    if engine_of(source_conn_url) != "postgresql":
        return _from_maria(source_conn_url, allow_primary, table, engine, target_def,
                           threshold, lock, started)
    conn = open_snapshot(source_conn_url, allow_primary, "topoff reconcile")
    try:
        info = describe(conn, table)

        def sides(source_cols: list[Column], stored_cols: list[Column],
                  tdef: TableDef) -> tuple[Side, Side]:
            return _sides(conn, info, engine, tdef, source_cols, stored_cols)

        def rows(source_cols: list[Column], keys: list[Key]) -> Iterator[tuple[str | None, ...]]:
            return _source_rows(conn, info, source_cols, keys)

        return _repair(info, engine, target_def, threshold, lock, sides, rows, started)
    finally:
        conn.close()


def _from_maria(url: str, allow_primary: bool, table: ReplicateTable, engine: Target,
                target_def: TableDef, threshold: int, lock: str | None,
                started: float) -> ReconcileReport:
    from topoff.replicate.config import ReplicateSource
    from topoff.replicate.maria_reconcile import MariaSide, check_reconcilable, source_rows
    from topoff.replicate.maria_source import MariaSession

    session = MariaSession(ReplicateSource(table.source, url, table.schema, allow_primary))
    try:
        info = session.describe(table)
        mt = session.tables[table.qualified]
        where = table.where  # checked by the session's describe

        def sides(source_cols: list[Column], stored_cols: list[Column],
                  tdef: TableDef) -> tuple[Side, Side]:
            check_reconcilable(mt, info.key, stored_cols, table.qualified)
            relation = engine.ident(tdef.target.schema, tdef.target.name)
            modes = key_modes(source_cols, info.key, stored_cols)
            native = engine.capabilities.native_types
            src = MariaSide(session.conn, mt, stored_cols, info.key,
                            "exact" if native else "duckdb", where)
            if native:
                target_conn = getattr(engine, "conn", None)
                if not isinstance(target_conn, psycopg.Connection):
                    raise TargetError(f"{engine.url} offers no PostgreSQL connection to "
                                      "reconcile on", hint="reconcile into a PostgreSQL or "
                                      "DuckDB replica")
                return src, PostgresSide(target_conn, sql.SQL(relation), stored_cols,
                                         info.key, modes=modes)
            from topoff.replicate.reconcile_duckdb import DuckDBSide
            return src, DuckDBSide(engine, relation, stored_cols, info.key, modes)

        def rows(source_cols: list[Column], keys: list[Key]) -> Iterator[tuple[str | None, ...]]:
            return source_rows(session.conn, mt, source_cols, info.key, keys, where)

        return _repair(info, engine, target_def, threshold, lock, sides, rows, started)
    finally:
        session.close()


def _repair(info: TableInfo, engine: Target, target_def: TableDef, threshold: int,
            lock: str | None,
            sides: Callable[[list[Column], list[Column], TableDef], tuple[Side, Side]],
            rows_of: Callable[[list[Column], list[Key]], Iterator[tuple[str | None, ...]]],
            started: float) -> ReconcileReport:
    """The one repair flow, whatever the source: diff by key ranges, then the deletes and
    the rows to write, in one target transaction holding the table's lock."""
    table = info.table
    if not info.key:
        raise ConfigError(f"{table.qualified} has no primary key to reconcile by",
                          hint=f"set key = [...] in [replicate.sources.{table.source}."
                          f"tables.{table.name}] (NOT NULL unique columns)")
    tdef = replace(target_def, primary_key=list(info.key))
    if engine.capabilities.primary_keys:  # the replica's key index is the built key's
        same_key(target_def, tdef)
    if not engine.table_exists(tdef.target):
        raise TargetError(f"{tdef.target} does not exist in the replica",
                          hint="run topoff replicate for it first")
    source_cols, stored_cols = _columns(info, engine, tdef)
    key_cols = [c for c in source_cols if c.name in info.key]
    key_cols.sort(key=lambda c: info.key.index(c.name))
    with engine.transaction():
        if lock is not None and not engine.try_lock(lock):
            raise LockedError(f"{tdef.target} is being refreshed by another run",
                              hint="run the reconcile again when that run has ended")
        src, tgt = sides(source_cols, stored_cols, tdef)
        diff = reconcile(src, tgt, threshold)
        deleted = 0
        if diff.deletes:
            with engine.stage_rows(tdef, key_cols, diff.deletes, text=True) as stage:
                deleted = merge(engine, tdef, key_cols, stage, "delete-keys")
        wanted = diff.inserts + diff.updates
        if wanted:
            rows = rows_of(source_cols, wanted)
            with engine.stage_rows(tdef, source_cols, rows, text=True) as stage:
                written = merge(engine, tdef, source_cols, stage, "upsert")
            if written != len(wanted):
                raise TargetError(f"{tdef.target}: {written} rows written where "
                                  f"{len(wanted)} differ", hint="run reconcile again")
    return ReconcileReport(diff.source_rows, diff.ranges, len(diff.inserts),
                           len(diff.updates), deleted, time.monotonic() - started)
