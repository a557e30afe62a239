"""DuckDB's own Iceberg reader (the ``iceberg`` extension's ``iceberg_scan``) reads the
tables topoff writes as docs/iceberg.md ("Querying the replica") tells analysts: a table
`topoff sync` built and replaced a day of (a later revision), of many types, one whose
upserts moved rows between days (a timestamp cursor), both then compacted, and a table
`topoff replicate` refreshed with updated rows (and a column dropped and added again
under its name; one with no row, hence no snapshot), each compared row by row and column by
column with pyiceberg's scan, and by count with the source; time travel to an older
snapshot of the current metadata file too.

The extension is the official binary packaged as a wheel for DuckDB 1.4.4, not topoff's
DuckDB: it runs in a virtualenv of its own, .venv-duckdb-iceberg, which ``./run test``
makes (the test skips without it, saying why)."""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.table import StaticTable

from support.cli import run_cli, write_config
from support.pg import make_config
from support.replica import day, publish_day, publish_full
from support.replicate import config_text
from test_iceberg_sync import catalog_file, iceberg_table
from topoff.sync import iceberg_apply, sync
from topoff.targets.iceberg.compact import compact
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.maintenance import expire

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-duckdb-iceberg"

#: run by the reader's virtualenv: the docs' query form, each table's rows pickled
READER = r"""
import datetime, json, os, pickle, sys
import duckdb, duckdb_ext
ext = os.path.join(list(duckdb_ext.__path__)[0], "extensions")
con = duckdb.connect()
con.execute("SET extension_directory = '" + ext.replace("'", "''") + "'")
con.execute("SET autoinstall_known_extensions = false")
con.execute("LOAD iceberg")
out = {}
scans, filters = json.load(sys.stdin)
for label, location, where in filters:  # what the files' statistics let DuckDB skip
    out[label] = sorted(r[0] for r in con.execute(
        "SELECT id FROM iceberg_scan(?) WHERE " + where, [location]).fetchall())
for label, location, snapshot in scans:
    scan = "iceberg_scan(?)" if snapshot is None else \
        "iceberg_scan(?, snapshot_from_timestamp = ?::TIMESTAMP)" if isinstance(snapshot, str) \
        else "iceberg_scan(?, snapshot_from_id = ?)"
    args = [location] if snapshot is None else [location, snapshot]
    try:
        rel = con.execute("SELECT * FROM " + scan, args)
    except duckdb.Error as e:
        out[label] = ("error", str(e))
        continue
    names = [d[0] for d in rel.description]
    def utc(v):  # pytz's zones as the standard library's UTC
        if isinstance(v, list):
            return [utc(x) for x in v]
        if isinstance(v, datetime.datetime) and v.tzinfo is not None:
            return v.astimezone(datetime.timezone.utc)
        return v
    out[label] = (names, [tuple(utc(v) for v in row) for row in rel.fetchall()])
sys.stdout.buffer.write(pickle.dumps(out))
"""

KINDS_SQL = """
CREATE TABLE kinds (id integer PRIMARY KEY, ts timestamptz NOT NULL, si smallint, bi bigint,
  n numeric(12, 2), nu numeric, f double precision, r real, t text, b bytea, d date,
  tsl timestamp, tm time, iv interval, u uuid, j json, jb jsonb, ai integer[], at text[],
  af double precision[], ok boolean, n38 numeric(38, 2), n40 numeric(40, 2), tz timetz,
  ts3 timestamp(3), "Mixed Case é" varchar(8), c char(3), ab boolean[], ad date[], ab8 bigint[],
  bt bit(4), ip inet, fr real[]);
"""

