"""One writer per dataset: the store lock, with real processes racing for it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import PER_DAY
from support.cli import error_lines, run_cli, write_config
from support.dataset import files_under, read_dataset
from topoff.dataset import layout
from topoff.dataset.index import Index
from topoff.dataset.lock import DatasetLocked, Holder, StoreLock, dataset_lock
from topoff.demo import sample
from topoff.export.windows import yesterday
from topoff.stores import StoreOptions, open_store

SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = StoreOptions(retries=2, backoff=0.01, http_timeout=5)


@pytest.fixture(params=["local", "s3"])
def writable(request, tmp_path):
    """A store to publish to: a local directory or an S3 prefix on moto."""
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        return open_store(f"s3://{server.create_bucket()}/ds", FAST)
    return open_store(str(tmp_path / "published"))


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFF_")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    return e


def foreign_lock(expires: datetime, pid: int = 1, host: str = "elsewhere") -> bytes:
    return json.dumps({"dataset": "d", "host": host, "pid": pid,
                       "started_at": "2026-01-01T00:00:00+00:00",
                       "expires_at": expires.isoformat(), "token": "theirs"}).encode()


def test_second_holder_is_refused_then_waits(writable):
    with dataset_lock(writable, "d"):
        raw = writable.read_bytes(layout.LOCK)
        holder = Holder.parse(raw)
        assert holder and holder.pid == os.getpid() and holder.host == socket.gethostname()
        with pytest.raises(DatasetLocked) as err, dataset_lock(writable, "d"):
            pass
        assert f"pid {os.getpid()}" in err.value.message and "--wait" in err.value.hint
        assert writable.read_bytes(layout.LOCK) == raw  # the holder's lock is untouched
    assert writable.stat(layout.LOCK) is None  # released

    # --wait: the second run gets the lock once the first lets it go
    got = threading.Event()
    first, second = StoreLock(writable, "d"), StoreLock(writable, "d")
    first.acquire()
    waiter = threading.Thread(target=lambda: second.acquire(wait=True) or got.set())
    waiter.start()
    time.sleep(1.5)
    assert not got.is_set()
    first.release()
    waiter.join(timeout=30)
    assert got.is_set()
    second.release()  # (never released, it was renewed until the S3 server was gone)


def test_an_expired_lock_is_taken_over(writable, caplog):
    writable.write_bytes(layout.LOCK, foreign_lock(datetime.now(UTC) - timedelta(seconds=1)))
    with dataset_lock(writable, "d"):
        assert Holder.parse(writable.read_bytes(layout.LOCK)).pid == os.getpid()
    assert "took over a stale lock" in caplog.text
    # a live lock of another host is respected
    writable.write_bytes(layout.LOCK, foreign_lock(datetime.now(UTC) + timedelta(minutes=5)))
    with pytest.raises(DatasetLocked, match="'elsewhere'"), dataset_lock(writable, "d"):
        pass


def test_an_unreadable_lock_is_not_guessed_at(writable):
    writable.write_bytes(layout.LOCK, b"\x00<script>not json")
    with pytest.raises(DatasetLocked) as err, dataset_lock(writable, "d"):
        pass
    assert "cannot be read" in err.value.message and "remove lock.json" in err.value.hint


def test_the_lock_is_renewed_while_held(writable):
    lock = StoreLock(writable, "d", ttl=1.0)
    lock.acquire()
    try:
        first = Holder.parse(writable.read_bytes(layout.LOCK))
        time.sleep(2.5)  # longer than the ttl: renewed meanwhile
        lock.check()
        later = Holder.parse(writable.read_bytes(layout.LOCK))
        assert later.token == first.token and later.expires_at > first.expires_at
    finally:
        lock.release()


def test_a_lock_is_renewed_only_while_held(tmp_path, caplog):
    """Released, or dropped without a release (no one holds it any more), a lock is not
    renewed again: such a renewal went on for as long as the process lived and warned
    "could not renew the lock" once the store was gone. A renewal that fails while the
    lock is held still warns."""
    store = open_store(str(tmp_path / "published"))
    beat = 0.5  # ttl / 5
    released = StoreLock(store, "d", ttl=beat * 5)
    released.acquire()
    released.release()
    dropped = StoreLock(store, "other", ttl=beat * 5)
    dropped.acquire()
    before = store.read_bytes(layout.LOCK)
    thread = dropped._thread
    del dropped
    assert thread is not None
    thread.join(timeout=beat * 8)
    assert not thread.is_alive()  # it ended with its lock
    assert store.read_bytes(layout.LOCK) == before  # not renewed (it expires by itself)
    store.delete(layout.LOCK)

    held = StoreLock(store, "d", ttl=beat * 5)
    held.acquire()
    try:
        with held._mutex:  # no renewal between the two steps (it would find no lock)
            mine = store.read_bytes(layout.LOCK)
            (tmp_path / "elsewhere").write_bytes(mine)
            store.delete(layout.LOCK)
            # a link the store refuses to follow: the renewal fails (a StoreError)
            (tmp_path / "published" / layout.LOCK).symlink_to(tmp_path / "elsewhere")
        deadline = time.monotonic() + 30
        while "could not renew the lock" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    finally:
        (tmp_path / "published" / layout.LOCK).unlink()
        held.release()


def test_a_run_that_lost_its_lock_publishes_nothing(writable):
    index = Index("d")
    with dataset_lock(writable, "d") as locked:
        writable.write_bytes(layout.LOCK, foreign_lock(datetime.now(UTC) + timedelta(hours=1)),
                             replace=True)  # another run took it over
        with pytest.raises(DatasetLocked, match="no longer holds the lock"):
            locked.write_bytes(layout.INDEX, index.dumps(), replace=True)
    assert writable.stat(layout.INDEX) is None
    # the other run's lock stays where it is
    assert Holder.parse(writable.read_bytes(layout.LOCK)).token == "theirs"


def test_a_killed_holders_lock_is_taken_over_on_its_host(tmp_path):
    """SIGKILL leaves the lock behind; on the same host the next run sees its process is
    gone and takes the lock at once (no waiting for the expiry)."""
    dest = tmp_path / "published"
    code = ("import sys, time; from topoff.stores import open_store; "
            "from topoff.dataset.lock import StoreLock; "
            f"StoreLock(open_store({str(dest)!r}), 'd').acquire(); "
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env())
    try:
        assert proc.stdout.readline().strip() == "held"
        store = open_store(str(dest))
        with pytest.raises(DatasetLocked, match=f"pid {proc.pid} "), dataset_lock(store, "d"):
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with dataset_lock(store, "d"):
            assert Holder.parse(store.read_bytes(layout.LOCK)).pid == os.getpid()
    finally:
        proc.kill()
        proc.wait()


def test_export_refused_while_another_holds_the_lock(datanommer, tmp_path):
    dest = tmp_path / "published"
    store = open_store(str(dest))
    config = write_config(tmp_path / "topoff.toml", sample.example_config())
    with dataset_lock(store, "datanommer"):
        before = files_under(dest)
        result = run_cli("export", "incremental", "--config", config,
                         "--source", datanommer.standby_url, "--to", str(dest))
        assert result.exit_code == 5, result.stderr
        error, hint = error_lines(result)
        assert "locked by another export" in error and f"pid {os.getpid()}" in error
        assert "--wait" in hint
        assert files_under(dest) == before  # nothing written


def test_concurrent_exports_of_one_day_publish_once(datanommer, tmp_path):
    """Two `topoff export incremental` processes of the same day at once (overlapping cron
    jobs), several rounds with late rows in between: each round exactly one run publishes
    the day's next revision, the other stops cleanly (or finds nothing new), and every
    published file matches its manifest."""
    dest = tmp_path / "published"
    conf = write_config(tmp_path / "t.toml", sample.example_config())
    day = yesterday()
    args = [sys.executable, "-m", "topoff", "export", "incremental", "--config", conf,
            "--source", datanommer.standby_url, "--to", str(dest), "--date", str(day),
            "--lookback-days", "0", "--quiet"]
    for round_ in range(1, 5):
        if round_ > 1:
            with datanommer.primary() as conn:
                sample.add_messages(conn, day, 5, tag=f"late{round_}")
            datanommer.sync()
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env()) for _ in range(2)]
        outs = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        published = [o for o in outs if o[0] == 0 and f"published incremental/{day}/r" in o[1]]
        assert len(published) == 1, outs
        assert f"incremental/{day}/r{round_}" in published[0][1]
        [other] = [o for o in outs if o is not published[0]]
        if other[0] == 0:
            assert f"unchanged {day}" in other[1], other
        else:
            assert other[0] == 5, other
            assert "error: " in other[2] and "locked by another export" in other[2], other
        data = read_dataset(open_store(str(dest)))  # every file matches its manifest
        assert [p.id for p in data.index.publications] == [
            f"incremental/{day}/r{n}" for n in range(1, round_ + 1)]
        assert not (dest / layout.LOCK).exists()


def test_a_run_without_the_lock_never_removes_another_runs_files(datanommer, tmp_path):
    """Two library runs of one day that bypass the lock (both given the store of one held
    lock; or a run whose lock was taken over while it was stalled): the one that finds a
    name taken stops, and its clean-up removes only files it made, not the other run's (not
    yet published) ones."""
    from support.dataset import read_table
    from support.pg import make_config
    from topoff.dataset.layout import Window
    from topoff.export.incremental import export_incremental
    from topoff.stores.base import FileExists

    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, jobs=1, lookback_days=0)
    day = Window.day(yesterday())
    failures = []

    def hook(event, **kw):
        # the first run has made its first table's file; a second run starts and finishes
        if event == "table_done" and not failures:
            with pytest.raises(FileExists) as err:
                export_incremental(config, locked, day)
            failures.append(err.value)

    with dataset_lock(store, config.dataset) as locked:
        result = export_incremental(config, locked, day, hook=hook)
    assert failures and "already exists" in failures[0].message
    data = read_dataset(store)  # every file the winner's manifest lists is there, whole
    assert data.ids() == [p.id for p in result.publications]
    assert len(read_table(store, result.manifests[0], "public.messages").rows) == PER_DAY
