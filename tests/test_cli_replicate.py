"""``topoff replicate`` on the command line: options, exit codes, status, and real
processes (SIGKILL at random points then a re-run, two runs at once, --every stopped by
SIGTERM and SIGINT)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli, write_config
from support.replicate import config_text, hashes, new_database, new_target, query

ENGINES = ["duckdb", "postgresql"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(cluster):
    db = new_database(cluster)
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'a' "
               "FROM generate_series(1, 20000) g; "
               "CREATE TABLE lg (ts timestamptz NOT NULL, n int); "
               "INSERT INTO lg SELECT '2026-01-01'::timestamptz + g * interval '1 s', g "
               "FROM generate_series(1, 20000) g; "
               "CREATE TABLE snap (id int PRIMARY KEY, v text); "
               "INSERT INTO snap SELECT g, 'v' FROM generate_series(1, 5000) g")
    return db


TABLES = {"ev": {"method": "updater", "cursor": "ts", "batch_rows": 2000},
          "lg": {"method": "inserter", "cursor": "ts", "batch_rows": 2000},
          "snap": {"method": "snapshot"}}


@pytest.fixture(params=ENGINES)
def setup(request, cluster, source, tmp_path):
    url = new_target(request.param, cluster, tmp_path)
    path = write_config(tmp_path / "replica.toml",
                        config_text(url, {"app": (source.standby_url, TABLES)}))
    return request.param, url, path


def equal_all(url, source):
    for t in ("public.ev", "public.lg", "public.snap"):
        mine, theirs = hashes(url, source.primary_url, "app", t)
        assert mine == theirs, t


def test_once_status_pause_repull_resync(setup, source):
    _, url, path = setup
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    assert "3 tables: 3 ok; 45,000 rows moved" in r.stdout
    assert "app.public.ev -> app.ev: 20,000 rows, lag" in r.stderr
    equal_all(url, source)
    r = run_cli("replicate", "--config", path, "--pause", "ev")
    assert r.exit_code == 0, r.stderr
    r = run_cli("replicate", "--config", path, "--status", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {x["table"]: x for x in json.loads(r.stdout)}
    assert rows["public.ev"]["paused"] and rows["public.ev"]["rows_total"] == 20000
    assert rows["public.snap"]["method"] == "snapshot"
    assert rows["public.lg"]["lag_seconds"] is not None
    r = run_cli("replicate", "--config", path, "--status")
    assert "public.ev" in r.stdout and "yes" in r.stdout and "last refresh" in r.stdout
    r = run_cli("replicate", "--config", path, "--table", "ev", "--table", "snap")
    assert r.exit_code == 0 and "1 paused, 1 unchanged" in r.stdout, r.stdout
    r = run_cli("replicate", "--config", path, "--resume", "app.public.ev")
    assert r.exit_code == 0
    r = run_cli("replicate", "--config", path, "--repull", "lg", "--from", "2026-01-01",
                "--to", "2026-01-01 00:01:00")
    assert r.exit_code == 0 and "60 rows moved" in r.stdout, r.stdout + r.stderr
    r = run_cli("replicate", "--config", path, "--resync", "snap")
    assert r.exit_code == 0 and "5,000 rows moved" in r.stdout
    equal_all(url, source)


def test_mistakes_are_config_errors(setup):
    path = setup[2]
    for args in (["--once", "--status"], ["--from", "1"], ["--json"],
                 ["--every", "0s"], ["--every", "99999999d"], ["--table", "nope"],
                 ["--pause", "nope"]):
        r = run_cli("replicate", "--config", path, *args)
        assert r.exit_code == 2, (args, r.stderr)
        error_lines(r)
    # --every's hint is about --every (it offered 500ms, and integers for integer cursors)
    _, hint = error_lines(run_cli("replicate", "--config", path, "--every", "soon"))
    assert hint == "hint: for example --every 5m (durations: s, m, h, d; at least 1s)"
    r = run_cli("replicate")
    assert r.exit_code == 2 and "--config" in r.stderr


def test_a_failing_table_does_not_stop_the_others(setup, cluster, tmp_path):
    _, url, _ = setup
    db = new_database(cluster)
    db.execute("CREATE TABLE good (id int PRIMARY KEY, v text); INSERT INTO good VALUES (1, 'a')")
    path = write_config(tmp_path / "bad.toml", config_text(url, {"app": (db.standby_url, {
        "missing": {"method": "snapshot"}, "good": {"method": "snapshot"}})}))
    r = run_cli("replicate", "--config", path)
    assert r.exit_code == 2, r.stderr  # the missing table's ConfigError
    assert "1 failed, 1 ok" in r.stdout
    assert "public.missing does not exist" in r.stderr
    assert query(url, "SELECT count(*) FROM app.good") == [(1,)]
    r = run_cli("replicate", "--config", path, "--log-format", "json")
    assert r.exit_code == 2
    lines = [json.loads(ln) for ln in r.stderr.splitlines()]  # every line is JSON
    failed = [x for x in lines if x.get("level") == "error"]
    assert failed[-1]["table"] == "app.public.missing" and failed[-1]["exit_code"] == 2


def _command(path: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "topoff", "replicate", "--config", path, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": ""}


@pytest.mark.slow
def test_sigkill_at_random_points_then_a_rerun(setup, source):
    _, url, path = setup
    rnd = random.Random(7)
    for n in range(5):
        source.execute(f"INSERT INTO ev SELECT m + g, now() - g * interval '1 ms', 'k{n}' "
                       "FROM generate_series(1, 3000) g, (SELECT max(id) AS m FROM ev) x; "
                       f"UPDATE ev SET v = 'k{n}', ts = now() WHERE id % 97 = {n}; "
                       "INSERT INTO lg SELECT now() - g * interval '1 ms', g "
                       "FROM generate_series(1, 3000) g; "
                       f"UPDATE snap SET v = 'k{n}' WHERE id % 13 = {n}")
        proc = subprocess.Popen(_command(path, "--once"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(_command(path, "--once"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    equal_all(url, source)
    assert query(url, "SELECT count(*) - count(DISTINCT id) FROM app.ev") == [(0,)]


def test_two_runs_at_once(setup, source):
    _, url, path = setup
    subprocess.run(_command(path), env=_env(), check=True, capture_output=True)
    source.execute("INSERT INTO lg SELECT now() - g * interval '1 ms', g "
                   "FROM generate_series(1, 5000) g; "
                   "UPDATE snap SET v = 'two' WHERE id < 100")
    procs = [subprocess.Popen(_command(path, "-j", "2"), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    equal_all(url, source)
    assert query(url, "SELECT count(*) FROM app.lg") == source.execute(
        "SELECT count(*) FROM lg")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_every_runs_until_a_signal_and_exits_130(cluster, source, tmp_path, sig):
    url = new_target("duckdb", cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"app": (
        source.standby_url, {"snap": {"method": "snapshot"}})}))
    proc = subprocess.Popen(_command(path, "--every", "1s"), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline(), proc.stdout.readline()]  # two runs
    assert all("1 tables:" in ln for ln in lines), lines
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "error: interrupted" in err


def test_replicate_does_not_import_the_other_commands_and_help_lists_all() -> None:
    """Command modules load when their command runs; help and ``commands`` see them all."""
    code = ("import sys, click\n"
            "from topoff.cli import cli\n"
            "assert cli.get_command(click.Context(cli), 'replicate') is not None\n"
            "print(sorted(m for m in sys.modules if m.startswith(('topoff.backup', "
            "'topoff.cli.backup', 'topoff.cli.sync', 'duckdb'))))\n"
            "assert cli.get_command(click.Context(cli), 'nope') is None\n"
            "print(sorted(cli.commands))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split("\n")
    assert out[0] == "[]"
    from topoff.cli import _MODULES
    assert out[1] == str(sorted(n for names in _MODULES.values() for n in names))


@contextlib.contextmanager
def _held(source, *tables: str) -> Iterator[None]:
    """The tables locked ACCESS EXCLUSIVE on the primary, the lock replayed on the standby:
    a refresh reading them there waits until the block ends."""
    with source.primary() as conn:
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE " + ", ".join(tables) + " IN ACCESS EXCLUSIVE MODE")
        conn.execute("SELECT pg_switch_wal()")  # the lock record reaches the standby now
        _until(source, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
               "AND relation = ANY(ARRAY[" + ", ".join(f"'{t}'::regclass::oid" for t in tables)
               + "])", len(tables))
        try:
            yield
        finally:
            conn.execute("ROLLBACK")


def _until(source, statement: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while source.standby_query(statement)[0][0] < count:
        assert time.monotonic() < deadline, statement
        time.sleep(0.02)


def _waiting(source, count: int) -> None:
    """``count`` of topoff's readers wait for a lock on the standby."""
    _until(source, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
           "'topoff%' AND wait_event_type = 'Lock'", count)


@pytest.mark.parametrize("args", [("--once",), pytest.param(("--once", "-j", "2"),
                                                             marks=pytest.mark.slow),
                                  ("--resync", "snap"),
                                  pytest.param(("--repull", "snap"), marks=pytest.mark.slow),
                                  ("--reconcile", "snap")])
def test_sigterm_while_the_source_keeps_the_rows_waiting(cluster, source, tmp_path, args):
    """The source's reads wait (a lock, a long sort): SIGTERM still stops every action,
    worker threads included, with exit 130 and one error line; the next run completes."""
    url = new_target("postgresql", cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"app": (
        source.standby_url, {"snap": {"method": "snapshot"}, "lg": TABLES["lg"]})}))
    if args[0] != "--once":
        subprocess.run(_command(path), env=_env(), check=True, capture_output=True)
    with _held(source, "snap", "lg"):
        proc = subprocess.Popen(_command(path, *args), env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        _waiting(source, 2 if "-j" in args else 1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines()[-2:][0] == "error: interrupted" and "Traceback" not in err, err
    done = subprocess.run(_command(path), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for table in ("public.snap", "public.lg"):
        mine, theirs = hashes(url, source.primary_url, "app", table)
        assert mine == theirs, table
