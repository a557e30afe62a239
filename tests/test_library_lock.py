"""export_full and export_incremental called as a library hold the dataset's lock as the
`topoff export` command does: two exports of one dataset at once (two threads of one
program, or a program and the command) never both publish."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from support.cli import write_config
from support.dataset import read_dataset
from support.pg import make_config
from topoff.dataset import layout
from topoff.dataset.layout import Window
from topoff.dataset.lock import DatasetLocked, dataset_lock
from topoff.dataset.retention import prune
from topoff.demo import sample
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.sources.pg_source import PostgresSource
from topoff.stores import open_store
from topoff.sync import sync

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFF_")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    return e


def _call(kind: str, config, store, **kw):
    if kind == "full":
        return export_full(config, store, **kw)
    return export_incremental(config, store, Window.day(yesterday()), **kw)


def _while_first_runs(kind: str, config, store, second) -> tuple[object, list]:
    """Run the first export in a thread; once it has its snapshot, ``second()`` runs in
    another thread, to its end, before the first goes on. (first's result, [second's
    result or error])"""
    inside, other_done = threading.Event(), threading.Event()
    outcome: list = []

    def hook(event: str, **kw: object) -> None:
        if event == "snapshot":
            inside.set()
            assert other_done.wait(300)

    def run_second() -> None:
        assert inside.wait(300)
        try:
            outcome.append(second())
        except BaseException as e:  # looked at by the test
            outcome.append(e)
        finally:
            other_done.set()

    first: list = []
    threads = [threading.Thread(target=lambda: first.append(_call(kind, config, store,
                                                                  hook=hook))),
               threading.Thread(target=run_second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert len(first) == 1, "the first export failed"
    return first[0], outcome


@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_two_library_exports_in_two_threads_publish_once(datanommer, tmp_path, kind):
    """The second export, started while the first runs, stops before writing anything with
    the command's error (exit 5, locked by another export); the first publishes alone."""
    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, lookback_days=0)
    result, [second] = _while_first_runs(kind, config, store,
                                         lambda: _call(kind, config, store))
    assert isinstance(second, DatasetLocked), second
    assert second.exit_code == 5 and "locked by another export" in second.message
    assert f"pid {os.getpid()}" in second.message
    data = read_dataset(store)  # the index is valid, every file matches its manifest
    assert data.ids() == [p.id for p in result.publications] and len(data.ids()) == 1
    assert not (tmp_path / "published" / layout.LOCK).exists()


def test_a_library_export_that_waits_runs_after_the_other(datanommer, tmp_path):
    """wait=True (the command's --wait): the second export waits for the lock while the
    first runs, then runs once the first has published, and finds the day unchanged."""
    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, lookback_days=0)
    inside, waiting = threading.Event(), threading.Event()
    done: list = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("waiting for the lock held by"):
                waiting.set()

    def hook(event: str, **kw: object) -> None:
        if event == "snapshot" and not inside.is_set():
            inside.set()
            assert waiting.wait(300)  # the second is waiting: go on

    def second() -> None:
        assert inside.wait(300)
        done.append(_call("incremental", config, store, wait=True))

    seen, log = Seen(), logging.getLogger("topoff")
    log.addHandler(seen)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        waiter = threading.Thread(target=second)
        waiter.start()
        first = _call("incremental", config, store, hook=hook)
        waiter.join(600)
    finally:
        log.removeHandler(seen)
        log.setLevel(level)
    [later] = done
    day = str(yesterday())
    assert [p.id for p in first.publications] == [f"incremental/{day}/r1"]
    assert later.publications == [] and later.unchanged == [day]
    assert read_dataset(store).ids() == [f"incremental/{day}/r1"]


def test_the_command_and_a_library_export_in_two_processes(datanommer, tmp_path):
    """A program's library export holds the lock: `topoff export incremental` run meanwhile
    exits 5 naming this process; then the command holds it, and the library call is
    refused in turn."""
    dest = tmp_path / "published"
    store = open_store(str(dest))
    config = make_config(datanommer, lookback_days=0)
    conf = write_config(tmp_path / "t.toml", sample.example_config())
    args = [sys.executable, "-m", "topoff", "export", "incremental", "--config", conf,
            "--source", datanommer.standby_url, "--to", str(dest), "--lookback-days", "0",
            "--quiet"]

    def command() -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)

    result, [proc] = _while_first_runs("incremental", config, store, command)
    assert proc.returncode == 5, proc.stderr
    assert "locked by another export" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
    assert read_dataset(store).ids() == [p.id for p in result.publications]

    # the command holding the lock (a process that stops inside its export, as one
    # holding it would): a lock of another process on this host, alive
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys\n"
        "from topoff.dataset.lock import dataset_lock\n"
        "from topoff.stores import open_store\n"
        f"with dataset_lock(open_store({str(dest)!r}), 'datanommer'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DatasetLocked, match=f"pid {holder.pid}"):
            _call("incremental", config, store)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
        holder.stdout.close()  # type: ignore[union-attr]


