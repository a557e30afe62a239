"""``topoff backup`` of a MariaDB replica SIGKILLed while mariadb-dump runs, at several
moments: the catalog lists it as failed (never finished), nothing of it is restored or
drilled, prune removes it and its partial object, and the next backup succeeds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.backup import AgeKey
from support.cli import run_cli
from support.maria_backup import children, source_url, take_backup
from support.mariadb import MariaDatabase

ROOT = Path(__file__).resolve().parent.parent


def _fill(shop: MariaDatabase) -> None:
    shop.execute("CREATE TABLE big (id INT PRIMARY KEY, body LONGBLOB);"
                 "INSERT INTO big SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_1024;"
                 + "".join(f"INSERT INTO big SELECT id + {n * 1024}, body FROM big;"
                           for n in (1, 2, 4, 8, 16)))


def _descendants(pid: int) -> list[tuple[int, str]]:
    out = []
    for child, cmd in children(pid):
        out += [(child, cmd), *_descendants(child)]
    return out


def _kill_mid_dump(shop: MariaDatabase, key: AgeKey, store: Path, name: str,
                   env: dict[str, str], delay: float) -> int:
    """SIGKILL the backup ``delay`` seconds after mariadb-dump started; its exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "backup", "--source", source_url(shop), "--to",
         str(store), "--name", name, "--recipient", key.public],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not any("mariadb-dump" in c or "mysqldump" in c
                                          for _, c in _descendants(proc.pid)):
        assert time.monotonic() < deadline, "mariadb-dump did not start"
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


@pytest.mark.slow
def test_backup_killed_mid_dump(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path,
                                env: dict[str, str]) -> None:
    _fill(shop)
    store = tmp_path / "store"
    first = take_backup(shop, age_key, str(store), "dump.a", env)
    assert first.exit_code == 0, first.stderr  # type: ignore[attr-defined]
    killed = []
    for n, delay in enumerate((0.0, 0.2, random.uniform(0.0, 1.0))):
        code = _kill_mid_dump(shop, age_key, store, f"dump.k{n}", env, delay)
        if code == -signal.SIGKILL:
            killed.append(f"dump.k{n}")
    assert killed
    listed = {e["name"]: e for e in json.loads(
        run_cli("backups", "list", str(store), "--json").stdout)}
    for name in killed:
        assert listed[name]["status"] == "failed", listed[name]
        assert not (store / "catalog" / name / "finished.json").exists()
    check = run_cli("backups", "check", str(store), "--max-age", "1h")
    assert check.exit_code == 1 and "failed after dump.a" in check.stdout, check.stdout
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr
    assert "drill of dump.a passed" in drill.stdout, drill.stdout
    again = take_backup(shop, age_key, str(store), "dump.b", env)
    assert again.exit_code == 0, again.stderr  # type: ignore[attr-defined]
    prune = run_cli("backups", "prune", str(store), "--keep-days", "1", "--keep-last", "1")
    assert prune.exit_code == 0, prune.stderr
    # the killed runs' partial objects are temp files the store does not list (prune
    # removes them with their entry), never an object named as a backup
    for name in killed:
        assert not (store / "backups" / f"{name}.sql.zst.age").exists()
    check = run_cli("backups", "check", str(store), "--max-age", "1h")
    assert check.exit_code == 0 and "dump.b" in check.stdout, check.stdout
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr
