"""``topoff iceberg expire --older-than 0s`` and ``iceberg compact`` while a sync commits
new days into the same tables, and each killed midway then run again: every data file a
current snapshot reads exists, the tables read back equal to the source, verify passes."""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Any

import pytest

from support.replica import add_messages, cli, day, nommer_config, publish_day
from test_iceberg_sync import (  # noqa: F401
    CHUNK,
    assert_same,
    catalog_file,
    iceberg_table,
    standard,
)
from topoff.errors import TargetError
from topoff.sync import SyncOptions, sync
from topoff.targets.iceberg.compact import compact
from topoff.targets.iceberg.maintenance import expire
from topoff.verify import verify

TABLES = ["public.messages", "public.users", "public.packages", "public.users_messages",
          "public.packages_messages"]


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    """Each CSV batch its own data files: small files to compact."""
    from topoff.sync import iceberg_apply

    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)


def assert_files_exist(target: str) -> None:
    """Every data file, manifest and manifest list each snapshot left reads is there."""
    for t in TABLES:
        table = iceberg_table(target, t)
        for snapshot in table.metadata.snapshots:
            assert os.path.exists(snapshot.manifest_list.removeprefix("file://")), t
            for m in snapshot.manifests(table.io):
                assert os.path.exists(m.manifest_path.removeprefix("file://")), t
                for e in m.fetch_manifest_entry(table.io):
                    path = e.data_file.file_path.removeprefix("file://")
                    assert os.path.exists(path), (t, snapshot.snapshot_id, path)


def new_days(db: Any, url: str) -> None:
    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(1), 30, tag="next")
    publish_day(config, url, day(1))
    add_messages(db, day(2), 9, tag="late")  # a new revision of day(2) replaces the day
    publish_day(config, url, day(2))


@pytest.mark.slow
def test_expire_and_compact_during_a_sync(standard, tmp_path):  # noqa: F811
    """From inside each table's commit of a sync (before it is committed): compact that
    table, then expire every snapshot but the current one, at age 0."""
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)
    seen: list[str] = []

    def hook(name: str, **info: object) -> None:
        if name != "table_applied":
            return
        seen.append(str(info["table"]))
        with contextlib.suppress(TargetError):  # another writer: the sync, later
            compact(target, [str(info["table"])], target=1 << 20)
        expire(target, timedelta(0))

    try:
        sync(url, target, SyncOptions(hook=hook))
    except TargetError as e:
        assert "another writer" in e.message, e.message
    assert seen
    assert_files_exist(target)
    sync(url, target)
    assert_files_exist(target)
    assert_same(target, db)
    assert verify(target, db.standby_url).equal
    expire(target, timedelta(0))
    assert_files_exist(target)
    assert_same(target, db)


@pytest.mark.slow
def test_expire_between_a_syncs_commits(standard, tmp_path):  # noqa: F811
    """Expire at age 0 after each table a sync applies (its commit done): the next commit of
    the sync builds on what is left, or is refused whole when a compaction replaced files it
deletes from (exit 7, "run the sync again"), and the next sync resumes."""
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)

    def hook(name: str, **info: object) -> None:
        if name == "partition_applied":
            expire(target, timedelta(0))
            compact(target, target=1 << 20)

    try:
        sync(url, target, SyncOptions(hook=hook))
    except TargetError as e:  # a compaction committed between two of its commits
        assert "another writer" in e.message, e.message
        assert_files_exist(target)
        sync(url, target)
    assert_files_exist(target)
    assert_same(target, db)
    assert verify(target, db.standby_url).equal
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stderr


def test_compact_and_expire_after_a_sync_opened_its_commit(standard, tmp_path,  # noqa: F811
                                                           monkeypatch):
    """A sync's commit of a table is opened (on the snapshot then current); before it
    plans its delete of the day it replaces, a compaction commits and an expire at age 0
    deletes the files the compaction replaced, which that snapshot read."""
    from topoff.sync import iceberg_apply

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)
    real = iceberg_apply.summary
    seen: list[str] = []

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not seen:
            seen.append("compacted")
            compact(target, ["public.messages"], target=1 << 20)
            expire(target, timedelta(0))
        return real(*args, **kwargs)

    monkeypatch.setattr(iceberg_apply, "summary", meanwhile)
    out = cli("sync", url, target)
    assert seen
    assert out.exit_code in (0, 7), out.stderr
    if out.exit_code == 7:
        assert "another writer" in out.stderr and "run the sync again" in out.stderr
    monkeypatch.undo()
    assert_files_exist(target)
    again = cli("sync", url, target)
    assert again.exit_code == 0, again.stderr
    assert_same(target, db)
    assert verify(target, db.standby_url).equal


@pytest.mark.slow
def test_compact_and_expire_killed_midway_then_run_again(standard, tmp_path):  # noqa: F811
    """``iceberg compact`` and ``iceberg expire --older-than 0s`` SIGKILLed at moments
    spread over their runs, a sync of new days between them, then run again to the end."""
    import random
    import signal
    import subprocess
    import sys
    import time

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)  # small files (WRITE_BYTES = 1 in this process)
    new_days(db, url)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random()
    killed = 0
    for n in range(4):
        what = ["compact", target, "--target-file-size", "1MB"] if n % 2 == 0 else \
            ["expire", target, "--older-than", "0s"]
        proc = subprocess.Popen([sys.executable, "-m", "topoff", "iceberg", *what], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.5, 3.0))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err
        killed += proc.returncode == -signal.SIGKILL
        assert_files_exist(target)
        if n == 1:
            sync(url, target)
    for what in (["compact", target, "--target-file-size", "1MB"],
                 ["expire", target, "--older-than", "0s"]):
        out = cli("iceberg", *what)
        assert out.exit_code == 0, out.stderr
    assert_files_exist(target)
    assert_same(target, db)
    assert verify(target, db.standby_url).equal
    assert sync(url, target).applied == []