def test_the_command_takes_the_lock_once(datanommer, tmp_path):
    """A store from dataset_lock (the command's) is this run's lock: the export inside it
    publishes, neither refused by its own lock nor waiting for it."""
    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, lookback_days=0)
    with dataset_lock(store, config.dataset) as locked:
        result = _call("incremental", config, locked)
        assert (tmp_path / "published" / layout.LOCK).exists()
    assert read_dataset(store).ids() == [p.id for p in result.publications]
    assert not (tmp_path / "published" / layout.LOCK).exists()


class SameSecondSource(PostgresSource):
    """PostgreSQL whose first snapshot is taken at the time ``pinned`` names: in the second
    of the first export, as a second export's is when it waited for the first's lock and
    both ran within one second. The snapshots after it keep the server's clock."""

    pinned: ClassVar[list[datetime]] = []
    times: ClassVar[list[datetime]] = []

    def open(self) -> Any:
        info = super().open()
        if self.pinned:
            info = self.info = replace(info, time=self.pinned.pop())
        self.times.append(info.time)
        return info


def test_two_full_exports_in_one_second_both_publish(datanommer, tmp_path):
    """A full export whose snapshot falls in the second of a published one (it waited for
    that one's lock) takes a new snapshot in the next second and publishes under its name:
    both are published, and a sync builds its replica from the later one."""
    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, lookback_days=0)
    [first] = export_full(config, store).publications
    taken = datetime.fromisoformat(first.snapshot_time)
    SameSecondSource.pinned[:] = [taken]
    SameSecondSource.times.clear()
    [second] = export_full(config, store, kind=SameSecondSource, wait=True).publications
    pinned, used = SameSecondSource.times
    assert layout.full_id(pinned) == first.id  # the collision did happen
    assert used > pinned and second.id == layout.full_id(used) > first.id
    assert datetime.fromisoformat(second.snapshot_time) == used  # the true snapshot time
    data = read_dataset(store)  # both whole, in the order they were published
    assert data.ids() == [first.id, second.id]
    result = sync(str(tmp_path / "published"), str(tmp_path / "replica.duckdb"))
    assert result.base_loaded == second.id


def test_a_library_prune_during_an_export_is_refused(datanommer, tmp_path):
    """prune called as a library holds the dataset's lock as `topoff prune` does: run
    while a full export holds it, it removes nothing and raises DatasetLocked (exit 5)."""
    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, lookback_days=0)
    [old] = export_full(config, store).publications
    result, [pruned] = _while_first_runs(
        "full", config, store, lambda: prune(store, config.dataset, None, keep_full=1))
    assert isinstance(pruned, DatasetLocked), pruned
    assert pruned.exit_code == 5 and f"pid {os.getpid()}" in pruned.message
    [new] = result.publications
    assert read_dataset(store).ids() == [old.id, new.id]
    assert not (tmp_path / "published" / layout.LOCK).exists()


def test_a_library_prune_that_waits_runs_after_the_export(datanommer, tmp_path):
    """wait=True: a prune started while a full export runs waits for its lock, then keeps
    the export just published (the newest full) and removes the older one."""
    store = open_store(str(tmp_path / "published"))
    config = make_config(datanommer, lookback_days=0)
    [old] = export_full(config, store).publications
    inside, waiting = threading.Event(), threading.Event()
    done: list = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("waiting for the lock held by"):
                waiting.set()

    def hook(event: str, **kw: object) -> None:
        if event == "snapshot":
            inside.set()
            assert waiting.wait(300)  # the prune is waiting: go on

    def second() -> None:
        assert inside.wait(300)
        done.append(prune(store, config.dataset, None, keep_full=1, wait=True))

    seen, log = Seen(), logging.getLogger("topoff")
    log.addHandler(seen)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        waiter = threading.Thread(target=second)
        waiter.start()
        [new] = export_full(config, store, hook=hook).publications
        waiter.join(600)
    finally:
        log.removeHandler(seen)
        log.setLevel(level)
    [pruned] = done
    assert [p.id for p in pruned.removed] == [old.id] and new.id != old.id
    assert read_dataset(store).ids() == [new.id]
    assert not (tmp_path / "published" / layout.LOCK).exists()


def test_a_store_whose_lock_was_released_is_locked_again(datanommer, tmp_path):
    """A store from dataset_lock used after its block ended holds no lock any more: an
    export given it takes the lock as for any store, refused before writing anything
    while another run holds it, publishing once it is free."""
    dest = tmp_path / "published"
    store = open_store(str(dest))
    config = make_config(datanommer, lookback_days=0)
    with dataset_lock(store, config.dataset) as stale:
        pass
    with dataset_lock(store, config.dataset), \
            pytest.raises(DatasetLocked, match="locked by another export"):  # another run's
        _call("incremental", config, stale)
    assert list(dest.rglob("*.csv.zst")) == [] and not (dest / layout.INDEX).exists()
    result = _call("incremental", config, stale)
    assert read_dataset(store).ids() == [p.id for p in result.publications]
    assert not (dest / layout.LOCK).exists()