KINDS_ROWS = """
INSERT INTO kinds SELECT g, '{day} 00:00:00+00'::timestamptz + g * interval '1 min',
  (g % 30000)::smallint, g * 1000000007::bigint, g / 7.0, CASE g % 3 WHEN 0 THEN 'NaN'
  ELSE (g * 1.000001)::text END::numeric,
  (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '1.5e-300'])[g % 5 + 1]::float8,
  g / 3.0, 'zoë ' || g || ' 日本 🦆 ''"\\' || chr(10), decode(md5(g::text), 'hex'),
  '2026-01-01'::date + g, '2000-01-01 12:34:56.789012'::timestamp + g * interval '1 day',
  '23:59:59.999999'::time - g * interval '1 s', make_interval(months => g, secs => g / 10.0),
  md5(g::text)::uuid, ('{{"k": ' || g || ', "s": "ü"}}')::json,
  ('{{"a": [1, 2.50, null], "n": ' || g || '}}')::jsonb, ARRAY[g, NULL, -g],
  ARRAY['x,y', NULL, 'é' || g], ARRAY[g / 4.0, 'NaN', '-Infinity']::float8[], g % 2 = 0,
  (g * 10.0 ^ 33 + 0.25)::numeric(38, 2), -(g * 10.0 ^ 35 + 0.5)::numeric(40, 2),
  '12:00:00+05:30'::timetz + g * interval '1 s',
  '1999-12-31 23:59:59.123'::timestamp + g * interval '1 h',
  'ü' || g, chr(64 + g % 26), ARRAY[true, NULL, false], ARRAY['0001-01-01'::date + g, NULL],
  ARRAY[-9223372036854775808, g], (g % 16)::bit(4), ('10.0.0.' || g % 255)::inet,
  ARRAY[g / 3.0, 'Infinity', '-0']::real[]
  FROM generate_series({lo}, {hi}) g;
INSERT INTO kinds (id, ts) VALUES ({hi} + 1000, '{day} 23:00:00+00');
INSERT INTO kinds (id, ts, si, bi, n, n38, d, tsl, f, r, b, ai, at)
  VALUES ({hi} + 2000, '{day} 23:59:59.999999+00', -32768, -9223372036854775808,
  -9999999999.99, -999999999999999999999999999999999999.99, '0001-01-01',
  '0001-01-01 00:00:00', 'Infinity', '-Infinity', '', '{{}}', '{{""}}'),
  ({hi} + 2001, '{day} 00:00:00+00', 32767, 9223372036854775807, 9999999999.99,
  999999999999999999999999999999999999.99, '9999-12-31', '9999-12-31 23:59:59.999999',
  '1.7976931348623157e308', '3.4028235e38', '\\x00ff', '{{2147483647}}', '{{"\\\\"}}');
"""

UPD_SQL = """
CREATE TABLE upd (id bigint PRIMARY KEY, changed timestamptz NOT NULL, state text,
  tags text[], day date, amount numeric(10, 3), payload jsonb);
INSERT INTO upd SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', 'new',
  ARRAY['a', 'b' || g], '2026-01-01'::date + g % 30, g / 8.0, jsonb_build_object('g', g)
  FROM generate_series(1, 300) g;
CREATE TABLE ups (id int PRIMARY KEY, ts timestamp NOT NULL, v text);
INSERT INTO ups SELECT g, '{day3}'::timestamp + g * interval '1 min', 'v' || g
  FROM generate_series(1, 100) g;
INSERT INTO ups SELECT g, '{day2}'::timestamp + g * interval '1 min', 'v' || g
  FROM generate_series(101, 200) g;
CREATE TABLE none (id int PRIMARY KEY, changed timestamptz NOT NULL, x text);
"""


def reader_python(venv: Path = VENV) -> Path:
    """The reader's Python; a skip saying why there is none (what ./run could not install)."""
    python = venv / "bin" / "python"
    if not python.exists():
        failed = venv.with_name(venv.name + ".failed")
        why = " ".join(failed.read_text().split()) if failed.exists() \
            else "`./run test` makes it"
        pytest.skip(f"no {venv.name} (DuckDB 1.4.4 with its iceberg extension): {why}")
    return python


