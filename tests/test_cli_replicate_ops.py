"""``topoff replicate --reconcile`` and ``--check`` on the command line, on real clusters:
deletes and missed updates converge, a second reconcile finds nothing, and the freshness
check's Nagios codes and Prometheus file follow the replica's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from support.cli import error_lines, run_cli, write_config
from support.replicate import config_text, hashes, new_database, new_target, query
from topoff.replicate.apply import landing
from topoff.replicate.config import load_replicate
from topoff.replicate.engine import open_target
from topoff.replicate.state import TableState
from topoff.replicate.store import StateStore


@pytest.fixture(scope="module")
def source(cluster):
    db = new_database(cluster)
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
               "'a' || g FROM generate_series(1, 5000) g")
    return db


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_reconcile_repairs_deletes_and_missed_updates(engine, cluster, source, tmp_path):
    name = f"rc_{engine}"
    source.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, ts timestamptz NOT NULL, v text);"
                   f"INSERT INTO {name} SELECT g, '2026-01-01'::timestamptz + g * interval "
                   "'1 s', 'a' || g FROM generate_series(1, 5000) g")
    url = new_target(engine, cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"app": (
        source.standby_url, {name: {"method": "updater", "cursor": "ts", "boundary": "1m",
                                    "lookback": "1m"}})}))
    r = run_cli("replicate", "--config", path, "--once", env={"TOPOFF_DEBUG": "1"})
    assert r.exit_code == 0, r.stdout + r.stderr
    # deletes never arrive through a refresh; an update that keeps an old cursor value
    # (outside the lookback) is missed
    source.execute(f"DELETE FROM {name} WHERE id % 1000 = 7; "
                   f"UPDATE {name} SET v = 'changed' WHERE id IN (10, 2000, 3000)")
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    mine, theirs = hashes(url, source.primary_url, "app", f"public.{name}")
    assert mine != theirs
    r = run_cli("replicate", "--config", path, "--reconcile", name)
    assert r.exit_code == 0, r.stderr
    assert "0 inserted, 3 updated, 5 deleted" in r.stdout, r.stdout
    mine, theirs = hashes(url, source.primary_url, "app", f"public.{name}")
    assert mine == theirs
    r = run_cli("replicate", "--config", path, "--reconcile", f"app.public.{name}")
    assert r.exit_code == 0 and "0 inserted, 0 updated, 0 deleted" in r.stdout, r.stdout
    # a replica altered by hand converges too
    query(url, f"DELETE FROM app.{name} WHERE id < 4")
    r = run_cli("replicate", "--config", path, "--reconcile", name)
    assert "3 inserted, 0 updated, 0 deleted" in r.stdout, r.stdout
    assert hashes(url, source.primary_url, "app", f"public.{name}")[0] == theirs


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_reconcile_of_a_table_never_replicated(engine, cluster, source, tmp_path):
    """Refused with exit 7, and nothing made: no DuckDB file, no state schema (an empty
    DuckDB file, and the state tables, were left behind)."""
    url = new_target(engine, cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"app": (
        source.standby_url, {"ev": {"method": "updater", "cursor": "ts"}})}))
    r = run_cli("replicate", "--config", path, "--reconcile", "ev")
    assert r.exit_code == 7, r.stderr
    error, hint = error_lines(r)
    assert "has not been replicated yet" in error and "--table app.public.ev" in hint
    if engine == "duckdb":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]
    else:
        assert query(url, "SELECT count(*) FROM information_schema.schemata WHERE "
                     "schema_name = 'topoff'") == [(0,)]


def _age(url: str, path: str, table: str, hours: float) -> None:
    """Make a table's last refresh look ``hours`` old (its state as a stalled run leaves it)."""
    config = load_replicate(path)
    s = config.sources[0]
    t = next(x for x in s.tables if x.name == table)
    engine = open_target(url)
    try:
        store = StateStore(engine)
        stored = store.get(s.name, t.qualified)
        definition = store.definition(s.name, t.qualified)
        assert stored is not None and definition is not None
        old = datetime.now(UTC) - timedelta(hours=hours)
        with engine.transaction():
            store.write(s.name, t.qualified, landing(s, t), t.method,
                        TableState(**{**stored.state.__dict__, "run_at": old, "as_of": old}),
                        definition, 0, stored.paused)
            engine.execute(f"UPDATE topoff.replicate_tables SET updated_at = "
                           f"{engine.P} WHERE source = {engine.P}", [old, s.name])
    finally:
        engine.close()


def test_check_codes_and_prometheus(cluster, source, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"app": (
        source.standby_url, {"ev": {"method": "updater", "cursor": "ts"}})}))
    prom = tmp_path / "replicate.prom"
    r = run_cli("replicate", "--config", path, "--check", "--prometheus", str(prom))
    assert r.exit_code == 2, r.stdout  # nothing replicated yet: the replica is not there
    assert r.stdout.startswith("REPLICATE CRITICAL"), r.stdout
    assert "topoff_replicate_check_status 2.0" in prom.read_text()
    assert run_cli("replicate", "--config", path, "--once").exit_code == 0
    r = run_cli("replicate", "--config", path, "--check", "--prometheus", str(prom))
    assert r.exit_code == 0 and r.stdout.startswith("REPLICATE OK - 1 table fresh"), r.stdout
    text = prom.read_text()
    assert "topoff_replicate_last_success_timestamp_seconds" in text
    assert "topoff_replicate_check_status 0.0" in text
    _age(url, path, "ev", 3)
    r = run_cli("replicate", "--config", path, "--check")
    assert r.exit_code == 1 and "WARNING" in r.stdout, r.stdout
    r = run_cli("replicate", "--config", path, "--check", "--warn", "1h", "--crit", "2h")
    assert r.exit_code == 2 and "app.public.ev" in r.stdout, r.stdout
    # the lag limits: the data 3h behind its source
    r = run_cli("replicate", "--config", path, "--check", "--warn", "4h", "--crit", "5h",
                "--warn-lag", "1h", "--crit-lag", "2h")
    assert r.exit_code == 2 and "lag 3.0h (limit 2.0h)" in r.stdout, r.stdout
    r = run_cli("replicate", "--config", path, "--check", "--warn", "4h", "--crit", "5h",
                "--warn-lag", "2h", "--crit-lag", "4h")
    assert r.exit_code == 1 and "lag 3.0h (limit 2.0h)" in r.stdout, r.stdout
    assert run_cli("replicate", "--config", path, "--pause", "ev").exit_code == 0
    r = run_cli("replicate", "--config", path, "--check", "--warn", "1h", "--crit", "2h")
    assert r.exit_code == 1 and "paused" in r.stdout, r.stdout  # paused: never critical
    for args in (["--check", "--warn", "soon"], ["--prometheus", str(prom)],
                 ["--check", "--warn", "3h", "--crit", "1h"], ["--check", "--once"],
                 ["--check", "--warn-lag", "1h"], ["--warn-lag", "1h", "--crit-lag", "2h"],
                 ["--check", "--warn-lag", "2h", "--crit-lag", "1h"]):
        r = run_cli("replicate", "--config", path, *args)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        error_lines(r)
