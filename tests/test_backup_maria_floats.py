"""FLOAT values through a MariaDB backup: mariadb-dump prints a FLOAT with 6 significant
digits (``3.40282e38`` for 3.4028234e38), which a restore stores as another float."""

from __future__ import annotations

import json
from pathlib import Path

from support.backup import AgeKey
from support.cli import run_cli
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
    one the backup cannot set again (no key) is named at backup time and by the drill."""
    shop.execute(FLOATS)
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.f", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert "nokey" in result.stderr and "FLOAT" in result.stderr  # type: ignore[attr-defined]
    pair = shop.pair
    target = empty_db(pair, shop.name + "_f")
    try:
        done = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                       "--target", target)
        assert done.exit_code == 0, done.stderr
        for q in (EXACT, "SELECT k, at, CAST(f AS DOUBLE) FROM tk ORDER BY k, at"):
            assert pair.primary.query(q, shop.name + "_f") == pair.primary.query(q, shop.name)
        pair.primary.sql(f"DROP DATABASE `{shop.name}_f`")
        scratch = empty_db(pair, shop.name + "_s")
        drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity),
                        "--scratch", scratch)
        assert drill.exit_code != 0
        (d,) = [json.loads(p.read_text()) for p in (store / "catalog/dump.f").glob("drill-*")]
        assert [m.split(":")[0] for m in d["mismatches"]] == ["nokey"], d
    finally:
        for db in ("_f", "_s"):
            pair.primary.sql(f"DROP DATABASE IF EXISTS `{shop.name}{db}`", check=False)
