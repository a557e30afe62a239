"""``topoff replicate --once`` while a migration runs on the source's primary: a table
rewritten, truncated, renamed, dropped or with a column dropped after the refresh's
snapshot began fails that table's refresh with exit 3 naming it and the hint to run it
again, the replica and its state unchanged; the next refresh takes the table as it is."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support.mariadb import MariaDatabase
from support.replicate import config, new_database, new_target, query
from support.slow import first_kept
from topoff.replicate import maria_source, pg_source
from topoff.replicate.engine import open_target, run_once
from topoff.replicate.store import StateStore

TABLES = {"ins": {"method": "inserter", "cursor": "ts"},
          "upd": {"method": "updater", "cursor": "ts"},
          "snap": {"method": "snapshot"}}


@pytest.fixture
def source(cluster):
    return new_database(cluster)


def _states(url: str) -> dict[str, str]:
    engine = open_target(url)
    try:
        return {t.table: t.state for t in StateStore(engine).all()}  # type: ignore[attr-defined]
    finally:
        engine.close()


def _rows(url: str) -> dict[str, list[tuple]]:
    return {n: query(url, f"SELECT id, v FROM app.{n} ORDER BY id") for n in TABLES}


def _after_snapshot(monkeypatch: pytest.MonkeyPatch, run: Callable[[str], None],
                    statements: dict[str, str], session: type = pg_source.PostgresSession
                    ) -> list[str]:
    """The table's statement runs on the primary (and is replayed) once its refresh's
    snapshot began (its first query), before the table is described."""
    done: list[str] = []
    describe = session.describe

    def migrated(self, t):
        if t.name in statements and t.name not in done:
            done.append(t.name)
            if session is pg_source.PostgresSession:
                self.conn.execute("SELECT 1")  # the snapshot is taken
            run(statements[t.name])
        return describe(self, t)

    monkeypatch.setattr(session, "describe", migrated)
    return done


PG_DDL = ["ALTER TABLE {t} ALTER extra TYPE bigint", "TRUNCATE {t}",
          "ALTER TABLE {t} DROP COLUMN extra", "ALTER TABLE {t} RENAME TO {t}_old",
          "DROP TABLE {t}", "ALTER TABLE {t} RENAME extra TO more"]


def _changed_meanwhile(execute: Callable[[str], None], url: str, cfg: object,
                       monkeypatch: pytest.MonkeyPatch, statement: str,
                       session: type = pg_source.PostgresSession) -> tuple[dict, dict, list]:
    """Rows added and changed on the source, then a refresh during which ``statement``
    runs on each table once its snapshot began: the replica's rows and states before
    the refresh, and the refresh's runs."""
    for n in TABLES:
        execute(f"INSERT INTO {n} VALUES (51, '2026-06-01', 'new', 51); "
                f"UPDATE {n} SET v = 'changed', ts = '2026-06-02' WHERE id = 3")
    rows, states = _rows(url), _states(url)
    done = _after_snapshot(monkeypatch, execute, {n: statement.format(t=n) for n in TABLES},
                           session)
    runs = run_once(cfg)
    assert sorted(done) == sorted(TABLES)
    return rows, states, runs


@pytest.mark.parametrize("statement", first_kept(["ALTER TABLE {t} ADD COLUMN more int",
                                                  "CREATE INDEX {t}_v ON {t} (v)"]))
def test_a_postgresql_table_given_a_column_or_index_after_the_refresh_snapshot(
        source, cluster, tmp_path, monkeypatch, statement) -> None:
    """Neither rewrites the table: the refresh reads it in its snapshot, as it was."""
    for n in TABLES:
        source.execute(f"CREATE TABLE {n} (id int PRIMARY KEY, ts timestamptz NOT NULL, "
                       f"v text, extra int); INSERT INTO {n} SELECT g, '2026-03-01'::date + g, "
                       "'old', g FROM generate_series(1, 50) g")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, TABLES)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok", "ok"]
    for n in TABLES:
        source.execute(f"INSERT INTO {n} VALUES (51, '2026-06-01', 'new', 51); "
                       f"UPDATE {n} SET v = 'changed', ts = '2026-06-02' WHERE id = 3")
    _after_snapshot(monkeypatch, source.execute, {n: statement.format(t=n) for n in TABLES})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok", "ok"]
    monkeypatch.undo()
    assert [r.status for r in run_once(cfg)] in (["ok"] * 3, ["unchanged"] * 3,
                                                 ["ok", "ok", "unchanged"])
    for n in TABLES:
        assert query(url, f"SELECT id, v FROM app.{n} ORDER BY id") == source.standby_query(
            f"SELECT id, v FROM {n} ORDER BY id")
        if "ADD COLUMN" in statement:  # the new column, in the replica from the next refresh
            query(url, f"SELECT more FROM app.{n}")


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
@pytest.mark.parametrize("statement", first_kept(PG_DDL, keep=2))
def test_a_postgresql_table_changed_after_the_refresh_snapshot(
        source, cluster, tmp_path, monkeypatch, statement, kind) -> None:
    for n in TABLES:
        source.execute(f"CREATE TABLE {n} (id int PRIMARY KEY, ts timestamptz NOT NULL, "
                       f"v text, extra int); INSERT INTO {n} SELECT g, '2026-03-01'::date + g, "
                       "'old', g FROM generate_series(1, 50) g")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, TABLES)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok", "ok"]
    rows, states, runs = _changed_meanwhile(source.execute, url, cfg, monkeypatch, statement)
    for r in runs:
        assert r.status == "failed" and r.exit_code == 3, r
        assert r.table in (r.error or "") and "run it again" in (r.error or "")
    assert _rows(url) == rows and _states(url) == states