def _duckdb_scan(scans: list[tuple[str, str, int | str | None]],
                 filters: list[tuple[str, str, str]]) -> dict[str, Any]:
    out = subprocess.run([str(reader_python()), "-c", READER],
                         input=json.dumps([scans, filters]).encode(),
                         capture_output=True, check=False, text=False,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr.decode()
    result: dict[str, Any] = pickle.loads(out.stdout)
    return result


def _same(value: Any) -> Any:
    """A value compared: NaN equal to NaN, -0.0 apart from 0.0."""
    if isinstance(value, float):
        return ("nan",) if math.isnan(value) else (value, math.copysign(1, value))
    if isinstance(value, list):
        return [_same(v) for v in value]
    return value


def _sorted(rows: list[tuple]) -> list[tuple]:
    return sorted((tuple(_same(v) for v in r) for r in rows), key=lambda r: repr(r[0]))


def _pyiceberg(table: Any, snapshot: int | None = None) -> tuple[list[str], list[tuple]]:
    t = table.scan(snapshot_id=snapshot).to_arrow()
    return t.column_names, _sorted(list(zip(*(t.column(n).to_pylist() for n in
                                                t.column_names), strict=True)))


def _catalog_location(catalog_db: Path, namespace: str, name: str) -> str:
    """The metadata_location column of the SQL catalog's iceberg_tables (the docs' way)."""
    with sqlite3.connect(catalog_db) as conn:
        [(location,)] = conn.execute(
            "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = ? AND "
            "table_name = ?", (namespace, name)).fetchall()
    return str(location)


def test_duckdb_iceberg_scan_reads_what_pyiceberg_reads(db, tmp_path, monkeypatch):
    reader_python()  # skip before building anything
    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)  # small files, to compact
    db.execute(KINDS_SQL)
    db.execute(KINDS_ROWS.format(day=day(3), lo=1, hi=60))
    db.execute(KINDS_ROWS.format(day=day(2), lo=101, hi=160))
    db.execute(UPD_SQL.format(day3=day(3), day2=day(2)))
    db.sync()
    url = str(tmp_path / "published")
    dataset = make_config(db, 'dataset = "kinds"\n[tables.kinds]\nmethod = "append"\n'
                          'cursor = "ts"\n[tables.ups]\nmethod = "upsert"\ncursor = "ts"\n',
                          lookback_days=1, chunk_bytes=4096)
    publish_full(dataset, url)
    publish_day(dataset, url, day(2))
    target = catalog_file(tmp_path)
    sync(url, target)
    snap = iceberg_table(target, "public.kinds").current_snapshot()
    first = snap.snapshot_id  # its time as DuckDB's TIMESTAMP (UTC, to the millisecond)
    first_at = datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC).replace(tzinfo=None)
    db.execute(KINDS_ROWS.format(day=day(2), lo=201, hi=230))  # late rows: day(2) again
    db.execute(f"UPDATE ups SET ts = '{day(2)} 12:00', v = 'moved' WHERE id % 3 = 0")
    db.sync()
    publish_day(dataset, url, day(2))
    result = sync(url, target)
    assert f"incremental/{day(2)}/r2" in result.applied, result.applied
    assert any(c.files_after < c.files_before for c in compact(target))

    replicate = write_config(tmp_path / "replicate.toml", config_text(target, {"app": (
        db.standby_url, {"upd": {"method": "updater", "cursor": "changed", "drop_columns": True},
                         "none": {"method": "inserter", "cursor": "changed"}})}))

    def once() -> str:  # topoff replicate --once
        out = run_cli("replicate", "--config", replicate, "--once")
        assert out.exit_code == 0, out.stderr
        return out.stderr

    once()
    db.execute("ALTER TABLE upd DROP COLUMN amount")  # by field id: the old values are gone
    db.sync()
    once()
    db.execute("ALTER TABLE upd ADD COLUMN amount text")
    db.execute("UPDATE upd SET state = 'changed ✓', changed = now(), tags = NULL, "
               "payload = '{\"x\": \"ÿ\"}', amount = 'a' || id WHERE id % 7 = 0")
    db.sync()
    assert f"app.public.upd -> app.upd: {300 // 7} rows" in once()

    kinds = iceberg_table(target, "public.kinds")
    upd = open_catalog(read_settings(target)).load_table(("app", "upd"))
    assert kinds.current_snapshot().snapshot_id != first
    catalog_db = tmp_path / "catalog.db"
    locations = {"kinds": _catalog_location(catalog_db, "replica", "kinds"),
                 "upd": _catalog_location(catalog_db, "app", "upd")}
    assert locations == {"kinds": kinds.metadata_location, "upd": upd.metadata_location}
    since = datetime.combine(day(2), time(), UTC)
    filters: dict[str, tuple[str, str, Callable[[dict[str, Any]], bool]]] = {
        "ts": ("kinds", f"ts >= '{since.isoformat()}'", lambda r: r["ts"] >= since),
        "id": ("kinds", "id BETWEEN 120 AND 210", lambda r: 120 <= r["id"] <= 210),
        "t": ("kinds", "t > 'zoë 15'", lambda r: r["t"] is not None and r["t"] > "zoë 15"),
        "n": ("kinds", "n > 20", lambda r: r["n"] is not None and r["n"] > 20),
        "n38": ("kinds", "n38 < 100000000000000000000000000000000000",
                lambda r: r["n38"] is not None and r["n38"] < 10 ** 35),
        "f": ("kinds", "f > 0", lambda r: r["f"] is not None  # DuckDB: NaN above all
              and (r["f"] > 0 or math.isnan(r["f"]))),
        "d": ("kinds", "d = DATE '2026-04-21'",
              lambda r: r["d"] == datetime(2026, 4, 21).date()),
        "nu": ("kinds", "nu = 'NaN'", lambda r: r["nu"] == "NaN"),
        "state": ("upd", "state = 'changed ✓'", lambda r: r["state"] == "changed ✓"),
        "amount": ("upd", "amount IS NOT NULL", lambda r: r["amount"] is not None),
        "ups_ts": ("ups", f"ts >= TIMESTAMP '{day(2)} 00:00:00'",
                   lambda r: r["ts"] >= datetime.combine(day(2), time())),
    }
    locations["none"] = _catalog_location(catalog_db, "app", "none")
    locations["ups"] = _catalog_location(catalog_db, "replica", "ups")
    got = _duckdb_scan([("kinds", locations["kinds"], None), ("upd", locations["upd"], None),
                        ("none", locations["none"], None), ("ups", locations["ups"], None),
                        ("kinds@first", locations["kinds"], first),
                        ("kinds@time", locations["kinds"], first_at.isoformat())],
                       [(k, locations[t], w) for k, (t, w, _) in filters.items()])
    for key, (name, _, keep) in filters.items():
        t = iceberg_table(target, "public.ups").scan().to_arrow() if name == "ups" \
            else (kinds if name == "kinds" else upd).scan().to_arrow()
        want_ids = sorted(r["id"] for r in t.to_pylist() if keep(r))
        assert want_ids and got[key] == want_ids, (key, got[key], want_ids)
    assert got["amount"] == list(range(7, 301, 7))  # the dropped column's values: none

    counts = {name: db.standby_query(f"SELECT count(*) FROM {name}")[0][0]
              for name in ("kinds", "upd")}
    none = open_catalog(read_settings(target)).load_table(("app", "none"))
    counts["none"] = 0
    ups = iceberg_table(target, "public.ups")
    counts["ups"] = 200
    for label, table, snapshot in (("kinds", kinds, None), ("upd", upd, None),
                                   ("none", none, None), ("ups", ups, None),
                                   ("kinds@first", kinds, first)):
        names, want = _pyiceberg(table, snapshot)
        have_names, have = got[label][0], _sorted(got[label][1])
        assert have_names == names, label
        assert len(have) == len(want), label
        if snapshot is None:
            assert len(have) == counts[label], label
        for a, b in zip(have, want, strict=True):
            for name, x, y in zip(names, a, b, strict=True):
                assert x == y, (label, a[0], name, x, y)
    assert len(got["kinds@first"][1]) == counts["kinds"] - 33  # the late rows
    assert _sorted(got["kinds@time"][1]) == _sorted(got["kinds@first"][1])


