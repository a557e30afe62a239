"""A value PostgreSQL refuses while ``topoff replicate`` reads or writes rows is reported
as what it is (the replica's column cannot hold it: exit 7; the source's statement fails
on it: exit 3), never as a malformed data file to ask a publisher for (replicate reads no
dataset)."""

from __future__ import annotations

import psycopg
import pytest

from support.replicate import config, new_database, new_target
from topoff.replicate.engine import run_once


@pytest.fixture
def source(cluster):
    return new_database(cluster)


def test_a_value_the_replica_s_column_cannot_hold(source, cluster, tmp_path):
    source.execute("CREATE TABLE t (id int PRIMARY KEY, n bigint); INSERT INTO t VALUES (1, 5)")
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"t": {"method": "inserter",
                                                           "cursor": "id", "boundary": 0,
                                                           "lookback": 0}})},
                 allow_primary=True)
    assert [r.status for r in run_once(cfg)] == ["ok"]
    with psycopg.connect(url, autocommit=True) as conn:  # narrowed by hand in the replica
        conn.execute("ALTER TABLE app.t ALTER COLUMN n TYPE smallint")
    source.execute("INSERT INTO t VALUES (2, 100000)")
    [run] = run_once(cfg)
    assert run.status == "failed" and run.exit_code == 7, run
    error = run.error or ""
    assert "malformed" not in error and "publisher" not in error and "data file" not in error
    assert error.startswith("the replica refused a value of app.public.t, column n: ")
    assert "--resync app.public.t" in error


def test_a_value_the_source_s_statement_fails_on(source, cluster, tmp_path):
    source.execute("CREATE TABLE t (id int PRIMARY KEY, n bigint); "
                   "INSERT INTO t VALUES (1, 5), (2, 100000)")
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {"t": {
        "method": "inserter", "cursor": "id", "boundary": 0, "lookback": 0,
        "where": "n::smallint > 0"}})},
        allow_primary=True)
    [run] = run_once(cfg)
    assert run.status == "failed" and run.exit_code == 3, run
    error = run.error or ""
    assert "malformed" not in error and "publisher" not in error and "data file" not in error
    assert error.startswith("a statement on the source failed on a value of app.public.t: "
                            "smallint out of range")



@pytest.mark.parametrize("method", ["snapshot", "updater"])
def test_a_value_the_duckdb_replica_cannot_hold_fails_the_table_with_7(source, cluster,
                                                                       tmp_path, method):
    """A timestamp after DuckDB's last one (294247 AD; PostgreSQL's is 294276 AD): the
    table fails naming the value and the way out, not as an internal error."""
    source.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL, k timestamp); "
                   "INSERT INTO t VALUES (1, '2026-01-01', '2026-01-01'), "
                   "(2, '2026-01-02', '294270-01-02')")
    settings = {"method": method} if method == "snapshot" else {
        "method": method, "cursor": "ts"}
    url = new_target("duckdb", cluster, tmp_path)
    [run] = run_once(config(url, {"app": (source.standby_url, {"t": settings})},
                            allow_primary=True))
    assert run.status == "failed" and run.exit_code == 7, run
    assert (run.error or "").startswith("the DuckDB replica cannot hold a value of "
                                        "app.public.t: "), run.error
    assert "294270" in (run.error or "") and "internal error" not in (run.error or "")


@pytest.mark.parametrize("method", ["snapshot", "updater"])
def test_a_value_whose_text_postgresql_cannot_read_fails_the_duckdb_table_with_7(
        source, cluster, tmp_path, method):
    """The least interval (-2^31 months and days, -2^63 microseconds): interval_out writes
    a text PostgreSQL's input refuses, which the DuckDB replica's load refuses too; it
    was an internal error (exit 70)."""
    source.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamp NOT NULL, iv interval); "
                   "INSERT INTO t VALUES (1, '2026-01-01', '1 mon'), (2, '2026-01-02', "
                   "'-2147483648 days -2147483648 mons -9223372036854775808 us')")
    settings = {"method": method} if method == "snapshot" else {
        "method": method, "cursor": "ts"}
    url = new_target("duckdb", cluster, tmp_path)
    [run] = run_once(config(url, {"app": (source.standby_url, {"t": settings})},
                            allow_primary=True))
    assert run.status == "failed" and run.exit_code == 7, run
    assert (run.error or "").startswith("the DuckDB replica cannot hold a value of "
                                        "app.public.t: column 'iv'"), run.error
    assert "internal error" not in (run.error or "")


def test_the_least_interval_moved_as_text_is_named_not_blamed_on_the_replica(
        source, cluster, tmp_path):
    """With an enum beside it the rows move as text, which PostgreSQL cannot read for the
    least interval: the hint said the replica's column was changed and to --resync, which
    fails the same way."""
    source.execute("CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE t (id int PRIMARY KEY, "
                   "m mood, iv interval); INSERT INTO t VALUES (1, 'ok', "
                   "'-2147483648 days -2147483648 mons -9223372036854775808 us')")
    url = new_target("postgresql", cluster, tmp_path)
    [run] = run_once(config(url, {"app": (source.standby_url, {"t": {"method": "snapshot"}})},
                            allow_primary=True))
    assert run.status == "failed" and run.exit_code == 7, run
    assert "column iv" in (run.error or "") and "--resync" not in (run.error or "")
    assert "the least interval" in (run.error or "")
