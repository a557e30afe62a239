"""A sync stopped at any point (an exception inside a transaction, a SIGKILL, a damaged
file) leaves the replica as it was before the step, and running it again ends exactly where
an uninterrupted sync ends: every row once, the same ledger."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.pg import Database
from support.replica import (
    Replicas,
    add_messages,
    assert_no_duplicates,
    cli,
    day,
    end_state,
    fill,
    ledger,
    nommer_config,
    publish_day,
    publish_full,
    publish_standard,
    query,
    steps,
    wait_for_next_second,
)
from topoff.config import Config
from topoff.dataset.index import read_index, read_manifest
from topoff.dataset.manifest import Manifest
from topoff.dataset.retention import prune
from topoff.errors import IntegrityError, TargetError
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

CHUNK = 16 * 1024  # small files: several per table and per day


class Crash(Exception):
    """Raised from the sync's hook: the process "dies" inside a transaction."""


def crash_at(event: str, nth: int):
    seen: list[dict] = []

    def hook(name: str, **info: object) -> None:
        if name == event:
            seen.append(info)
            if len(seen) == nth:
                raise Crash(f"{event} #{nth}: {info}")

    return hook, seen


@dataclass
class Dataset:
    db: Database
    url: Path
    ids: list[str]

    def config(self) -> Config:
        return nommer_config(self.db, chunk_bytes=CHUNK)

    def manifest(self, pub_id: str) -> Manifest:
        with open_store(str(self.url)) as store:
            index = read_index(store)
            assert index is not None
            found = index.get(pub_id)
            assert found is not None
            return read_manifest(store, found)


@pytest.fixture
def dataset(db, tmp_path) -> Dataset:
    fill(db)
    url = tmp_path / "published"
    ids = publish_standard(nommer_config(db, chunk_bytes=CHUNK), str(url))
    return Dataset(db, url, ids)


def assert_equal(replica: str, db: Database) -> None:
    report = verify(replica, db.standby_url)
    assert report.equal, json.dumps(report.to_json(), default=str)


def file_steps(location: str) -> list[str]:
    return [s[2] for s in steps(location) if s[2].startswith("file:")]


# -- in process: an exception from the hook, inside the step's transaction ----------------

def test_a_crash_at_any_step_resumes_to_the_same_end_state(dataset: Dataset,
                                                          replicas: Replicas):
    url = str(dataset.url)
    full, first, second = dataset.ids
    files = dataset.manifest(full).tables
    message_files = [f.path for f in files["public.messages"].files]
    assert len(message_files) >= 3
    reference = replicas.new()
    sync(url, reference)
    want = end_state(reference)
    assert want["ledger"]["datanommer"][3:5] == ("ready", 3)

    positions = [("file_loaded", 1), ("file_loaded", 2), ("file_loaded", len(message_files) + 1),
                 ("keys_created", 1), ("partition_applied", 1), ("partition_applied", 2)]
    for event, nth in positions:
        target = replicas.new()
        hook, seen = crash_at(event, nth)
        with pytest.raises(Crash):
            sync(url, target, SyncOptions(hook=hook))
        assert len(seen) == nth
        # what the crash left: exactly the steps committed before it
        [state] = ledger(target).values()
        if event == "file_loaded":
            assert state[3] == "loading"
            done = file_steps(target)
            assert len(done) == nth - 1
            loaded = query(target, "SELECT count(*) FROM public.messages")[0][0]
            expected = sum(f.rows or 0 for f in files["public.messages"].files[:nth - 1])
            assert loaded == expected
            with pytest.raises(TargetError, match="still being built"):
                verify(target, dataset.db.standby_url)
        elif event == "keys_created":
            assert state[3] == "loading"
            assert len(file_steps(target)) == sum(len(e.files) for e in files.values())
            assert "post-data" not in {s[2] for s in steps(target)}
        else:
            assert state[3:5] == ("ready", nth)  # the partitions before the crash

        result = sync(url, target)
        assert result.base_loaded == (full if event in ("file_loaded", "keys_created")
                                      else None)
        assert result.applied == [first, second][max(0, nth - 1) if event ==
                                                 "partition_applied" else 0:]
        assert end_state(target) == want, (event, nth)
        assert_no_duplicates(target)
    assert_equal(target, dataset.db)


def test_a_crash_while_applying_late_rows(dataset: Dataset, replica: str, replicas: Replicas):
    url = str(dataset.url)
    sync(url, replica)
    add_messages(dataset.db, day(2), 30, tag="late")
    add_messages(dataset.db, day(1), 50)
    new = [p.id for p in publish_day(dataset.config(), url, day(1)).publications]
    assert len(new) == 2
    before = end_state(replica)
    hook, _ = crash_at("partition_applied", 1)
    with pytest.raises(Crash):
        sync(url, replica, SyncOptions(hook=hook))
    assert end_state(replica) == before
    assert sync(url, replica).applied == new
    reference = replicas.new()
    sync(url, reference)
    assert end_state(replica)["tables"] == end_state(reference)["tables"]
    assert ledger(replica)["datanommer"][4] == ledger(reference)["datanommer"][4] == 5
    assert_no_duplicates(replica)
    assert_equal(replica, dataset.db)


