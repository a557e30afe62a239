"""Every value PostgreSQL accepts arrives exactly in both targets: the edge values of each
type family (BC dates, infinities, NaN in numeric(p,s), 24:00:00, extreme intervals,
subnormal floats, arrays with lower bounds, composites of NULLs...), compared value by value
with the source, and verified equal."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import zstandard

from support.pg import make_config
from support.replica import columns, connect_pg, day, is_postgres, publish_day, query
from topoff.dataset.manifest import Column
from topoff.errors import IntegrityError
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.sync import sync
from topoff.targets.base import LoadSpec, TableDef, TableRef
from topoff.targets.duckdb import DuckDBTarget
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

SCHEMA = """
CREATE TYPE pair AS (a integer, b text);
CREATE TABLE edges (
    id integer PRIMARY KEY,
    i2 smallint, i8 bigint, f4 real, f8 double precision,
    n102 numeric(10,2), n3810 numeric(38,10), n numeric,
    b boolean, t text, ch char(4), j json, jb jsonb,
    tstz timestamptz, ts timestamp, d date, tm time, tmtz timetz, iv interval,
    by bytea, u uuid, ai integer[], at text[], ab boolean[],
    comp pair, x xml, rng int4range, ip inet
);
"""
# (column, values): row i+1 gets values[i] (NULL past the end)
EDGES: dict[str, list[Any]] = {
    "i2": [-32768, 32767, 0],
    "i8": [-9223372036854775808, 9223372036854775807],
    "f4": ["NaN", "Infinity", "-Infinity", "-0", "1e-45", "3.4028235e38", "0.1",
           "1.1754942e-38", "16777217"],
    "f8": ["NaN", "Infinity", "-Infinity", "-0", "5e-324", "2.2250738585072014e-308",
           "1.7976931348623157e308", "0.1", "1e15", "1e16", "123456789012345678",
           "0.30000000000000004", "100"],
    "n102": ["NaN", "99999999.99", "-0.01", "0", "1.50"],
    "n3810": ["9999999999999999999999999999.9999999999", "-0.0000000001"],
    "n": ["12345678901234567890123456789012345678901234567890.1234567890123456789",
          "NaN", "Infinity", "-Infinity", "1e-100", "-0.000", "1.50"],
    "b": [True, False],
    "t": ["back\\slash \"quote\" 'single'", "line\nbreak\r\n", "\\.", "", "tab\tü€𝄞",
          ",", "NULL"],
    "ch": ["ab", "", "abcd", " a"],
    "j": ['"\\ud800"', '{"a": 1, "a": 2}', " [1, 2] ", '"\\u0000"', "1e999"],
    "jb": ['{"k": [1, {"x": null}], "s": "q\\"t"}', '"\\u00e9"', "1.50"],
    "tstz": ["4713-01-01 00:00:00+00 BC", "0001-12-31 23:59:59.999999+00 BC",
             "0044-03-15 12:00:00.5+00 BC", "infinity", "-infinity",
             "294246-12-31 23:59:59.999999+00", "2000-01-01 00:00:00.000001+00",
             "1969-12-31 23:59:59.999999+00"],
    "ts": ["4713-01-01 00:00:00 BC", "0001-01-01 00:00:00 BC", "0044-03-15 12:00:00.5 BC",
           "infinity", "-infinity", "294246-12-31 23:59:59.999999", "0001-01-01 00:00:00"],
    "d": ["4713-01-01 BC", "0001-01-01 BC", "0001-12-31 BC", "5874897-12-31", "infinity",
          "-infinity", "2024-02-29"],
    "tm": ["24:00:00", "00:00:00", "23:59:59.999999"],
    "tmtz": ["24:00:00+15:59", "00:00:00-15:59", "12:00:00+05:30", "12:00:00.000001+00"],
    "iv": ["-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807",
           "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807",
           "1 mon -1 days +00:00:00.000001", "-00:00:00.000001", "0"],
    "by": [b"\x00", b"", b"\\x,\"\n", bytes(range(256))],
    "u": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "ai": ["{1,NULL}", "[0:1]={1,2}", "{}", "{{1,2},{3,4}}", "{-2147483648}"],
    "at": ['{"a,b","q\\"",""," x ",NULL,"NULL","nUll","\\\\","{}"}', "{{a,b},{c,d}}", "{}",
           '{"\\n"}'],
    "ab": ["{t,f,NULL}", "{}"],
    "comp": ["(,)", '(1,"x,y")', '(,"")'],
    "x": ['<?xml version="1.0" encoding="UTF-8"?><a>1</a>', "<b/>text", ""],
    "rng": ["empty", "[1,5)", "(,)"],
    "ip": ["::1", "192.168.0.1/24", "10.0.0.0/8"],
}
COLUMNS = list(EDGES)
ROWS = max(len(v) for v in EDGES.values()) + 1  # the last row: NULL in every column
CONFIG = """
dataset = "edges"

