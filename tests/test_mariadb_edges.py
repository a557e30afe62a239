"""Values at the edges of MariaDB's types, end to end through the commands: a full export,
then sync into DuckDB, PostgreSQL and Iceberg and ``verify`` against the MariaDB replica,
and ``topoff replicate`` into PostgreSQL. One table holds every edge (integer extremes
signed and unsigned, DECIMAL(65,30), DECIMAL(38,0) and DECIMAL(10,10), zero and
zero-in-date values, TIME and YEAR bounds, BIT(64), ENUM's error value '', SET '', JSON
with NUL escapes, a BLOB of every byte, names with quotes, backticks and spaces)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from support.mariadb import MariaDatabase, MariaPair
from support.replica import Replicas, query
from support.replicate import config, new_target
from test_iceberg_sync import catalog_file, iceberg_table
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.replicate.engine import run_once
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

EDGE_SQL = r"""
SET SESSION sql_mode = '';
CREATE TABLE edge (id INT PRIMARY KEY, u64 BIGINT UNSIGNED, i8 TINYINT, u32 INT UNSIGNED,
  i64 BIGINT, d65 DECIMAL(65,30), d38 DECIMAL(38,0), d10 DECIMAL(10,10), zd DATE,
  zdt DATETIME(6),
  zts TIMESTAMP(6) NULL, tm TIME(6), yr YEAR, b64 BIT(64), en ENUM('a','b'),
  e2 ENUM('', 'a', 'LONG'), st SET('x','y'), js JSON, bl BLOB,
  `we"ird ``col`` select` VARCHAR(20),
  gv BIGINT AS (i64 DIV 2) VIRTUAL);
INSERT INTO edge (id, u64, i8, u32, i64, d65, d38, d10, zd, zdt, zts, tm, yr, b64, en, e2,
  st, js, bl, `we"ird ``col`` select`) VALUES
 (1, 18446744073709551615, 127, 4294967295, 9223372036854775807,
  99999999999999999999999999999999999.999999999999999999999999999999,
  99999999999999999999999999999999999999, 0.9999999999, '9999-12-31',
  '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07.999999', '838:59:59', 2155, b'ONES', 'b', 'LONG', 'x,y',
  '{"n":"a\\u0000b","e":"😀","big":123456789012345678901234567890}', NULL, '😀'),
 (2, 0, -128, 0, -9223372036854775808,
  -99999999999999999999999999999999999.999999999999999999999999999999,
  -99999999999999999999999999999999999999, -0.0000000001, '1000-01-01', '1000-01-01 00:00:00',
  '1970-01-01 00:00:01', '-838:59:59', 1901, b'0', 'x', '', '', '[[[[1]]]]', '', ''),
 (3, 1, 0, 1, 0, 0.000000000000000000000000000001, 1, 0, '0000-00-00',
  '2024-00-15 10:00:00', '0000-00-00 00:00:00', '-00:00:00.000001', 0, NULL, NULL, 'a', NULL,
  '-0', X'00', NULL);
UPDATE edge SET bl = (SELECT GROUP_CONCAT(CHAR(seq) ORDER BY seq SEPARATOR '')
  FROM seq_0_to_255) WHERE id = 1;
