"""A big table's first build read by several readers in one exported snapshot
(topoff.replicate.parallel): equal to the source value for value, a view and a DuckDB
target on the one-reader path, privileges as a normal build, leftovers of a killed run
dropped, a second run skipped "locked", and a real process SIGKILLed at random points."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import psycopg
import pytest

from support.cli import write_config
from support.replicate import config, config_text, hashes, new_database, new_target, query
from topoff.errors import ConfigError
from topoff.replicate.config import parse_replicate
from topoff.replicate.engine import resync, run_once
from topoff.replicate.parallel import SCHEMA, build_name
from topoff.targets.base import TableRef
from topoff.targets.postgres.target import lock_key

ROOT = Path(__file__).resolve().parent.parent

SOURCE_SQL = """
CREATE TABLE big (id bigint PRIMARY KEY, ts timestamptz NOT NULL, doc jsonb, v text,
  n numeric(14,3), b bytea, tags text[], d date, f double precision);
INSERT INTO big SELECT g, '2026-01-01'::timestamptz + g * interval '1 ms',
  CASE WHEN g % 11 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'q', 'a"b,c' || g,
    'nested', jsonb_build_array(g, 'x\ny', null)) END,
  CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 THEN '' ELSE 'v,"' || g || E'\n' END,
  g / 7.0, decode(md5(g::text), 'hex'), ARRAY['t' || g, NULL, 'a,b'],
  date '2000-01-01' + g % 1000, CASE WHEN g % 13 = 0 THEN 'NaN' ELSE g / 3.0 END
  FROM generate_series(1, 30000) g;
CREATE INDEX big_v ON big (v);
CREATE TABLE nokey (ts timestamptz NOT NULL, site int, payload text);
INSERT INTO nokey SELECT '2026-01-01'::timestamptz + (g % 50) * interval '1 min', g % 5,
  'p' || g FROM generate_series(1, 20000) g;
CREATE TABLE snap (id int PRIMARY KEY, doc jsonb, label text);
INSERT INTO snap SELECT g, jsonb_build_object('k', g), 'l' || g FROM generate_series(1, 20000) g;
CREATE VIEW recent AS SELECT id, ts, v FROM big WHERE id % 2 = 0;
CREATE MATERIALIZED VIEW mv AS SELECT id, doc, label FROM snap WHERE id % 3 = 0;
"""

#: every table parallel whatever its size (copy_split of one byte), four readers
PARALLEL = {"copy_jobs": 4, "copy_split": 1}
TABLES = {
    "big": {"method": "inserter", "cursor": "ts", **PARALLEL},
    "nokey": {"method": "inserter", "cursor": "ts", "batch_rows": 500, **PARALLEL},
    "snap": {"method": "snapshot", **PARALLEL},
    "recent": {"method": "inserter", "cursor": "ts", "key": ["id"], **PARALLEL},
    "mv": {"method": "snapshot", "where": "id > 100", **PARALLEL},
}


@pytest.fixture(scope="module")
def source(cluster):
    db = new_database(cluster)
    db.execute(SOURCE_SQL)
    return db


def equal(url, source, table):
    mine, theirs = hashes(url, source.primary_url, "app", table)
    assert mine == theirs, table


def leftovers(url) -> list[tuple]:
    return query(url, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON "
                 f"n.oid = c.relnamespace WHERE n.nspname = '{SCHEMA}' AND c.relkind = 'r'")


def test_a_parallel_first_build_equals_the_source(cluster, source, tmp_path, caplog):
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, TABLES)})
    with caplog.at_level(logging.INFO, logger="topoff"):
        runs = run_once(cfg)
    assert {r.table: (r.status, r.rows) for r in runs} == {
        "public.big": ("ok", 30000), "public.nokey": ("ok", 20000),
        "public.snap": ("ok", 20000), "public.recent": ("ok", 15000),
        "public.mv": ("ok", 6633)}
    for t in ("public.big", "public.nokey", "public.snap"):
        equal(url, source, t)
    assert query(url, "SELECT count(*), min(id) FROM app.mv") == [(6633, 102)]
    mine, theirs = hashes(url, source.primary_url, "app", "public.recent", ("public", "recent"))
    assert mine == theirs
    text = caplog.text
    assert "public.big: first copy by 4 readers" in text
    assert "public.nokey: first copy by 4 readers" in text
    assert "public.snap: first copy by 4 readers" in text
    assert "public.mv: first copy by 4 readers" in text  # with its where
    assert "public.recent is a view: its first copy is read by one reader" in text
    # keys and indexes built on the moved table, in the same transaction
    assert query(url, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'app' "
                 "AND tablename = 'big'") == [(3,)]  # key, cursor, big_v
    assert leftovers(url) == []
    # later refreshes go on from the state the parallel build wrote
    source.execute("INSERT INTO big (id, ts, doc) SELECT g, now(), '{\"late\": 1}' "
                   "FROM generate_series(30001, 30100) g")
    again = {r.table: r.rows for r in run_once(cfg)}
    assert again["public.big"] == 100
    equal(url, source, "public.big")
    source.execute("DELETE FROM big WHERE id > 30000")  # as the other tests expect it


def test_from_a_primary_allowed(cluster, source, tmp_path, caplog):
    """The primary's serializable snapshot is exported and imported the same way."""
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.primary_url, {"big": TABLES["big"]})},
                 allow_primary=True)
    with caplog.at_level(logging.INFO, logger="topoff"):
        assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 30000)]
    assert "public.big: first copy by 4 readers" in caplog.text
    equal(url, source, "public.big")