[tables.edges]
method = "snapshot"
"""
BC = re.compile(r"^(\S+) \(BC\)(.*)$")


@pytest.fixture
def edges_db(db):
    db.execute(SCHEMA)
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    marks = ", ".join(["%s"] * len(COLUMNS))
    with db.primary() as conn:
        for i in range(ROWS):
            values = [EDGES[c][i] if i < len(EDGES[c]) else None for c in COLUMNS]
            conn.execute(f"INSERT INTO edges (id, {names}) VALUES ({i + 1}, {marks})",
                         values)
    db.sync()
    return db


def source_text(url: str) -> dict[str, dict[int, str | None]]:
    """Each value as PostgreSQL's output function writes it (what COPY writes)."""
    with connect_pg(url) as conn:
        return _output_text(conn)


def _output_text(conn: psycopg.Connection) -> dict[str, dict[int, str | None]]:
    for name, value in (("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"),
                        ("TimeZone", "UTC"), ("extra_float_digits", "1")):
        conn.execute("SELECT set_config(%s, %s, false)", [name, value])
    out = ", ".join(f'CASE WHEN num_nulls("{c}") = 1 THEN NULL ELSE concat("{c}") END'
                    for c in COLUMNS)
    found = conn.execute(f"SELECT id, {out} FROM public.edges").fetchall()
    return {c: {r[0]: r[i + 1] for r in found} for i, c in enumerate(COLUMNS)}


def float_bits(value: Any, single: bool) -> Any:
    if value is None:
        return None
    v = float(value)
    return "nan" if math.isnan(v) else struct.pack(">f" if single else ">d", v)


def duckdb_values(path: str) -> dict[str, dict[int, Any]]:
    """Each value of the DuckDB replica, in the form the test compares (see below)."""
    con = duckdb.connect(path, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                 "WHERE table_name = 'edges'").fetchall())
        exprs = []
        for c in COLUMNS:
            q = f'"{c}"'
            if types[c] in ("FLOAT", "DOUBLE") or types[c].endswith("[]"):
                exprs.append(q)  # Python floats (bit patterns) and lists
            elif types[c] == "BLOB":
                exprs.append(f"'\\x' || lower(hex({q}))")
            elif types[c] == "INTERVAL":
                exprs.append(f"CASE WHEN {q} IS NOT NULL THEN ["
                             f"datepart('year', {q}) * 12 + datepart('month', {q}), "
                             f"datepart('day', {q}), datepart('hour', {q}) * 3600000000 + "
                             f"datepart('minute', {q}) * 60000000 + "
                             f"datepart('microseconds', {q})] END")
            else:
                exprs.append(f"CAST({q} AS VARCHAR)")
        found = con.execute(f"SELECT id, {', '.join(exprs)} FROM public.edges").fetchall()
    finally:
        con.close()
    out = {c: {r[0]: r[i + 1] for r in found} for i, c in enumerate(COLUMNS)}
    for c in ("d", "ts", "tstz"):  # DuckDB writes BC years as "0044-03-15 (BC) ..."
        out[c] = {k: (BC.sub(r"\1\2 BC", v) if v else v) for k, v in out[c].items()}
    return out