def test_a_compaction_whose_files_a_sync_replaced_and_an_expiry_deleted(
        standard, tmp_path):  # noqa: F811
    """A compaction planned before a sync replaced a day, and an expiry at age 0 deleted
    that day's old files, reads files that are gone: another writer changed the table, run
    the compaction again (it said the compaction failed, "No such file or directory", and
    to fix the warehouse)."""
    from topoff.targets.iceberg.compact import compact_one

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    stale = iceberg_table(target, "public.messages")  # planned before the sync below
    new_days(db, url)
    assert sync(url, target).applied
    expire(target, timedelta(0))
    with pytest.raises(TargetError) as failed:
        compact_one("public.messages", stale, 1 << 20)
    assert "another writer changed public.messages" in failed.value.message, failed.value
    assert failed.value.hint == "run the compaction again"
    compact(target, target=1 << 20)
    assert_files_exist(target)
    assert_same(target, db)


def test_a_verify_whose_files_a_sync_replaced_and_an_expiry_deleted(
        standard, tmp_path, monkeypatch):  # noqa: F811
    """A sync, a compaction and an expiry at age 0 between the tables a verify reads: the
    tables it read the metadata of at its start lost their files; verify says the replica
    changed meanwhile, exit 7, run it again (it was an internal error, exit 70)."""
    from topoff import verify_iceberg

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)
    real = verify_iceberg._materialize
    done: list[int] = []

    def meanwhile(*args: Any) -> Any:
        if not done:
            done.append(1)
            sync(url, target)
            compact(target, target=1 << 20)
            expire(target, timedelta(0))
        return real(*args)

    monkeypatch.setattr(verify_iceberg, "_materialize", meanwhile)
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 7, out.stderr
    assert "changed while it was verified" in out.stderr, out.stderr
    assert "hint: run verify again" in out.stderr and "internal error" not in out.stderr
    monkeypatch.undo()
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stderr
    # a data file the current snapshot reads, lost: said as such, exit 7 (it was exit 70)
    [task, *_] = iceberg_table(target, "public.messages").scan().plan_files()
    os.remove(task.file.file_path.removeprefix("file://"))
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 7, out.stderr
    assert "public.messages: a file of its current snapshot is missing" in out.stderr
    assert "internal error" not in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("dry", [False, True], ids=["expire", "dry-run"])
def test_two_expiries_at_once(standard, tmp_path, monkeypatch, dry):  # noqa: F811
    """An expiry that read the tables before another expiry committed: it expires what is
    left, or nothing (the catalog's refusal to remove a snapshot that is gone was an
    internal error), and no file a snapshot reads goes. A dry run says what is left to
    expire (the manifests it read gone meanwhile were an internal error)."""
    from topoff.targets.iceberg import maintenance

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)
    sync(url, target)
    real = maintenance.replica_tables

    others: list[int] = []

    def listed(*args: Any) -> Any:
        found = real(*args)
        if not others:
            others.append(1)
            other = cli("iceberg", "expire", target, "--older-than", "0s")
            assert other.exit_code == 0, other.stderr
        return found

    monkeypatch.setattr(maintenance, "replica_tables", listed)
    out = cli("iceberg", "expire", target, "--older-than", "0s", *(["--dry-run"] if dry else []))
    monkeypatch.undo()
    assert out.exit_code == 0, out.stderr  # it was an internal error, exit 70
    assert_files_exist(target)
    assert_same(target, db)


@pytest.mark.slow
def test_a_status_whose_files_a_sync_replaced_and_an_expiry_deleted(
        standard, tmp_path, monkeypatch):  # noqa: F811
    """``topoff status`` reads each table's manifests (its newest cursor value); a sync, a
    compaction and an expiry at age 0 after it read the tables' metadata: it reads the
    tables as they are now (it was an internal error, exit 70)."""
    from topoff import status_iceberg

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)
    real = status_iceberg.row_count
    done: list[int] = []

    def meanwhile(table: Any) -> Any:
        if not done:
            done.append(1)
            sync(url, target)
            compact(target, target=1 << 20)
            expire(target, timedelta(0))
        return real(table)

    monkeypatch.setattr(status_iceberg, "row_count", meanwhile)
    out = cli("status", target)
    assert out.exit_code == 0, out.stderr
    assert done
    monkeypatch.undo()
    # the manifest list of a current snapshot lost: said as such, exit 7
    snapshot = iceberg_table(target, "public.messages").current_snapshot()
    os.remove(snapshot.manifest_list.removeprefix("file://"))
    out = cli("status", target)
    assert out.exit_code == 7, out.stderr
    assert "is missing" in out.stderr and "internal error" not in out.stderr


@pytest.mark.slow
def test_remove_orphans_while_an_expiry_deletes_the_manifests_it_reads(
        standard, tmp_path, monkeypatch):  # noqa: F811
    """An expiry at age 0 that commits and deletes files after remove-orphans read the
    table's metadata: remove-orphans reads it again (it was an internal error, exit 70) and
    deletes no file a snapshot reads."""
    from topoff.targets.iceberg import orphans

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    new_days(db, url)
    sync(url, target)
    real = orphans._referred
    done: list[int] = []

    def meanwhile(table: Any) -> Any:
        if not done:
            done.append(1)
            expire(target, timedelta(0))
        return real(table)

    monkeypatch.setattr(orphans, "_referred", meanwhile)
    out = cli("iceberg", "remove-orphans", target, "--older-than", "1h")
    assert out.exit_code == 0, out.stderr
    assert done
    monkeypatch.undo()
    assert_files_exist(target)
    assert_same(target, db)