MARIA_DDL = {"ALTER TABLE {t} MODIFY extra BIGINT": "failed",
             "TRUNCATE TABLE {t}": "failed",
             "ALTER TABLE {t} ADD COLUMN more INT": "ok",  # instant: read as it is now
             "ALTER TABLE {t} DROP COLUMN extra": "ok",
             "CREATE INDEX {t}_v ON {t} (v)": "ok"}


@pytest.mark.parametrize("statement", first_kept(MARIA_DDL, keep=2))
def test_a_mariadb_table_changed_after_the_refresh_snapshot(
        maria: MariaDatabase, cluster, tmp_path, monkeypatch, statement) -> None:
    """A table rebuilt after the snapshot began cannot be read in it (1412): the refresh
    fails, nothing written; an instant change is read as the table is now."""
    for n in TABLES:
        maria.execute(f"CREATE TABLE {n} (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, "
                      f"v VARCHAR(20), extra INT); INSERT INTO {n} SELECT seq, "
                      "TIMESTAMP'2026-03-01 00:00:00' + INTERVAL seq DAY, 'old', seq "
                      "FROM seq_1_to_50")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"app": (maria.replica_url, TABLES)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok", "ok"]
    rows, states, runs = _changed_meanwhile(maria.execute, url, cfg, monkeypatch, statement,
                                            maria_source.MariaSession)
    assert [r.status for r in runs] == [MARIA_DDL[statement]] * 3, runs
    if MARIA_DDL[statement] == "failed":
        for r in runs:
            assert r.exit_code == 3 and "run it again" in (r.error or "")
            assert "definition changed on the source" in (r.error or "")
        assert _rows(url) == rows and _states(url) == states
        monkeypatch.undo()
        assert [r.status for r in run_once(cfg)] == ["ok", "ok", "ok"]
    for n in TABLES:  # every row the source has, as it has it
        source = [(int(i), v) for i, v in maria.pair.replica.query(
            f"SELECT id, v FROM {n} ORDER BY id", maria.name)]
        held = query(url, f"SELECT id, v FROM app.{n} ORDER BY id")
        assert held == source if n == "snap" else set(source) <= set(held)


@pytest.mark.parametrize("statement", first_kept(["TRUNCATE {t}_hi",
                                                  "ALTER TABLE {t}_hi ALTER own TYPE bigint",
                                                  "ALTER TABLE {t} DETACH PARTITION {t}_hi"]))
def test_a_partition_or_child_changed_after_the_refresh_snapshot(
        source, cluster, tmp_path, monkeypatch, statement) -> None:
    """A refresh reads a table with its partitions or inheritance children: one of them
    truncated, rewritten or detached since the snapshot began was read with no row (a
    snapshot table's replica lost its rows, ok)."""
    for n in TABLES:
        if "own" in statement:  # an inheritance child, rewritten alone
            source.execute(f"CREATE TABLE {n} (id int, ts timestamptz NOT NULL, v text, "
                           f"extra int); CREATE TABLE {n}_hi (own int) INHERITS ({n})")
        else:
            source.execute(f"CREATE TABLE {n} (id int PRIMARY KEY, ts timestamptz NOT NULL, "
                           f"v text, extra int) PARTITION BY RANGE (id); CREATE TABLE {n}_lo "
                           f"PARTITION OF {n} FOR VALUES FROM (1) TO (26); CREATE TABLE {n}_hi "
                           f"PARTITION OF {n} FOR VALUES FROM (26) TO (1000)")
        source.execute(f"INSERT INTO {n} SELECT g, '2026-03-01'::date + g, 'old', g "
                       "FROM generate_series(1, 25) g")
        source.execute(f"INSERT INTO {n}_hi SELECT g, '2026-03-01'::date + g, 'old', g "
                       "FROM generate_series(26, 50) g")
    tables = {n: ({**m, "key": ["id"]} if m["method"] == "updater" else m)
              for n, m in TABLES.items()}
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, tables)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok", "ok"]
    rows, states, runs = _changed_meanwhile(source.execute, url, cfg, monkeypatch, statement)
    for r in runs:
        assert r.status == "failed" and r.exit_code == 3, r
        child = f"(its partition or child public.{r.table.split('.')[-1]}_hi)"
        assert child in (r.error or ""), r.error
        assert "run it again" in (r.error or "")
    assert _rows(url) == rows and _states(url) == states
