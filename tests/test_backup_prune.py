"""topoff backups prune: past the threshold goes, the newest finished backup never does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.backup import AgeKey, backup_args, entry
from support.cli import run_cli, terminate_when
from support.pg import Database
from support.s3_server import DUMMY_ENV, UNSET_ENV, S3Server
from topoff.backup import retention
from topoff.errors import StoreError
from topoff.stores.base import FileInfo
from topoff.stores.local import LocalStore

ROOT = Path(__file__).resolve().parent.parent


def _names(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "catalog").iterdir())


def test_prune_keeps_the_newest_finished(tmp_path: Path) -> None:
    store = tmp_path / "s"
    entry(store, "dump.1", 24 * 40)
    entry(store, "dump.2", 24 * 35)
    entry(store, "dump.3", 24 * 20, failed=True)
    entry(store, "dump.4", 24 * 2, failed=True)
    dry = run_cli("backups", "prune", str(store), "--keep-days", "10", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "would remove dump.1" in dry.stdout and "would remove dump.3" in dry.stdout
    assert "dump.2" not in dry.stdout.replace("kept", "")
    assert len(_names(store)) == 4
    done = run_cli("backups", "prune", str(store), "--keep-days", "10")
    assert done.exit_code == 0
    # dump.2 is 35 days old but the newest finished backup: it stays
    assert _names(store) == ["dump.2", "dump.4"]
    assert "removed 2 backups" in done.stdout


def test_prune_keep_last(tmp_path: Path) -> None:
    store = tmp_path / "s"
    for i in range(5):
        entry(store, f"dump.{i}", 24 * (50 - i))
    assert run_cli("backups", "prune", str(store), "--keep-days", "1",
                   "--keep-last", "2").exit_code == 0
    assert _names(store) == ["dump.3", "dump.4"]


def test_prune_removes_the_object_and_every_catalog_object(datanommer: Database,
                                                           age_key: AgeKey,
                                                           tmp_path: Path) -> None:
    store = tmp_path / "s"
    for name in ("dump.a", "dump.b"):
        assert run_cli(*backup_args(datanommer, age_key, store, name)).exit_code == 0
    # make dump.a look old: a copy of its catalog with an old start (objects are immutable)
    later = datetime.now(UTC).replace(year=2020).isoformat()
    started = json.loads((store / "catalog" / "dump.a" / "started.json").read_text())
    started["started"] = later
    p = store / "catalog" / "dump.a" / "started.json"
    p.chmod(0o600)
    p.write_text(json.dumps(started))
    result = run_cli("backups", "prune", str(store), "--keep-days", "30")
    assert "removed dump.a" in result.stdout, result.stderr
    assert not (store / "catalog" / "dump.a").exists() or \
        not list((store / "catalog" / "dump.a").iterdir())
    assert [p.name for p in (store / "backups").iterdir()] == ["dump.b.tar.zst.age"]


def test_other_store_errors_are_not_swallowed(tmp_path: Path) -> None:
    store = tmp_path / "s"
    entry(store, "dump.old", 24 * 40)
    entry(store, "dump.new", 1)

    class Broken(LocalStore):
        def delete(self, name: str) -> None:
            raise StoreError("access denied", hint="check the credentials")

    with pytest.raises(StoreError, match="access denied"):
        retention.prune(Broken(str(store)), keep_days=10)


def test_prune_removes_what_a_killed_backup_left(tmp_path: Path, s3_server: S3Server) -> None:
    """A SIGKILLed backup leaves its object half written: a temp file next to it on disk,
    an upload never completed on S3. Pruning that (failed) backup removes them too; an
    ongoing backup's are not touched."""
    store = tmp_path / "s"
    entry(store, "dump.killed", 24 * 20, size=None)
    entry(store, "dump.kept", 24 * 20)
    backups = store / "backups"
    backups.mkdir()
    (backups / ".dump.killed.tar.zst.age.tmp-0123456789ab").write_bytes(b"x" * 100)
    (backups / ".dump.other.tar.zst.age.tmp-0123456789ab").write_bytes(b"x")
    assert run_cli("backups", "prune", str(store), "--keep-days", "1").exit_code == 0
    assert _names(store) == ["dump.kept"]
    assert [p.name for p in backups.iterdir()] == [".dump.other.tar.zst.age.tmp-0123456789ab"]

    bucket = s3_server.create_bucket()
    s3 = s3_server.client()
    for name in ("dump.killed", "dump.kept"):
        entry(tmp_path / "s3", name, 24 * 20, size=None if name == "dump.killed" else 1000)
        for leaf in (tmp_path / "s3" / "catalog" / name).iterdir():
            s3.put_object(Bucket=bucket, Key=f"p/catalog/{name}/{leaf.name}",
                          Body=leaf.read_bytes())
    for name in ("dump.killed", "dump.other"):
        s3.create_multipart_upload(Bucket=bucket, Key=f"p/backups/{name}.tar.zst.age")
    done = run_cli("backups", "prune", f"s3://{bucket}/p", "--keep-days", "1")
    assert done.exit_code == 0, done.stderr
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["p/backups/dump.other.tar.zst.age"]


