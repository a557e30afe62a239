"""topoff called as a library, the way a program embeds it: calls from two threads at once
and the command run inside another program's process leave the process's settings
(warning filters, signal handlers, logging) as they found them."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings

import duckdb
import pyiceberg.utils.config  # noqa: F401  (adds warning filters of its own when imported)
import pytest
from click.testing import CliRunner

from support.pg import make_config
from support.replica import day, keep_logger, publish_day, publish_full
from support.replicate import config_text
from test_iceberg_sync import catalog_file, iceberg_rows
from topoff.cli import cli as topoff_cli
from topoff.errors import TargetError
from topoff.status import status
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

SMALL_TOML = """
dataset = "small"

[tables.small]
method = "snapshot"
"""


def test_two_iceberg_syncs_in_two_threads_leave_the_warning_filters_as_they_were(db, tmp_path):
    """Each Iceberg commit quiets pyiceberg's "Delete operation did not match any records";
    two syncs in two threads, the first leaving that block while the second is inside it,
    left a filter ignoring every UserWarning of the process behind (the second put back
    what it found: the first one's filter)."""
    db.execute("CREATE TABLE small (id integer PRIMARY KEY, v text)")
    db.execute("INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 3) g")
    url = str(tmp_path / "published")
    config = make_config(db, SMALL_TOML)
    publish_full(config, url)
    db.execute("INSERT INTO small VALUES (4, 'v4')")
    publish_day(config, url, day(1))  # the table again: applied by a commit of its own
    targets = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        targets.append(catalog_file(tmp_path / name))
    first_inside, second_inside, first_done = (threading.Event() for _ in range(3))

    def first_hook(event: str, **info: object) -> None:
        if event == "table_applied":  # inside the commit's block
            first_inside.set()
            assert second_inside.wait(60)

    def second_hook(event: str, **info: object) -> None:
        if event == "table_applied":
            second_inside.set()
            assert first_done.wait(60)  # the first call has left its block, and returned

    failures: list[BaseException] = []

    def run(target: str, hook: object, done: threading.Event | None) -> None:
        try:
            sync(url, target, SyncOptions(hook=hook))  # type: ignore[arg-type]
        except BaseException as e:  # reported below, from the test's thread
            failures.append(e)
            first_inside.set()
            second_inside.set()
        finally:
            if done is not None:
                done.set()

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        threads = [threading.Thread(target=run, args=(targets[0], first_hook, first_done)),
                   threading.Thread(target=run, args=(targets[1], second_hook, None))]
        threads[0].start()
        assert first_inside.wait(60)  # the second call starts once the first is inside
        threads[1].start()
        for t in threads:
            t.join(120)
        assert not failures, failures
        assert list(warnings.filters) == before
    assert not [w for w in shown if "did not match any records" in str(w.message)]
    for target in targets:
        assert [r[0] for r in iceberg_rows(target, "public.small")] == [1, 2, 3, 4]


def _handlers() -> dict[signal.Signals, object]:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                   signal.SIGHUP)}


def _own_stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_run_in_process_and_stopped_puts_back_the_signal_handlers(
        db, tmp_path, sig):
    """A program that runs topoff's command in its own process (click's ``main`` with
    ``standalone_mode=False``, as CliRunner does) and stops it with a signal gets its
    own handlers back, and its SIGTERM and Ctrl-C work again (the command's stop handler
    stayed installed, and ignored every later signal of the process)."""
    db.execute("CREATE TABLE snap (id integer PRIMARY KEY, v text)")
    db.execute("INSERT INTO snap VALUES (1, 'v')")
    path = tmp_path / "replicate.toml"
    path.write_text(config_text(str(tmp_path / "r.duckdb"), {"app": (
        db.standby_url, {"snap": {"method": "snapshot"}})}))
    previous = {s: signal.signal(s, _own_stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        mine = _handlers()
        timer = threading.Timer(1.5, os.kill, (os.getpid(), sig))
        timer.start()
        try:
            with keep_logger():  # the command's log goes to the runner's stream
                out = CliRunner().invoke(topoff_cli, ["replicate", "--config", str(path),
                                                      "--every", "1s"])
        finally:
            timer.join()
        assert out.exit_code == 130, out.stderr
        assert "error: interrupted" in out.stderr
        assert _handlers() == mine
        with pytest.raises(KeyboardInterrupt):  # the program's own handler stops it again
            os.kill(os.getpid(), sig)
            time.sleep(5)
    finally:
        for s, was in previous.items():
            signal.signal(s, was)


def _logging() -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for name in ("topoff", "psycopg"):
        logger = logging.getLogger(name)
        out[name] = (tuple(logger.handlers), logger.level, logger.propagate)
    return out


def test_the_command_run_in_process_puts_back_the_logging_it_found(tmp_path):
    """The command points topoff's log (and psycopg's) at its stderr: run inside another
    program, that program's logging is as it was once the command returns (the handler
    stayed, writing to the runner's closed stream, and topoff's records no longer reached
    the program's own handlers)."""
    before = _logging()
    out = CliRunner().invoke(topoff_cli, ["status", "--offline", str(tmp_path / "r.duckdb")])
    assert out.exit_code == 7, out.stderr
    assert _logging() == before


@pytest.mark.parametrize("call", ["sync", "status", "verify"])
def test_a_duckdb_replica_this_process_holds_open_is_a_target_error(db, tmp_path, call):
    """A program that keeps a connection of its own to its DuckDB replica (or runs a second
    call on it from another thread) and calls topoff on it gets exit 7's TargetError naming
    the file and saying why (duckdb's ResourceInUseException came out as it was: an
    internal error for the command); once it closes its connection, the call works."""
    db.execute("CREATE TABLE small (id integer PRIMARY KEY, v text)")
    db.execute("INSERT INTO small VALUES (1, 'v')")
    url = str(tmp_path / "published")
    publish_full(make_config(db, SMALL_TOML), url)
    path = str(tmp_path / "r.duckdb")
    sync(url, path)
    calls = {"sync": lambda: sync(url, path), "status": lambda: status(path),
             "verify": lambda: verify(path, db.standby_url)}
    own = duckdb.connect(path)
    try:
        with pytest.raises(TargetError) as e:
            calls[call]()
        assert path in e.value.message and e.value.exit_code == 7
        assert "this process" in (e.value.hint or "")
    finally:
        own.close()
    calls[call]()
    assert duckdb.connect(path, read_only=True).sql(
        "SELECT count(*) FROM public.small").fetchall() == [(1,)]