""".replace("LONG", "é" * 70).replace("ONES", "1" * 64)  # LONG: > 63 bytes


@pytest.fixture(scope="module")
def published(maria_pair: MariaPair, tmp_path_factory: pytest.TempPathFactory):
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    maria.execute(EDGE_SQL)  # 'x' is no label of en: stored as '' (the error value)
    root = str(tmp_path_factory.mktemp("maria-edges") / "pub")
    with open_store(root) as store:
        export_full(Config(dataset="edges", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="edge", method="snapshot"),)), store)
    yield maria, root
    maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)
    # the rows longer than max_allowed_packet below left events as long in the servers'
    # current binlog files, where BINLOG_GTID_POS is NULL and mariadb-dump --master-data
    # crashes: a later backup test on these servers starts from new files
    maria_pair.wait_replica()
    for server in (maria_pair.primary, maria_pair.replica):
        server.sql("FLUSH BINARY LOGS")


def test_verify_of_a_duckdb_replica_in_a_fresh_process(published, tmp_path: Path) -> None:
    """The MariaDB driver's C extension loads after DuckDB has opened a file (it did not:
    exit 3, "the MariaDB driver's C extension cannot be loaded")."""
    maria, root = published
    replica = str(tmp_path / "r.duckdb")
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-m", "topoff", "verify", replica, "--against",
                           maria.replica_url], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{maria.name}.edge: equal (3 rows)" in done.stdout


def test_enum_s_empty_string_lands_in_postgresql(published, cluster, tmp_path: Path) -> None:
    """A MariaDB ENUM is text in a PostgreSQL replica: '' (the error value MariaDB stores
    for a rejected value, which no PostgreSQL enum can hold) loads (the COPY into an enum
    type failed, exit 6, "invalid input value for enum"), and so do the labels '' and one
    longer than 63 bytes (the manifest was refused, exit 6)."""
    maria, root = published
    replicas = Replicas("postgresql", tmp_path, cluster)
    try:
        replica = replicas.new()
        sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
        assert verify(replica, maria.replica_url).equal
        got = query(replica, f'SELECT id, en, e2, st, u64::text, d38::text, tm::text, '
                             f'yr, b64::text FROM "{maria.name}".edge ORDER BY id')
        assert got == [(1, "b", "é" * 70, "x,y", "18446744073709551615", "9" * 38,
                        "838:59:59", 2155, "1" * 64),
                       (2, "", "", "", "0", "-" + "9" * 38, "-838:59:59", 1901, "0" * 64),
                       (3, None, "a", None, "1", "1", "-00:00:00.000001", 0, None)]
        target = new_target("postgresql", cluster, tmp_path)
        cfg = config(target, {"m": (maria.replica_url, {"edge": {"method": "snapshot"}})})
        [run] = run_once(cfg)
        assert (run.status, run.rows) == ("ok", 3), run.error
        assert query(target, "SELECT en, e2 FROM m.edge ORDER BY id") == \
            [("b", "é" * 70), ("", ""), (None, "a")]
    finally:
        replicas.close()


def test_every_edge_into_iceberg(published, tmp_path: Path) -> None:
    maria, root = published
    target = catalog_file(tmp_path)
    sync(root, target, SyncOptions(cache_dir=tmp_path / "cache"))
    report = verify(target, maria.replica_url)
    assert report.equal, report.to_json()
    rows = {r["id"]: r for r in iceberg_table(target, f"{maria.name}.{maria.name}__edge")
            .scan().to_arrow().to_pylist()}
    assert rows[1]["u64"] == Decimal("18446744073709551615") and rows[2]["en"] == ""
    assert rows[1]["d65"] == "9" * 35 + "." + "9" * 30 and rows[1]["bl"] == bytes(range(256))
    assert rows[3]["zd"] is None and rows[3]["zdt"] is None and rows[3]["zts"] is None
    assert rows[1]['we"ird `col` select'] == "😀" and rows[3]["tm"] == "-00:00:00.000001"


def _refused_by_postgresql(maria: MariaDatabase, cluster, tmp_path: Path, setup: str,
                           table: str) -> tuple[str, str]:
    """``setup`` run on the primary, ``table`` exported in full; a sync of it into
    PostgreSQL fails with exit 7 and a hint naming the targets that keep the value. The
    error line and the published store's location."""
    from support.cli import error_lines, run_cli

    maria.execute(setup)
    root = str(tmp_path / "pub")
    with open_store(root) as store:
        export_full(Config(dataset=table, source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name=table, method="snapshot"),)), store)
    replicas = Replicas("postgresql", tmp_path, cluster)
    try:
        out = run_cli("sync", root, replicas.new())
    finally:
        replicas.close()
    assert out.exit_code == 7, out.stderr
    err, hint = error_lines(out)
    assert "malformed" not in err and "DuckDB or Iceberg" in hint
    return err, root


