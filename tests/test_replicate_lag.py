"""The lag ``topoff replicate`` reports is how far the replica's data is behind its source's
primary: a standby whose replay is paused while the primary commits shows it growing and
``--check --crit-lag`` fires; a quiet primary's keepalives keep it small; a MariaDB replica
whose replication is stopped keeps the time it was complete as of. The PostgreSQL cluster
is a quiet one (support/clusters.py), no test of another kind on it: its standby's replay
is paused."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from support.cli import run_cli, write_config
from support.clusters import drop, own_database
from support.mariadb import MariaDatabase
from support.replicate import config_text
from test_export_closing import last_replayed_commit, wait_for_report_after
from topoff.replicate.state import TableState

TABLE = {"method": "updater", "cursor": "ts", "boundary": "1m"}


@pytest.fixture(scope="module")
def quiet(quiet_cluster):
    """A database on a primary that writes nothing unless a test does, and a standby that
    pings it every second, so the primary's keepalives arrive often."""
    db = own_database(quiet_cluster, "lag")
    try:
        db.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL); "
                   "INSERT INTO ev SELECT g, now() FROM generate_series(1, 10) g")
        yield db
    finally:
        drop(db, "lagwatch")


def _status(path: str) -> dict[str, dict]:
    r = run_cli("replicate", "--config", path, "--status", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    return {row["table"]: row for row in json.loads(r.stdout)}


def _config(tmp_path, url: str, tables: dict[str, dict]) -> str:
    return write_config(tmp_path / "r.toml", config_text(
        str(tmp_path / "replica.duckdb"), {"app": (url, tables)}))


def test_a_paused_standby_shows_its_lag_growing(quiet, tmp_path):
    db = quiet
    db.sync()
    path = _config(tmp_path, db.standby_url, {"ev": TABLE})
    assert run_cli("replicate", "--config", path, "--once").exit_code == 0
    standby = db.cluster.standby
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        replayed = last_replayed_commit(db)
        with db.primary() as conn:  # committed on the primary, not replayed
            conn.execute("INSERT INTO ev VALUES (11, now())")
        wait_for_report_after(db, replayed, caught_up=False)
        time.sleep(1.5)
        r = run_cli("replicate", "--config", path, "--once")
        assert r.exit_code == 0, r.stdout + r.stderr
        lag = _status(path)["public.ev"]["lag_seconds"]
        # the data is complete as of the last replayed commit, not the standby's clock
        assert lag >= (datetime.now(UTC) - replayed).total_seconds() - 0.5 and lag > 1.5
        prom = tmp_path / "r.prom"
        r = run_cli("replicate", "--config", path, "--check", "--warn-lag", "1s",
                    "--crit-lag", "1s", "--prometheus", str(prom))
        assert r.exit_code == 2 and "app.public.ev last success" in r.stdout, r.stdout
        assert "(limit 1s)" in r.stdout, r.stdout
        [sample] = [line for line in prom.read_text().splitlines()
                    if line.startswith("topoff_replicate_lag_seconds{")]
        assert float(sample.rsplit(" ", 1)[1]) > 1.5
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
    db.sync()
    assert run_cli("replicate", "--config", path, "--once").exit_code == 0
    r = run_cli("replicate", "--config", path, "--check", "--warn-lag", "1m",
                "--crit-lag", "2m")
    assert r.exit_code == 0, r.stdout


def test_a_quiet_primary_shows_no_false_lag(quiet, tmp_path):
    """No commit for seconds: the standby has replayed all the primary reported since,
    so the data is complete as of the primary's last report, not its last commit."""
    db = quiet
    db.sync()
    path = _config(tmp_path, db.standby_url, {"ev": TABLE})
    last = last_replayed_commit(db)
    wait_for_report_after(db, last + timedelta(seconds=3), caught_up=True)
    assert run_cli("replicate", "--config", path, "--once").exit_code == 0
    lag = _status(path)["public.ev"]["lag_seconds"]
    quiet_for = (datetime.now(UTC) - last).total_seconds()
    assert last_replayed_commit(db) == last  # still no commit
    assert lag < quiet_for - 1.5, (lag, quiet_for)


def test_a_role_without_pg_read_all_stats_is_told_its_lag_is_an_upper_bound(quiet, tmp_path):
    """A role that cannot see the standby's WAL receiver measures from the last replayed
    commit only, so a quiet primary shows as growing lag: the run's log, --status and
    --check say so once (for two tables), with the GRANT that ends it; granted, not."""
    db = quiet
    db.execute("CREATE TABLE ev2 (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "CREATE ROLE lagwatch LOGIN PASSWORD 'pw'; "
               "GRANT USAGE ON SCHEMA public TO lagwatch; "
               "GRANT SELECT ON ev, ev2 TO lagwatch")
    url = db.cluster.standby.url(db.name, user="lagwatch", password="pw")
    path = _config(tmp_path, url, {"ev": TABLE, "ev2": TABLE})
    grant = "GRANT pg_read_all_stats TO lagwatch"

    def said_once(text: str) -> None:
        assert text.count("upper bound") == 1 and text.count(grant) == 1, text
        assert "app.public.ev" in text and "app.public.ev2" in text, text

    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stdout + r.stderr
    said_once(r.stderr)
    r = run_cli("replicate", "--config", path, "--status")
    assert r.exit_code == 0, r.stdout + r.stderr
    said_once(r.stderr)
    rows = _status(path)
    assert rows["public.ev"]["lag_upper_bound"] and rows["public.ev2"]["lag_upper_bound"]
    r = run_cli("replicate", "--config", path, "--check")
    assert r.exit_code == 0, r.stdout + r.stderr
    said_once(r.stdout)
    assert r.stdout.splitlines()[0].startswith("REPLICATE OK - 2 tables fresh")

    db.execute(grant)
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0 and "upper bound" not in r.stderr, r.stdout + r.stderr
    r = run_cli("replicate", "--config", path, "--status")
    assert "upper bound" not in r.stderr, r.stderr
    assert not _status(path)["public.ev"]["lag_upper_bound"]
    r = run_cli("replicate", "--config", path, "--check")
    assert "upper bound" not in r.stdout, r.stdout


def test_a_stopped_mariadb_replica_keeps_its_lag(maria: MariaDatabase, tmp_path):
    """Seconds_Behind_Master is NULL once replication stops: the replica is complete as of
    the last refresh that knew (its lag grows); a table first read then has no lag known,
    a WARNING under lag limits; the run says so."""
    maria.execute("CREATE TABLE lag_a (id int PRIMARY KEY, ts datetime(6) NOT NULL);"
                  "CREATE TABLE lag_b (id int PRIMARY KEY, ts datetime(6) NOT NULL);"
                  "INSERT INTO lag_a VALUES (1, UTC_TIMESTAMP(6));"
                  "INSERT INTO lag_b VALUES (1, UTC_TIMESTAMP(6))")
    a, b = f"{maria.name}.lag_a", f"{maria.name}.lag_b"
    path = _config(tmp_path, maria.replica_url, {"lag_a": TABLE})
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stdout + r.stderr
    replica = maria.pair.replica
    replica.sql("STOP SLAVE")
    try:
        stopped = datetime.now(UTC)
        maria.pair.primary.sql("INSERT INTO lag_a VALUES (2, UTC_TIMESTAMP(6))", maria.name)
        time.sleep(1.5)
        path = _config(tmp_path, maria.replica_url, {
            "lag_a": TABLE,
            "lag_b": TABLE})
        r = run_cli("replicate", "--config", path, "--once")
        assert r.exit_code == 0, r.stdout + r.stderr
        assert "replication is stopped on the replica" in r.stderr, r.stderr
        rows = _status(path)
        assert rows[a]["lag_seconds"] >= (datetime.now(UTC) - stopped).total_seconds() - 0.5
        assert rows[b]["lag_seconds"] is None
        r = run_cli("replicate", "--config", path, "--check", "--warn-lag", "1s",
                    "--crit-lag", "1s")
        assert r.exit_code == 2, r.stdout
        assert f"app.{a}: CRITICAL" in r.stdout and f"app.{b}: WARNING" in r.stdout, r.stdout
        assert "lag unknown" in r.stdout, r.stdout
        # without lag limits a refresh that succeeded is fresh: only its age is judged
        assert run_cli("replicate", "--config", path, "--check").exit_code == 0
    finally:
        replica.sql("START SLAVE")
        maria.pair.wait_replica()
    assert run_cli("replicate", "--config", path, "--once").exit_code == 0
    r = run_cli("replicate", "--config", path, "--check", "--warn-lag", "1m",
                "--crit-lag", "2m")
    assert r.exit_code == 0, r.stdout


def test_state_before_as_of_keeps_its_lag():
    """A state written before ``as_of`` was kept: the lag counts from its snapshot's time;
    one whose source never said is unknown, and stays so through JSON."""
    now = datetime.now(UTC)
    old = TableState.from_json(json.dumps({"v": 1, "run_at": (now - timedelta(
        seconds=30)).isoformat()}))
    assert old.as_of is None and not old.as_of_unknown
    assert 29 < (old.lag_seconds(now) or 0) < 31
    unknown = old.measured(None, TableState())
    assert TableState.from_json(unknown.to_json()).lag_seconds(now) is None
    known = unknown.measured(now - timedelta(seconds=90), old)
    kept = TableState(run_at=now).measured(None, TableState.from_json(known.to_json()))
    assert 89 < (kept.lag_seconds(now) or 0) < 91
