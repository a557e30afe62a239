"""When a window may be published (a quiet primary, a standby behind), and a standby that
restarts under an export. A cluster set up for it (support/clusters.py), no test of another kind
on it: these tests pause and restart its standby."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from support.clusters import drop, own_database
from support.dataset import files_under, read_dataset, topoff_log
from support.pg import Database, make_config
from topoff.dataset.index import read_index
from topoff.dataset.layout import Window
from topoff.demo import sample
from topoff.errors import SafetyError, SourceError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.stores import open_store

TABLES = ("messages", "users_messages", "packages_messages", "users", "packages")


@pytest.fixture(scope="module")
def quiet(quiet_cluster):
    """A database on a primary that writes nothing unless a test does (no autovacuum), and
    a standby that pings it every second, so the primary's keepalives arrive often."""
    db = own_database(quiet_cluster, "quiet")
    try:
        with db.primary() as conn:
            sample.fill(conn, days=2, per_day=40)
        db.execute(f"CREATE ROLE plain LOGIN PASSWORD 'pw'; GRANT USAGE ON SCHEMA public TO "
                   f"plain; GRANT SELECT ON {', '.join(TABLES)} TO plain")
        yield db
    finally:
        drop(db, "plain")


def receiver(db: Database) -> tuple[datetime, bool]:
    """The primary's time in its last message to the standby, and whether the standby has
    replayed all the WAL the primary reported."""
    [(sent, caught_up)] = db.cluster.standby.execute(
        "SELECT last_msg_send_time, pg_last_wal_replay_lsn() >= latest_end_lsn "
        "FROM pg_stat_wal_receiver")
    return sent, caught_up


