"""FLOATs of tables whose rows cannot be found by a key (no primary key, an UPDATE trigger)
through a MariaDB backup, its restore and its drill: mariadb-dump prints a FLOAT with 6
significant digits, so topoff writes such a table's rows itself, exactly, in the dump's
snapshot; with every type beside them."""

from __future__ import annotations

import json
from pathlib import Path

from support.backup import AgeKey
from support.cli import run_cli
from support.maria_backup import empty_db, take_backup
from support.mariadb import MariaDatabase
from topoff.backup.maria_tables import table_hashes
from topoff.sources.mariadb.connect import connect

TABLES = """
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
CREATE TABLE nk (f FLOAT, g FLOAT NOT NULL DEFAULT 0, d DOUBLE, u BIGINT UNSIGNED,
  b BIT(64), dt DATETIME(6), z DATE, t VARCHAR(20) CHARACTER SET utf8mb4,
  l VARCHAR(10) CHARACTER SET latin1, bl BLOB, e ENUM('a','b,c'), s SET('x','y'), j JSON,
  i6 INET6, p POINT, y YEAR, tm TIME(6), dc DECIMAL(65,30), ai INT INVISIBLE,
  gv DOUBLE AS (f * 2) VIRTUAL, gs FLOAT AS (g / 3) STORED, `sp ace` FLOAT);
INSERT INTO nk (f, g, d, u, b, dt, z, t, l, bl, e, s, j, i6, p, y, tm, dc, ai, `sp ace`)
VALUES
  (1.2345678, 3.4028234e38, 0.1, 18446744073709551615, X'FFFFFFFFFFFFFFFF',
   '2024-02-29 23:59:59.999999', '0000-00-00', 'ä😀 "q" \\\\ ''s''', 'Grüße',
   X'00FF0A0D5C27', 'b,c', 'x,y', '{"k": [1, 2.5]}', '1:2:3:4:5:6:7:88', POINT(1.5, -2),
   2155, '-838:59:59.999999',
   '-12345678901234567890123456789012345.123456789012345678901234567891', 7, 16777217),
  (1.2345679, 1.17549435e-38, -1.5e300, 0, b'0', '0000-00-00 00:00:00', '2024-00-10', '', '',
   '', '', '', NULL, '::', POINT(0, 0), 0, '00:00:00', 0, 0, 1.4e-45),
  (1.2345678, 3.4028234e38, 0.1, 18446744073709551615, b'1',
   '2024-02-29 23:59:59.999999', '0000-00-00', 'a', 'b', NULL, 'a', '', '[]', NULL, NULL,
   NULL, NULL, NULL, NULL, 0.30000001),
  (NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL);
CREATE TABLE counts (n INT);
INSERT INTO counts VALUES (0);
CREATE TABLE up (id INT PRIMARY KEY, f FLOAT);
INSERT INTO up VALUES (1, 16777217), (2, 0.30000001);
CREATE TRIGGER up_bu BEFORE UPDATE ON up FOR EACH ROW UPDATE counts SET n = n + 1;
CREATE TABLE ins (f FLOAT);
INSERT INTO ins VALUES (1.2345678);
CREATE TRIGGER ins_bi BEFORE INSERT ON ins FOR EACH ROW SET NEW.f = NEW.f;
CREATE TABLE parent (f FLOAT, id INT, UNIQUE KEY (id));
CREATE TABLE child (id INT PRIMARY KEY, p INT, f FLOAT,
  FOREIGN KEY (p) REFERENCES parent (id) ON DELETE CASCADE);
INSERT INTO parent VALUES (1.2345678, 1), (NULL, 2);
INSERT INTO child VALUES (1, 1, 0.30000001), (2, 2, NULL);
CREATE TABLE sv (id INT, f FLOAT) WITH SYSTEM VERSIONING;
CREATE TABLE svk (id INT PRIMARY KEY, f FLOAT, s TIMESTAMP(6) GENERATED ALWAYS AS ROW START,
  e TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME(s, e))
  WITH SYSTEM VERSIONING;
INSERT INTO sv VALUES (1, 1.2345678), (2, 1.2345679);
INSERT INTO svk (id, f) VALUES (1, 1.2345678), (2, 1.2345679);
UPDATE sv SET f = 2.2345678 WHERE id = 1; DELETE FROM sv WHERE id = 2;
UPDATE svk SET f = 2.2345678 WHERE id = 1; DELETE FROM svk WHERE id = 2;
CREATE TABLE uf (id INT PRIMARY KEY, f FLOAT, UNIQUE KEY (f));
INSERT INTO uf VALUES (1, 1.2345678), (2, 1.2345679);
"""
COLUMNS = ("CAST(f AS DOUBLE), CAST(g AS DOUBLE), d, u, b + 0, HEX(CAST(dt AS BINARY)), "
           "HEX(CAST(z AS BINARY)), HEX(t), HEX(CAST(l AS BINARY)), HEX(bl), e, s, j, i6, "
           "ST_AsText(p), y, tm, dc, ai, gv, CAST(gs AS DOUBLE), CAST(`sp ace` AS DOUBLE)")
