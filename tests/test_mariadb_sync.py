"""``topoff sync`` of datasets exported from MariaDB into DuckDB and PostgreSQL replicas.

One MariaDB table with every mapped type is exported once per module; each replica kind
syncs it and every value is compared with what MariaDB itself returns for the row
(mysql-connector's own Python values), after the documented representations: zero dates
are NULL, TIMESTAMP is an instant in UTC, BIT is its digits, FLOAT is a 32-bit float.
"""

from __future__ import annotations

import json
import math
import random
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.mariadb import MariaDatabase, MariaPair
from support.replica import fill, is_postgres, nommer_config, publish_standard, reader
from test_mariadb_types import CASES, _create, _rows_count
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.floats import float_text
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

DAY = (datetime.now(UTC) - timedelta(days=3)).date()
#: zero dates and zero-in-date values, written as NULL (docs/mariadb.md, "Zero dates")
ZERO = "zd DATE NULL, zdt DATETIME(6) NULL, at DATETIME(6) NULL"


@pytest.fixture(scope="module")
def published(maria_pair: MariaPair, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[MariaDatabase, str]:
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    _create(maria)
    n = _rows_count()
    maria.execute(
        f"ALTER TABLE every_type ADD COLUMN ({ZERO}); SET SESSION sql_mode = '';"
        f"UPDATE every_type SET zd = '0000-00-00', zdt = '2024-00-10 10:00:00' WHERE id = 0;"
        f"UPDATE every_type SET zd = '2024-05-00', zdt = '0000-00-00 00:00:00' WHERE id = 1;"
        f"UPDATE every_type SET zd = '2024-05-06', zdt = '2024-05-06 01:02:03.000004' "
        f"WHERE id = 2;"
        f"UPDATE every_type SET at = '{DAY} 00:00:00' + INTERVAL id MICROSECOND "
        f"WHERE id < {n - 1};"
        f"UPDATE every_type SET at = '{DAY} 23:59:59.999999' WHERE id = {n - 1}")
    # the same values without the floating-point columns, which verify cannot compare
    plain = [n for n, _t, _v in CASES if n not in ("flt", "dbl")] + ["gen", "gst", "zd", "zdt",
                                                                       "at"]
    maria.execute(f"CREATE TABLE plain (id INT PRIMARY KEY) AS SELECT id, "
                  f"{', '.join(f'`{n}`' for n in plain)} FROM every_type;"
                  "SET SESSION sql_mode = '';"  # a zero date in the cursor: NULL in replicas
                  "INSERT INTO plain (id, at) VALUES (100, '0000-00-00 00:00:00')")
    root = tmp_path_factory.mktemp("maria-pub") / "pub"
    store = open_store(str(root))
    config = Config(dataset="maria", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="every_type", method="append", cursor="at"),
        TableConfig(schema=maria.name, name="plain", method="append", cursor="at")))
    export_full(config, store)
    yield maria, str(root)
    maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{maria.name}`", check=False)


def _source_rows(maria: MariaDatabase) -> tuple[list[str], list[tuple[Any, ...]]]:
    with connect(maria.replica_url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM every_type LIMIT 0")
        names = [d[0] for d in cur.description]
        cur.fetchall()
        # MariaDB prints a FLOAT with 6 digits, a DOUBLE(M,D) with D decimals: as a DOUBLE
        # it comes whole
        exprs = [f"CAST(`{n}` AS DOUBLE)" if n in AS_DOUBLE else f"`{n}`" for n in names]
        cur.execute(f"SELECT {', '.join(exprs)} FROM every_type ORDER BY id")
        rows = cur.fetchall()
        cur.close()
    return names, rows


FLOAT32 = {n for n, t, _v in CASES if t == "FLOAT"}
AS_DOUBLE = FLOAT32 | {n for n, t, _v in CASES if t.startswith("DOUBLE(")}
BITS = {n: int(t[4:-1]) for n, t, _v in CASES if t.startswith("BIT(")}
JSONS = {n for n, t, _v in CASES if t == "JSON"}
DECIMALS = {n for n, t, _v in CASES if t.startswith("DECIMAL")}


def _norm(name: str, v: Any) -> Any:
    """A value as both sides can be compared."""
    if v is None:
        return None
    if isinstance(v, memoryview | bytearray):
        v = bytes(v)
    if name in BITS:
        if isinstance(v, bytes):  # MariaDB: the bits as big-endian bytes
            v = int.from_bytes(v, "big")
        return format(v, f"0{BITS[name]}b") if isinstance(v, int) else str(v)
    if name in FLOAT32:
        return struct.unpack("f", struct.pack("f", float(v)))[0]
    if name in JSONS:
        return json.loads(v) if isinstance(v, str | bytes) else v
    if name in DECIMALS:
        return Decimal(str(v))
    if name in ("yr", "gen") or (isinstance(v, Decimal) and v == v.to_integral_value()):
        return int(v)
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    if name == "en" or name == "st":
        return ",".join(sorted(v)) if isinstance(v, set) else v
    return v


def _replica_rows(replica: str, schema: str, names: list[str]) -> list[tuple[Any, ...]]:
    with reader(replica) as r:
        cols = ", ".join(f'"{n}"' for n in names)
        return r.query(f'SELECT {cols} FROM "{schema}".every_type ORDER BY id')


def test_every_type_lands_exactly(published, replica: str, tmp_path: Path) -> None:
    maria, root = published
    result = sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    assert result.base_loaded is not None
    names, want = _source_rows(maria)
    got = _replica_rows(replica, maria.name, names)
    assert len(got) == len(want) == _rows_count()
    for w, g in zip(want, got, strict=True):
        for name, a, b in zip(names, w, g, strict=True):
            if name in ("zd", "zdt") and w[0] in (0, 1):
                assert b is None, (name, w[0], b)  # a zero date is NULL by policy
                continue
            assert _norm(name, a) == _norm(name, b), (name, w[0], a, b,
                                                      "postgres" if is_postgres(replica)
                                                      else "duckdb")


def test_incremental_days_sync_on_top(published, replica: str, tmp_path: Path) -> None:
    maria, root = published
    store = open_store(root)
    config = Config(dataset="maria", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="every_type", method="append", cursor="at"),
        TableConfig(schema=maria.name, name="plain", method="append", cursor="at")))
    export_incremental(config.with_export(lookback_days=0), store, Window.day(DAY))
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    names, want = _source_rows(maria)
    got = _replica_rows(replica, maria.name, names)
    assert [g[0] for g in got] == [w[0] for w in want]  # the day replaced, no duplicates
    assert [_norm("tx", g[names.index("tx")]) for g in got] == \
        [w[names.index("tx")] for w in want]


def test_verify_against_the_mariadb_source(published, replica: str, tmp_path: Path) -> None:
    maria, root = published
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    report = verify(replica, maria.replica_url)
    by_table = {t.table: t for t in report.tables}
    plain = by_table[f"{maria.name}.plain"]
    assert plain.equal and plain.compared_rows == _rows_count() + 1, report.to_json()
    # FLOAT and DOUBLE columns: hashed row by row from their exact values
    floats = by_table[f"{maria.name}.every_type"]
    assert floats.equal and floats.compared_rows == _rows_count(), report.to_json()

    # one changed value in one day of the source: that day differs, with equal counts
    # (and a float one ulp away from what was exported)
    maria.execute("UPDATE plain SET vc = 'changed' WHERE id = 1;"
                  "UPDATE every_type SET dbl = 0.3 WHERE id = 4")
    try:
        again = {t.table: t for t in verify(replica, maria.replica_url).tables}
        for name in ("plain", "every_type"):
            [diff] = again[f"{maria.name}.{name}"].differences
            assert diff.day == str(DAY) and diff.source_rows == diff.replica_rows
            assert diff.same_content  # (the counts are the same)
    finally:
        maria.execute("UPDATE plain SET vc = (SELECT vc FROM every_type WHERE id = 1) "
                      "WHERE id = 1; UPDATE every_type SET dbl = 0.30000000000000004 "
                      "WHERE id = 4")


def test_a_postgresql_and_a_mariadb_dataset_feed_one_replica(published, db, replica: str,
                                                            tmp_path: Path) -> None:
    """One analytics replica topped off from a PostgreSQL standby's dataset and a MariaDB
    replica's dataset; each verified against its own source."""
    maria, root = published
    fill(db, days=2, per_day=30)
    pg_url = str(tmp_path / "nommer")
    publish_standard(nommer_config(db), pg_url)
    sync(pg_url, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    with reader(replica) as r:
        assert r.query("SELECT count(*) FROM public.messages")[0][0] == 60
        assert r.query(f'SELECT count(*) FROM "{maria.name}".plain')[0][0] == \
            _rows_count() + 1
    assert verify(replica, db.standby_url, dataset="datanommer").equal
    report = verify(replica, maria.replica_url, dataset="maria")
    assert {t.table: t.equal for t in report.tables}[f"{maria.name}.plain"]


def test_float_texts_are_postgresql_s_own(db) -> None:
    """The canonical text of a float (verify of tables with FLOAT/DOUBLE columns) is what
    PostgreSQL prints, for random bit patterns and edge values."""
    rng = random.Random(9)
    doubles = [5e-324, 1e15, 1e16, 999999999999999.9, 1e-4, 1e-5, 0.1, 123456789.125,
               1.7976931348623157e308, 2.2250738585072014e-308, -0.0, 100.0]
    while len(doubles) < 3000:
        v = struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(v):
            doubles.append(v)
        doubles.append(rng.uniform(-1e6, 1e6))
    singles = [struct.unpack("f", struct.pack("f", v))[0] for v in
               (3.4028234e38, 1.1754944e-38, 16777217.0, 0.1, 1e6, 999999.0, 1e-4, 1e-5)]
    while len(singles) < 3000:
        v = struct.unpack("f", rng.getrandbits(32).to_bytes(4, "little"))[0]
        if math.isfinite(v):
            singles.append(v)
    with db.primary() as conn:
        pg64 = conn.execute("SELECT x::text FROM unnest(%s::float8[]) x", (doubles,)).fetchall()
        pg32 = conn.execute("SELECT x::real::text FROM unnest(%s::float8[]) x",
                            (singles,)).fetchall()
    assert [float_text(v, 64, "exact") for v in doubles] == [r[0] for r in pg64]
    assert [float_text(v, 32, "exact") for v in singles] == [r[0] for r in pg32]


def test_a_nul_character_is_kept_or_refused_with_its_reason(maria: MariaDatabase, replica: str,
                                                            tmp_path: Path) -> None:
    """MariaDB text and JSON's \\u0000 may hold NUL: a DuckDB replica keeps it (verify
    equal); PostgreSQL cannot store it in text or jsonb: exit 7 naming the reason, never
    "the file is damaged", and nothing applied."""
    from support.cli import error_lines, run_cli

    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT, j JSON); INSERT INTO t VALUES "
                  "(1, CONCAT('a', CHAR(0 USING utf8mb4), 'b'), '{\"k\": 1}'), "
                  "(2, 'ok', '{\"k\": \"\\\\u0000\"}')")
    (tmp_path / "c.toml").write_text(
        f'dataset = "d"\n[tables.t]\nschema = "{maria.name}"\nmethod = "snapshot"\n')
    out = str(tmp_path / "out")
    assert run_cli("export", "full", "--config", str(tmp_path / "c.toml"), "--source",
                   maria.replica_url, "--to", out).exit_code == 0
    synced = run_cli("sync", out, replica)
    if not is_postgres(replica):
        assert synced.exit_code == 0, synced.stderr
        checked = run_cli("verify", replica, "--against", maria.replica_url)
        assert checked.exit_code == 0 and "equal (2 rows)" in checked.stdout, checked.stdout
        refused = run_cli("verify", replica, "--against", maria.primary_url)
        assert refused.exit_code == 4, refused.stderr
        _, hint = error_lines(refused)  # the options verify has
        assert "--against" in hint and "--allow-primary" in hint and "--source" not in hint
        return
    assert synced.exit_code == 7, synced.stderr
    error, hint = error_lines(synced)
    assert "holds a NUL character" in error and "DuckDB or Iceberg" in hint


def test_values_holding_the_row_text_s_marks_verify_exactly(maria: MariaDatabase, replica: str,
                                                            tmp_path: Path) -> None:
    """Values holding U+001D-U+001F hash as on the replica, and moving them is a difference
    (a text of U+001E is not NULL), as for a PostgreSQL source."""
    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b VARCHAR(9), f DOUBLE); "
                  "INSERT INTO t VALUES (1, NULL, 'r', 1.5), "
                  "(2, CONCAT('p', CHAR(31), 'q'), 'r', NULL), "
                  "(3, CONCAT(CHAR(29), CHAR(30)), CHAR(31), 0)")
    config = Config(dataset="d", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="t", method="snapshot"),))
    out = str(tmp_path / "out")
    with open_store(out) as store:
        export_full(config, store)
    sync(out, replica)
    assert verify(replica, maria.replica_url).equal
    for change in ("a = CHAR(30) WHERE id = 1", "a = 'p', b = CONCAT('q', CHAR(31), 'r') "
                   "WHERE id = 2"):
        maria.execute(f"UPDATE t SET {change}")
        report = verify(replica, maria.replica_url)
        assert [d.what for t in report.tables for d in t.differences] == [
            "same count, different content"], change