def test_a_half_built_replica_whose_full_export_was_pruned(dataset: Dataset, replica: str):
    url = str(dataset.url)
    hook, _ = crash_at("file_loaded", 2)
    with pytest.raises(Crash):
        sync(url, replica, SyncOptions(hook=hook))
    wait_for_next_second()
    full2 = publish_full(dataset.config(), url).publications[0].id
    with open_store(url) as store:
        assert [p.id for p in prune(store, "datanommer", None, 1).removed] == [dataset.ids[0]]
    before = end_state(replica)

    with pytest.raises(TargetError, match="was being built from") as e:
        sync(url, replica)
    assert dataset.ids[0] in e.value.message and "--rebase" in (e.value.hint or "")
    assert end_state(replica) == before
    result = sync(url, replica, SyncOptions(rebase=True))
    assert result.base_loaded == full2 and result.applied == []
    assert_no_duplicates(replica)
    assert_equal(replica, dataset.db)


# -- a real process, killed with SIGKILL --------------------------------------------------

def run_sync(url: str, target: str, kill_after: int | None = None,
             kill_on: str | None = None) -> tuple[int, list[dict]]:
    """``python -m topoff sync`` with JSON logs; SIGKILL after the k-th log line (or after
    the first line whose message starts with ``kill_on``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "sync", url, target, "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[dict] = []
    try:
        for raw in proc.stderr:
            lines.append(json.loads(raw))
            if (kill_after is not None and len(lines) == kill_after) or (
                    kill_on is not None and lines[-1]["message"].startswith(kill_on)):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.stderr.close()
        code = proc.wait(timeout=120)
    return code, lines


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun(dataset: Dataset, replicas: Replicas):
    url = str(dataset.url)
    reference = replicas.new()
    code, full_run = run_sync(url, reference)
    assert code == 0
    messages = [line["message"] for line in full_run]
    assert messages[0].startswith("loading full/") and messages[1].startswith("created 5 tables")
    assert sum(m.startswith("loaded public.messages file") for m in messages) >= 3
    assert sum(m.startswith("applied incremental/") for m in messages) == 2
    want = end_state(reference)

    target = replicas.new()
    killed = 0
    for k in (1, 3, 4):
        code, lines = run_sync(url, target, kill_after=k)
        assert len(lines) == k
        killed += code == -signal.SIGKILL
    code, lines = run_sync(url, target, kill_on="applied incremental/")
    killed += code == -signal.SIGKILL
    assert killed >= 3  # the runs did die before they finished
    assert ledger(target)["datanommer"][3] in ("loading", "ready")

    code, lines = run_sync(url, target)
    assert code == 0
    assert lines and all(line["level"] == "info" for line in lines)
    assert end_state(target) == want
    assert_no_duplicates(target)
    code, lines = run_sync(url, target)
    assert code == 0 and lines[-1]["message"].endswith("(publication 3)")
    assert_equal(target, dataset.db)


# -- a damaged file: refused before anything is changed ------------------------------------

def flip_byte(path: Path) -> tuple[int, int]:
    data = bytearray(path.read_bytes())
    at = len(data) // 2
    old = data[at]
    data[at] ^= 0x55
    path.write_bytes(bytes(data))
    return at, old


def restore_byte(path: Path, at: int, old: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] = old
    path.write_bytes(bytes(data))


def test_a_damaged_partition_file_changes_nothing(dataset: Dataset, replica: str):
    url = str(dataset.url)
    sync(url, replica)
    add_messages(dataset.db, day(2), 30, tag="late")
    add_messages(dataset.db, day(1), 50)
    new = [p.id for p in publish_day(dataset.config(), url, day(1)).publications]
    damaged_pub = new[0]
    entry = dataset.manifest(damaged_pub).tables["public.packages_messages"]
    name = f"{damaged_pub}/{entry.files[-1].path}"
    at, old = flip_byte(dataset.url / name)
    before = end_state(replica)

    result = cli("sync", url, replica)
    assert result.exit_code == 6, result.stderr
    [error, hint] = result.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: ") and name in error and "sha256" in error
    assert hint.startswith("hint: ")
    assert end_state(replica) == before
    with pytest.raises(IntegrityError, match=name):
        sync(url, replica)
    assert end_state(replica) == before

    restore_byte(dataset.url / name, at, old)
    assert sync(url, replica).applied == new
    assert_no_duplicates(replica)
    assert_equal(replica, dataset.db)


def test_a_damaged_full_export_file_stops_the_load_there(dataset: Dataset, replica: str):
    url = str(dataset.url)
    full = dataset.ids[0]
    files = dataset.manifest(full).tables["public.messages"].files
    name = f"{full}/{files[1].path}"
    at, old = flip_byte(dataset.url / name)

    with pytest.raises(IntegrityError, match=name) as e:
        sync(url, replica)
    assert "nothing was applied" in e.value.message
    # the first file was verified and loaded; nothing past it
    assert file_steps(replica) == [f"file:{files[0].path}"]
    assert query(replica, "SELECT count(*) FROM public.messages")[0][0] == files[0].rows
    assert ledger(replica)["datanommer"][3] == "loading"

    restore_byte(dataset.url / name, at, old)
    result = sync(url, replica)
    assert result.base_loaded == full and len(result.applied) == 2
    assert_no_duplicates(replica)
    assert_equal(replica, dataset.db)