def test_a_nul_in_text_is_refused_by_postgresql_only(maria_pair: MariaPair, cluster,
                                                     tmp_path: Path) -> None:
    """PostgreSQL text cannot hold a NUL: exit 7 naming why (it said the publication was
    malformed, exit 6); DuckDB and Iceberg keep it."""
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    try:
        err, root = _refused_by_postgresql(
            maria, cluster, tmp_path, "CREATE TABLE nul (id INT PRIMARY KEY, t TEXT); "
            "INSERT INTO nul VALUES (1, CONCAT('a', CHAR(0), 'b'))", "nul")
        assert "NUL" in err
        for target in (str(tmp_path / "r.duckdb"), catalog_file(tmp_path)):
            sync(root, target, SyncOptions(cache_dir=tmp_path / "cache"))
            assert verify(target, maria.replica_url).equal
    finally:
        maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def test_json_postgresql_refuses_is_named_as_such(maria_pair: MariaPair, cluster,
                                                  tmp_path: Path) -> None:
    """MariaDB's JSON accepts texts PostgreSQL's json refuses (``[1.]``, ``"\\a"``,
    ``[-]``): exit 7 naming why, for sync and replicate (it said the publication was
    malformed and to ask for it again, exit 6); DuckDB keeps the text."""
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    try:
        err, root = _refused_by_postgresql(
            maria, cluster, tmp_path, "CREATE TABLE j (id INT PRIMARY KEY, js JSON); INSERT "
            "INTO j VALUES (1, '{\"a\": 1}'), (2, '[1.]'), (3, '\"\\\\a\"'), (4, '[-]')",
            "j")
        assert "json" in err
        target = new_target("postgresql", cluster, tmp_path)
        [run] = run_once(config(target, {"m": (maria.replica_url, {"j": {"method": "snapshot"}})}))
        assert run.status == "failed" and "malformed" not in (run.error or ""), run.error
        duck = str(tmp_path / "r.duckdb")
        sync(root, duck, SyncOptions(cache_dir=tmp_path / "cache"))
        assert verify(duck, maria.replica_url).equal
        assert query(duck, f'SELECT js FROM "{maria.name}".j ORDER BY id') == \
            [('{"a": 1}',), ("[1.]",), ('"\\a"',), ("[-]",)]
    finally:
        maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def test_verify_leaves_a_zero_in_date_cursor_out_of_bounded_days(maria_pair: MariaPair,
                                                                  tmp_path: Path) -> None:
    """MariaDB orders ``2026-01-00 10:00`` inside 2025-12-31's window; the replica holds it
    as NULL. Verify of a replica synced ``--since`` a day, or of a cursor kept in local time
    (one query per day), compares the days alike (it reported a row more on the source)."""
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    try:
        maria.execute("SET SESSION sql_mode = ''; CREATE TABLE ev (id INT PRIMARY KEY, "
                      "at DATETIME(6)); INSERT INTO ev VALUES (1, '2025-12-31 10:00:00'), "
                      "(2, '2026-01-00 10:00:00'), (3, '2026-01-01 00:00:00'), "
                      "(4, '2025-12-10 23:59:59.999999'), (5, '0000-00-00 00:00:00')")
        for zone, since, rows in (("UTC", date(2025, 12, 20), 2), ("Europe/Paris", None, 5)):
            root = str(tmp_path / f"pub-{zone[:3]}")
            with open_store(root) as store:
                export_full(Config(dataset="ev", source_url=maria.replica_url, tables=(
                    TableConfig(schema=maria.name, name="ev", method="append", cursor="at",
                                cursor_timezone=zone),)), store)
            replica = str(tmp_path / f"r-{zone[:3]}.duckdb")
            sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache", since=since))
            report = verify(replica, maria.replica_url)
            assert report.equal, report.to_json()
            assert query(replica, f'SELECT count(*) FROM "{maria.name}".ev') == [(rows,)]
    finally:
        maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def test_a_zero_in_date_cursor_is_in_no_day(maria_pair: MariaPair, tmp_path: Path) -> None:
    """A zero-in-date cursor value (NULL in the dataset) is left out of every day, like a
    NULL cursor: a keyless append table's replica holds it once, from the full export (each
    revision of 2025-12-31, where MariaDB orders ``2026-01-00``, added it again)."""
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    try:
        maria.execute("SET SESSION sql_mode = ''; CREATE TABLE ev (id INT, at DATETIME(6)); "
                      "INSERT INTO ev VALUES (1, '2025-12-31 10:00:00'), "
                      "(2, '2026-01-00 10:00:00'), (3, '2026-01-01 00:00:00')")
        root, replica = str(tmp_path / "pub"), str(tmp_path / "r.duckdb")
        cfg = Config(dataset="ev", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="ev", method="append", cursor="at"),))
        with open_store(root) as store:
            export_full(cfg, store)
            export_incremental(cfg.with_export(lookback_days=0), store,
                               Window.day(date(2025, 12, 31)))
        sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
        maria.execute("INSERT INTO ev VALUES (4, '2025-12-31 11:00:00')")
        with open_store(root) as store:  # 2025-12-31 again, as r2
            export_incremental(cfg.with_export(lookback_days=1), store,
                               Window.day(date(2026, 1, 1)))
        sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
        assert query(replica, f'SELECT id FROM "{maria.name}".ev ORDER BY id') == \
            [(1,), (2,), (3,), (4,)]
        report = verify(replica, maria.replica_url)
        assert report.equal, report.to_json()
    finally:
        maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def test_a_decimal_cursor_wider_than_38_digits_is_refused_as_such(published, tmp_path: Path
                                                                  ) -> None:
    """A DECIMAL(65,30) cursor (numeric(65,30): replicas hold it as text) is refused
    naming its type (the error said it was "a numeric without precision and scale")."""
    maria, _root = published
    (run,) = run_once(config(str(tmp_path / "r.duckdb"), {"m": (maria.replica_url, {
        "edge": {"method": "inserter", "cursor": "d65", "boundary": 0}})}))
    assert (run.status, run.exit_code) == ("failed", 2)
    assert "without precision" not in (run.error or "")
    assert "numeric(65,30)" in (run.error or "") and "38 digits" in (run.error or "")


