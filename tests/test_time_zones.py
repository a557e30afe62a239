"""Time zones in ``topoff replicate``: a source whose zone is not UTC (a database's
``timezone``, MariaDB's global ``time_zone``), the repeated hour of a fall-back, a clock
ahead of UTC, ``--from``/``--to`` and row conditions read in UTC, under a client's TZ;
and a MariaDB source's days around a fall-back."""

from __future__ import annotations

import json
import subprocess
from datetime import date

import pytest

from support.cli import topoff_under, write_config
from support.dataset import read_table
from support.mariadb import MariaDatabase, MariaPair
from support.pg import make_config
from support.replicate import config, config_text, new_database, new_target, query
from test_replicate_engine import equal
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.replicate.engine import run_once
from topoff.replicate.maria_cursor import server_zone
from topoff.sources.mariadb.connect import connect as maria_connect
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify


@pytest.fixture(scope="module")
def paris_replica(maria_pair: MariaPair):
    """The MariaDB replica's global time_zone is Europe/Paris (its zone tables loaded on
    the primary, replicated), put back to SYSTEM afterwards."""
    tz = subprocess.run(["mariadb-tzinfo-to-sql", "/usr/share/zoneinfo/Europe/Paris",
                         "Europe/Paris"], capture_output=True, text=True, check=True).stdout
    maria_pair.primary.sql(tz, "mysql")
    maria_pair.wait_replica()
    maria_pair.replica.sql("SET GLOBAL time_zone = 'Europe/Paris'")
    try:
        yield maria_pair
    finally:
        maria_pair.replica.sql("SET GLOBAL time_zone = 'SYSTEM'")


@pytest.mark.parametrize("zone_from", ["server", "config"])
def test_maria_repeated_hour_of_a_fall_back_is_read_again(paris_replica, cluster, tmp_path,
                                                          zone_from):
    """A DATETIME cursor written in Europe/Paris (the server's global time_zone, or
    cursor_timezone): rows written in the second pass of 02:00-03:00 on 2026-10-25,
    below watermark - boundary, are read (without xmin, only the widened bound finds
    them)."""
    maria = MariaDatabase(paris_replica.create_database(), paris_replica)
    try:
        maria.execute("CREATE TABLE t (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL);"
                      "INSERT INTO t SELECT seq, TIMESTAMP'2026-10-25 01:00:00' + "
                      "INTERVAL seq MINUTE FROM seq_1_to_90")  # up to 02:30, first pass
        settings: dict[str, object] = {"method": "inserter", "cursor": "ts",
                                       "boundary": "10m"}
        if zone_from == "config":
            settings["cursor_timezone"] = "Europe/Paris"
        url = new_target("duckdb", cluster, tmp_path)
        cfg = config(url, {"m": (maria.replica_url, {"t": settings})})
        assert run_once(cfg)[0].rows == 90
        maria.execute("INSERT INTO t SELECT 1000 + seq, TIMESTAMP'2026-10-25 02:04:00' + "
                      "INTERVAL seq MINUTE FROM seq_1_to_11")  # the second pass
        run = run_once(cfg)[0]
        assert run.status == "ok", run.error
        assert query(url, "SELECT count(*) FROM m.t") == [(101,)]
    finally:
        paris_replica.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def test_maria_server_zone(paris_replica):
    """The zone a DATETIME cursor without cursor_timezone is taken in: a named global
    time_zone; none for a fixed offset (nothing repeats); SYSTEM by the host's
    abbreviation, UTC only when it says so."""
    url = paris_replica.replica.url("")
    ((system,),) = paris_replica.replica.query("SELECT @@system_time_zone")
    for zone, expected in (("Europe/Paris", "Europe/Paris"), ("+05:45", None),
                           ("SYSTEM", "UTC" if system == "UTC" else f"SYSTEM ({system})")):
        paris_replica.replica.sql(f"SET GLOBAL time_zone = '{zone}'")
        with maria_connect(url) as conn:
            assert server_zone(conn) == expected, zone
    paris_replica.replica.sql("SET GLOBAL time_zone = 'Europe/Paris'")


@pytest.mark.parametrize("relation", ["t", "v"])
def test_pg_repeated_hour_in_the_database_zone(cluster, tmp_path, relation):
    """A database whose timezone is Europe/Paris (ALTER DATABASE), no cursor_timezone:
    the repeated hour of its fall-back is read again, from a table (by xmin) and from a
    view (no xmin: the boundary, widened to the hour's start)."""
    db = new_database(cluster)
    db.execute(f'ALTER DATABASE "{db.name}" SET timezone = \'Europe/Paris\'')
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL); "
               "CREATE VIEW v AS SELECT id, ts FROM t; "
               "INSERT INTO t SELECT g, '2026-10-25 01:00'::timestamp + g * interval '1 min' "
               "FROM generate_series(1, 90) g")
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (db.standby_url, {relation: {
        "method": "inserter", "cursor": "ts", "key": ["id"], "boundary": "10m",
        "lookback": "10m"}})})
    assert run_once(cfg)[0].rows == 90
    db.execute("INSERT INTO t SELECT 1000 + g, '2026-10-25 02:04'::timestamp + "
               "g * interval '1 min' FROM generate_series(1, 11) g")
    assert run_once(cfg)[0].status == "ok"
    equal(url, db, f"public.{relation}")


