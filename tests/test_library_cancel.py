"""Two independent replicate runs of one program, in two threads: interrupting one (Ctrl-C
in the main thread, during a library call or the command run in-process) cancels its own
statements, never the other run's."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest

from support.cli import run_cli, write_config
from support.replicate import config, config_text, new_database, new_target
from topoff.replicate.engine import run_once

TABLES = ("a1", "a2", "b")


def _waiting(url: str, count: int) -> bool:
    """Whether ``count`` sessions of the database of ``url`` wait for a lock."""
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'").fetchone()
    return row is not None and row[0] >= count


def _until(check, what: str) -> None:
    deadline = time.monotonic() + 120  # only so that a broken run ends; not a measure
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _locked(url: str, tables: list[str]) -> psycopg.Connection:
    """A transaction holding the replica's ``tables`` (until it rolls back)."""
    c = psycopg.connect(url)
    c.execute("LOCK TABLE " + ", ".join(f"app.{t}" for t in tables)
              + " IN ACCESS EXCLUSIVE MODE")
    return c


@pytest.mark.parametrize("how", ["library", "command"])
def test_interrupting_one_run_leaves_another_threads_run_alone(cluster, tmp_path, how):
    source = new_database(cluster)
    for t in TABLES:
        source.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, ts timestamptz NOT NULL)")
        source.execute(f"INSERT INTO {t} SELECT g, '2026-01-01'::timestamptz + g * "
                       "interval '1 s' FROM generate_series(1, 10) g")
    source.sync()
    url_a, url_b = (new_target("postgresql", cluster, tmp_path) for _ in range(2))
    inserter = {"method": "inserter", "cursor": "ts"}
    text_a = config_text(url_a, {"app": (source.standby_url, {"a1": inserter,
                                                              "a2": inserter})})
    cfg_a = config(url_a, {"app": (source.standby_url, {"a1": inserter, "a2": inserter})})
    cfg_b = config(url_b, {"app": (source.standby_url, {"b": inserter})})
    assert [r.status for r in run_once(cfg_a, jobs=2)] == ["ok", "ok"]
    assert [r.status for r in run_once(cfg_b)] == ["ok"]
    for t in TABLES:
        source.execute(f"INSERT INTO {t} SELECT g, '2026-01-01'::timestamptz + g * "
                       "interval '1 s' FROM generate_series(11, 20) g")
    source.sync()

    lock_a, lock_b = _locked(url_a, ["a1", "a2"]), _locked(url_b, ["b"])
    try:
        other: list = []
        b = threading.Thread(target=lambda: other.append(run_once(cfg_b)))
        b.start()
        _until(lambda: _waiting(url_b, 1) or not b.is_alive(), "run b never waited")

        def interrupt_a() -> None:  # Ctrl-C, once run a's two tables wait on the replica
            _until(lambda: _waiting(url_a, 2), "run a never waited")
            os.kill(os.getpid(), signal.SIGINT)

        killer = threading.Thread(target=interrupt_a)
        killer.start()
        if how == "library":
            with pytest.raises(KeyboardInterrupt):
                run_once(cfg_a, jobs=2)
        else:  # the command's own handler: exit 130, its statements cancelled by its thread
            result = run_cli("replicate", "--config",
                             write_config(tmp_path / "a.toml", text_a), "--jobs", "2")
            assert result.exit_code == 130, result.stderr
        killer.join()
        lock_b.rollback()  # run b goes on, its statement never cancelled
        b.join(300)
        [runs] = other
        assert [(r.status, r.rows) for r in runs] == [("ok", 10)], runs
    finally:
        lock_a.close()
        lock_b.close()
    assert [r.status for r in run_once(cfg_a, jobs=2)] == ["ok", "ok"]
