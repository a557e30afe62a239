"""Values a plain ``mariadb-dump`` does not carry, through a MariaDB backup, its restore and
its drill: FLOATs (printed with 6 significant digits, ``3.40282e38`` for 3.4028234e38) and
the history of system-versioned tables."""

from __future__ import annotations

import json
from pathlib import Path

from support.backup import AgeKey
from support.cli import error_lines, run_cli
from support.maria_backup import empty_db, take_backup
from support.mariadb import MariaDatabase

FLOATS = """
CREATE TABLE fl (id INT PRIMARY KEY, f FLOAT, g FLOAT NOT NULL DEFAULT 0, d DOUBLE,
  at TIMESTAMP(6) NOT NULL DEFAULT '2020-01-01' ON UPDATE CURRENT_TIMESTAMP(6),
  h FLOAT AS (f / 3) STORED);
INSERT INTO fl (id, f, g, d) VALUES (1, 3.4028234e38, 0.1, 0.1), (2, 16777217, 1.17549435e-38,
  1e300), (3, 1.4e-45, -1.5, NULL), (4, NULL, 123456.789, -0.0), (5, 0.30000001, 7, 2);
CREATE TABLE tk (k VARCHAR(10) CHARACTER SET latin1, at DATETIME(6), f FLOAT,
  PRIMARY KEY (k, at));
INSERT INTO tk VALUES ('é', '2024-01-01 00:00:00.5', 16777217), ('x', '2024-01-01', 0.30000001),
  ('é', '2024-01-01', 3.4028234e38);
CREATE TABLE nokey (f FLOAT);
INSERT INTO nokey VALUES (16777216), (0.1), (3.4028234e38), (NULL);
"""
EXACT = "SELECT id, CAST(f AS DOUBLE), CAST(g AS DOUBLE), d, at, CAST(h AS DOUBLE) FROM fl " \
        "ORDER BY id"


def test_float_values_survive_a_backup_and_the_drill_compares_them_exactly(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None]
        ) -> None:
    """A FLOAT of a table with a primary key is restored exactly (it was rounded to 6
    digits, and the drill, comparing the server's 6-digit text, said the tables matched);
    so is one of a table without a key (its rows written by topoff: tests/
    test_backup_maria_floats.py)."""
    shop.execute(FLOATS)
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.f", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert "FLOAT" not in result.stderr  # type: ignore[attr-defined]
    pair = shop.pair
    target = empty_db(pair, shop.name + "_f")
    try:
        done = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                       "--target", target)
        assert done.exit_code == 0, done.stderr
        for q in (EXACT, "SELECT k, at, CAST(f AS DOUBLE) FROM tk ORDER BY k, at",
                  "SELECT CAST(f AS DOUBLE) FROM nokey ORDER BY 1"):
            assert pair.primary.query(q, shop.name + "_f") == pair.primary.query(q, shop.name)
        pair.primary.sql(f"DROP DATABASE `{shop.name}_f`")
        scratch = empty_db(pair, shop.name + "_s")
        drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                        "--scratch", scratch)
        assert drill.exit_code == 0, drill.stdout + drill.stderr
    finally:
        for db in ("_f", "_s"):
            pair.primary.sql(f"DROP DATABASE IF EXISTS `{shop.name}{db}`", check=False)


VERSIONED = """
CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING;
CREATE TABLE ex (id INT PRIMARY KEY, s TIMESTAMP(6) GENERATED ALWAYS AS ROW START,
  e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(s, e))
  WITH SYSTEM VERSIONING;
INSERT INTO sv VALUES (1, 1), (2, 2); INSERT INTO ex (id) VALUES (1), (2);
UPDATE sv SET v = 10 WHERE id = 1; DELETE FROM sv WHERE id = 2;
UPDATE ex SET id = 3 WHERE id = 2;
"""
HISTORY = ("SELECT id, v, row_start, row_end FROM sv FOR SYSTEM_TIME ALL ORDER BY id, row_start",
           "SELECT id, s, e FROM ex FOR SYSTEM_TIME ALL ORDER BY id, s")