CLIENT_TZ = "Pacific/Chatham"


def topoff(*args: str, tz: str = CLIENT_TZ) -> subprocess.CompletedProcess[str]:
    return topoff_under(tz, *args)


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_repull_bounds_without_an_offset_are_utc(cluster, tmp_path, kind):
    """``--repull --from 2026-01-01 --to '2026-01-01 00:59:59'`` of a timestamptz cursor,
    the client's TZ Pacific/Chatham and the source database's America/St_Johns: the hour
    after UTC midnight is read again, and a keyless table's range is replaced in the
    target by the same bounds (no row lost, none doubled)."""
    db = new_database(cluster)
    db.execute(f'ALTER DATABASE "{db.name}" SET timezone = \'America/St_Johns\'')
    db.execute("CREATE TABLE lg (ts timestamptz NOT NULL, n int); INSERT INTO lg SELECT "
               "'2025-12-31 22:00+00'::timestamptz + g * interval '10 min', g "
               "FROM generate_series(0, 35) g")  # 22:00 to 03:50 UTC
    url = new_target(kind, cluster, tmp_path)
    path = write_config(tmp_path / "replica.toml", config_text(url, {"app": (
        db.standby_url, {"lg": {"method": "inserter", "cursor": "ts"}})}))
    r = topoff("replicate", "--config", path, "--once")
    assert r.returncode == 0, r.stderr
    db.execute("UPDATE lg SET n = n + 1000")
    r = topoff("replicate", "--config", path, "--repull", "lg", "--from", "2026-01-01",
               "--to", "2026-01-01 00:59:59")
    assert r.returncode == 0 and "6 rows moved" in r.stdout, r.stdout + r.stderr
    r = topoff("replicate", "--config", path, "--status", "--json")
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)
    assert row["last_refresh"].endswith("+00:00"), row  # UTC, whatever the TZ
    got = sorted(n for (n,) in query(url, "SELECT n FROM app.lg"))
    assert got == sorted([g for g in range(36) if not 12 <= g < 18] +
                         [1000 + g for g in range(12, 18)])


def test_pg_a_clock_ahead_of_utc_holds_no_row_back(cluster, tmp_path):
    """A database in Pacific/Kiritimati (+14) writing localtimestamp into a timestamp
    cursor, no cursor_timezone: the source's clock is read in that zone, so the rows
    written just now are not ahead of it and the first refresh reads every one."""
    db = new_database(cluster)
    db.execute(f'ALTER DATABASE "{db.name}" SET timezone = \'Pacific/Kiritimati\'')
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL DEFAULT "
               "localtimestamp); INSERT INTO t (id, ts) SELECT g, localtimestamp - "
               "g * interval '1 min' FROM generate_series(0, 59) g")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"app": (db.standby_url, {"t": {"method": "inserter",
                                                      "cursor": "ts"}})})
    assert run_once(cfg)[0].rows == 60


def test_maria_a_clock_ahead_of_utc_holds_no_row_back(maria_pair, cluster, tmp_path):
    """MariaDB's global time_zone +13:00 (its last), NOW() written into a DATETIME cursor: the first
    refresh reads every row (the clock is read in that zone)."""
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    for server in (maria_pair.primary, maria_pair.replica):
        server.sql("SET GLOBAL time_zone = '+13:00'")
    try:
        maria.execute("CREATE TABLE t (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL); "
                      "INSERT INTO t SELECT seq, NOW(6) - INTERVAL seq MINUTE "
                      "FROM seq_0_to_59")
        url = new_target("duckdb", cluster, tmp_path)
        cfg = config(url, {"m": (maria.replica_url, {"t": {"method": "inserter",
                                                           "cursor": "ts"}})})
        assert run_once(cfg)[0].rows == 60
    finally:
        for server in (maria_pair.primary, maria_pair.replica):
            server.sql("SET GLOBAL time_zone = 'SYSTEM'")
        maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def test_row_conditions_read_times_in_utc(cluster, maria_pair, tmp_path):
    """A filter or where with a time literal without an offset is read in UTC (topoff's
    session zone), not the database's zone (PostgreSQL: America/St_Johns; MariaDB: a
    global time_zone of -03:30)."""
    db = new_database(cluster)
    db.execute(f'ALTER DATABASE "{db.name}" SET timezone = \'America/St_Johns\'')
    db.execute("CREATE TABLE ev (id int PRIMARY KEY, at timestamptz NOT NULL); INSERT INTO "
               "ev SELECT g, '2025-12-31 23:00+00'::timestamptz + g * interval '10 min' "
               "FROM generate_series(0, 35) g")  # 23:00 to 04:50 UTC, 6 before midnight
    cfg = make_config(db, '[tables.ev]\nmethod = "snapshot"\n'
                      "filter = \"at >= '2026-01-01'\"\n")
    with open_store(str(tmp_path / "pub")) as store:
        m = export_full(cfg, store).manifests[0]
        assert len(read_table(store, m, "public.ev").rows) == 30
    url = new_target("duckdb", cluster, tmp_path)
    run = run_once(config(url, {"app": (db.standby_url, {"ev": {
        "method": "snapshot", "where": "at >= '2026-01-01'"}})}))[0]
    assert (run.status, run.rows) == ("ok", 30), run.error
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    maria_pair.replica.sql("SET GLOBAL time_zone = '-03:30'")
    try:
        maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP(6) NOT NULL); "
                      "SET time_zone = '+00:00'; INSERT INTO ev SELECT seq, "
                      "TIMESTAMP'2025-12-31 23:00:00' + INTERVAL seq * 10 MINUTE "
                      "FROM seq_0_to_35")
        run = run_once(config(url, {"m": (maria.replica_url, {"ev": {
            "method": "snapshot", "where": "at >= '2026-01-01'"}})}))[0]
        assert (run.status, run.rows) == ("ok", 30), run.error
    finally:
        maria_pair.replica.sql("SET GLOBAL time_zone = 'SYSTEM'")
        maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)




