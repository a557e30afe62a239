"""``topoff replicate`` from a MariaDB replica, end to end: ONE config with a PostgreSQL
source (the standby) and a MariaDB source (the binlog replica) into one PostgreSQL and one
DuckDB replica, each method; rows added and a range updated on the MariaDB primary, then
refreshed and every value compared with the source (verify's canonical hash, computed by
the MariaDB server the way the replica holds the rows); DATETIME(6) rows one microsecond
apart across the watermark; 1,000 rows sharing one cursor value; every mapped type and
zero dates; a primary refused; a run killed with SIGKILL and run again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli, terminate_when, write_config
from support.mariadb import MariaDatabase, MariaPair
from support.replicate import config, config_text, hashes, new_database, new_target, query, target
from test_mariadb_types import _create
from topoff.config import Config, TableConfig
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.replicate.engine import repull, resync, run_once, set_paused
from topoff.replicate.operate import reconcile
from topoff.replicate.store import StateStore
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.verify import MariaVerifier
from topoff.stores import open_store
from topoff.sync import sync
from topoff.targets.base import TableDef, TableRef
from topoff.verify import verify

ENGINES = ["duckdb", "postgresql"]
ROOT = Path(__file__).resolve().parent.parent

MARIA_SQL = """
CREATE TABLE events (id BIGINT UNSIGNED PRIMARY KEY, ts DATETIME(6) NOT NULL,
  site INT, label VARCHAR(40), KEY events_site (site));
INSERT INTO events SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND
  + INTERVAL seq MICROSECOND, seq % 7, CONCAT('e', seq) FROM seq_1_to_5000;
CREATE TABLE changes (id INT PRIMARY KEY, changed TIMESTAMP(6) NOT NULL, state VARCHAR(10));
INSERT INTO changes SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, 'new'
  FROM seq_1_to_3000;
