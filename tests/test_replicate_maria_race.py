"""Two ``topoff replicate --once`` of one config with a MariaDB source at once, on each
target kind: each run ends (0) or stops with a clear message and its documented exit code,
never an internal error; after a last run the replica equals the source, nothing twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import write_config
from support.replicate import config_text, new_target, query
from test_replicate_mariadb import ENGINES, ROOT, maria_equal


def _command(path: str) -> list[str]:
    return [sys.executable, "-m", "topoff", "replicate", "--config", path, "--once"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ENGINES)
def test_two_runs_at_once(kind, cluster, maria, tmp_path: Path) -> None:
    maria.execute("CREATE TABLE big (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, v TEXT);"
                  "INSERT INTO big SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq "
                  "SECOND, REPEAT('x', 200) FROM seq_1_to_30000;"
                  "CREATE TABLE lg (ts DATETIME(6) NOT NULL, n INT);"
                  "INSERT INTO lg SELECT TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, seq "
                  "FROM seq_1_to_20000;"
                  "CREATE TABLE snap (id INT PRIMARY KEY, v INT);"
                  "INSERT INTO snap SELECT seq, seq FROM seq_1_to_3000")
    url = new_target(kind, cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"m": (maria.replica_url, {
        "big": {"method": "updater", "cursor": "ts", "batch_rows": 5000},
        "lg": {"method": "inserter", "cursor": "ts", "batch_rows": 5000},
        "snap": {"method": "snapshot"}})}))
    env = {"PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": "", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    for n in range(2):
        if n:
            maria.execute("UPDATE big SET v = 'k', ts = UTC_TIMESTAMP(6) WHERE id % 97 = 1;"
                          "INSERT INTO lg SELECT UTC_TIMESTAMP(6) + INTERVAL seq MICROSECOND,"
                          " seq FROM seq_1_to_3000; UPDATE snap SET v = -v WHERE id % 5 = 0")
        procs = [subprocess.Popen(_command(path), env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode in (0, 7), err
            assert "internal error" not in err and "Traceback" not in err, err
            if p.returncode == 7:
                assert "error:" in err and "hint:" in err, err
        assert any(p.returncode == 0 for p in procs), [e for _, e in outs]
    done = subprocess.run(_command(path), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for t in ("big", "lg", "snap"):
        maria_equal(url, maria, f"{maria.name}.{t}", "m")
    assert query(url, "SELECT count(*) - count(DISTINCT id) FROM m.big") == [(0,)]
    assert query(url, "SELECT count(*) FROM m.lg") == [(23000,)]


@pytest.mark.slow
def test_two_runs_at_once_and_kills_into_iceberg(maria, tmp_path: Path) -> None:
    """The same into an Iceberg replica (optimistic commits, no lock of its own), then runs
    SIGKILLed at random moments and a last run: the tables equal the source."""
    import random
    import signal
    import time

    from test_replicate_iceberg import catalog_file, maria_same

    maria.execute("CREATE TABLE big (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, v TEXT);"
                  "INSERT INTO big SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq "
                  "SECOND, REPEAT('x', 200) FROM seq_1_to_30000;"
                  "CREATE TABLE lg (ts DATETIME(6) NOT NULL, n INT);"
                  "INSERT INTO lg SELECT TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, seq "
                  "FROM seq_1_to_20000;"
                  "CREATE TABLE snap (id INT PRIMARY KEY, v INT);"
                  "INSERT INTO snap SELECT seq, seq FROM seq_1_to_3000")
    url = catalog_file(tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"meta_src": (
        maria.replica_url, {
            "big": {"method": "updater", "cursor": "ts", "batch_rows": 5000},
            "lg": {"method": "inserter", "cursor": "ts", "batch_rows": 5000},
            "snap": {"method": "snapshot"}})}))
    env = {"PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": "", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    changes = ("UPDATE big SET v = 'k', ts = UTC_TIMESTAMP(6) WHERE id % 97 = {n};"
               "INSERT INTO lg SELECT UTC_TIMESTAMP(6) + INTERVAL seq MICROSECOND, seq + {n}"
               " FROM seq_1_to_1000; UPDATE snap SET v = -v WHERE id % 5 = {n}")
    for n in range(2):
        if n:
            maria.execute(changes.format(n=n))
        procs = [subprocess.Popen(_command(path), env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode in (0, 7), err
            assert "internal error" not in err and "Traceback" not in err, err
    rng = random.Random()
    for n in range(2, 5):
        maria.execute(changes.format(n=n))
        proc = subprocess.Popen(_command(path), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    done = subprocess.run(_command(path), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert maria_same(url, maria, "big") == 30000
    assert maria_same(url, maria, "lg") == 24000
    assert maria_same(url, maria, "snap") == 3000