def expected_from_source(url: str, text: dict[str, dict[int, str | None]]) -> dict[str, Any]:
    """The source's values in the forms duckdb_values gives."""
    exp: dict[str, Any] = dict(text)
    with connect_pg(url) as conn:
        found = conn.execute(
            "SELECT id, ai, at, ab, CASE WHEN iv IS NULL THEN NULL ELSE ARRAY["
            "(extract(year FROM iv) * 12 + extract(month FROM iv))::bigint, "
            "extract(day FROM iv)::bigint, (extract(hour FROM iv) * 3600000000 + "
            "extract(minute FROM iv) * 60000000 + extract(microseconds FROM iv))::bigint] END "
            "FROM public.edges").fetchall()
    for i, c in enumerate(["ai", "at", "ab", "iv"]):
        exp[c] = {r[0]: r[i + 1] for r in found}
    return exp


def test_every_edge_value_round_trips_exactly(edges_db, replica, tmp_path):
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(edges_db, CONFIG), store)
    sync(url, replica)  # no value stops the sync

    text = source_text(edges_db.standby_url)
    if is_postgres(replica):
        with psycopg.connect(replica) as conn:
            assert _output_text(conn) == text
    else:
        got = duckdb_values(replica)
        exp = expected_from_source(edges_db.standby_url, text)
        types = dict(columns(replica, "public.edges"))
        # the columns holding a value their DuckDB type cannot hold keep PostgreSQL's text
        assert {c for c in COLUMNS if types[c] == "VARCHAR"} == {
            "n102", "n", "t", "ch", "j", "ai", "at", "comp", "x", "rng", "ip"}
        assert (types["n3810"], types["jb"], types["ab"]) == ("DECIMAL(38,10)", "JSON",
                                                              "BOOLEAN[]")
        exp["b"] = {k: {"t": "true", "f": "false"}.get(v or "", v) for k, v in exp["b"].items()}
        wrong = {}
        for c in COLUMNS:
            if c in ("f4", "f8"):
                g = {k: float_bits(v, c == "f4") for k, v in got[c].items()}
                e = {k: float_bits(v, c == "f4") for k, v in exp[c].items()}
            elif c in ("ai", "at"):  # widened: PostgreSQL's array text
                g, e = got[c], text[c]
            else:
                g, e = got[c], exp[c]
            if g != e:
                wrong[c] = {k: (g[k], e[k]) for k in e if g[k] != e[k]}
        assert wrong == {}
    report = verify(replica, edges_db.standby_url)
    assert report.equal, report.to_json()
    assert report.tables[0].compared_rows == ROWS


def _csv_zst(path: Path, lines: list[str]) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress("\n".join(lines).encode() + b"\n"))
    return path


def test_a_misfit_in_a_later_load_widens_the_rows_loaded_before(tmp_path):
    """Rows already in DECIMAL / list / JSON columns become PostgreSQL's exact text when a
    later partition brings a NaN, a 2-D array, lower bounds or a lone surrogate; rows of
    columns without a misfit stay as they are."""
    cols = [Column("id", "integer"), Column("n", "numeric(6,2)"), Column("a", "text[]"),
            Column("b", "boolean[]"), Column("j", "json"), Column("k", "integer[]")]
    table = TableDef("public.w", TableRef("public", "w"), "upsert", cols, ["id"], None, None,
                     "UTC")
    first = _csv_zst(tmp_path / "1.csv.zst", [
        "id,n,a,b,j,k",
        '1,1.50,"{""a b"",NULL,"""",""NULL"",""q\\"""",""x\\\\y"",""{}""}","{t,NULL}",'
        '"{""a"":  1}","{1,2}"',
        "2,,,,,"])
    second = _csv_zst(tmp_path / "2.csv.zst", [
        "id,n,a,b,j,k", '3,NaN,{{x}},[2:2]={f},"""\\ud800""",{3}'])
    target = DuckDBTarget(tmp_path / "r.duckdb")
    try:
        with target.transaction():
            target.create_table(table)
            target.load(LoadSpec(table, [first]))
        with target.transaction():
            assert target.load(LoadSpec(table, [second], mode="upsert")) == 1
        assert dict(target.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                   "WHERE table_name = 'w'")) == {
            "id": "INTEGER", "n": "VARCHAR", "a": "VARCHAR", "b": "VARCHAR", "j": "VARCHAR",
            "k": "INTEGER[]"}
        assert target.execute("SELECT * FROM public.w ORDER BY id") == [
            (1, "1.50", '{"a b",NULL,"","NULL","q\\"","x\\\\y","{}"}', "{t,NULL}",
             '{"a":  1}', [1, 2]),
            (2, None, None, None, None, None),
            (3, "NaN", "{{x}}", "[2:2]={f}", '"\\ud800"', [3])]
    finally:
        target.close()