def test_a_crlf_in_the_first_row_s_text_lands_in_duckdb(published, tmp_path: Path) -> None:
    """A text holding CR LF in the first row a refresh stages lands in a DuckDB replica
    (DuckDB took the CR LF for the files' line ending: "malformed" file, the publication
    blamed, nothing replicated)."""
    maria, _root = published
    maria.execute("CREATE TABLE crlf (k INT PRIMARY KEY, t DATETIME(6), tx TEXT); "
                  "INSERT INTO crlf VALUES (1, '2020-01-01', 'x\\r\\ny'), (2, '2020-01-01', 'z')")
    target = str(tmp_path / "r.duckdb")
    runs = run_once(config(target, {"m": (maria.replica_url, {
        "crlf": {"method": "updater", "cursor": "t", "boundary": "1s"}})}))
    assert [(r.status, r.rows) for r in runs] == [("ok", 2)], runs[0].error
    assert query(target, "SELECT k, tx FROM m.crlf ORDER BY k") == [(1, "x\r\ny"), (2, "z")]


def test_reconcile_refuses_a_decimal_key_wider_than_38_digits_as_such(published,
                                                                     tmp_path: Path) -> None:
    """A DECIMAL(65,30) key is refused by reconcile naming the width it takes (the error
    said reconcile takes "integer and decimal keys only", of a decimal key)."""
    from topoff.errors import ConfigError
    from topoff.replicate.operate import reconcile

    maria, _root = published
    cfg = config(str(tmp_path / "r.duckdb"), {"m": (maria.replica_url, {"edge": {
        "method": "updater", "cursor": "id", "boundary": 0, "key": ["d65"]}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    with pytest.raises(ConfigError) as refused:
        reconcile(cfg, f"m.{maria.name}.edge")
    assert "decimal(65,30)" in refused.value.message and "38 digits" in refused.value.message


def test_a_table_name_iceberg_does_not_take_is_refused_with_a_hint_that_helps(
        published, tmp_path: Path) -> None:
    """A replicated table whose own name Iceberg does not take: the hint says to leave it
    out (it said to set the source's target_schema, which does not rename a table)."""
    maria, _root = published
    maria.execute("CREATE TABLE `odd name` (id INT PRIMARY KEY); INSERT INTO `odd name` "
                  "VALUES (1)")
    (run,) = run_once(config(catalog_file(tmp_path), {"m": (maria.replica_url, {
        "odd name": {"method": "snapshot"}})}))
    assert (run.status, run.exit_code) == ("failed", 7)
    assert "'odd name'" in (run.error or "") and "target_schema" not in (run.error or "")
    assert "leave the table out" in (run.error or "")


def test_a_time_cursor_is_refused_in_words_that_do_not_contradict(published,
                                                                  tmp_path: Path) -> None:
    """A TIME(6) cursor (a duration) is refused as no date or timestamp (the error said
    "tm is time(6), not a time")."""
    from topoff.errors import ConfigError

    maria, _root = published
    with open_store(str(tmp_path / "pub")) as store, pytest.raises(ConfigError) as refused:
        export_full(Config(dataset="edges", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="edge", method="append", cursor="tm"),)),
            store)
    assert "cursor tm is time(6), not a date or timestamp" in refused.value.message


def test_a_blob_of_more_than_half_max_allowed_packet_is_exported(published,
                                                                 tmp_path: Path) -> None:
    """A BLOB whose hex is longer than the server's max_allowed_packet (16 MiB: a 9 MB
    value) is exported whole (the server's HEX() of it was NULL, with a warning: the value
    was written as NULL)."""
    maria, _root = published
    maria.execute("CREATE TABLE big (id INT PRIMARY KEY, v LONGBLOB, b BINARY(2)); "
                  "INSERT INTO big VALUES (1, REPEAT('a', 9000000), X'00'), (2, X'00FF', NULL)")
    root, replica = str(tmp_path / "pub"), str(tmp_path / "r.duckdb")
    with open_store(root) as store:
        export_full(Config(dataset="big", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="big", method="snapshot"),)), store)
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    assert query(replica, f'SELECT id, octet_length(v), md5(v), b FROM "{maria.name}".big '
                          "ORDER BY id") == [(1, 9000000, hashlib.md5(b"a" * 9000000)
                                              .hexdigest(), b"\0\0"),
                                             (2, 2, hashlib.md5(b"\0\xff").hexdigest(), None)]