def test_system_versioned_tables_keep_their_history(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None]
        ) -> None:
    """A system-versioned table is backed up with its history and restored with it (its
    current rows only, the history dropped without a word); the drill compares every
    version. With a transaction-precise one (whose history no dump carries) the tables are
    named at backup time, and the drill compares their current rows without the
    ROW START and ROW END the restore gives anew (it reported a mismatch)."""
    shop.execute(VERSIONED)
    store, pair = tmp_path / "store", shop.pair
    result = take_backup(shop, age_key, str(store), "dump.v", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    finished = json.loads((store / "catalog/dump.v/finished.json").read_text())
    assert finished["tables"]["sv"]["rows"] == 3 and finished["tables"]["ex"]["rows"] == 3
    target = empty_db(pair, shop.name + "_v")
    try:
        done = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                       "--target", target)
        assert done.exit_code == 0, done.stderr
        for q in HISTORY:
            assert pair.primary.query(q, shop.name + "_v") == pair.primary.query(q, shop.name)
        shop.execute("CREATE TABLE tx (id INT PRIMARY KEY, s BIGINT UNSIGNED GENERATED ALWAYS "
                     "AS ROW START INVISIBLE, e BIGINT UNSIGNED GENERATED ALWAYS AS ROW END "
                     "INVISIBLE, PERIOD FOR SYSTEM_TIME(s, e)) WITH SYSTEM VERSIONING;"
                     "INSERT INTO tx VALUES (1), (2); DELETE FROM tx WHERE id = 2;")
        again = take_backup(shop, age_key, str(store), "dump.t", env)
        assert again.exit_code == 0, again.stderr  # type: ignore[attr-defined]
        assert "ex, sv, tx: the backup holds their current rows, not their history (tx " \
            in again.stderr  # type: ignore[attr-defined]
        for name in ("dump.v", "dump.t"):
            scratch = empty_db(pair, f"{shop.name}_s{name[-1]}")
            drill = run_cli("backups", "drill", str(store), "--name", name, "--identity",
                            str(age_key.identity), "--scratch", scratch)
            assert drill.exit_code == 0, drill.stdout + drill.stderr
    finally:
        for db in ("_v", "_sv", "_st"):
            pair.primary.sql(f"DROP DATABASE IF EXISTS `{shop.name}{db}`", check=False)


def test_a_blob_longer_than_the_default_packet_restores_in_the_drill(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None]
        ) -> None:
    """A 9 MB BLOB, dumped as an 18 MB statement, is restored by the drill's throwaway
    server and compared (its max_allowed_packet of 16 MiB refused it: "Server has gone
    away", exit 7; and the backup's hash took the BLOB for a NULL, its HEX() being NULL);
    a restore into a server that refuses it says what to raise."""
    shop.execute("CREATE TABLE bb (id INT PRIMARY KEY, v LONGBLOB); "
                 "INSERT INTO bb VALUES (1, REPEAT('a', 9000000)), (2, 'x')")
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.b", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stdout + drill.stderr
    # a target server of the default max_allowed_packet: said so
    target = empty_db(shop.pair, shop.name + "_b")
    try:
        done = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                       "--target", target)
        assert done.exit_code == 7 and "max_allowed_packet" in error_lines(done)[1]
    finally:
        shop.pair.primary.sql(f"DROP DATABASE IF EXISTS `{shop.name}_b`", check=False)


def test_a_dump_crashed_by_an_event_past_max_allowed_packet_says_what_to_do(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None]
        ) -> None:
    """mariadb-dump --master-data crashes (SIGSEGV) when the server cannot give the GTID of
    its binlog position (BINLOG_GTID_POS is NULL: a row event, here an UPDATE's two 9 MB
    images, longer than max_allowed_packet in the current binlog file): exit 3 naming the
    crash and the way out (it said "exit status -11: no message" and to check it), which
    works."""
    pair = shop.pair
    shop.execute("CREATE TABLE bu (id INT PRIMARY KEY, v LONGBLOB); "
                 "INSERT INTO bu VALUES (1, REPEAT('a', 9000000)); "
                 "UPDATE bu SET v = REPEAT('b', 9000000)")
    try:
        result = take_backup(shop, age_key, str(tmp_path / "store"), "dump.c", env)
        assert result.exit_code == 3, result.stderr  # type: ignore[attr-defined]
        error, hint = error_lines(result)  # type: ignore[arg-type]
        assert "crashed" in error and "BINLOG_GTID_POS" in error
        assert "FLUSH BINARY LOGS" in hint
    finally:  # the way out, which the other tests of this session's servers need too
        pair.primary.sql("FLUSH BINARY LOGS")
        pair.wait_replica()
        pair.replica.sql("FLUSH BINARY LOGS")
    again = take_backup(shop, age_key, str(tmp_path / "store"), "dump.d", env)
    assert again.exit_code == 0, again.stderr  # type: ignore[attr-defined]