def test_a_duckdb_target_takes_the_one_reader_path(cluster, source, tmp_path, caplog):
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"big": TABLES["big"]})})
    with caplog.at_level(logging.INFO, logger="topoff"):
        assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 30000)]
    assert "readers" not in caplog.text
    equal(url, source, "public.big")


def test_below_the_split_size_one_reader(cluster, source, tmp_path, caplog):
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"big": {
        "method": "inserter", "cursor": "ts", "copy_jobs": 4, "copy_split": "1GiB"}})})
    with caplog.at_level(logging.INFO, logger="topoff"):
        assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 30000)]
    assert "readers" not in caplog.text
    equal(url, source, "public.big")


def test_leftovers_of_a_killed_run_are_dropped(cluster, source, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    name = build_name(TableRef("app", "big"))
    with psycopg.connect(url, autocommit=True) as c:  # what a killed run leaves
        c.execute(f"CREATE SCHEMA {SCHEMA}; CREATE TABLE {SCHEMA}.{name} (id bigint, x text); "
                  f"INSERT INTO {SCHEMA}.{name} VALUES (1, 'stale')")
        c.execute(f"CREATE TABLE {SCHEMA}.{build_name(TableRef('app', 'nokey'))} (x int)")
    cfg = config(url, {"app": (source.standby_url, {
        "big": TABLES["big"],
        "nokey": {"method": "inserter", "cursor": "ts", "copy_jobs": 1}})})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
    equal(url, source, "public.big")
    assert leftovers(url) == []  # on both paths


def test_privileges_and_owner_as_a_normal_build(cluster, source, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    role = f"reader_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role}")
        c.execute(f"CREATE SCHEMA app; ALTER DEFAULT PRIVILEGES IN SCHEMA app "
                  f"GRANT SELECT ON TABLES TO {role}")
    cfg = config(url, {"app": (source.standby_url, {"big": TABLES["big"]})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    assert query(url, f"SELECT has_table_privilege('{role}', 'app.big', 'SELECT'), "
                 f"has_table_privilege('{role}', 'app.big', 'INSERT'), "
                 "(SELECT relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) "
                 "FROM pg_class WHERE oid = 'app.big'::regclass)") == [(True, False, True)]


def test_a_role_that_may_not_use_the_build_schema_reads_with_one_reader(cluster, source,
                                                                        tmp_path, caplog):
    url = new_target("postgresql", cluster, tmp_path)
    dbname = url.rsplit("/", 1)[1]
    role = f"limited_{dbname}"
    with psycopg.connect(url, autocommit=True) as c:  # the build schema is someone else's
        c.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'secret-pw-1'; "
                  f"GRANT CREATE ON DATABASE {dbname} TO {role}; CREATE SCHEMA {SCHEMA}")
    limited = cluster.primary.url(dbname, role, "secret-pw-1")
    cfg = config(limited, {"app": (source.standby_url, {"big": TABLES["big"]})})
    with caplog.at_level(logging.INFO, logger="topoff"):
        assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 30000)]
    assert "public.big: cannot make the build table" in caplog.text
    assert "readers" not in caplog.text and "secret-pw" not in caplog.text
    equal(limited, source, "public.big")


def test_a_second_run_is_skipped_locked(cluster, source, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"big": TABLES["big"]})})
    with psycopg.connect(url) as other:  # a run holding the table's lock
        other.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("replicate:app:public.big")])
        assert [r.status for r in run_once(cfg)] == ["locked"]
    assert query(url, "SELECT to_regclass('app.big') IS NULL") == [(True,)]
    assert [r.status for r in run_once(cfg)] == ["ok"]
    equal(url, source, "public.big")


def test_resync_builds_in_parallel_again(cluster, source, tmp_path, caplog):
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"snap": TABLES["snap"]})})
    run_once(cfg)
    with caplog.at_level(logging.INFO, logger="topoff"):
        assert resync(cfg, "snap").rows == 20000
    assert "public.snap: first copy by 4 readers" in caplog.text
    equal(url, source, "public.snap")