def wait_for_report_after(db: Database, instant: datetime, caught_up: bool,
                          timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent, done = receiver(db)
        if sent is not None and sent > instant and done == caught_up:
            return
        time.sleep(0.2)
    raise AssertionError(f"no report from the primary after {instant} within {timeout}s")


def window_ending_soon(seconds: int = 2) -> Window:
    end = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return Window(end - timedelta(hours=6), end)


def last_replayed_commit(db: Database) -> datetime:
    return db.cluster.standby.execute("SELECT pg_last_xact_replay_timestamp()")[0][0]


def test_a_quiet_primary_does_not_hold_a_window_open(quiet, tmp_path):
    db = quiet
    db.sync()
    window = window_ending_soon()
    time.sleep(max(0.0, (window.end - datetime.now(UTC)).total_seconds()) + 0.1)
    wait_for_report_after(db, window.end, caught_up=True)
    # no commit since before the window's end: the replay timestamp alone keeps it open
    assert last_replayed_commit(db) < window.end
    store = open_store(str(tmp_path / "out"))
    # a role without pg_read_all_stats cannot see the WAL receiver: the old rule, and a hint
    plain = make_config(db).with_overrides(
        source_url=db.cluster.standby.url(db.name, user="plain", password="pw"))
    with pytest.raises(SafetyError) as info:
        export_incremental(plain, store, window)
    assert "may still be incomplete" in info.value.message
    assert "pg_read_all_stats" in info.value.hint
    assert read_index(store) is None
    # the standby has replayed everything the primary reported after the window's end
    result = export_incremental(make_config(db), store, window)
    assert [p.id for p in result.publications] == [
        f"incremental/{window.label}/r1"]
    assert result.manifests[0].tables["public.messages"].rows == db.standby_query(
        "SELECT count(*) FROM messages WHERE \"timestamp\" >= %s AND \"timestamp\" < %s",
        (window.start, window.end))[0][0]
    # and so can the plain role once it may read the WAL receiver's state
    db.cluster.primary.execute("GRANT pg_read_all_stats TO plain")
    db.sync()
    wait_for_report_after(db, window.end, caught_up=True)
    store2 = open_store(str(tmp_path / "out2"))
    assert export_incremental(plain, store2, window).publications


def test_a_standby_behind_is_refused_until_it_catches_up(quiet, tmp_path, caplog):
    db = quiet
    db.sync()
    window = window_ending_soon()
    standby = db.cluster.standby
    standby.execute("SELECT pg_wal_replay_pause()")
    try:
        time.sleep(max(0.0, (window.end - datetime.now(UTC)).total_seconds()) + 0.1)
        with db.primary() as conn:  # committed after the window's end, not replayed
            conn.execute("UPDATE users SET name = name || '!' WHERE id = (SELECT min(id) "
                         "FROM users)")
        wait_for_report_after(db, window.end, caught_up=False)
        dest = tmp_path / "out"
        store = open_store(str(dest))
        with pytest.raises(SafetyError) as info:
            export_incremental(make_config(db), store, window)
        assert "may still be incomplete" in info.value.message
        assert "replay is paused" in info.value.message
        assert "run again later" in info.value.hint
        assert not dest.exists() or files_under(dest) == []
        # --force publishes it anyway, with a warning
        with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
            forced = export_incremental(make_config(db), store, window, force=True)
        assert forced.publications
        assert any("may be incomplete" in r.getMessage() for r in caplog.records)
    finally:
        standby.execute("SELECT pg_wal_replay_resume()")
    db.sync()
    result = export_incremental(make_config(db), open_store(str(tmp_path / "again")), window)
    assert result.publications


# -- a standby restarted under an export ----------------------------------------------------


def restarter(db: Database, when):
    """A hook that restarts the standby (fast shutdown: sessions are terminated) at the
    n-th table_start of an attempt when ``when(attempt, n)`` says so."""
    state = {"attempt": 0, "starts": 0, "snapshots": 0, "restarts": 0}

    def hook(event, **kw):
        if event == "snapshot":
            state.update(attempt=kw["attempt"], starts=0)
            state["snapshots"] += 1
        elif event == "table_start":
            state["starts"] += 1
            if when(state["attempt"], state["starts"]):
                db.cluster.standby.stop("fast")
                db.cluster.standby.start()
                state["restarts"] += 1

    return hook, state


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_standby_restarted_mid_export_is_retried(quiet, tmp_path, jobs):
    db = quiet
    db.sync()
    config = make_config(db, jobs=jobs, retry_attempts=3)
    hook, state = restarter(db, lambda attempt, n: attempt == 1 and n == 2)
    store = open_store(str(tmp_path / "full"))
    with topoff_log():
        result = export_full(config, store, hook=hook)
    assert state == {**state, "restarts": 1, "snapshots": 2}
    [m] = result.manifests
    assert m.tables["public.messages"].rows == db.standby_query(
        "SELECT count(*) FROM messages")[0][0]
    read_dataset(store)
    hook, state = restarter(db, lambda attempt, n: attempt == 1 and n == 1)
    store = open_store(str(tmp_path / "inc"))
    result = export_incremental(config, store, Window.day(yesterday()), hook=hook)
    assert state["restarts"] == 1 and state["snapshots"] == 2 and result.publications
    read_dataset(store)


def test_a_standby_restarting_every_time_gives_up_with_a_hint(quiet, tmp_path):
    db = quiet
    config = make_config(db, jobs=1, retry_attempts=2)
    hook, state = restarter(db, lambda attempt, n: n == 2)
    dest = tmp_path / "out"
    store = open_store(str(dest))
    with topoff_log(), pytest.raises(SourceError) as info:
        export_full(config, store, hook=hook)
    assert type(info.value) is SourceError  # exit code 3, not an internal error
    assert state["snapshots"] == 2 and state["restarts"] == 2
    assert "lost its connection to the source 2 times" in info.value.message
    assert "standby is running" in info.value.hint
    assert files_under(dest) == []
    assert read_index(store) is None


def test_a_standby_that_stays_down_is_named_once_with_one_hint(quiet, tmp_path):
    """The standby stopped under an export and not back for the next attempt: the error
    names the refused connection, and its one hint is the lost connection's (the refused
    connection's own hint is not carried inside the message)."""
    db = quiet
    config = make_config(db, jobs=1, retry_attempts=2, retry_backoff=0.05)
    stopped = []

    def hook(event, **kw):
        if event == "table_start" and not stopped:
            db.cluster.standby.stop("immediate")
            stopped.append(1)

    store = open_store(str(tmp_path / "out"))
    try:
        with topoff_log(), pytest.raises(SourceError) as info:
            export_full(config, store, hook=hook)
    finally:
        db.cluster.standby.start()
    assert "lost its connection to the source 2 times" in info.value.message
    assert "connection refused" in info.value.message
    assert "hint" not in info.value.message, info.value.message
    assert "standby is running" in (info.value.hint or "")
    assert files_under(tmp_path / "out") == []
    db.cluster.wait_streaming()
    assert export_full(config, store).publications
    read_dataset(store)