QUERIES = (f"SELECT {COLUMNS} FROM nk ORDER BY 1, 2, 3, 4, 5",
           "SELECT id, CAST(f AS DOUBLE) FROM up ORDER BY id", "SELECT n FROM counts",
           "SELECT CAST(f AS DOUBLE), id FROM parent ORDER BY id",
           "SELECT id, p, CAST(f AS DOUBLE) FROM child ORDER BY id",
           "SELECT id, CAST(f AS DOUBLE), row_start, row_end FROM sv FOR SYSTEM_TIME ALL "
           "ORDER BY id, row_start",
           "SELECT id, CAST(f AS DOUBLE), s, e FROM svk FOR SYSTEM_TIME ALL ORDER BY id, s",
           "SELECT id, CAST(f AS DOUBLE) FROM uf ORDER BY id")


def test_floats_of_tables_without_a_usable_key_are_restored_exactly(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None]
        ) -> None:
    """A table without a primary key, with an UPDATE trigger or system-versioned had its
    FLOATs rounded to 6 digits by the restore (1.2345678 and 1.2345679 both came back as
    1.23457), named in a warning (and, below 1, the drill saw nothing). Now exact, every
    other value with them, every version of a system-versioned table with its ROW START
    and ROW END. A table with a FLOAT in a unique key did not restore at all (two FLOATs
    alike in 6 digits: a duplicate key); now its rows are written exactly too. A table
    with an INSERT trigger (which a restore of its rows would fire) still is named by
    both."""
    shop.execute(TABLES)
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.k", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    warned = [ln for ln in result.stderr.splitlines()  # type: ignore[attr-defined]
              if "FLOAT" in ln]
    assert len(warned) == 1 and "table ins:" in warned[0], warned
    pair = shop.pair
    target = empty_db(pair, shop.name + "_k")
    try:
        done = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                       "--target", target)
        assert done.exit_code == 0, done.stderr
        for q in QUERIES:
            assert pair.primary.query(q, shop.name + "_k") == pair.primary.query(q, shop.name), q
        scratch = empty_db(pair, shop.name + "_ks")
        drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                        "--scratch", scratch)
        assert drill.exit_code != 0, drill.stdout + drill.stderr
        (d,) = [json.loads(p.read_text()) for p in (store / "catalog/dump.k").glob("drill-*")]
        assert [m.split(":")[0] for m in d["mismatches"]] == ["ins"], d
    finally:
        for db in ("_k", "_ks"):
            pair.primary.sql(f"DROP DATABASE IF EXISTS `{shop.name}{db}`", check=False)


def test_the_drill_s_hash_tells_floats_apart_by_every_digit(maria: MariaDatabase) -> None:
    """The backup's and the drill's hash of a FLOAT (hash form 3) is its double's text:
    1.2345678, restored as 1.23457, differs (form 2 hashed ``HEX()`` of the double, which
    is the hex of its integer part: the drill passed a restore whose FLOATs were rounded
    below 1). Form 2 stays computed as it was, for the backups that recorded it."""
    maria.execute("CREATE TABLE fa (f FLOAT); INSERT INTO fa VALUES (1.2345678);"
                  "CREATE TABLE fb (f FLOAT); INSERT INTO fb VALUES (1.23457);"
                  "CREATE TABLE fc (f FLOAT); INSERT INTO fc VALUES (2.2345678);")
    with connect(maria.replica_url) as conn:
        now = table_hashes(conn)
        assert now["fa"] != now["fb"] != now["fc"] != now["fa"]
        two = table_hashes(conn, form=2)
        assert two["fa"] == two["fb"] != two["fc"]
