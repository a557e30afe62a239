"""A MariaDB server's global defaults do not change what topoff reads: every session sets
what would (docs/mariadb.md, "Connecting")."""

from __future__ import annotations

from pathlib import Path

from support.mariadb import MariaDatabase
from support.replica import query
from support.replicate import config, new_target
from topoff.config import Config, TableConfig
from topoff.export.full import export_full
from topoff.replicate.engine import run_once
from topoff.sources.mariadb.connect import connect, session_sql
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify


def test_a_global_select_limit_cuts_no_read(maria: MariaDatabase, tmp_path: Path) -> None:
    """``sql_select_limit`` set globally on the replica (it silently cut every batch of an
    updater refresh to its first 7 rows; an export failed as an internal error), with a
    zone that is not UTC and PAD_CHAR_TO_FULL_LENGTH."""
    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMP(6) NULL, c CHAR(4)); "
                  "INSERT INTO ev SELECT seq, TIMESTAMP'2025-12-31 10:00:00' + INTERVAL seq "
                  "MICROSECOND, 'a' FROM seq_1_to_50")
    replica = maria.pair.replica
    replica.sql("SET GLOBAL sql_select_limit = 7, GLOBAL time_zone = '+05:30', "
                "GLOBAL sql_mode = 'PAD_CHAR_TO_FULL_LENGTH'")
    try:
        root, duck = str(tmp_path / "pub"), str(tmp_path / "r.duckdb")
        with open_store(root) as store:
            export_full(Config(dataset="ev", source_url=maria.replica_url, tables=(
                TableConfig(schema=maria.name, name="ev", method="append", cursor="at"),)),
                store)
        sync(root, duck, SyncOptions(cache_dir=tmp_path / "cache"))
        assert query(duck, f'SELECT count(*), min("at")::text, max(c) FROM "{maria.name}".ev') \
            == [(50, "2025-12-31 10:00:00.000001+00", "a")]
        assert verify(duck, maria.replica_url).equal
        target = new_target("duckdb", None, tmp_path)  # type: ignore[arg-type]
        [run] = run_once(config(target, {"m": (maria.replica_url, {"ev": {
            "method": "updater", "cursor": "id", "boundary": 1, "batch_rows": 10}})}))
        assert (run.status, run.rows) == ("ok", 50), run.error
        assert query(target, "SELECT count(*) FROM m.ev") == [(50,)]
    finally:
        replica.sql("SET GLOBAL sql_select_limit = DEFAULT, GLOBAL time_zone = SYSTEM, "
                    "GLOBAL sql_mode = DEFAULT")


def test_the_statement_time_limit_is_lifted_by_the_flavour_s_own_variable(
        maria: MariaDatabase) -> None:
    """MariaDB limits statements with ``max_statement_time`` (seconds), MySQL 5.7.8+ its
    SELECTs with ``max_execution_time`` (milliseconds): each session lifts the one its
    server has (the other is an unknown variable there: an error). The server here is
    MariaDB, with a global limit that would cut a long read; the MySQL statements are
    checked as text, as chosen for the versions MySQL reports."""
    replica = maria.pair.replica
    replica.sql("SET GLOBAL max_statement_time = 0.5")
    try:
        conn = connect(maria.replica_url)
        try:
            cur = conn.cursor()
            cur.execute("SELECT VERSION(), @@session.max_statement_time, SLEEP(1)")
            version, limit, slept = cur.fetchone()
        finally:
            conn.close()
    finally:
        replica.sql("SET GLOBAL max_statement_time = DEFAULT")
    assert "mariadb" in version.lower() and float(limit) == 0 and int(slept) == 0
    chosen = session_sql(version)
    assert "max_statement_time = 0" in chosen and "max_execution_time" not in chosen
    for mysql in ("8.0.36", "8.4.3-commercial", "9.1.0", "5.7.8-log"):
        chosen = session_sql(mysql)
        assert "SESSION max_execution_time = 0" in chosen, mysql
        assert "max_statement_time" not in chosen and "sql_select_limit" in chosen, mysql
    for older in ("5.7.7-rc", "5.6.51"):  # before max_execution_time
        assert "max_execution_time" not in session_sql(older)
