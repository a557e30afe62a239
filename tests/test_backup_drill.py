"""topoff backups drill: restore into a throwaway server, compare with what was recorded."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli, write_config
from support.pg import Database
from topoff.backup import catalog
from topoff.demo.cluster import ThrowawayCluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scratch(cluster: ThrowawayCluster, db: Database) -> Iterator[str]:
    name = db.name + "_scratch"
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    yield cluster.primary.url(name)
    cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(datanommer: Database, age_key: AgeKey, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    result = run_cli(*backup_args(datanommer, age_key, store, "dump.a"))
    assert result.exit_code == 0, result.stderr
    return store


def _drills(store: Path, name: str) -> list[dict[str, object]]:
    return [json.loads(p.read_text())
            for p in sorted((store / "catalog" / name).glob("drill-*.json"))]


def test_drill_passes_in_a_throwaway_cluster(store: Path, age_key: AgeKey,
                                             tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml",
                       '[backup]\nchecks = ["SELECT count(*) > 0 FROM messages"]\n'
                       f'identity = "{age_key.identity}"\n')
    result = run_cli("backups", "drill", str(store), "--config", cfg)
    assert result.exit_code == 0, result.stderr
    assert "drill of dump.a passed" in result.stdout and "restorable as of" in result.stdout
    (d,) = _drills(store, "dump.a")
    assert d["ok"] is True and d["mismatches"] == [] and d["checks"][0]["ok"] is True
    listed = json.loads(run_cli("backups", "list", str(store), "--json").stdout)
    assert listed[0]["drill"]["ok"] is True


def test_drill_fails_on_a_tampered_record(store: Path, age_key: AgeKey, scratch: str) -> None:
    # Catalog objects are immutable: a second backup is made by hand, same object, with
    # one recorded hash that the restored data cannot match.
    src, dst = store / "catalog" / "dump.a", store / "catalog" / "dump.b"
    dst.mkdir()
    started = json.loads((src / "started.json").read_text())
    started["started"] = (datetime.fromisoformat(started["started"])  # just after a's
                          + timedelta(microseconds=1)).isoformat()
    (dst / "started.json").write_text(json.dumps(started))
    finished = json.loads((src / "finished.json").read_text())
    finished["tables"]["public.users"]["hash"] = "12345"
    (dst / "finished.json").write_text(json.dumps(finished))
    shutil.copy(store / "backups" / "dump.a.tar.zst.age", store / "backups" / "dump.b.tar.zst.age")
    result = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                     "--scratch", scratch)
    assert result.exit_code == 6, result.stderr
    message, _hint = error_lines(result)
    assert "drill of dump.b failed: public.users: content hash differs" in message
    (d,) = _drills(store, "dump.b")
    assert d["ok"] is False and d["mismatches"]
    table = run_cli("backups", "list", str(store)).stdout
    assert "FAILED" in table


def test_drill_fails_on_a_failing_check(store: Path, age_key: AgeKey, scratch: str,
                                        tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml",
                       '[backup]\nchecks = ["SELECT count(*) > 0 FROM messages", '
                       '"SELECT count(*) = 0 FROM users", "SELECT * FROM nowhere"]\n')
    result = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                     "--scratch", scratch, "--config", cfg)
    assert result.exit_code == 6, result.stderr
    assert "check failed: SELECT count(*) = 0 FROM users" in error_lines(result)[0]
    (d,) = _drills(store, "dump.a")
    assert [c["ok"] for c in d["checks"]] == [True, False, False]


def test_counts_hashes_and_dump_share_one_snapshot(datanommer: Database, age_key: AgeKey,
                                                   tmp_path: Path, scratch: str) -> None:
    """Rows committed after the backup's snapshot is taken are neither counted nor dumped:
    the backup is held on a replayed lock after its snapshot, rows are added meanwhile,
    and the drill still matches the recorded counts and hashes exactly."""
    import os
    import subprocess
    import sys
    import time

    store = tmp_path / "store"
    locker = datanommer.primary()
    locker.autocommit = False
    locker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    datanommer.sync()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "topoff",
                             *backup_args(datanommer, age_key, store, "dump.snap")],
                            env={**os.environ, "PYTHONPATH": str(root / "src")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = store / "catalog" / "dump.snap" / "started.json"
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "backup did not start"
            time.sleep(0.05)
        (before,) = datanommer.standby_query("SELECT count(*) FROM users")[0]
        datanommer.execute("INSERT INTO users (name) SELECT 'late-' || g "
                           "FROM generate_series(1, 7) g")
    finally:
        locker.rollback()
        locker.close()
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    finished = json.loads((store / "catalog" / "dump.snap" / "finished.json").read_text())
    assert finished["tables"]["public.users"]["rows"] == before
    (now,) = datanommer.standby_query("SELECT count(*) FROM users")[0]
    assert now == before + 7
    result = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                     "--scratch", scratch)
    assert result.exit_code == 0, result.stderr


def test_a_killed_drill_takes_its_throwaway_server_with_it(store: Path, age_key: AgeKey) -> None:
    """SIGKILL cannot be cleaned up after by topoff itself: the throwaway cluster's watchdog
    stops the server (it holds the decrypted backup) and removes its directory."""
    tmp = Path(tempfile.mkdtemp(prefix="topoff-drill-kill-"))
    tmp.chmod(0o755)  # the server runs as postgres when the tests run as root
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "topoff", "backups", "drill", str(store),
                             "--identity", str(age_key.identity)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (pid := _server_pid(tmp)):  # the server is up
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        server = int(pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 60
        while _alive(server) or list(tmp.glob("topoff-pg-*")):
            assert time.monotonic() < deadline, "the drill's server outlived topoff"
            time.sleep(0.05)
        # what else is there is the restore's work directory, when the kill came after it
        # was made: marked with the killed process, which the next backup or restore removes
        for left in tmp.iterdir():
            assert left.name.startswith("topoff-restore-"), left
            owner = json.loads((left / catalog.OWNER).read_text())
            assert owner["pid"] == proc.pid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _server_pid(tmp: Path) -> str:
    for pidfile in tmp.glob("topoff-pg-*/primary/postmaster.pid"):
        with contextlib.suppress(OSError):
            return (pidfile.read_text().split() or [""])[0]
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_catalog_text_reaches_the_terminal_only_as_printable_text(
        store: Path, age_key: AgeKey, scratch: str, cluster: ThrowawayCluster) -> None:
    """A catalog entry written by anyone who can write to the store: its snapshot time and
    table names are shown without the control characters they hold (a terminal would run
    an escape sequence; a line break would forge an error line)."""
    src, dst = store / "catalog" / "dump.a", store / "catalog" / "dump.b"
    dst.mkdir()
    started = json.loads((src / "started.json").read_text())
    started["started"] = (datetime.fromisoformat(started["started"])
                          + timedelta(microseconds=1)).isoformat()
    started["snapshot"]["time"] = "\x1b]0;owned\x07\x1b[2J"
    (dst / "started.json").write_text(json.dumps(started))
    shutil.copy(src / "finished.json", dst / "finished.json")
    shutil.copy(store / "backups" / "dump.a.tar.zst.age", store / "backups" / "dump.b.tar.zst.age")
    passed = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                     "--scratch", scratch)
    assert passed.exit_code == 0, passed.stderr
    assert "\x1b" not in passed.output and "restorable as of" in passed.stdout
    assert _drills(store, "dump.b")[0]["restorable_as_of"] is None

    finished = json.loads((src / "finished.json").read_text())
    finished["tables"]["\x1b[2Jpublic.x\nerror: all good"] = {"rows": 1, "hash": "1"}
    (dst / "finished.json").unlink()
    (dst / "finished.json").write_text(json.dumps(finished))
    name = scratch.rsplit("/", 1)[1]
    cluster.primary.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    failed = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                     "--scratch", scratch)
    assert failed.exit_code == 6, failed.stderr
    assert "\x1b" not in failed.output
    assert [ln for ln in failed.stderr.splitlines() if ln.startswith("error:")] == [
        error_lines(failed)[0]]
    assert "missing after restore" in error_lines(failed)[0]


def test_the_dump_s_sql_runs_without_a_superuser_s_rights(db: Database, age_key: AgeKey,
                                                            tmp_path: Path) -> None:
    """What a dump runs at restore (a materialized view's query, a constraint's function)
    runs in the drill as an unprivileged role: it cannot write or read the host's files
    (COPY TO a file, pg_read_file) or run programs, whoever wrote the dump."""
    out = Path(tempfile.mkdtemp(prefix="topoff-drill-files-"))
    os.chmod(out, 0o777)  # the throwaway server's user could write here
    planted = out / "written-by-the-dump"
    try:
        db.execute(
            "CREATE FUNCTION leak() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
            "IF current_database() = 'drill' THEN "
            f"EXECUTE format('COPY (SELECT 1) TO %L', '{planted}'); END IF; RETURN 1; END $$;"
            "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1);"
            "CREATE MATERIALIZED VIEW mv AS SELECT leak() AS x")
        store = tmp_path / "store"
        assert run_cli(*backup_args(db, age_key, store, "dump.a")).exit_code == 0
        result = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
        assert not planted.exists()
        assert result.exit_code != 0 and result.exit_code != 70, result.stderr
        error, hint = error_lines(result)
        assert "permission denied" in error or "must be superuser" in error, error
        assert "unprivileged role" in hint
    finally:
        shutil.rmtree(out, ignore_errors=True)