def test_verify_hashes_rows_too_long_for_the_server_s_texts(published, tmp_path: Path) -> None:
    """A row whose text and bytes are longer than the server's max_allowed_packet lets
    (a 9 MB BLOB, a 5 MB text holding canonical.py's separators) is hashed by topoff:
    equal when equal, different once its BLOB changes (the server's HEX() and CONCAT() of
    it were NULL: verify reported a difference where there was none, and none where the
    value had changed)."""
    maria, _root = published
    maria.execute("CREATE TABLE long_row (id INT PRIMARY KEY, v LONGBLOB, t LONGTEXT); "
                  "INSERT INTO long_row VALUES (1, REPEAT('a', 9000000), CONCAT(REPEAT('b', "
                  "5000000), CHAR(29), CHAR(30), CHAR(31))), (2, X'00', CHAR(30))")
    root, replica = str(tmp_path / "pub"), str(tmp_path / "r.duckdb")
    with open_store(root) as store:
        export_full(Config(dataset="long", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="long_row", method="snapshot"),)), store)
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    report = verify(replica, maria.replica_url)
    assert report.equal, report.to_json()
    # not an UPDATE: its event (both images, 28 MB) would outgrow max_allowed_packet, on
    # which mariadb-dump --master-data crashes (tests/test_backup_maria_values.py)
    maria.execute("DELETE FROM long_row WHERE id = 1; INSERT INTO long_row VALUES "
                  "(1, REPEAT('c', 9000000), CONCAT(REPEAT('b', 5000000), CHAR(29), "
                  "CHAR(30), CHAR(31)))")
    assert not verify(replica, maria.replica_url).equal


def test_replicate_carries_a_blob_longer_than_half_max_allowed_packet(published,
                                                                      tmp_path: Path) -> None:
    """``topoff replicate`` lands a 9 MB BLOB whole (the CSV line the server built held an
    empty field for it, its HEX() being NULL: the value replicated as NULL)."""
    maria, _root = published
    maria.execute("CREATE TABLE blob_r (id INT PRIMARY KEY, t DATETIME(6), v LONGBLOB, "
                  "x TEXT); INSERT INTO blob_r VALUES (1, '2020-01-01', REPEAT('a', 9000000), "
                  "'\\\\.'), (2, '2020-01-01', X'00FF', NULL)")
    want = [(1, 9000000, hashlib.md5(b"a" * 9000000).hexdigest(), "\\."),
            (2, 2, hashlib.md5(b"\0\xff").hexdigest(), None)]
    for settings in ({"method": "snapshot"},
                     {"method": "updater", "cursor": "t", "boundary": "1s"}):
        target = str(tmp_path / f"{settings['method']}.duckdb")
        (run,) = run_once(config(target, {"m": (maria.replica_url, {"blob_r": settings})}))
        assert (run.status, run.rows) == ("ok", 2), run.error
        assert query(target, "SELECT id, octet_length(v), md5(v), x FROM m.blob_r "
                             "ORDER BY id") == want


def test_a_changed_row_longer_than_max_allowed_packet_is_seen_by_the_snapshot_hash(
        published, tmp_path: Path) -> None:
    """A row of a 9 MB BLOB and a 9 MB text, longer together than max_allowed_packet (16
    MiB): its content hash was NULL (the server's CONCAT of it was), which SUM skips, so a
    change of it left the replicated snapshot table "unchanged" with the old value."""
    maria, _root = published
    maria.execute("CREATE TABLE big_s (id INT PRIMARY KEY, v LONGBLOB, x LONGTEXT); "
                  "INSERT INTO big_s VALUES (1, REPEAT('a', 9000000), REPEAT('b', 9000000)), "
                  "(2, X'00', 'small')")
    target = str(tmp_path / "snap.duckdb")
    cfg = config(target, {"m": (maria.replica_url, {"big_s": {"method": "snapshot"}})})
    (run,) = run_once(cfg)
    assert (run.status, run.rows) == ("ok", 2), run.error
    maria.execute("UPDATE big_s SET x = CONCAT('c', REPEAT('b', 8999999)) WHERE id = 1")
    (run,) = run_once(cfg)
    assert run.status == "ok" and run.rows == 2, run
    assert query(target, "SELECT id, left(x, 2), length(x) FROM m.big_s ORDER BY id") \
        == [(1, "cb", 9000000), (2, "sm", 5)]