def test_an_older_metadata_file_is_read_while_its_current_snapshot_is_kept(db, tmp_path):
    """iceberg.md: a query given an older metadata file reads it for the next 10 commits
    of the table, unless an expiry removed that file's current snapshot (its manifest
    list is deleted: no reader can read that file then, though it is still there)."""
    reader_python()
    db.execute("CREATE TABLE ev (id integer, ts timestamptz NOT NULL)")
    db.execute(f"INSERT INTO ev VALUES (1, '{day(3)} 01:00+00'), (2, '{day(2)} 01:00+00')")
    db.sync()
    url = str(tmp_path / "published")
    dataset = make_config(db, 'dataset = "ev"\n[tables.ev]\nmethod = "append"\n'
                          'cursor = "ts"\n', lookback_days=1)
    publish_full(dataset, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    first = iceberg_table(target, "public.ev").metadata_location
    db.execute(f"INSERT INTO ev VALUES (3, '{day(1)} 01:00+00')")
    db.sync()
    publish_day(dataset, url, day(1))
    sync(url, target)
    second = iceberg_table(target, "public.ev").metadata_location  # its snapshot is kept
    expire(target, timedelta(0))  # the first file's current snapshot is expired
    current = iceberg_table(target, "public.ev").metadata_location
    assert Path(first).exists() and len({first, second, current}) == 3
    assert StaticTable.from_metadata(second).scan().to_arrow().num_rows == 3
    with pytest.raises(FileNotFoundError):
        StaticTable.from_metadata(first).scan().to_arrow()
    got = _duckdb_scan([("current", current, None), ("second", second, None),
                        ("first", first, None)], [])
    assert sorted(r[0] for r in got["current"][1]) == [1, 2, 3]
    assert sorted(r[0] for r in got["second"][1]) == [1, 2, 3]
    assert got["first"][0] == "error" and "Cannot open file" in got["first"][1], got["first"]
    assert "/metadata/snap-" in got["first"][1]
    page = " ".join((ROOT / "docs" / "iceberg.md").read_text().split())
    assert "unless `topoff iceberg expire` removed its current snapshot" in page