CREATE TABLE hits (n BIGINT NOT NULL, v VARCHAR(10));
INSERT INTO hits SELECT seq, CONCAT('h', seq) FROM seq_1_to_2000;
CREATE TABLE meta (id INT PRIMARY KEY, name VARCHAR(50), note TEXT);
INSERT INTO meta SELECT seq, CONCAT('site ', seq), '😀 ünïcode, "quoted"' FROM seq_1_to_500;
"""
MARIA_TABLES = {
    "events": {"method": "inserter", "cursor": "ts", "batch_rows": 700},
    "changes": {"method": "updater", "cursor": "changed", "boundary": "1m"},
    "hits": {"method": "inserter", "cursor": "n", "boundary": 10, "batch_rows": 300},
    "meta": {"method": "snapshot"},
    "every_type": {"method": "snapshot"},
}
PG_TABLES = {"visits": {"method": "inserter", "cursor": "ts"}}


@pytest.fixture(scope="module", params=ENGINES)
def built(request, cluster, maria_pair: MariaPair, tmp_path_factory):
    """Both sources (their own databases per target kind) replicated once."""
    name = maria_pair.create_database()
    maria_db = MariaDatabase(name, maria_pair)
    maria_db.execute(MARIA_SQL)
    _create(maria_db)  # every mapped type, edge values, generated columns
    pg_db = new_database(cluster)
    pg_db.execute("CREATE TABLE visits (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
                  "INSERT INTO visits SELECT g, '2026-01-01'::timestamptz + g * interval '1 s',"
                  " 'v' FROM generate_series(1, 2000) g")
    url = new_target(request.param, cluster, tmp_path_factory.mktemp("maria"))
    cfg = two_sources(url, pg_db, maria_db)
    runs = run_once(cfg, jobs=2)
    yield request.param, url, cfg, runs, pg_db, maria_db
    maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{name}`", check=False)


def two_sources(url: str, pg_db, maria_db, maria_tables=None, **extra):
    return config(url, {"matomo": (pg_db.standby_url, PG_TABLES),
                        "analytics_meta": (maria_db.replica_url, maria_tables or MARIA_TABLES)},
                  **extra)


def maria_equal(url: str, maria_db: MariaDatabase, table: str,
                source: str = "analytics_meta") -> None:
    """The replica's canonical hash of the table equals the MariaDB replica's."""
    with target(url) as engine:
        d = StateStore(engine).definition(source, table)  # type: ignore[arg-type]
        assert d is not None
        mine = engine.hash_rows(d, False)[None]  # type: ignore[attr-defined]
        columns = engine.stored_columns(d)  # type: ignore[attr-defined]
        profile = "exact" if engine.capabilities.native_types else "duckdb"  # type: ignore[attr-defined]
    schema, name = table.split(".", 1)
    src = TableDef(table, TableRef(schema, name), d.method, columns, [], None, None, "",
                   (schema, name))
    with connect(maria_db.replica_url) as conn:
        read_table(conn, schema, name)  # its SourceError, if any, says why
        verifier = MariaVerifier(conn)
        assert verifier.mismatch(src) is None
        theirs = verifier.hash(src, False, None, None, profile)[None]
    assert mine == theirs, table


def all_equal(url, pg_db, maria_db):
    mine, theirs = hashes(url, pg_db.primary_url, "matomo", "public.visits")
    assert mine == theirs
    for t in MARIA_TABLES:
        maria_equal(url, maria_db, f"{maria_db.name}.{t}")


def test_one_config_two_engines_every_method(built):
    _kind, url, cfg, runs, pg_db, maria_db = built
    m = maria_db.name
    assert {r.table: (r.status, r.rows) for r in runs} == {
        "public.visits": ("ok", 2000), f"{m}.events": ("ok", 5000),
        f"{m}.changes": ("ok", 3000), f"{m}.hits": ("ok", 2000), f"{m}.meta": ("ok", 500),
        f"{m}.every_type": ("ok", 8)}, [r.error for r in runs]
    all_equal(url, pg_db, maria_db)
    # the mapped types as the export maps them (docs/mariadb.md)
    with target(url) as engine:
        d = StateStore(engine).definition("analytics_meta", f"{m}.events")  # type: ignore[arg-type]
        types = {c.name: (c.type, c.logical.kind if c.logical else None) for c in d.columns}
    assert types["id"] == ("numeric(20,0)", "int")
    assert types["ts"] == ("timestamp(6) without time zone", "timestamp")
    assert query(url, "SELECT max(ts) FROM analytics_meta.events")[0][0].microsecond == 5000

    # changes on the MariaDB primary (and the PostgreSQL primary), then a refresh
    maria_db.execute(
        "INSERT INTO events SELECT seq, TIMESTAMP'2026-02-01 00:00:00' + INTERVAL seq "
        "MICROSECOND, 1, 'late' FROM seq_5001_to_5400;"
        "UPDATE changes SET state = 'done', changed = UTC_TIMESTAMP(6) "
        "WHERE id BETWEEN 100 AND 400;"
        "INSERT INTO hits SELECT seq, 'more' FROM seq_2001_to_2100;"
        "UPDATE meta SET name = 'renamed, \"x\"' WHERE id % 50 = 0; DELETE FROM meta WHERE id = 7")
    pg_db.execute("INSERT INTO visits SELECT g, now(), 'new' FROM generate_series(2001, 2100) g")
    runs = {r.table: r for r in run_once(cfg)}
    assert all(r.status in ("ok", "unchanged") for r in runs.values()), [
        r.error for r in runs.values()]
    assert runs[f"{m}.meta"].status == "ok" and runs[f"{m}.every_type"].status == "unchanged"
    all_equal(url, pg_db, maria_db)
    assert query(url, "SELECT count(*) FROM analytics_meta.changes WHERE state = 'done'") == [
        (301,)]
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM analytics_meta.events") == [
        (5400, 5400)]
    # nothing changed: the snapshot tables are unchanged by their content hash
    runs = {r.table: r for r in run_once(cfg)}
    assert runs[f"{m}.meta"].status == "unchanged" and runs[f"{m}.every_type"].status == (
        "unchanged")
    assert runs[f"{m}.hits"].rows == 10  # the boundary (10 values) read again, no more
    all_equal(url, pg_db, maria_db)


def test_status_check_pause_repull(built, tmp_path):
    _kind, url, cfg, _, pg_db, maria_db = built
    m = maria_db.name
    path = write_config(tmp_path / "r.toml", config_text(url, {
        "matomo": (pg_db.standby_url, PG_TABLES),
        "analytics_meta": (maria_db.replica_url, MARIA_TABLES)}))
    r = run_cli("replicate", "--config", path, "--status")
    assert r.exit_code == 0, r.stderr
    assert f"analytics_meta.{m}.events" in r.stdout or f"{m}.events" in r.stdout
    r = run_cli("replicate", "--config", path, "--check")
    assert r.exit_code in (0, 1), r.stderr  # a verdict, not a crash
    set_paused(cfg, f"analytics_meta.{m}.hits", True)
    runs = {r.table: r for r in run_once(cfg, [f"analytics_meta.{m}.hits"])}
    assert runs[f"{m}.hits"].status == "paused"
    set_paused(cfg, f"analytics_meta.{m}.hits", False)
    # a row changed on the source without a cursor move: a range repull brings it
    maria_db.execute("UPDATE events SET label = 'fixed' WHERE id = 42")
    run = repull(cfg, f"analytics_meta.{m}.events", "2026-01-01 00:00:40",
                 "2026-01-01 00:00:43")
    assert run.status == "ok" and run.rows >= 1, run.error
    assert query(url, "SELECT label FROM analytics_meta.events WHERE id = 42") == [("fixed",)]
    run = repull(cfg, f"analytics_meta.{m}.events", "not a time")
    assert run.status == "failed" and run.exit_code == 2
    run = repull(cfg, f"analytics_meta.{m}.events", "2026-01-01 00:00:43",
                 "2026-01-01 00:00:40")  # the wrong way round: said so, not 0 rows moved
    assert (run.status, run.exit_code) == ("failed", 2) and "is after --to" in run.error
    # a column added on the source is added in the replica; a whole repull fills it
    maria_db.execute("ALTER TABLE hits ADD COLUMN extra DECIMAL(30,10) DEFAULT 1.5")
    run = repull(cfg, f"analytics_meta.{m}.hits")
    assert run.status == "ok", run.error
    assert [(run.rows,)] == query(url, "SELECT count(*) FROM analytics_meta.hits")
    maria_equal(url, maria_db, f"{m}.hits")
    run = resync(cfg, f"analytics_meta.{m}.meta")
    assert run.status == "ok", run.error
    maria_equal(url, maria_db, f"{m}.meta")
    if _kind == "postgresql":  # the source's primary key and plain index (shape.py)
        defs = sorted(r[0].split(" USING ")[1] for r in query(
            url, "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'analytics_meta.events'::regclass"))
        assert defs == ["btree (id)", "btree (site)", "btree (ts)"]


def test_reconcile_from_mariadb(built, tmp_path):
    """Deletes and missed updates on the MariaDB source reach the replica by reconcile
    (key ranges, count + canonical hash per range, bisected)."""
    _kind, url, cfg, _, _pg_db, maria_db = built
    m = maria_db.name
    run_once(cfg)
    ((gone,),) = query(url, "SELECT count(*) FROM analytics_meta.events WHERE id % 500 = 3")
    maria_db.execute("DELETE FROM events WHERE id % 500 = 3; "
                     "UPDATE events SET label = 'silent' WHERE id IN (10, 2000, 4999); "
                     "DELETE FROM changes WHERE id = 1")
    report = reconcile(cfg, f"analytics_meta.{m}.events", threshold=100)
    assert (report.deleted, report.updated, report.inserted) == (gone, 3, 0) and gone >= 10
    maria_equal(url, maria_db, f"{m}.events")
    again = reconcile(cfg, f"analytics_meta.{m}.events", threshold=100)
    assert again.changed == 0
    path = write_config(tmp_path / "r.toml", config_text(url, {
        "matomo": (_pg_db.standby_url, PG_TABLES),
        "analytics_meta": (maria_db.replica_url, MARIA_TABLES)}))
    r = run_cli("replicate", "--config", path, "--reconcile", f"analytics_meta.{m}.changes")
    assert r.exit_code == 0, r.stderr
    maria_equal(url, maria_db, f"{m}.changes")
    # floats cannot be hashed alike by MariaDB: refused with a hint, nothing changed
    r = run_cli("replicate", "--config", path, "--reconcile", f"analytics_meta.{m}.every_type")
    assert r.exit_code == 2, r.stderr
    err, hint = error_lines(r)
    assert "float" in err and "exclude" in hint


@pytest.mark.parametrize("kind", ENGINES)
def test_microseconds_across_the_watermark(kind, cluster, maria, tmp_path):
    """boundary 1us: a row committed later AT the watermark is read, one a microsecond
    below it is not (no xmin on MariaDB: the documented guarantee, exactly)."""
    maria.execute("CREATE TABLE us (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);"
                  "INSERT INTO us VALUES (1, '2026-03-01 10:00:00.000001'),"
                  "(2, '2026-03-01 10:00:00.000002'), (3, '2026-03-01 10:00:00.000003')")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {"us": {"method": "inserter", "cursor": "ts",
                                                        "boundary": "1us"}})})
    assert run_once(cfg)[0].rows == 3
    maria.execute("INSERT INTO us VALUES (4, '2026-03-01 10:00:00.000004'),"
                  "(5, '2026-03-01 10:00:00.000003'), (6, '2026-03-01 10:00:00.000002')")
    run = run_once(cfg)[0]
    assert run.status == "ok", run.error
    got = query(url, "SELECT id FROM m.us ORDER BY id")
    assert got == [(1,), (2,), (3,), (4,), (5,)]  # 6 is below watermark - boundary
    with target(url) as engine:
        state = StateStore(engine).get("m", f"{maria.name}.us")  # type: ignore[arg-type]
    assert state is not None and state.state.cursor == "2026-03-01 10:00:00.000004"


def test_a_lower_bound_before_year_1_reads_from_the_start(cluster, maria, tmp_path):
    """A DATETIME or DATE watermark in year 1 minus the boundary is before any datetime:
    the refresh reads from the start (it was an internal error, exit 70, at every run)."""
    maria.execute("CREATE TABLE y1 (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);"
                  "INSERT INTO y1 VALUES (1, '0001-01-01 00:00:00');"
                  "CREATE TABLE d1 (id INT PRIMARY KEY, d DATE NOT NULL);"
                  "INSERT INTO d1 VALUES (1, '0001-01-01')")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {
        "y1": {"method": "updater", "cursor": "ts", "boundary": "1h"},
        "d1": {"method": "inserter", "cursor": "d", "boundary": "1d"}})})
    assert [r.rows for r in run_once(cfg)] == [1, 1]
    maria.execute("INSERT INTO y1 VALUES (2, '0001-01-01 00:30:00');"
                  "INSERT INTO d1 VALUES (2, '0001-01-02')")
    assert [(r.status, r.error) for r in run_once(cfg)] == [("ok", None)] * 2
    assert query(url, "SELECT id FROM m.y1 ORDER BY id") == [(1,), (2,)]
    assert query(url, "SELECT id FROM m.d1 ORDER BY id") == [(1,), (2,)]


@pytest.mark.parametrize("kind", ENGINES)
def test_a_thousand_ties_progress_with_a_key(kind, cluster, maria, tmp_path):
    maria.execute("CREATE TABLE ties (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, v INT);"
                  "INSERT INTO ties SELECT seq, '2026-01-01 00:00:00.5', seq FROM "
                  "seq_1_to_1000; CREATE TABLE nk (ts DATETIME(6) NOT NULL, v INT);"
                  "INSERT INTO nk SELECT '2026-01-01 00:00:00.5', seq FROM seq_1_to_1000;"
                  "CREATE TABLE zero (id INT PRIMARY KEY, ts DATETIME NOT NULL, d DATE,"
                  " dt DATETIME(6)); SET SESSION sql_mode = '';"
                  "INSERT INTO zero VALUES (1, '2026-01-01', '0000-00-00', '0000-00-00 00:00:00'),"
                  "(2, '2026-01-02', '2024-00-10', '2024-05-00 10:00:00.5'),"
                  "(3, '2026-01-03', '2024-02-29', '2024-02-29 23:59:59.999999')")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {
        "ties": {"method": "inserter", "cursor": "ts", "batch_rows": 100},
        "nk": {"method": "inserter", "cursor": "ts", "batch_rows": 100},
        "zero": {"method": "updater", "cursor": "ts"}})})
    runs = {r.table.split(".")[1]: r for r in run_once(cfg)}
    assert runs["ties"].status == "ok" and runs["ties"].rows == 1000, runs["ties"].error
    assert query(url, "SELECT count(DISTINCT id), min(v), max(v) FROM m.ties") == [
        (1000, 1, 1000)]
    # no key: a batch holds whole cursor groups; 1000 > batch_rows is refused by name
    assert runs["nk"].status == "failed" and runs["nk"].exit_code == 3
    assert "share the cursor value" in (runs["nk"].error or "")
    assert "2026-01-01 00:00:00.500000" in (runs["nk"].error or "")
    # zero dates and zero-in-date values are NULL (docs/mariadb.md), real ones exact
    assert runs["zero"].status == "ok", runs["zero"].error
    got = query(url, "SELECT id, CAST(d AS VARCHAR), CAST(dt AS VARCHAR) FROM m.zero "
                "ORDER BY id" if kind == "duckdb" else
                "SELECT id, d::text, dt::text FROM m.zero ORDER BY id")
    assert got == [(1, None, None), (2, None, None),
                   (3, "2024-02-29", "2024-02-29 23:59:59.999999")]
    maria_equal(url, maria, f"{maria.name}.zero", "m")
    maria_equal(url, maria, f"{maria.name}.ties", "m")


def test_a_zero_date_is_never_the_watermark(cluster, maria, tmp_path):
    """MariaDB orders 2027-00-05 after every 2026 date: it must not become the watermark
    (it is no date topoff can compare, and it would hide later rows)."""
    maria.execute("SET SESSION sql_mode = ''; CREATE TABLE zc (id INT PRIMARY KEY, d DATE);"
                  "INSERT INTO zc VALUES (1, '2026-01-01'), (2, '2027-00-05'),"
                  " (3, '0000-00-00'), (4, '2026-06-30')")
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {
        "zc": {"method": "updater", "cursor": "d", "boundary": "0s"}})})
    (run,) = run_once(cfg)
    assert run.status == "ok", run.error
    with target(url) as engine:
        state = StateStore(engine).get("m", f"{maria.name}.zc")  # type: ignore[arg-type]
    assert state is not None and state.state.cursor == "2026-06-30"
    maria.execute("INSERT INTO zc VALUES (5, '2026-07-01')")
    (run,) = run_once(cfg)
    assert run.status == "ok", run.error
    # 0000-00-00 was read with the first rows (a NULL date); 2027-00-05 comes once the
    # watermark passes it (MariaDB orders it between 2026-12-31 and 2027-01-01)
    assert query(url, "SELECT id, d::text FROM m.zc ORDER BY id") == [
        (1, "2026-01-01"), (3, None), (4, "2026-06-30"), (5, "2026-07-01")]


def test_primary_refused_without_allow_primary(cluster, maria, tmp_path):
    maria.execute("CREATE TABLE p (id INT PRIMARY KEY, v INT); INSERT INTO p VALUES (1, 1)")
    url = new_target("duckdb", cluster, tmp_path)
    tables = {"p": {"method": "snapshot"}}
    run = run_once(config(url, {"m": (maria.primary_url, tables)}))[0]
    assert run.status == "failed" and run.exit_code == 4, run.error
    assert "primary" in (run.error or "") and "PASSWORD" not in (run.error or "")
    assert "allow_primary = true" in (run.error or "") and "--" not in (run.error or "")
    run = run_once(config(url, {"m": (maria.primary_url, tables)}, allow_primary=True))[0]
    assert run.status == "ok" and run.rows == 1


def test_config_refuses_what_cannot_apply(maria, tmp_path):
    url = str(tmp_path / "x.duckdb")
    with pytest.raises(ConfigError) as info:
        config(url, {"m": (maria.replica_url, {"t": {"method": "inserter", "cursor": "ts",
                                                     "lookback": "1d"}})})
    assert "lookback" in info.value.message and "boundary" in (info.value.hint or "")
    with pytest.raises(ConfigError) as info:
        config(url, {"m": (maria.pair.replica.url(""), {"t": {"method": "snapshot"}})})
    assert "no database" in info.value.message
    maria.execute("CREATE TABLE w (id INT PRIMARY KEY, site INT, ts DATETIME NOT NULL);"
                  "INSERT INTO w VALUES (1, 3, '2026-01-01'), (2, 4, '2026-01-01')")
    good = {"method": "inserter", "cursor": "ts", "where": "site = 3"}
    run = run_once(config(url, {"m": (maria.replica_url, {"w": good})}))[0]
    assert run.status == "ok" and run.rows == 1, run.error
    run = run_once(config(str(tmp_path / "z.duckdb"), {"m": (maria.replica_url, {"w": {
        **good, "exclude": ["id"]}})}))[0]
    assert run.status == "failed" and run.exit_code == 2 and "primary key" in (run.error or "")
    for bad in ("site = 3 # x", "site = 3) OR (1 = 1", "site = 3; DROP TABLE w", "nope = 1",
                "`site` = 3"):
        cfg = config(str(tmp_path / "y.duckdb"), {"m": (maria.replica_url, {"w": {
            **good, "where": bad}})})
        run = run_once(cfg)[0]
        assert run.status == "failed" and run.exit_code == 2, (bad, run.error)
    assert query(str(tmp_path / "x.duckdb"), "SELECT count(*) FROM m.w") == [(1,)]
    # reconcile from MariaDB orders keys alike on both sides only for integers/decimals
    maria.execute("CREATE TABLE sk (code VARCHAR(10) PRIMARY KEY, v INT);"
                  "INSERT INTO sk VALUES ('a', 1), ('B', 2)")
    cfg = config(url, {"m": (maria.replica_url, {"sk": {"method": "snapshot"}})})
    assert run_once(cfg)[0].status == "ok"
    with pytest.raises(ConfigError) as info:
        reconcile(cfg, "sk")
    assert "integer and decimal keys only" in info.value.message


def _command(path: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "topoff", "replicate", "--config", path, *extra]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ENGINES)
def test_sigkill_then_rerun(kind, cluster, maria, tmp_path):
    maria.execute("CREATE TABLE big (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, v TEXT);"
                  "INSERT INTO big SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq "
                  "SECOND, REPEAT('x', 200) FROM seq_1_to_60000;"
                  "CREATE TABLE lg (ts DATETIME(6) NOT NULL, n INT);"
                  "INSERT INTO lg SELECT TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, seq "
                  "FROM seq_1_to_30000")
    url = new_target(kind, cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"m": (maria.replica_url, {
        "big": {"method": "updater", "cursor": "ts", "batch_rows": 5000},
        "lg": {"method": "inserter", "cursor": "ts", "batch_rows": 5000}})}))
    env = {"PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": "", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    codes = []
    for n, pause in enumerate((0.8, 1.6, 2.4)):
        maria.execute(f"UPDATE big SET v = 'k{n}', ts = UTC_TIMESTAMP(6) WHERE id % 97 = {n};"
                      f"INSERT INTO lg SELECT UTC_TIMESTAMP(6) + INTERVAL seq MICROSECOND, seq "
                      "FROM seq_1_to_3000")
        proc = subprocess.Popen(_command(path, "--once"), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
        codes.append(proc.wait())
    assert -signal.SIGKILL in codes  # at least one run was killed before it ended
    done = subprocess.run(_command(path, "--once"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for t in ("big", "lg"):
        maria_equal(url, maria, f"{maria.name}.{t}", "m")
    assert query(url, "SELECT count(*) - count(DISTINCT id) FROM m.big") == [(0,)]
    assert query(url, "SELECT count(*) FROM m.lg") == [(39000,)]


@pytest.mark.parametrize("kind", ENGINES)
def test_unsigned_bigint_cursor_is_exact_and_odd_names(kind, cluster, maria, tmp_path):
    """Values a double cannot tell apart (2^64 - 3 .. 2^64 - 1) as cursor and key, in a
    table whose name holds a backtick, a quote and %s."""
    name = "we%s`ird 'n"
    q = "`" + name.replace("`", "``") + "`"
    maria.execute(f"CREATE TABLE {q} (id BIGINT UNSIGNED PRIMARY KEY, `v%s` TEXT);"
                  f"INSERT INTO {q} VALUES (18446744073709551611, 'a'),"
                  "(18446744073709551612, 'b'), (18446744073709551613, 'c')")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {name: {
        "method": "inserter", "cursor": "id", "boundary": 0, "batch_rows": 1}})})
    assert run_once(cfg)[0].rows == 3
    maria.execute(f"INSERT INTO {q} VALUES (18446744073709551614, 'd'),"
                  "(18446744073709551615, 'e')")
    run = run_once(cfg)[0]
    assert run.status == "ok" and run.rows == 2, run.error
    got = query(url, f"SELECT CAST(id AS VARCHAR), \"v%s\" FROM m.\"{name}\" ORDER BY id"
                if kind == "duckdb" else
                f"SELECT id::text, \"v%s\" FROM m.\"{name}\" ORDER BY id")
    assert got == [(str(18446744073709551611 + i), "abcde"[i]) for i in range(5)]
    with target(url) as engine:
        state = StateStore(engine).get("m", f"{maria.name}.{name}")  # type: ignore[arg-type]
    assert state is not None and state.state.cursor == "18446744073709551615"
    maria_equal(url, maria, f"{maria.name}.{name}", "m")


@pytest.mark.parametrize("kind", ENGINES)
def test_reconcile_by_a_zerofill_key(kind, cluster, maria, tmp_path):
    """A ZEROFILL key is compared as the replica prints it (00000007 is 7): reconcile
    repairs what changed and nothing else (it deleted and inserted every row)."""
    maria.execute("CREATE TABLE zk (id INT(8) ZEROFILL PRIMARY KEY, n DECIMAL(6,2) ZEROFILL, "
                  "v VARCHAR(5)); INSERT INTO zk SELECT seq, seq / 4, 'v' FROM seq_1_to_300")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {"zk": {"method": "inserter", "cursor": "id",
                                                         "boundary": 0}})})
    run_once(cfg)
    maria.execute("DELETE FROM zk WHERE id = 7; UPDATE zk SET v = 'w' WHERE id = 200")
    report = reconcile(cfg, f"m.{maria.name}.zk", threshold=100)
    assert (report.deleted, report.updated, report.inserted) == (1, 1, 0)
    assert reconcile(cfg, f"m.{maria.name}.zk", threshold=100).changed == 0


@pytest.mark.parametrize("kind", ENGINES)
def test_a_system_versioned_table(kind, cluster, maria, tmp_path):
    """MariaDB's key of a system-versioned table holds its hidden ROW END column, which no
    column list shows: the key is the rest (an export published a manifest whose key named
    a column it did not have, which every consumer refused as damaged)."""
    maria.execute("CREATE TABLE sv (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, v INET6, "
                  "h INT INVISIBLE) WITH SYSTEM VERSIONING; INSERT INTO sv (id, ts, v, h) "
                  "SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND, '::1', seq "
                  "FROM seq_1_to_50; UPDATE sv SET v = '::2' WHERE id = 3")
    assert read_table(connect(maria.replica_url), maria.name, "sv").primary_key == ["id"]
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {"sv": {"method": "updater", "cursor": "ts",
                                                         "boundary": "0s"}})})
    assert run_once(cfg)[0].rows == 50
    maria.execute("UPDATE sv SET v = '::3', ts = ts + INTERVAL 1 DAY WHERE id = 4")
    run = run_once(cfg)[0]
    assert (run.status, run.rows) == ("ok", 1), run.error
    maria_equal(url, maria, f"{maria.name}.sv", "m")

    root = tmp_path / "pub"  # and through a dataset
    dataset = Config(dataset="sv", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="sv", method="snapshot"),))
    with open_store(str(root)) as store:
        [manifest] = export_full(dataset, store).manifests
    assert manifest.tables[f"{maria.name}.sv"].primary_key == ["id"]
    replica = str(tmp_path / "r.duckdb")
    sync(str(root), replica)
    assert verify(replica, maria.replica_url).equal


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_while_the_replica_keeps_the_rows_waiting(cluster, maria, tmp_path, jobs):
    """A MariaDB query waits (here for LOCK TABLES on the replica) inside the driver's C
    code: SIGTERM still stops the run at once (the query is killed), exit 130; the next
    run completes."""
    maria.execute("CREATE TABLE big (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);"
                  "INSERT INTO big SELECT seq, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq "
                  "SECOND FROM seq_1_to_3000; CREATE TABLE lg (ts DATETIME(6) NOT NULL);"
                  "INSERT INTO lg SELECT TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq "
                  "SECOND FROM seq_1_to_3000")
    url = new_target("postgresql", cluster, tmp_path)
    path = write_config(tmp_path / "r.toml", config_text(url, {"m": (maria.replica_url, {
        "big": {"method": "updater", "cursor": "ts"},
        "lg": {"method": "inserter", "cursor": "ts"}})}))
    env = {"PYTHONPATH": str(ROOT / "src"), "TOPOFF_CONFIG": "", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    root = connect(maria.pair.replica.url(maria.name, user="root", password=None))
    try:
        root.cursor().execute("LOCK TABLES big WRITE, lg WRITE")
        proc = subprocess.Popen(_command(path, "--once", "-j", jobs), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cur = root.cursor()

        def waiting() -> bool:  # topoff's reads wait for the lock
            cur.execute("SELECT count(*) FROM information_schema.processlist WHERE "
                        "state LIKE '%metadata lock%'")
            return int(cur.fetchone()[0]) >= int(jobs)
        _, err = terminate_when(proc, waiting)
    finally:
        root.close()
    assert proc.returncode == 130, err
    assert "error: interrupted" in err and "Traceback" not in err, err
    done = subprocess.run(_command(path, "--once"), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for t in ("big", "lg"):
        maria_equal(url, maria, f"{maria.name}.{t}", "m")


def test_a_snapshot_state_stored_with_my2_is_copied_again_once(cluster, maria, tmp_path,
                                                              monkeypatch):
    """An earlier version stored ``count:my2:sum``: the next refresh copies the table
    again (its hash is now ``my3``), the one after finds it unchanged."""
    from topoff.replicate import maria_read
    maria.execute("CREATE TABLE sm (id INT PRIMARY KEY, v VARCHAR(9) NULL);"
                  "INSERT INTO sm VALUES (1, 'a'), (2, NULL)")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {"sm": {"method": "snapshot"}})})
    with monkeypatch.context() as m:
        m.setattr(maria_read, "MARIA_HASH", "my2")
        assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 2)]
        assert [r.status for r in run_once(cfg)] == ["unchanged"]
    assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 2)]
    assert [r.status for r in run_once(cfg)] == ["unchanged"]
    assert query(url, "SELECT count(*) FROM m.sm") == [(2,)]
