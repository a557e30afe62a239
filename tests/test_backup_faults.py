"""Faults during a backup: pg_dump dying half-way, a full disk. Nothing is reported as
finished that is not, every failure is one error line with a hint, no secret leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.pg import Database
from topoff.backup import catalog
from topoff.backup.dump import _descendants
from topoff.stores.local import LocalStore

ROOT = Path(__file__).resolve().parent.parent


def _statuses(store: Path) -> dict[str, str]:
    return {e.name: e.status for e in catalog.read_catalog(LocalStore(str(store)))}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _no_object(store: Path) -> bool:
    return not (store / "backups").exists() or \
        not [p for p in (store / "backups").iterdir() if p.name.endswith(".age")]


def hold_pg_dump(db: Database) -> psycopg.Connection:
    """A lock on the primary, replayed on the standby, that holds pg_dump once started:
    on a view, whose definition pg_dump reads (topoff locks the tables before pg_dump
    starts, and would wait itself for a table held so)."""
    db.execute("CREATE VIEW held AS SELECT 1 AS one")
    locker = db.primary()
    locker.autocommit = False
    locker.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
    db.sync()
    return locker


def test_pg_dump_killed_half_way(datanommer: Database, age_key: AgeKey,
                                 tmp_path: Path) -> None:
    store = tmp_path / "store"
    locker = hold_pg_dump(datanommer)
    # its own temp dir: another worker's backup running meanwhile is not this one's leftover
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(temp)}
    url = datanommer.standby_url.replace("postgres@", "postgres:Pw0rdInUrl@")
    args = backup_args(datanommer, age_key, store, "dump.k")
    args[args.index("--source") + 1] = url
    proc = subprocess.Popen([sys.executable, "-m", "topoff", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        dumps: list[int] = []
        while not dumps:
            assert time.monotonic() < deadline, "pg_dump did not start"
            dumps = [p for p in _descendants(proc.pid)[1:] if b"pg_dump" in _cmdline(p)]
            time.sleep(0.05)
        cmdlines = [_cmdline(p) for p in dumps]
        assert all(b"Pw0rdInUrl" not in c for c in cmdlines), "password on pg_dump's argv"
        os.kill(dumps[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        locker.rollback()
        locker.close()
    assert proc.returncode == 3, err
    lines = [ln for ln in err.splitlines() if ln.startswith(("error:", "hint:"))]
    assert lines[0].startswith("error: pg_dump failed") and lines[1].startswith("hint:")
    assert "Pw0rdInUrl" not in out + err
    assert _statuses(store) == {"dump.k": "failed"}
    failed = json.loads((store / "catalog" / "dump.k" / "failed.json").read_text())
    assert "pg_dump failed" in failed["error"]
    assert _no_object(store)
    leftovers = list(temp.glob("topoff-backup-*"))
    assert not [p for p in leftovers if (p / "dump").exists() and
                any((p / "dump").iterdir())], "pg_dump's files left behind"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mnt)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_workdir(datanommer: Database, age_key: AgeKey, tmp_path: Path,
                      tiny_disk: Path) -> None:
    store = tmp_path / "store"
    result = run_cli(*backup_args(datanommer, age_key, store, "dump.w", "--workdir",
                                  str(tiny_disk)))
    assert result.exit_code == 3, result.stderr
    message, hint = error_lines(result)
    assert "pg_dump failed" in message, result.stderr
    assert "No space left" in message or "is full" in message, result.stderr
    assert "free disk space" in hint
    assert _statuses(store) == {"dump.w": "failed"}
    assert _no_object(store)
    assert list(tiny_disk.iterdir()) == []


def test_full_store(datanommer: Database, age_key: AgeKey, tiny_disk: Path) -> None:
    result = run_cli(*backup_args(datanommer, age_key, tiny_disk, "dump.s"))
    assert result.exit_code == 5, result.stderr
    message, _hint = error_lines(result)
    assert "space" in message.lower(), result.stderr  # the OS error, not only the hint
    assert _statuses(tiny_disk) == {"dump.s": "failed"}
    assert _no_object(tiny_disk)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_sigterm_records_the_backup_as_failed(datanommer: Database, age_key: AgeKey,
                                              tmp_path: Path, sig: int) -> None:
    """systemctl stop sends SIGTERM, a closed terminal SIGHUP: failed.json says
    "interrupted", pg_dump is gone and so is its work directory (unencrypted table data)."""
    store = tmp_path / "store"
    temp = tmp_path / "temp"
    temp.mkdir()
    locker = hold_pg_dump(datanommer)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "topoff",
                             *backup_args(datanommer, age_key, store, "dump.t")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        dumps: list[int] = []
        while not dumps:
            assert time.monotonic() < deadline, "pg_dump did not start"
            dumps = [p for p in _descendants(proc.pid)[1:] if b"pg_dump" in _cmdline(p)]
            time.sleep(0.05)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        locker.rollback()
        locker.close()
    assert proc.returncode == 130, err
    assert "error: interrupted" in err
    failed = json.loads((store / "catalog" / "dump.t" / "failed.json").read_text())
    assert failed["error"] == "interrupted"
    assert all(not _cmdline(p) for p in dumps), "pg_dump outlived the backup"
    assert _no_object(store)
    assert list(temp.iterdir()) == []


def test_a_killed_backups_work_directory_goes_at_the_next_backup(
        datanommer: Database, age_key: AgeKey, tmp_path: Path) -> None:
    """pg_dump's files of a SIGKILLed backup (table data, unencrypted) stay in --workdir:
    the next backup there removes the directories whose owner is gone, and only those."""
    work = tmp_path / "work"
    work.mkdir()
    code = "import json; from topoff.backup import catalog; print(json.dumps(" \
           "catalog.process_marker()))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    dead = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout
    live = json.dumps(catalog.process_marker())
    for name, owner in (("topoff-backup-dead", dead), ("topoff-backup-live", live),
                        ("topoff-backup-none", None), ("other-dead", dead)):
        (work / name / "dump").mkdir(parents=True)
        (work / name / "dump" / "1234.dat").write_text("secret rows")
        if owner is not None:
            (work / name / catalog.OWNER).write_text(owner)
    result = run_cli(*backup_args(datanommer, age_key, tmp_path / "s", "dump.n",
                                  "--workdir", str(work)))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in work.iterdir()) == [
        "other-dead", "topoff-backup-live", "topoff-backup-none"]


def test_the_source_connection_lost_while_the_tables_are_hashed(
        datanommer: Database, age_key: AgeKey, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The standby ends the backup's sessions (a restart) once pg_dump is done, while the
    tables are counted and hashed: a source error (exit 3) recorded in failed.json, never
    "internal error" (exit 70); nothing is reported finished."""
    from topoff.backup import pipeline

    real = pipeline.table_hashes

    def restarted(conn: object, *args: object, **kw: object) -> object:
        datanommer.standby_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return real(conn, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "table_hashes", restarted)
    store = tmp_path / "store"
    done = run_cli(*backup_args(datanommer, age_key, store, "dump.lost"))
    assert done.exit_code == 3, done.stderr
    message, hint = error_lines(done)
    assert "lost the connection to the source" in message and "dump.lost" in message
    assert "standby is running" in hint
    assert _statuses(store) == {"dump.lost": "failed"}
    failed = json.loads((store / "catalog" / "dump.lost" / "failed.json").read_text())
    assert "lost the connection to the source" in failed["error"]
