"""``topoff export full|incremental`` from a MariaDB replica SIGKILLed at random moments,
then run again: the dataset lists each publication once, complete, a sync of it verifies
equal to the source, and a killed run's lock does not stop the next."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import run_cli, write_config
from support.mariadb import MariaDatabase
from test_mariadb_export import DAY
from topoff.dataset.index import read_index
from topoff.stores import open_store

ROOT = Path(__file__).resolve().parent.parent


def _export(cfg: str, out: str, kind: str, kill_after: float | None) -> int:
    args = [sys.executable, "-m", "topoff", "export", kind, "--config", cfg, "--to", out]
    if kind == "incremental":
        args += ["--date", str(DAY)]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT / "src"),
                                       "TOPOFF_CONFIG": ""},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode


@pytest.mark.slow
def test_exports_killed_at_random_then_run_again(maria: MariaDatabase, tmp_path: Path) -> None:
    maria.execute(f"""CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6) NOT NULL,
        body TEXT, KEY (at));
        INSERT INTO events SELECT seq, TIMESTAMP'{DAY - (DAY - DAY)} 00:00:00'
          - INTERVAL (seq % 5) DAY + INTERVAL (seq % 86400) SECOND, REPEAT('b', 300)
          FROM seq_1_to_150000;
        CREATE TABLE names (id INT PRIMARY KEY, name VARCHAR(40));
        INSERT INTO names SELECT seq, CONCAT('n', seq) FROM seq_1_to_20000""")
    cfg = write_config(tmp_path / "shop.toml", f"""
dataset = "shop"
[source]
url = "{maria.replica_url}"
[export]
lookback_days = 1
chunk_size = "1MB"
[tables.events]
schema = "{maria.name}"
method = "append"
cursor = "at"
[tables.names]
schema = "{maria.name}"
method = "snapshot"
""")
    out = str(tmp_path / "pub")
    rng = random.Random()
    killed = 0
    for kind in ("full", "incremental"):
        for _ in range(3):
            killed += _export(cfg, out, kind, rng.uniform(0.3, 2.5)) == -signal.SIGKILL
        assert _export(cfg, out, kind, None) == 0
    assert killed
    index = read_index(open_store(out))
    assert index is not None
    ids = [p.id for p in index.publications]
    assert len(ids) == len(set(ids)) and len([i for i in ids if i.startswith("full/")]) == 1
    replica = str(tmp_path / "replica.duckdb")
    synced = run_cli("sync", out, replica)
    assert synced.exit_code == 0, synced.output
    checked = run_cli("verify", replica, "--against", maria.replica_url)
    assert checked.exit_code == 0, checked.output


def test_an_incremental_export_killed_after_its_first_files_then_run_again(
        maria: MariaDatabase, tmp_path: Path) -> None:
    """Killed once files of the day's publication are written, before it is published:
    the rerun takes over the lock of the dead run, removes its files (they hold the names
    the day's publication is written under) and publishes the day (it stopped with exit 5,
    "already exists ... not overwritten", until the files were 6 hours old)."""
    maria.execute(f"""CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6) NOT NULL,
        body TEXT, KEY (at));
        INSERT INTO events SELECT seq, TIMESTAMP'{DAY} 00:00:00'
          + INTERVAL (seq % 86400) SECOND, REPEAT('b', 300) FROM seq_1_to_50000""")
    cfg = write_config(tmp_path / "shop.toml", f"""
dataset = "shop"
[source]
url = "{maria.replica_url}"
[export]
lookback_days = 0
chunk_size = "1MB"
jobs = 1
[tables.events]
schema = "{maria.name}"
method = "append"
cursor = "at"
""")
    out = tmp_path / "pub"
    assert _export(cfg, str(out), "full", None) == 0
    args = [sys.executable, "-m", "topoff", "export", "incremental", "--config", cfg,
            "--to", str(out), "--date", str(DAY)]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT / "src"),
                                       "TOPOFF_CONFIG": ""},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    day = out / "incremental" / str(DAY)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not (day.exists() and any(
            p.is_file() and not p.name.startswith(".") for p in day.rglob("*"))):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # killed before it published
    again = run_cli("export", "incremental", "--config", cfg, "--to", str(out), "--date",
                    str(DAY))
    assert again.exit_code == 0, again.output
    assert "took over a stale lock" in again.output
    index = read_index(open_store(str(out)))
    assert index is not None
    assert [p.id for p in index.publications if p.id.startswith("incremental/")] == [
        f"incremental/{DAY}/r1"]
    replica = str(tmp_path / "replica.duckdb")
    assert run_cli("sync", str(out), replica).exit_code == 0
    checked = run_cli("verify", replica, "--against", maria.replica_url)
    assert checked.exit_code == 0, checked.output
