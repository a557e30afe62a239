"""``topoff replicate`` when the source is not what the state expects: a table dropped and
created again under the same name (PostgreSQL: another oid; MariaDB: another creation
time) is rebuilt as at its first load, into both SQL targets and Iceberg; a cursor value
far in the future does not move the watermark past the source's clock."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from support.mariadb import MariaDatabase
from support.replicate import config, new_database, new_target, query
from topoff.replicate.engine import repull, resync, run_once, set_paused
from topoff.replicate.maria_read import innodb_id
from topoff.replicate.state import same_identity
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect

ENGINES = ["duckdb", "postgresql"]
TABLES = {"ins": {"method": "inserter", "cursor": "ts"},
          "upd": {"method": "updater", "cursor": "ts"}}


@pytest.fixture
def source(cluster):
    return new_database(cluster)


def _iceberg(tmp_path: Path) -> str:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                       'warehouse = "warehouse"\nnamespace = "unused"\n')
    return f"iceberg:{catalog}"


def _rows(url: str, name: str) -> list[tuple]:
    if not url.startswith("iceberg:"):
        return query(url, f"SELECT id, v FROM app.{name} ORDER BY id")
    from topoff.targets.iceberg.config import open_catalog, read_settings

    table = open_catalog(read_settings(url)).load_table(("app", name))
    got = table.scan(selected_fields=("id", "v")).to_arrow().to_pylist()
    return sorted((r["id"], r["v"]) for r in got)


@pytest.mark.parametrize("kind", [*ENGINES, "iceberg"])
def test_a_table_created_again_under_its_name_is_rebuilt(source, cluster, tmp_path, kind,
                                                         caplog):
    for name in TABLES:
        source.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, ts timestamptz NOT NULL, "
                       f"v text); INSERT INTO {name} SELECT g, '2026-03-01'::date + g, 'old' "
                       "FROM generate_series(1, 5) g")
    url = _iceberg(tmp_path) if kind == "iceberg" else new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, TABLES)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
    # another table of the same name: other rows, all below the watermark, another shape
    for name in TABLES:
        source.execute(f"DROP TABLE {name}; CREATE TABLE {name} (id int PRIMARY KEY, "
                       "ts timestamptz NOT NULL, v text, extra int); "
                       f"INSERT INTO {name} (id, ts, v) VALUES (2, '2026-01-01', 'new'), "
                       "(9, '2026-01-02', 'new')")
    with caplog.at_level(logging.WARNING, logger="topoff"):
        runs = run_once(cfg)
    assert [(r.status, r.rows) for r in runs] == [("ok", 2), ("ok", 2)]
    assert "another table than the one replicated" in caplog.text
    for name in TABLES:  # the old rows gone, the new ones all there
        assert _rows(url, name) == [(2, "new"), (9, "new")]
    # and it goes on from there, without rebuilding again
    source.execute("INSERT INTO ins VALUES (10, '2026-01-03', 'more'); "
                   "INSERT INTO upd VALUES (10, '2026-01-03', 'more')")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="topoff"):
        assert [r.rows for r in run_once(cfg)] == [1, 1]
    assert "another table" not in caplog.text
    for name in TABLES:
        assert _rows(url, name) == [(2, "new"), (9, "new"), (10, "more")]
    # a paused table created again: a repull builds it again, and it stays paused
    set_paused(cfg, "upd", True)
    source.execute("DROP TABLE upd; CREATE TABLE upd (id int PRIMARY KEY, ts timestamptz "
                   "NOT NULL, v text); INSERT INTO upd VALUES (1, '2026-01-01', 'third')")
    assert repull(cfg, "upd").status == "ok"
    assert _rows(url, "upd") == [(1, "third")]
    assert [r.status for r in run_once(cfg)] == ["ok", "paused"]


@pytest.mark.parametrize("kind", ENGINES)
def test_a_mariadb_table_created_again_under_its_name_is_rebuilt(
        maria: MariaDatabase, cluster, tmp_path: Path, kind: str, caplog) -> None:
    for name in TABLES:
        maria.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, "
                      f"v VARCHAR(10)); INSERT INTO {name} SELECT seq, "
                      "TIMESTAMP'2026-03-01 00:00:00' + INTERVAL seq DAY, 'old' "
                      "FROM seq_1_to_5")
    url = new_target(kind, cluster, tmp_path)
    tables = {n: {**s, "boundary": "1m"} for n, s in TABLES.items()}
    cfg = config(url, {"app": (maria.replica_url, tables)})
    assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
    time.sleep(1.1)  # MariaDB's creation time has whole seconds
    for name in TABLES:
        maria.execute(f"DROP TABLE {name}; CREATE TABLE {name} (id INT PRIMARY KEY, "
                      "ts DATETIME(6) NOT NULL, v VARCHAR(10), extra INT); "
                      f"INSERT INTO {name} (id, ts, v) VALUES (2, '2026-01-01', 'new'), "
                      "(9, '2026-01-02', 'new')")
    with caplog.at_level(logging.WARNING, logger="topoff"):
        runs = run_once(cfg)
    assert [(r.status, r.rows) for r in runs] == [("ok", 2), ("ok", 2)]
    assert "another table than the one replicated" in caplog.text
    for name in TABLES:
        assert query(url, f"SELECT id, v FROM app.{name} ORDER BY id") == [
            (2, "new"), (9, "new")]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="topoff"):
        assert [r.status for r in run_once(cfg)] == ["ok", "ok"]
    assert "another table" not in caplog.text


CLOCKED = {"tz": ("timestamptz", "now()", "inserter"),
           "loc": ("timestamp", "now() AT TIME ZONE 'Europe/Paris'", "updater"),
           "d": ("date", "current_date", "inserter")}


@pytest.mark.parametrize("kind", ENGINES)
def test_a_cursor_value_in_the_future_waits_for_its_time(source, cluster, tmp_path, kind,
                                                         caplog):
    tables = {}
    for name, (ctype, now, method) in CLOCKED.items():
        source.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, c {ctype} NOT NULL, v text); "
                       f"INSERT INTO {name} VALUES (1, {now}, 'a'), (2, '9999-12-31', 'bogus')")
        tables[name] = {"method": method, "cursor": "c"}
    tables["loc"]["cursor_timezone"] = "Europe/Paris"
    source.execute("INSERT INTO tz VALUES (3, now() + interval '2 seconds', 'soon')")
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, tables)})
    with caplog.at_level(logging.WARNING, logger="topoff"):
        assert [r.rows for r in run_once(cfg)] == [1, 1, 1]
    assert "9999-12-31" in caplog.text and "ahead of the source's clock" in caplog.text
    # the watermark stayed at the source's clock: rows written since are read
    time.sleep(2.5)  # and the row of a moment ahead, once its time has come
    for name, (_, now, _) in CLOCKED.items():
        source.execute(f"INSERT INTO {name} VALUES (4, {now}, 'later')")
    assert [r.rows for r in run_once(cfg)] == [2, 1, 1]
    assert query(url, "SELECT id FROM app.tz ORDER BY id") == [(1,), (3,), (4,)]
    for name in ("loc", "d"):
        assert query(url, f"SELECT id FROM app.{name} ORDER BY id") == [(1,), (4,)]


@pytest.mark.parametrize("kind", ENGINES)
def test_a_mariadb_cursor_value_in_the_future_waits_for_its_time(
        maria: MariaDatabase, cluster, tmp_path: Path, kind: str, caplog) -> None:
    types = {"dt": ("DATETIME(6)", "NOW(6)"), "ts": ("TIMESTAMP(6)", "NOW(6)"),
             "d": ("DATE", "CURDATE()")}
    tables: dict[str, dict[str, object]] = {}
    for name, (ctype, now) in types.items():
        maria.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, c {ctype} NOT NULL, "
                      f"v VARCHAR(9)); INSERT INTO {name} VALUES (1, {now}, 'a'), "
                      "(2, '2037-12-31', 'bogus')")
        tables[name] = {"method": "inserter", "cursor": "c", "boundary": "1m"}
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (maria.replica_url, tables)})
    with caplog.at_level(logging.WARNING, logger="topoff"):
        assert [r.rows for r in run_once(cfg)] == [1, 1, 1]
    assert "2037-12-31" in caplog.text and "ahead of the source's clock" in caplog.text
    for name, (_, now) in types.items():
        maria.execute(f"INSERT INTO {name} VALUES (4, {now}, 'later')")
    assert [r.status for r in run_once(cfg)] == ["ok"] * 3  # row 1 read again: boundary
    for name in types:
        assert query(url, f"SELECT id FROM app.{name} ORDER BY id") == [(1,), (4,)]


def test_a_mariadb_table_created_again_within_its_second_is_rebuilt(
        maria: MariaDatabase, cluster, tmp_path: Path) -> None:
    """A table dropped and created again within the second of its creation has the same
    CREATE_TIME: a user who may read InnoDB's table ids (PROCESS) tells the two apart (the
    old row stayed and the new one, below the watermark, was never read, exit 0)."""
    user = f"proc{maria.name}"
    maria.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT, PROCESS, REPLICA MONITOR ON *.* TO '{user}'@'127.0.0.1'")
    src = maria.pair.replica.url(maria.name, user=user, password="p")
    url = new_target("duckdb", cluster, tmp_path)
    created = ("SELECT CREATE_TIME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
               f"'{maria.name}' AND TABLE_NAME = 'u%d'")
    try:
        for n in range(10):  # until the two tables' creation times share their second
            table = (f"CREATE TABLE u{n} (id INT PRIMARY KEY, ts DATETIME(6) NOT NULL, "
                     "v VARCHAR(10)) ENGINE=InnoDB;")
            maria.execute(table + f"INSERT INTO u{n} VALUES (1, '2026-03-01', 'old')")
            cfg = config(url, {"app": (src, {f"u{n}": {"method": "updater", "cursor": "ts"}})})
            assert [r.status for r in run_once(cfg)] == ["ok"]
            before = maria.pair.replica.query(created % n)
            maria.execute(f"DROP TABLE u{n};" + table +
                          f"INSERT INTO u{n} VALUES (2, '2026-01-01', 'new')")
            if maria.pair.replica.query(created % n) == before:
                break
        else:
            pytest.skip("no table was created again within the second of its creation")
        assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 1)]
        assert query(url, f"SELECT id, v FROM app.u{n}") == [(2, "new")]
        odd = "a/b`é.c"  # found under the server's file name encoding of its name
        maria.execute(f"CREATE TABLE `{odd.replace('`', '``')}` (id INT PRIMARY KEY)")
        with connect(src) as conn:
            assert innodb_id(conn, read_table(conn, maria.name, odd)) is not None
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


def test_identities_compare_the_parts_both_hold() -> None:
    """A table id read by one refresh and not the next (PROCESS granted or revoked) is no
    new table; two ids, or two creation times, that differ are."""
    assert same_identity("created 2026-01-01 10:00:00", "created 2026-01-01 10:00:00; table id 5")
    assert not same_identity("created 2026-01-01 10:00:00; table id 5",
                             "created 2026-01-01 10:00:00; table id 6")
    assert not same_identity("created 2026-01-01 10:00:00", "created 2026-01-01 10:00:01")
    assert not same_identity("oid 16384", "created 2026-01-01 10:00:00")
    assert same_identity(None, "oid 1") and same_identity("oid 1", "oid 1")


@pytest.mark.parametrize("kind", ENGINES)
def test_a_table_moved_to_another_target_schema_is_refused(source, cluster, tmp_path,
                                                           kind) -> None:
    """target_schema changed for a table already replicated: an internal error (exit 70;
    a snapshot table whose rows had not changed said unchanged, exit 0, about a table that
    did not exist)."""
    source.execute("CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL, v text);"
                   "INSERT INTO t VALUES (1, now(), 'a')")
    url = new_target(kind, cluster, tmp_path)
    tables = {"t": {"method": "updater", "cursor": "ts"}}
    assert run_once(config(url, {"app": (source.standby_url, tables)}))[0].status == "ok"
    for method in ("updater", "snapshot"):
        moved = config(url, {"app": (source.standby_url, {"t": {"method": method, **(
            {"cursor": "ts"} if method == "updater" else {})}})}, target_schema="other")
        [run] = run_once(moved)
        assert (run.status, run.exit_code) == ("failed", 2), run
        assert "app.t" in (run.error or "") and "--resync" in (run.error or "")
    assert resync(moved, "public.t").status == "ok"  # moves it
    assert query(url, "SELECT id FROM other.t") == [(1,)]
