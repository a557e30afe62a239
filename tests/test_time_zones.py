"""Time zones as users in other zones meet them: a source whose zone is not UTC (a
database's ``timezone``, MariaDB's global ``time_zone``), daylight-saving changes of a
``timestamp`` cursor, and a client whose ``TZ`` is not UTC."""

from __future__ import annotations

import subprocess

import pytest

from support.mariadb import MariaDatabase, MariaPair
from support.replicate import config, new_database, new_target, query
from test_replicate_engine import equal
from topoff.replicate.engine import run_once
from topoff.replicate.maria_cursor import server_zone
from topoff.sources.mariadb.connect import connect as maria_connect

ENGINES = ["duckdb", "postgresql"]


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


def test_pg_repeated_hour_in_the_database_zone(cluster, tmp_path):
    """A database whose timezone is Europe/Paris (ALTER DATABASE), no cursor_timezone:
    the repeated hour of its fall-back is read again."""
    db = new_database(cluster)
    db.execute(f'ALTER DATABASE "{db.name}" SET timezone = \'Europe/Paris\'')
    db.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL); "
               "INSERT INTO t SELECT g, '2026-10-25 01:00'::timestamp + g * interval '1 min' "
               "FROM generate_series(1, 90) g")
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (db.standby_url, {"t": {
        "method": "inserter", "cursor": "ts", "boundary": "10m", "lookback": "10m"}})})
    assert run_once(cfg)[0].rows == 90
    db.execute("INSERT INTO t SELECT 1000 + g, '2026-10-25 02:04'::timestamp + "
               "g * interval '1 min' FROM generate_series(1, 11) g")
    assert run_once(cfg)[0].status == "ok"
    equal(url, db, "public.t")