def test_maria_days_around_a_fall_back(paris_replica, tmp_path):
    """MariaDB in Europe/Paris (its global time_zone): a DATETIME cursor kept in that zone
    (the repeated 02:00-03:00 of 2026-10-25 written twice) and a TIMESTAMP one, exported
    day by day around the change: each row in exactly one day; the replica verifies."""
    maria = MariaDatabase(paris_replica.create_database(), paris_replica)
    try:
        maria.execute(
            "CREATE TABLE wall (id INT AUTO_INCREMENT PRIMARY KEY, t DATETIME(6) NOT NULL);"
            "CREATE TABLE inst (id INT AUTO_INCREMENT PRIMARY KEY, t TIMESTAMP(6) NOT NULL);"
            "INSERT INTO wall (t) SELECT TIMESTAMP'2026-10-23 20:00:00' + INTERVAL seq * 7 "
            "MINUTE FROM seq_0_to_1000;"
            "INSERT INTO wall (t) SELECT TIMESTAMP'2026-10-25 02:00:00' + INTERVAL seq * 3 "
            "MINUTE FROM seq_0_to_19;"
            "INSERT INTO wall (t) VALUES ('2026-10-25 01:59:59.999999'), "
            "('2026-10-25 02:00:00'), ('2026-10-26 00:59:59.999999'), ('2026-10-26 01:00:00');"
            "SET time_zone = '+00:00';"
            "INSERT INTO inst (t) SELECT TIMESTAMP'2026-10-23 20:00:00' + INTERVAL seq * 7 "
            "MINUTE FROM seq_0_to_1000;"
            "INSERT INTO inst (t) VALUES ('2026-10-24 23:59:59.999999'), "
            "('2026-10-25 00:00:00'), ('2026-10-25 00:59:59.999999'), ('2026-10-25 01:00:00')")
        days = [date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26)]
        cfg = Config(dataset="paris", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="wall", method="append", cursor="t",
                        cursor_timezone="Europe/Paris"),
            TableConfig(schema=maria.name, name="inst", method="append", cursor="t")),
        ).with_export(lookback_days=0)
        pub = str(tmp_path / "pub")
        seen: dict[str, int] = {}
        with open_store(pub) as store:
            for d in days:
                m = export_incremental(cfg, store, Window.day(d)).manifests[0]
                for table in ("wall", "inst"):
                    for row in read_table(store, m, f"{maria.name}.{table}").rows:
                        key = f"{table}.{row[0]}"
                        assert key not in seen, (key, d)
                        seen[key] = 1
            export_full(cfg, store)
        # the days hold every row from their first start to their last end
        for table, lo, hi in (("wall", "2026-10-24 02:00:00", "2026-10-27 01:00:00"),
                              ("inst", "2026-10-24 00:00:00", "2026-10-27 00:00:00")):
            ((n,),) = paris_replica.replica.query(
                f"SET time_zone = '+00:00'; SELECT count(*) FROM `{maria.name}`.{table} "
                f"WHERE t >= '{lo}' AND t < '{hi}'")
            assert sum(1 for k in seen if k.startswith(f"{table}.")) == int(n), table
        replica = str(tmp_path / "r.duckdb")
        sync(pub, replica, SyncOptions(cache_dir=tmp_path / "cache"))
        report = verify(replica, maria.replica_url)
        assert report.equal, report.to_json()
    finally:
        paris_replica.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)