def test_copy_options_are_checked_and_inherited():
    base = ('[replicate]\ntarget = "r.duckdb"\n[replicate.sources.s]\nurl = "postgresql://x"\n'
            'copy_jobs = 2\ncopy_split = "1MiB"\n[replicate.sources.s.tables.a]\n'
            'method = "snapshot"\n[replicate.sources.s.tables.b]\nmethod = "snapshot"\n'
            'copy_jobs = 8\n')
    a, b = parse_replicate(tomllib.loads(base)).sources[0].tables
    assert (a.copy_jobs, a.copy_split, b.copy_jobs, b.copy_split) == (2, 1 << 20, 8, 1 << 20)
    default = parse_replicate(tomllib.loads(base.replace("copy_jobs = 2\n", "").replace(
        'copy_split = "1MiB"\n', ""))).sources[0].tables[0]
    assert (default.copy_jobs, default.copy_split) == (1, 64 << 20)
    for bad in ("copy_jobs = 0", "copy_jobs = 65", "copy_jobs = true", 'copy_split = "lots"',
                "copy_split = 0"):
        with pytest.raises(ConfigError):
            parse_replicate(tomllib.loads(
                base + '[replicate.sources.s.tables.c]\nmethod = "snapshot"\n' + bad + "\n"))


def _command(path: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "topoff", "replicate", "--config", path, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": ""}


@pytest.fixture(scope="module")
def large(cluster):
    """Tables whose copy lasts a few seconds: 300,000 and 100,000 rows."""
    db = new_database(cluster)
    db.execute("CREATE TABLE big (id bigint PRIMARY KEY, ts timestamptz NOT NULL, doc jsonb, "
               "v text); INSERT INTO big SELECT g, '2026-01-01'::timestamptz + g * interval "
               "'1 ms', jsonb_build_object('g', g), repeat('x', g % 50) FROM "
               "generate_series(1, 300000) g; CREATE TABLE snap AS SELECT * FROM big "
               "WHERE id <= 100000; ALTER TABLE snap ADD PRIMARY KEY (id)")
    return db


def test_a_reader_that_loses_its_connection_retries_the_refresh(cluster, large, tmp_path,
                                                                caplog):
    """A reader's session ended on the standby mid-copy: the whole refresh is retried in
    a new snapshot (the build table made again), and the table equals the source."""
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (large.standby_url, {"big": {
        "method": "inserter", "cursor": "ts", **PARALLEL, "copy_jobs": 2}})})
    done = threading.Event()
    killed: list[int] = []

    def kill_one_reader() -> None:
        with large.standby() as c:
            c.autocommit = True
            while not done.is_set() and not killed:
                rows = c.execute("SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                                 "WHERE application_name = 'topoff replicate copy' AND "
                                 "query LIKE 'COPY%' AND state = 'active' LIMIT 1").fetchall()
                killed.extend(pid for ok, pid in rows if ok)
                time.sleep(0.02)

    killer = threading.Thread(target=kill_one_reader)
    killer.start()
    try:
        with caplog.at_level(logging.INFO, logger="topoff"):
            runs = run_once(cfg)
    finally:
        done.set()
        killer.join()
    assert killed, "no reader was seen copying"
    assert [(r.status, r.rows) for r in runs] == [("ok", 300000)]
    assert "the connection to the source was lost" in caplog.text
    equal(url, large, "public.big")
    assert leftovers(url) == []


def test_a_second_run_during_the_readers_copy_is_skipped(cluster, large, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (large.standby_url, {"big": {
        "method": "inserter", "cursor": "ts", **PARALLEL, "copy_jobs": 2}})})
    first: list[object] = []
    runner = threading.Thread(target=lambda: first.extend(run_once(cfg)))
    runner.start()
    try:
        with large.standby() as c:
            c.autocommit = True
            deadline = time.monotonic() + 120
            while not c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                                "= 'topoff replicate copy' AND query LIKE 'COPY%'"
                                ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline and runner.is_alive()
                time.sleep(0.01)
        second = run_once(cfg)  # while the readers copy
    finally:
        runner.join()
    assert [r.status for r in second] == ["locked"]
    assert [(r.status, r.rows) for r in first] == [("ok", 300000)]  # type: ignore[attr-defined]
    equal(url, large, "public.big")


@pytest.mark.slow
def test_sigkill_at_random_points_then_a_rerun(cluster, large, tmp_path):
    db = large
    url = new_target("postgresql", cluster, tmp_path)
    tables = {"big": {"method": "updater", "cursor": "ts", **PARALLEL, "copy_jobs": 3},
              "snap": {"method": "snapshot", **PARALLEL}}
    path = write_config(tmp_path / "r.toml", config_text(url, {"app": (db.standby_url,
                                                                       tables)}))
    rnd = random.Random(11)
    for n in range(5):  # first builds, then resyncs: both build in parallel
        args = ("--once",) if n < 3 else ("--resync", "big")
        proc = subprocess.Popen(_command(path, *args), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.8, 3.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for t, rows in (("big", 300000), ("snap", 100000)):  # never seen partial
            if query(url, f"SELECT to_regclass('app.{t}') IS NOT NULL") == [(True,)]:
                assert query(url, f"SELECT count(*) FROM app.{t}") == [(rows,)]
    done = subprocess.run(_command(path, "--once"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(_command(path, "--resync", "big"), env=_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    for t in ("public.big", "public.snap"):
        equal(url, db, t)
    assert query(url, "SELECT count(*) - count(DISTINCT id) FROM app.big") == [(0,)]
    assert leftovers(url) == []
