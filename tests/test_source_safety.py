"""The source side's safety rules: standby only, SELECT only, strict columns, and what
happens when WAL replay cancels the export."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import timedelta

import psycopg
import pytest

from support.clusters import drop, own_database
from support.dataset import files_under, read_dataset, read_table, topoff_log
from support.pg import Database, make_config
from topoff.dataset.index import read_index
from topoff.dataset.layout import Window
from topoff.demo import sample
from topoff.errors import ConfigError, SafetyError, SourceError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.safety import retry_on_recovery_conflict
from topoff.sources.postgres import connect, display_url
from topoff.stores import open_store

TABLES = ("messages", "users_messages", "packages_messages", "users", "packages")


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_nothing_at(dest):
    assert files_under(dest) == [], files_under(dest)


# -- primary or standby ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_a_primary_is_refused(datanommer, config, dest, kind):
    config = config.with_overrides(source_url=datanommer.primary_url)
    store = open_store(str(dest))
    with pytest.raises(SafetyError) as info:
        if kind == "full":
            export_full(config, store)
        else:
            export_incremental(config, store, Window.day(yesterday()))
    assert "pg_is_in_recovery" in info.value.message
    assert "primary" in info.value.message
    assert "--allow-primary" in info.value.hint
    assert_nothing_at(dest)


def test_a_multi_host_url_does_not_fall_back_to_the_primary(datanommer, config, dest):
    port = datanommer.cluster.primary.port
    url = f"postgresql://postgres@127.0.0.1:{dead_port()},127.0.0.1:{port}/{datanommer.name}"
    # libpq itself does fall back to the second host ...
    with connect(url) as conn:
        assert conn.info.port == port
    # ... which is a primary, so the export refuses it
    with pytest.raises(SafetyError, match="pg_is_in_recovery"):
        export_full(config.with_overrides(source_url=url), open_store(str(dest)))
    assert_nothing_at(dest)


def test_allowed_primary_reads_serializable_deferrable(datanommer, config, dest):
    store = open_store(str(dest))
    config = config.with_overrides(source_url=datanommer.primary_url, allow_primary=True)
    with topoff_log():
        [m] = export_full(config, store).manifests
    assert m.snapshot.in_recovery is False and m.source["in_recovery"] is False
    assert m.snapshot.isolation == "serializable, read only, deferrable"
    assert m.snapshot.replay_timestamp is None
    read_dataset(store)
    inc = export_incremental(config, store, Window.day(yesterday()))
    assert all(x.snapshot.isolation == "serializable, read only, deferrable"
               for x in inc.manifests)
    # and the standby: repeatable read (a standby refuses serializable)
    other = open_store(str(dest) + "-standby")
    [s] = export_full(config.with_overrides(source_url=datanommer.standby_url,
                                            allow_primary=False), other).manifests
    assert s.snapshot.in_recovery is True
    assert s.snapshot.isolation == "repeatable read, read only"


# -- a role that can only SELECT -----------------------------------------------------------


@pytest.fixture
def reader(datanommer: Database):
    """A LOGIN role with a password, CONNECT, USAGE on public and SELECT on the five tables."""
    name, password = f"reader_{datanommer.name}", "pw-Select-0nly"
    datanommer.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
    datanommer.execute(
        f'REVOKE ALL ON DATABASE "{datanommer.name}" FROM PUBLIC;'
        f'GRANT CONNECT ON DATABASE "{datanommer.name}" TO "{name}";'
        f'GRANT USAGE ON SCHEMA public TO "{name}";'
        f'GRANT SELECT ON {", ".join(TABLES)} TO "{name}";')
    yield name, password
    datanommer.execute(f'DROP OWNED BY "{name}"')
    datanommer.cluster.primary.execute(f'DROP ROLE "{name}"')


def test_a_select_only_role_is_enough(datanommer, config, dest, reader):
    name, password = reader
    standby = datanommer.cluster.standby.url(datanommer.name, user=name, password=password)
    primary = datanommer.cluster.primary.url(datanommer.name, user=name, password=password)
    # the role really cannot write anything, not even a temporary table
    with psycopg.connect(primary, autocommit=True) as conn:
        for ddl in ("CREATE TEMP TABLE t (x int)", "CREATE TABLE public.t (x int)",
                    "INSERT INTO users (name) VALUES ('x')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(ddl)
    store = open_store(str(dest))
    full = export_full(config.with_overrides(source_url=standby), store)
    inc = export_incremental(config.with_overrides(source_url=standby), store,
                             Window.day(yesterday()))
    assert inc.publications
    data = read_dataset(store)
    [m] = full.manifests
    assert m.source["url"].startswith(f"postgresql://{name}@")
    raw = b"".join((dest / p.manifest).read_bytes() for p in data.index.publications)
    assert password.encode() not in raw  # the password is never published
    # a primary, allowed on purpose: still nothing but SELECTs
    [p] = export_full(config.with_overrides(source_url=primary, allow_primary=True),
                      open_store(str(dest) + "-primary")).manifests
    assert p.snapshot.in_recovery is False
    assert {t: e.rows for t, e in p.tables.items()} == {t: e.rows for t, e in m.tables.items()}


# -- strict classification -------------------------------------------------------------


def test_an_unclassified_column_is_refused_under_strict(datanommer, config, dest, caplog):
    datanommer.execute("ALTER TABLE messages ADD COLUMN secret text DEFAULT 'hush'")
    assert config.strict
    store = open_store(str(dest))
    with pytest.raises(ConfigError) as info:
        export_full(config, store)
    assert "secret" in info.value.message and "public.messages" in info.value.message
    assert 'secret = "public" or "private"' in info.value.hint
    assert "[tables.messages.columns]" in info.value.hint
    assert_nothing_at(dest)
    with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
        [m] = export_full(config.with_overrides(strict=False), store).manifests
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("secret" in w and "not classified" in w for w in warnings), warnings
    data = read_table(store, m, "public.messages")
    assert "secret" in data.header and set(data.column("secret")) == {"hush"}


# -- conflicts with recovery ------------------------------------------------------------


@pytest.fixture(scope="module")
def impatient_standby(impatient_cluster):
    """A database whose standby cancels conflicting queries at once."""
    db = own_database(impatient_cluster, "conflicts")
    try:
        with db.primary() as conn:
            sample.fill(conn, days=2, per_day=40)
        db.sync()
        yield db
    finally:
        drop(db)


def locker(db: Database, when):
    """A hook that, when ``when(attempt, n)`` says so at the n-th table_start of an attempt,
    takes an ACCESS EXCLUSIVE lock on users on the primary (committed) and waits until the
    standby has replayed it, which it can only do by cancelling the export."""
    state = {"attempt": 0, "starts": 0, "snapshots": 0, "locks": 0}

    def hook(event, **kw):
        if event == "snapshot":
            state.update(attempt=kw["attempt"], starts=0)
            state["snapshots"] += 1
        elif event == "table_start":
            state["starts"] += 1
            if when(state["attempt"], state["starts"]):
                with db.primary() as conn, conn.transaction():
                    conn.execute("LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE")
                state["locks"] += 1
                db.sync()

    return hook, state


def test_a_recovery_conflict_restarts_the_export(impatient_standby, tmp_path):
    db = impatient_standby
    config = make_config(db, jobs=1, retry_attempts=3)
    hook, state = locker(db, lambda attempt, n: attempt == 1 and n == 2)
    store = open_store(str(tmp_path / "out"))
    with topoff_log():
        result = export_full(config, store, hook=hook)
    assert state["locks"] == 1
    assert state["snapshots"] == 2
    [m] = result.manifests
    assert m.tables["public.messages"].rows == 80
    read_dataset(store)


def test_recovery_conflicts_every_time_give_up_with_a_hint(impatient_standby, tmp_path):
    db = impatient_standby
    config = make_config(db, jobs=1, retry_attempts=2)
    hook, state = locker(db, lambda attempt, n: n == 2)
    dest = tmp_path / "out"
    store = open_store(str(dest))
    with topoff_log(), pytest.raises(SourceError) as info:
        export_full(config, store, hook=hook)
    assert state["snapshots"] == 2 and state["locks"] == 2
    assert "conflict with recovery" in info.value.message
    assert "2 times" in info.value.message
    # an ACCESS EXCLUSIVE lock, as a migration's DDL takes: hot_standby_feedback is no cure
    assert "a schema change on the primary" in info.value.hint
    assert "run it again" in info.value.hint
    assert "hot_standby_feedback" not in info.value.hint
    assert "max_standby_streaming_delay" in info.value.hint
    assert_nothing_at(dest)  # the first table's files were written, then removed
    assert read_index(store) is None
    # the incremental export retries the same way
    day = Window.day(yesterday() - timedelta(days=0))
    hook, state = locker(db, lambda attempt, n: attempt == 1 and n == 1)
    result = export_incremental(config.with_export(retry_attempts=3), store, day, hook=hook)
    assert state["snapshots"] == 2 and result.publications


def test_an_interrupted_export_is_not_retried(db):
    """A signal (Ctrl-C, SIGTERM) while the export waits on the standby, and then a cleanup
    statement failing on the connection the stop left closed (a second SIGTERM during the
    first one's handling does that): the export stops. The cleanup's "the connection is
    closed" was taken for a lost connection, and the export ran again and published."""
    attempts = []

    def run(n: int) -> str:
        attempts.append(n)
        if n > 1:
            return "exported again"
        conn = psycopg.connect(db.standby_url)
        try:
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
            conn.execute("SELECT pg_sleep(30)")
        finally:
            conn.close()  # as the second signal's handling left it
            conn.execute("SELECT 1")  # the cleanup: "the connection is closed"
        return "finished"

    with topoff_log(), pytest.raises(KeyboardInterrupt):
        retry_on_recovery_conflict(run, 3, 0.01, "full export")
    assert attempts == [1]


# -- connecting ------------------------------------------------------------------------


def test_connection_failures_say_what_to_check(db):
    url = f"postgresql://postgres@127.0.0.1:{dead_port()}/x"
    with pytest.raises(SourceError) as info:
        connect(url)
    assert "connection refused" in info.value.message and "port" in info.value.hint
    bad = db.cluster.standby.url(db.name, user="nobody", password="wrong-pw")
    with pytest.raises(SourceError) as info:
        connect(bad)
    assert "password authentication failed" in info.value.message
    assert "wrong-pw" not in str(info.value)
    with pytest.raises(ConfigError, match="invalid connection string"):
        connect("host=127.0.0.1 port")


def test_display_url_never_shows_the_password():
    assert display_url("postgresql://u:secret@h:5433/db") == "postgresql://u@h:5433/db"
    assert display_url("host=h user=u password=secret dbname=db") == "postgresql://u@h:5432/db"
    assert "secret" not in display_url("postgresql://u:secret@h1:1,h2:2/db")
    assert display_url("postgresql://") == "postgresql://localhost:5432/"