@pytest.mark.parametrize("command", [["prune", "--keep-days", "1"], ["list"], ["check"]])
def test_sigterm_while_the_store_does_not_answer(command: list[str]) -> None:
    """systemctl stop while the store keeps a request waiting: exit 130, one error line."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    env.update(DUMMY_ENV, PYTHONPATH=str(ROOT / "src"),
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.getsockname()[1]}")
    proc = subprocess.Popen([sys.executable, "-m", "topoff", "backups", command[0],
                             "s3://bucket/p", *command[1:]], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:  # its first request waits for an answer
        _, err = terminate_when(proc, lambda: bool(accepted))
    finally:
        server.close()
        for s in accepted:
            s.close()
    assert proc.returncode == 130, err
    assert err.splitlines() == ["error: interrupted", err.splitlines()[1]], err


@pytest.mark.parametrize("start", ["not a time", "2026-01-01T00:00:00", "9999-12-31T00:00:00+00:00",
                                   "zzz"])
def test_a_finished_backup_with_a_strange_start_does_not_displace_the_newest(
        tmp_path: Path, start: str) -> None:
    """A start that is no time (or none with a zone), or one in the future, does not make
    a backup the newest: the newest finished backup with a real start stays."""
    store = tmp_path / "s"
    entry(store, "dump.1", 24 * 50)
    entry(store, "dump.2", 24 * 40)
    entry(store, "dump.9", 1)
    started = store / "catalog" / "dump.9" / "started.json"
    started.write_text(json.dumps({**json.loads(started.read_text()), "started": start}))
    done = run_cli("backups", "prune", str(store), "--keep-days", "30")
    assert done.exit_code == 0, done.stderr
    assert _names(store) == ["dump.2", "dump.9"]


class PrunedAfterListing(LocalStore):
    """A directory store whose catalog, once listed, is pruned by a real ``topoff backups
    prune`` before any of its objects is read (a prune at the same moment)."""

    pruned = False

    def scan(self, prefix: str = "") -> Iterator[FileInfo]:
        found = list(super().scan(prefix))
        if prefix == "catalog/" and not self.pruned:
            self.pruned = True
            done = subprocess.run([sys.executable, "-m", "topoff", "backups", "prune",
                                   str(self.root), "--keep-days", "10"], capture_output=True,
                                  text=True, timeout=120, env={**os.environ,
                                                               "PYTHONPATH": str(ROOT / "src")})
            assert done.returncode == 0 and "removed 3 backups" in done.stdout, done.stderr
        return iter(found)


def test_the_catalog_read_while_a_prune_removes_entries(tmp_path: Path) -> None:
    """list, check and prune read the catalog while another prune removes old entries:
    an entry removed between the listing and its reading is gone, not an error (list and
    prune stopped with exit 5 "started.json not found", check said CRITICAL)."""
    from topoff.backup.catalog import read_catalog
    from topoff.backup.check import OK, evaluate

    def store() -> PrunedAfterListing:
        root = tmp_path / "s"
        if root.exists():
            shutil.rmtree(root)
        entry(root, "dump.old1", 24 * 40)
        entry(root, "dump.old2", 24 * 30, failed=True)
        entry(root, "dump.old3", 24 * 20, size=None)
        entry(root, "dump.new", 1)
        return PrunedAfterListing(str(root))

    assert [e.name for e in read_catalog(store())] == ["dump.new"]
    assert evaluate(read_catalog(store()), 2 * 86400).code == OK
    out = retention.prune(store(), keep_days=10)
    assert (out.removed, out.kept) == ([], ["dump.new"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT,
                                                                marks=pytest.mark.slow)],
                         ids=["TERM", "INT"])
def test_a_signal_after_the_object_went_leaves_no_finished_entry_without_it(
        tmp_path: Path, sig: int) -> None:
    """systemctl stop (or Ctrl-C to the whole group) once prune deleted a backup's object,
    before its catalog entry: exit 130, and the entry does not stay listed as a finished
    backup whose object is gone (a restore of it failed, a prune kept counting it); the
    next prune removes the rest. An rclone store: each removal is a program run, long
    enough for the signal to land between the two."""
    store = tmp_path / "s"
    (store / "backups").mkdir(parents=True)
    for name, hours in (("dump.1", 24 * 40), ("dump.2", 24 * 35), ("dump.9", 1)):
        entry(store, name, hours)
        (store / "backups" / f"{name}.tar.zst.age").write_bytes(b"x" * 100)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "topoff", "backups", "prune", f"rclone:{store}",
               "--keep-days", "10"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    gone = store / "backups" / "dump.1.tar.zst.age"
    deadline = time.monotonic() + 60
    while gone.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines()[0] == "error: interrupted" and len(err.splitlines()) == 2, err
    listed = run_cli("backups", "list", str(store), "--json")
    assert listed.exit_code == 0, listed.stderr
    finished = {e["name"] for e in json.loads(listed.stdout) if e["status"] == "finished"}
    assert finished <= {"dump.2", "dump.9"}, listed.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert _names(store) == ["dump.9"]
    assert sorted(p.name for p in (store / "backups").iterdir()) == ["dump.9.tar.zst.age"]