def test_dates_load_beside_columns_named_like_the_load_s_own(tmp_path):
    """A load reads each date's or timestamp's text once, in a column of its own beside
    the file's: a dataset's columns of that name (in any case) load as they are, and a BC
    date, a timestamp's year and a malformed text are read as without it."""
    cols = [Column("topoff_once_1", "text"), Column("d", "date"),
            Column("TOPOFF_ONCE_2", "integer"), Column("ts", "timestamp without time zone"),
            Column("tz", "timestamp with time zone")]
    table = TableDef("public.o", TableRef("public", "o"), "upsert", cols,
                     ["topoff_once_1"], None, None, "UTC")
    good = _csv_zst(tmp_path / "1.csv.zst", [
        "topoff_once_1,d,TOPOFF_ONCE_2,ts,tz",
        "a,0044-03-15 BC,1,0001-01-01 00:00:00 BC,2020-01-02 03:04:05.5+00",
        "b,infinity,2,-infinity,1999-12-31 23:59:59+00", "c,,,,"])
    bad = _csv_zst(tmp_path / "2.csv.zst", [
        "topoff_once_1,d,TOPOFF_ONCE_2,ts,tz", "d,abc BC,3,,"])
    target = DuckDBTarget(tmp_path / "r.duckdb")
    try:
        with target.transaction():
            target.create_table(table)
            assert target.load(LoadSpec(table, [good])) == 3
        assert target.execute("SELECT topoff_once_1, CAST(d AS VARCHAR), topoff_once_2, "
                              "CAST(ts AS VARCHAR), CAST(timezone('UTC', tz) AS VARCHAR) "
                              "FROM public.o ORDER BY 1") == [
            ("a", "0044-03-15 (BC)", 1, "0001-01-01 (BC) 00:00:00", "2020-01-02 03:04:05.5"),
            ("b", "infinity", 2, "-infinity", "1999-12-31 23:59:59"),
            ("c", None, None, None, None)]
        with pytest.raises(IntegrityError, match=r"column .d.: .abc BC. is not a value"), \
                target.transaction():
            target.load(LoadSpec(table, [bad], mode="upsert"))
    finally:
        target.close()


def test_a_replica_made_when_numeric_was_a_double_still_loads_and_verifies(db, tmp_path):
    """Replicas built before an unconstrained numeric was kept as text hold it as DOUBLE:
    further loads still go into it, and verify compares it as the double it is."""
    replica = str(tmp_path / "replica.duckdb")
    db.execute("CREATE TABLE old (id integer PRIMARY KEY, n numeric); "
               "INSERT INTO old VALUES (1, 1.5), (2, NULL), (3, 'NaN')")
    url = str(tmp_path / "published")
    config = make_config(db, '[tables.old]\nmethod = "snapshot"\n')
    with open_store(url) as store:
        export_full(config, store)
    sync(url, replica)
    with duckdb.connect(replica) as con:  # as the earlier version made it
        con.execute("ALTER TABLE public.old ALTER COLUMN n SET DATA TYPE DOUBLE")
    assert verify(replica, db.standby_url).equal
    db.execute("INSERT INTO old VALUES (4, 0.1)")
    publish_day(config, url, day(1))
    sync(url, replica)
    assert dict(columns(replica, "public.old"))["n"] == "DOUBLE"
    assert query(replica, "SELECT n FROM public.old WHERE id = 4") == [(0.1,)]
    assert verify(replica, db.standby_url).equal
    db.execute("UPDATE old SET n = 0.1000000000000001 WHERE id = 4")  # another double
    assert not verify(replica, db.standby_url).equal
