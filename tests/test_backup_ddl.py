"""``topoff backup`` while a migration runs on the source's primary: a table changed under
the backup's snapshot, in the dump, before it or in the drill's hashing (MariaDB: error
1412, or 1146 for a table gone; PostgreSQL: replayed on the standby before the tables are
locked, or cancelling the backup after), fails the backup with exit 3 saying so, the hint
to run it again, and no finished.json."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.clusters import drop, own_database
from support.maria_backup import take_backup
from support.mariadb import MariaDatabase
from support.pg import Database
from support.slow import first_kept
from topoff.backup import pipeline
from topoff.backup.dump import PgDump
from topoff.backup.maria_dump import MariaDump
from topoff.demo.cluster import ThrowawayCluster


@contextlib.contextmanager
def _test_env(saved: dict[str, str]) -> Iterator[None]:
    """The test's environment (the command's run has its own) for the test's SQL client."""
    inside = dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(inside)


def migrate(statement: str, maria: MariaDatabase) -> Callable[[], None]:
    saved = dict(os.environ)

    def run() -> None:
        with _test_env(saved):
            maria.execute(statement)  # and the replica applies it

    return run


def _catalog(store: Path, name: str) -> list[str]:
    return sorted(p.name for p in (store / "catalog" / name).iterdir())


@pytest.mark.parametrize("statement", first_kept(["ALTER TABLE items MODIFY body LONGBLOB",
                                                  "TRUNCATE TABLE items"]))
def test_a_mariadb_table_changed_before_the_hashing(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch, statement: str) -> None:
    """The dump read the table; the tables are then hashed in topoff's snapshot, which a
    table rebuilt since cannot be read in."""
    finish, run = MariaDump.finish, migrate(statement, shop)

    def migrated(self: MariaDump) -> None:
        finish(self)
        run()  # nothing holds the table now

    monkeypatch.setattr(MariaDump, "finish", migrated)
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.ddl", env)
    assert result.exit_code == 3, result.stderr  # type: ignore[attr-defined]
    lines = error_lines(result)
    assert "items" in lines[0] and "definition changed" in lines[0], lines
    assert "run it again" in result.stderr and "SELECT" not in result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]
    assert _catalog(store, "dump.ddl") == ["failed.json", "started.json"]
    failed = json.loads((store / "catalog/dump.ddl/failed.json").read_text())
    assert "items" in failed["error"]


@pytest.mark.parametrize("statement", first_kept(["ALTER TABLE items MODIFY body LONGBLOB",
                                                  "TRUNCATE TABLE items"]))
def test_a_mariadb_table_changed_while_dumped(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch, statement: str) -> None:
    """The dump reads its tables in name order: held on a big first table (its output is
    not read meanwhile), it reads ``items`` after the migration rebuilt it."""
    shop.execute("CREATE TABLE aaa_big (id INT PRIMARY KEY, pad VARCHAR(1000)); "
                 "INSERT INTO aaa_big SELECT seq, REPEAT('x', 1000) FROM seq_1_to_4000")
    header, run = MariaDump.header, migrate(statement, shop)

    def migrated(self: MariaDump) -> bytes:
        head = header(self)
        run()
        return head

    monkeypatch.setattr(MariaDump, "header", migrated)
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.ddl", env)
    assert result.exit_code == 3, result.stderr  # type: ignore[attr-defined]
    error, hint = error_lines(result)
    assert "items" in error and "changed on the source after the dump" in error, error
    assert "run it again" in hint, hint
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]
    assert _catalog(store, "dump.ddl") == ["failed.json", "started.json"]
    assert not (store / "backups" / "dump.ddl.sql.zst.age").exists()


PG_DDL = {"ALTER TABLE t ALTER n TYPE bigint": "rewritten",
          "TRUNCATE t": "truncated",
          "ALTER TABLE t DROP COLUMN v": "a column dropped",
          "ALTER TABLE t RENAME TO t_old": "does not exist",
          "DROP TABLE t": "does not exist",
          "ALTER TABLE t RENAME v TO w": "a column renamed"}


@pytest.mark.parametrize("statement", first_kept(PG_DDL, keep=2))
def test_a_postgresql_table_changed_before_pg_dump_locked_it(
        db: Database, age_key: AgeKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        statement: str) -> None:
    """pg_dump imports topoff's snapshot and only then locks the tables: a migration
    replayed in between is not waited for, and a table rewritten or truncated then would
    be dumped, and counted for the drill, with no row."""
    db.execute("CREATE TABLE t (id int PRIMARY KEY, n int, v text); "
               "INSERT INTO t SELECT g, g, 'x' FROM generate_series(1, 100) g; "
               "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1)")
    lock = pipeline.lock_tables

    def migrated(conn: psycopg.Connection) -> None:
        db.execute(statement)  # the standby replays it: nothing holds the table yet
        lock(conn)

    monkeypatch.setattr(pipeline, "lock_tables", migrated)
    store = tmp_path / "store"
    result = run_cli(*backup_args(db, age_key, store, "dump.ddl"))
    assert result.exit_code == 3, result.stderr
    error, hint = error_lines(result)
    assert "public.t" in error and PG_DDL[statement] in error, error
    assert "run it again" in hint, hint
    assert "Traceback" not in result.stderr
    assert _catalog(store, "dump.ddl") == ["failed.json", "started.json"]
    assert not (store / "backups" / "dump.ddl.tar.zst.age").exists()


@pytest.fixture(scope="module")
def impatient_standby(impatient_cluster: ThrowawayCluster) -> Iterator[Database]:
    """A database whose standby cancels conflicting sessions at once."""
    db = own_database(impatient_cluster, "migrated")
    try:
        db.execute("CREATE TABLE t (id int PRIMARY KEY, v text); "
                   "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g")
        yield db
    finally:
        drop(db)


def test_a_migration_replayed_while_pg_dump_runs(
        impatient_standby: Database, age_key: AgeKey, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay cancels the backup's session, which holds the snapshot pg_dump imports and
    the tables' locks: pg_dump then fails too, and the error says why."""
    db = impatient_standby
    start = PgDump.start

    def migrated(self: PgDump) -> None:
        start(self)
        db.execute("ALTER TABLE t ADD COLUMN IF NOT EXISTS w int")

    monkeypatch.setattr(PgDump, "start", migrated)
    store = tmp_path / "store"
    result = run_cli(*backup_args(db, age_key, store, "dump.ddl"))
    assert result.exit_code == 3, result.stderr
    error, hint = error_lines(result)
    assert "conflict with recovery" in error, error
    assert "schema change on the primary" in hint and "run it again" in hint, hint
    assert _catalog(store, "dump.ddl") == ["failed.json", "started.json"]
    assert not (store / "backups" / "dump.ddl.tar.zst.age").exists()
