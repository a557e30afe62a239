"""The backup catalog: immutable objects in the store, a status nobody can fake by dying."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from support.backup import NOW, AgeKey, backup_args, entry
from support.cli import run_cli
from support.pg import Database
from topoff.backup import catalog
from topoff.backup.restore import choose
from topoff.stores.base import FileInfo
from topoff.stores.local import LocalStore

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_sigkilled_backup_is_failed_never_finished(datanommer: Database, age_key: AgeKey,
                                                   tmp_path: Path) -> None:
    store = tmp_path / "store"
    # An open ACCESS EXCLUSIVE lock on the primary is replayed on the standby: the backup
    # starts, records started.json, then waits on the table, so it is killed mid-way.
    locker = datanommer.primary()
    locker.autocommit = False
    locker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    datanommer.sync()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "topoff",
                             *backup_args(datanommer, age_key, store, "dump.killed")],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(store / "catalog" / "dump.killed" / "started.json")
        entries = catalog.read_catalog(LocalStore(str(store)))
        assert [(e.name, e.status) for e in entries] == [("dump.killed", "ongoing")]
        os.killpg(proc.pid, signal.SIGKILL)  # the whole unit, as systemd or the OOM killer
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        locker.rollback()
        locker.close()
    result = run_cli("backups", "list", str(store), "--json")
    (entry,) = json.loads(result.stdout)
    assert entry["status"] == "failed" and entry["ended"] is None
    assert "died" in entry["error"]
    assert not list((store / "backups").glob("*.age")) if (store / "backups").exists() else True
    # the store stays usable: the next backup finishes
    assert run_cli(*backup_args(datanommer, age_key, store, "dump.next")).exit_code == 0
    statuses = {e.name: e.status for e in catalog.read_catalog(LocalStore(str(store)))}
    assert statuses == {"dump.killed": "failed", "dump.next": "finished"}


def _started(store: Path, name: str, **fields: object) -> Path:
    d = store / "catalog" / name
    d.mkdir(parents=True)
    body = {"name": name, "started": datetime.now(UTC).isoformat(), **fields}
    (d / "started.json").write_text(json.dumps(body))
    return d


def test_status_rules_and_hostile_entries(tmp_path: Path) -> None:
    store = tmp_path / "store"
    now = datetime.now(UTC)
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = catalog.process_marker()
    _started(store, "a.alive", **me)
    _started(store, "b.dead", **{**me, "pid": dead.pid})
    _started(store, "c.other-host-recent", host="elsewhere.example", pid=1)
    _started(store, "d.other-host-old", host="elsewhere.example", pid=1,
             started=(now - timedelta(days=3)).isoformat())
    _started(store, "e.same-host-other-boot", host=socket.gethostname(), pid=os.getpid(),
             boot_id="not-this-boot", proc_start=me["proc_start"])
    d = _started(store, "f.finished-and-failed")
    (d / "finished.json").write_text(json.dumps({"size": "12", "sha256": 5}))
    (d / "failed.json").write_text(json.dumps({"error": "boom"}))
    g = _started(store, "g.garbage")
    (g / "finished.json").write_text("{not json")
    huge = _started(store, "i.huge")
    with (huge / "finished.json").open("wb") as f:  # sparse: 17 MiB read from nowhere
        f.truncate(17 * 1024 * 1024)
    (store / "catalog" / "h.bad-started").mkdir()
    (store / "catalog" / "h.bad-started" / "started.json").write_text("[1, 2]")
    (store / "catalog" / "-bad name").mkdir()
    (store / "catalog" / "-bad name" / "started.json").write_text("{}")
    statuses = {e.name: e.status for e in catalog.read_catalog(LocalStore(str(store)))}
    assert statuses == {"a.alive": "ongoing", "b.dead": "failed",
                        "c.other-host-recent": "ongoing", "d.other-host-old": "failed",
                        "e.same-host-other-boot": "failed",
                        "f.finished-and-failed": "failed", "g.garbage": "failed",
                        "i.huge": "failed"}
    js = json.loads(run_cli("backups", "list", str(store), "--json").stdout)
    f = next(e for e in js if e["name"] == "f.finished-and-failed")
    assert f["size"] is None and f["sha256"] is None and f["error"] == "boom"
    g = next(e for e in js if e["name"] == "g.garbage")
    assert "not a valid catalog object" in g["error"]
    table = run_cli("backups", "list", str(store))
    assert table.exit_code == 0 and "g.garbage" in table.stdout


def test_no_password_in_catalog_or_output(datanommer: Database, age_key: AgeKey,
                                          tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = backup_args(datanommer, age_key, store, "dump.pw")
    url = datanommer.standby_url.replace("postgres@", "postgres:Sup3rSecretPw@")
    args[args.index("--source") + 1] = url
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "Sup3rSecretPw" not in result.stdout + result.stderr
    for f in (store / "catalog").rglob("*.json"):
        assert "Sup3rSecretPw" not in f.read_text()
        assert "AGE-SECRET-KEY" not in f.read_text()
    started = json.loads((store / "catalog" / "dump.pw" / "started.json").read_text())
    assert started["source"].startswith("postgresql://postgres@127.0.0.1:")
    again = run_cli(*args)
    assert again.exit_code == 2 and "already exists" in again.stderr


@pytest.mark.parametrize("start", ["not a time", "2999-01-01T00:00:00", "9999-12-31T00:00:00+00:00",
                                   "zzz", "later"])
def test_the_newest_finished_backup_is_chosen_by_its_parsed_start(tmp_path: Path,
                                                                   start: str) -> None:
    """restore --latest and the drill pick the newest finished backup as prune does: by
    its start read as a time with a zone, not in the future (never by the text, which
    another format, a future date or plain words put last)."""
    store = tmp_path / "store"
    entry(store, "dump.1", 30)
    entry(store, "dump.2", 2)
    entry(store, "dump.9", 3)
    started = store / "catalog" / "dump.9" / "started.json"
    if start == "later":  # 3 hours ago, written in another zone: its text sorts last
        when = (NOW - timedelta(hours=3)).astimezone(timezone(timedelta(hours=14)))
        assert when.isoformat() > (NOW - timedelta(hours=2)).isoformat()
        start = when.isoformat()
    started.write_text(json.dumps({**json.loads(started.read_text()), "started": start}))
    assert choose(LocalStore(str(store)), None).name == "dump.2"


def test_backups_list_shows_catalog_text_without_control_characters(tmp_path: Path) -> None:
    """started.json and a drill's time are written by anyone who can write to the store:
    the table shows them without the escape sequences they may hold."""
    store = tmp_path / "store"
    entry(store, "dump.1", 2, drill_ok=True)
    d = store / "catalog" / "dump.1"
    for leaf, key in (("started.json", "started"), ("drill-1.json", "time")):
        body = json.loads((d / leaf).read_text())
        (d / leaf).write_text(json.dumps({**body, key: "\x1b]0;x\x07\x1b[2J\x1b[31mred"}))
    shown = run_cli("backups", "list", str(store))
    assert shown.exit_code == 0, shown.stderr
    assert "dump.1" in shown.stdout and "\x1b" not in shown.output


class StaleListing(LocalStore):
    """A listing taken before the objects were replaced by larger ones (as S3's may be)."""

    def scan(self, prefix: str = "") -> Iterator[FileInfo]:
        return (FileInfo(i.name, 2, i.modified) for i in super().scan(prefix))


def test_a_catalog_object_larger_than_the_limit_is_not_read_whatever_the_listing_says(
        tmp_path: Path) -> None:
    store = tmp_path / "store"
    entry(store, "dump.1", 2)
    big = store / "catalog" / "dump.1" / "finished.json"
    body = {**json.loads(big.read_text()), "pad": "x" * catalog.MAX_OBJECT}
    big.write_text(json.dumps(body))
    (e,) = catalog.read_catalog(StaleListing(str(store)))
    assert e.status == "failed" and e.finished is None


@pytest.mark.parametrize("url, env, label", [
    ("postgresql://backup@standby/datanommer", {}, "datanommer"),
    ("host=standby dbname='my db' user=backup", {}, "my-db"),
    # the database libpq connects to when the URL names none: $PGDATABASE, else the user's
    ("postgresql://backup@standby/", {"PGDATABASE": "nommer"}, "nommer"),
    ("postgresql://backup@standby/", {}, "backup"),
    ("host=standby", {"PGUSER": "copycat"}, "copycat"),
    ("mariadb://reader@replica/analytics", {}, "analytics"),
])
def test_the_default_name_is_the_databases(monkeypatch, url, env, label):
    """docs/backups.md: the default name is dump.<database>.<YYYY-MM-DD--HH-MM-SS> (UTC),
    the database being the one the backup reads (it was 'db' when the URL named none)."""
    from topoff.backup.names import default_name

    for var in ("PGDATABASE", "PGUSER"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    now = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert default_name(url, now) == f"dump.{label}.2026-11-30--03-00-00"
