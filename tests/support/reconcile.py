"""Reconcile tests' helpers: a replica table definition, the engines, convergence checks."""

from __future__ import annotations

from pathlib import Path

import psycopg

from support.pg import Database
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.read import open_snapshot
from topoff.replicate.repair import ReconcileReport, reconcile_table
from topoff.targets import open_target
from topoff.targets.base import TableDef, TableRef, Target
from topoff.targets.postgres.target import hash_table


def open_engine(kind: str, db: Database, tmp_path: Path) -> Target:
    """A PostgreSQL replica (a schema of the test's database, on the primary) or a DuckDB
    file."""
    return open_target(db.primary_url if kind == "postgresql" else str(tmp_path / "r.duckdb"))


def table_def(db: Database, t: ReplicateTable, schema: str = "replica") -> TableDef:
    conn = open_snapshot(db.standby_url, False)
    try:
        info = describe(conn, t)
    finally:
        conn.close()
    return TableDef(t.qualified, TableRef(schema, t.name), t.method, list(info.columns),
                    list(info.key), None, None, "UTC", (t.schema, t.name))


def new_replica(engine: Target, tdef: TableDef) -> None:
    with engine.transaction():
        engine.create_table(tdef)


def converged(db: Database, engine: Target, tdef: TableDef) -> bool:
    """The replica's canonical hash equals the source's (``verify``'s own comparison)."""
    profile = "exact" if engine.capabilities.native_types else "duckdb"
    stored = engine.stored_columns(tdef)
    src = TableDef(tdef.source, tdef.source_ref(), tdef.method, stored, tdef.primary_key,
                   None, None, "UTC")
    with psycopg.connect(db.standby_url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        s = hash_table(conn, src, False, None, None, profile)[None]
    return s == engine.hash_rows(tdef, False)[None]


def run(db: Database, t: ReplicateTable, engine: Target, tdef: TableDef,
        threshold: int = 1000) -> ReconcileReport:
    return reconcile_table(db.standby_url, False, t, engine, tdef, threshold)


def changes(r: ReconcileReport) -> tuple[int, int, int]:
    return r.inserted, r.updated, r.deleted
