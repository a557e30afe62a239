"""The sync ledger: what a replica holds, kept in the target beside the data.

The ledger lives in the target, in a ``topoff`` schema, and every change to it is made in
the same transaction as the data it describes (after dlt): a partition's rows and the row
saying it was applied commit together or not at all, so a sync killed at any moment and
run again ends in the same state as one that was never interrupted. The ledger is state,
not an engine operation: it takes the engine it is stored in and only runs statements
through it (so ``sync`` and ``replicate`` keep their state alike in either target).

Ledger tables:

* ``topoff.replicas``: one row per dataset kept in this target (where from, which full
  export it was built from, how far it has applied, partial-replica settings).
* ``topoff.tables``: each table's definition as last applied (columns, method, cursor),
  to notice schema changes.
* ``topoff.applied``: one row per applied step (a partition, or a file of a full load).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from topoff.targets.base import ReplicaState, TableDef, TableRef, Target

LEDGER_DDL = [
    "CREATE SCHEMA IF NOT EXISTS topoff",
    """CREATE TABLE IF NOT EXISTS topoff.replicas (
        dataset text PRIMARY KEY, origin text NOT NULL, base text NOT NULL,
        base_sequence bigint NOT NULL, status text NOT NULL, last_sequence bigint NOT NULL,
        tables text, since date, target_schema text, primary_keys boolean NOT NULL,
        updated_at timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS topoff.tables (
        dataset text NOT NULL, source_table text NOT NULL, target_schema text NOT NULL,
        target_name text NOT NULL, definition text NOT NULL,
        PRIMARY KEY (dataset, source_table))""",
    """CREATE TABLE IF NOT EXISTS topoff.applied (
        dataset text NOT NULL, publication text NOT NULL, step text NOT NULL,
        sequence bigint NOT NULL, kind text NOT NULL, window_label text, revision integer,
        rows bigint, manifest_sha256 text, applied_at timestamptz NOT NULL,
        PRIMARY KEY (dataset, publication, step))""",
]


class Ledger:
    """The ledger tables of one target. Writes run in the caller's transaction (open it
    with ``engine.transaction()``), so they commit with the data they describe."""

    def __init__(self, engine: Target) -> None:
        self.engine = engine

    def _run(self, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        # statements hold constants and the driver's placeholder only; values are bound
        return self.engine.execute(statement.replace("{P}", self.engine.P), params or [])

    def ensure_ledger(self) -> None:
        with self.engine.transaction():
            for ddl in LEDGER_DDL:
                self.engine.execute(ddl)

    def drop_if_empty(self) -> bool:
        """Drop the ledger tables when they hold nothing (a first sync refused before it
        loaded anything), then the ``topoff`` schema when nothing else is in it; whether
        the tables were dropped."""
        with self.engine.transaction():
            if any(self._run(f"SELECT count(*) FROM topoff.{t}")[0][0]
                   for t in ("replicas", "tables", "applied")):
                return False
            for t in ("applied", "tables", "replicas"):
                self.engine.execute(f"DROP TABLE topoff.{t}")
        with contextlib.suppress(Exception), self.engine.transaction():
            self.engine.execute("DROP SCHEMA topoff")  # not when another table is in it
        return True

    def has_ledger(self) -> bool:
        return self.engine.table_exists(TableRef("topoff", "replicas"))

    def replicas(self) -> list[str]:
        if not self.has_ledger():
            return []
        return [r[0] for r in self._run("SELECT dataset FROM topoff.replicas ORDER BY 1")]

    def read_replica(self, dataset: str) -> ReplicaState | None:
        rows = self._run(
            "SELECT dataset, origin, base, base_sequence, status, last_sequence, tables, since, "
            "target_schema, primary_keys, updated_at FROM topoff.replicas WHERE dataset = {P}",
            [dataset])
        if not rows:
            return None
        r = rows[0]
        return ReplicaState(r[0], r[1], r[2], int(r[3]), r[4], int(r[5]),
                            json.loads(r[6]) if r[6] else None, r[7], r[8], bool(r[9]), r[10])

    def write_replica(self, s: ReplicaState) -> None:
        self._run("DELETE FROM topoff.replicas WHERE dataset = {P}", [s.dataset])
        self._run(
            "INSERT INTO topoff.replicas (dataset, origin, base, base_sequence, status, "
            "last_sequence, tables, since, target_schema, primary_keys, updated_at) VALUES "
            "({P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, now())",
            [s.dataset, s.origin, s.base, s.base_sequence, s.status, s.last_sequence,
             json.dumps(s.tables) if s.tables is not None else None, s.since, s.schema,
             s.primary_keys])

    def table_defs(self, dataset: str) -> dict[str, TableDef]:
        rows = self._run("SELECT source_table, target_schema, target_name, definition FROM "
                         "topoff.tables WHERE dataset = {P} ORDER BY 1", [dataset])
        return {r[0]: TableDef.from_row(*r) for r in rows}

    def write_table_def(self, dataset: str, t: TableDef) -> None:
        self._run("DELETE FROM topoff.tables WHERE dataset = {P} AND source_table = {P}",
                  [dataset, t.source])
        self._run("INSERT INTO topoff.tables (dataset, source_table, target_schema, "
                  "target_name, definition) VALUES ({P}, {P}, {P}, {P}, {P})",
                  [dataset, t.source, t.target.schema, t.target.name, t.to_json()])

    def applied_steps(self, dataset: str, publication: str) -> set[str]:
        return {r[0] for r in self._run(
            "SELECT step FROM topoff.applied WHERE dataset = {P} AND publication = {P}",
            [dataset, publication])}

    def record_step(self, dataset: str, publication: str, step: str, sequence: int, kind: str,
                    window_label: str | None, revision: int | None, rows: int | None,
                    manifest_sha256: str | None) -> None:
        self._run(
            "INSERT INTO topoff.applied (dataset, publication, step, sequence, kind, "
            "window_label, revision, rows, manifest_sha256, applied_at) VALUES "
            "({P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, {P}, now())",
            [dataset, publication, step, sequence, kind, window_label, revision, rows,
             manifest_sha256])

    def applied(self, dataset: str, limit: int = 20) -> list[tuple[Any, ...]]:
        return self._run(
            "SELECT publication, sequence, kind, window_label, revision, sum(rows), "
            "max(applied_at) FROM topoff.applied WHERE dataset = {P} "
            "GROUP BY publication, sequence, kind, window_label, revision "
            f"ORDER BY sequence DESC LIMIT {int(limit)}", [dataset])

    def last_applied(self, dataset: str) -> tuple[str, int, str | None] | None:
        """(publication, sequence, manifest sha256) of the newest publication applied."""
        rows = self._run("SELECT publication, sequence, manifest_sha256 FROM topoff.applied "
                         "WHERE dataset = {P} ORDER BY sequence DESC LIMIT 1", [dataset])
        return (str(rows[0][0]), int(rows[0][1]), rows[0][2]) if rows else None

    def full_load_publication(self, dataset: str) -> str | None:
        """The full export the replica's tables were created from (its ``schema`` step)."""
        rows = self._run("SELECT publication FROM topoff.applied WHERE dataset = {P} AND "
                         "step = 'schema'", [dataset])
        return rows[0][0] if rows else None

    def forget(self, dataset: str) -> None:
        """Drop the dataset's tables and ledger rows (``--rebase``), in the caller's txn."""
        for t in self.table_defs(dataset).values():
            self.engine.drop_table(t.target)
        for table in ("applied", "tables", "replicas"):
            self._run(f"DELETE FROM topoff.{table} WHERE dataset = {{P}}", [dataset])
