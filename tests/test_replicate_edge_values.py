"""``topoff replicate`` of a table holding values at the edges of every type, by each
method, into PostgreSQL, DuckDB and Iceberg, compared with the source value by value; then
updates that change only a value's text (-0 to 0, 1.0 to 1.00, 1 mon to 30 days, an
array's bounds, a jsonb number's scale) reach the replica through each method and
reconcile."""

from __future__ import annotations

import math
import struct

import pytest

from support.replicate import config, hashes, new_database, new_target, query
from topoff.replicate.engine import run_once
from topoff.replicate.operate import reconcile

EDGES = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'hap"py');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE e (
  id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT '2026-01-01',
  i2 smallint, i4 int, i8 bigint,
  n numeric, n2 numeric(10,2), f4 real, f8 double precision,
  d date, t timestamp, tz timestamptz, tm time, ttz timetz, iv interval,
  tx text, vc varchar(10), ch char(4), by bytea, b bool, u uuid, ip inet, ci cidr,
  m8 macaddr8, mo money, bt bit(4), vb varbit, j json, jb jsonb, x xml,
  ai int[], at text[], a2 int[][], en mood, cp pair, r int4range, mr int4multirange,
  dm posint, tv tsvector, tq tsquery);
INSERT INTO e (id, i2, i4, i8, n, n2, f4, f8, d, t, tz, tm, ttz, iv, tx, vc, ch, by, b, u, ip, ci,
  m8, mo, bt, vb, j, jb, x, ai, at, a2, en, cp, r, mr, dm, tv, tq) VALUES
(1, -32768, -2147483648, -9223372036854775808, 'NaN', -99999999.99, '-0', '-0',
 '4713-01-01 BC', '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC', '24:00', '24:00:00+15:59',
 '-178000000 years', E'a\\b"c\nd\re\tf\\.', '\\.', 'x ', ''::bytea, false,
 '00000000-0000-0000-0000-000000000000', '::1', '10.0.0.0/8', '08:00:2b:01:02:03:04:05',
 '-92233720368547758.08', '0000', '', '{"a":{"b":{"c":[[[[1]]]]}},"z":"\u0000"}',
 '{"z":1,"a":[1,2,{"k":"\u00e9"}]}', '<?xml version="1.0"?><a>&amp;</a>',
 '[0:2]={1,NULL,3}', '{"NULL",NULL,"a,b","\\"}', '{{1,2},{3,NULL}}', 'hap"py', ROW(NULL,NULL),
 'empty', '{}', 1, 'a:1A fat''s', 'a & !b <-> c'),
(2, 32767, 2147483647, 9223372036854775807, 'Infinity', 99999999.99, 'NaN', 'Infinity',
 '5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00',
 '23:59:59.999999', '00:00:00-15:59', '178000000 years 11 mons', E'\uffff \U0001F600', 'é',
 'abcd', decode(repeat('ff00', 50000), 'hex'), true,
 'ffffffff-ffff-ffff-ffff-ffffffffffff', '2001:db8::1/64', '::/0', 'ff:ff:ff:ff:ff:ff:ff:ff',
 '92233720368547758.07', '1111', '101010101', 'null', '{"a":"\u0001"}', '<b/>',
 '{}', '{}', '{}', 'sad', ROW(1, ''), '[1,2)', '{[1,3),[5,7)}', 2147483647, '', 'x'),
(3, 0, 0, 0, '-Infinity', 0.00, '1e-45', '5e-324', 'infinity', 'infinity', '-infinity',
 '00:00', '12:00+14', '-2147483647 days -2147483647 mons -9223372036854775807 us',
 '', '', '', '\x00', NULL, NULL, '0.0.0.0', '255.255.255.255/32', '00:00:00:00:00:00:00:00',
 '0', '0101', '0', '[]', '[]', '', '[-5:-3]={1,2,3}', '{""}', '{{{{{{1}}}}}}', 'ok',
 ROW(NULL, 'x'), '(,)', '{(,)}', NULL, NULL, NULL),
(4, NULL, NULL, NULL, NULL, NULL, '3.4028235e38', '1.7976931348623157e308', '-infinity',
 '-infinity', 'infinity', NULL, NULL, '-178000000 years', NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL),
(5, 1, 1, 1, ('0.' || repeat('0', 900) || '1')::numeric, 1.5, '1.4e-45', '2.2250738585072014e-308',
 '2000-02-29', '0001-01-01 00:00:00 BC', '2026-03-29 02:30:00 Europe/Paris', '00:00:00.000001',
 '24:00-15:59', '1 mon', repeat('x', 100000), NULL, NULL, '\xdeadbeef', true, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, '"\u0000\ud83d\ude00"', '{"a":"\ud83d\ude00","b":"\u001f"}', NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(6, 2, 2, 2, (repeat('9', 1000) || '.' || repeat('9', 500))::numeric, 1.0, '0.1', '0.1',
 NULL, NULL, '2026-10-25 02:30:00 America/St_Johns', NULL, NULL, '1 day', NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 '{"a":{"a":{"a":{"a":{"a":{"a":1}}}}}}',
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

#: the methods, one table each, all with the same rows
TABLES = {"s": {"method": "snapshot"}, "i": {"method": "inserter", "cursor": "ts"},
          "u": {"method": "updater", "cursor": "ts"}}
#: DuckDB's last timestamp is in 294247 (a value past it fails the table: test_replicate_
#: value_errors.py); Iceberg holds the years 1 to 9999 and one-dimensional lists from 1
ICEBERG_FIT = """
UPDATE e SET d = '0001-01-01', t = '9999-12-31 23:59:59.999999',
  tz = '0001-01-01 00:00:00+00' WHERE id = 1;
UPDATE e SET d = '9999-12-31', t = '0001-01-01', tz = '9999-12-31 23:59:59.999999+00'
  WHERE id = 2;
UPDATE e SET d = NULL, t = NULL, tz = NULL WHERE id IN (3, 4, 5);
UPDATE e SET ai = NULL, a2 = NULL"""


def _edges(cluster, kind: str):
    source = new_database(cluster)
    source.execute(EDGES.replace("294276", "294246") if kind == "duckdb" else EDGES)
    if kind == "iceberg":
        source.execute(ICEBERG_FIT)
    for name in TABLES:
        source.execute(f"CREATE TABLE {name} AS SELECT * FROM e; "
                       f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
    return source


def _columns(source) -> list[str]:
    return [r[0] for r in source.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'e'::regclass AND attnum > 0 "
        "ORDER BY attnum")]


def _bits(v: object, real: bool) -> object:
    if isinstance(v, float):
        return struct.pack(">f" if real else ">d", v) if not math.isnan(v) else "nan"
    return v


@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_every_edge_value_lands_exactly_in_sql_targets(cluster, tmp_path, kind):
    source = _edges(cluster, kind)
    url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, TABLES)}, allow_primary=True)
    assert [(r.status, r.rows, r.error) for r in run_once(cfg)] == [("ok", 6, None)] * 3
    for name in TABLES:
        if kind == "duckdb":  # verify's comparison: exact for every value DuckDB holds
            mine, theirs = hashes(url, source.standby_url, "app", f"public.{name}")
            assert mine == theirs, name
            continue
        for c in _columns(source):  # the text of each value (COPY's: an xml without its
            # declaration, which COPY drops)
            stmt = f'SELECT x.id, concat(x."{c}") FROM {{}} x ORDER BY 1'
            want = source.execute(stmt.format(name))
            if c == "x":
                want = [(i, v.replace('<?xml version="1.0"?>', "")) for i, v in want]
            assert query(url, stmt.format(f"app.{name}")) == [tuple(r) for r in want], (
                name, c)


def test_every_edge_value_lands_exactly_in_iceberg(cluster, tmp_path):
    from test_replicate_iceberg import catalog_file, iceberg_table

    source = _edges(cluster, "iceberg")
    url = catalog_file(tmp_path)
    cfg = config(url, {"app": (source.standby_url, TABLES)}, allow_primary=True)
    assert [(r.status, r.rows, r.error) for r in run_once(cfg)] == [("ok", 6, None)] * 3
    with source.standby() as conn:
        kinds = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            "attrelid = 'e'::regclass AND attnum > 0").fetchall())
        # a time of 24:00, an interval of 2^31 days have no Python value: as text (Iceberg
        # holds both as strings)
        want = conn.execute("SELECT " + ", ".join(
            f'"{c}"::text' if kinds[c].startswith(("time ", "interval")) else f'"{c}"'
            for c in _columns(source)) + " FROM e ORDER BY id").fetchall()
        texts = conn.execute("SELECT " + ", ".join(
            f'concat("{c}")' for c in _columns(source)) + " FROM e ORDER BY id").fetchall()
    for name in TABLES:
        table = iceberg_table(url, "app", name).scan().to_arrow()
        got = sorted(zip(*(table.column(n).to_pylist() for n in table.column_names),
                         strict=True), key=lambda r: r[0])
        assert len(got) == len(want) == 6
        for row, typed, text in zip(got, want, texts, strict=True):
            for j, (c, v) in enumerate(zip(table.column_names, row, strict=True)):
                if v is None:
                    assert typed[j] is None, (name, c)
                elif str(table.schema.field(c).type) == "large_string":
                    expect = text[j]
                    if kinds[c].startswith("character("):
                        expect = expect.ljust(4)  # char(n) keeps its padding
                    if c == "x":
                        expect = expect.replace('<?xml version="1.0"?>', "")
                    assert v == expect, (name, c)
                else:
                    real = kinds[c] == "real"
                    assert _bits(v, real) == _bits(typed[j], real), (name, c)


TEXT_ONLY = r"""
CREATE TABLE {t} (id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT '2026-01-01',
  f8 float8, f4 real, n numeric, iv interval, ai int[], jb jsonb, j json);
INSERT INTO {t} (id, f8, f4, n, iv, ai, jb, j) VALUES
 (1, '-0', '-0', 1.0, '1 mon', '{1,2}', '{"a": 1.0, "bb": 2}', '{"a":1}'),
 (2, 1, 1, 2, '1 day', '{3}', '[1.0]', '[]');
"""
#: each new value equal to the old under its type's equality, written otherwise
CHANGE = r"""
UPDATE {t} SET ts = '2026-01-02', f8 = 0, f4 = 0, n = 1.00, iv = '30 days',
  ai = '[0:1]={1,2}', jb = '{"a": 1.00, "bb": 2}', j = '{"a": 1}' WHERE id = 1;
UPDATE {t} SET ts = '2026-01-02', iv = '24 hours', jb = '[1]' WHERE id = 2;
"""
OLD = ("f8 = '-0', f4 = '-0', n = '1.0', iv = '1 mon', jb = '{\"a\": 1.0, \"bb\": 2}', "
       "j = '{\"a\":1}'")


def _same(kind: str, url: str, source, name: str) -> None:
    if kind == "duckdb":
        mine, theirs = hashes(url, source.standby_url, "app", f"public.{name}")
        assert mine == theirs, name
        return
    cols = "f8::text, f4::text, n::text, iv::text, ai::text, jb::text, j::text"
    if kind == "iceberg":
        from test_replicate_iceberg import iceberg_table

        table = iceberg_table(url, "app", name).scan().to_arrow()
        got = sorted(zip(*(table.column(c).to_pylist() for c in ("id", "n", "iv", "jb", "j")),
                         strict=True))
        want = source.execute(f"SELECT id, n::text, iv::text, jb::text, j::text FROM {name} "
                              "ORDER BY id")
        signs = [math.copysign(1, v) for v in table.column("f8").to_pylist()]
        assert signs == [math.copysign(1, r[0]) for r in source.execute(
            f"SELECT f8 FROM {name} ORDER BY id")], name
    else:
        got = query(url, f"SELECT id, {cols} FROM app.{name} ORDER BY id")
        want = source.execute(f"SELECT id, {cols} FROM {name} ORDER BY id")
    assert got == [tuple(r) for r in want], name


@pytest.mark.parametrize("kind", ["postgresql", "duckdb", "iceberg"])
def test_a_change_of_text_only_reaches_the_replica(cluster, tmp_path, kind):
    source = new_database(cluster)
    tables = {"s": {"method": "snapshot"}, "u": {"method": "updater", "cursor": "ts"},
              "v": {"method": "snapshot", "where": "id > 0"}}  # hashed by content
    for name in tables:
        source.execute(TEXT_ONLY.replace("{t}", name))
        if kind == "iceberg":  # Iceberg lists start at 1
            source.execute(f"ALTER TABLE {name} DROP COLUMN ai")
    if kind == "iceberg":
        from test_replicate_iceberg import catalog_file

        url = catalog_file(tmp_path)
    else:
        url = new_target(kind, cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, tables)}, allow_primary=True)
    assert [r.status for r in run_once(cfg)] == ["ok"] * 3
    for name in tables:
        change = CHANGE.replace("{t}", name)
        source.execute(change.replace("ai = '[0:1]={1,2}', ", "") if kind == "iceberg"
                       else change)
    assert [(r.status, r.rows) for r in run_once(cfg)] == [("ok", 2)] * 3
    for name in tables:
        _same(kind, url, source, name)
    assert [r.status for r in run_once(cfg)] == ["unchanged", "ok", "unchanged"]
    if kind == "iceberg":
        return
    # the replica's old text put back: reconcile finds the rows that differ in text only
    query(url, f"UPDATE app.u SET {OLD} WHERE id = 1")
    query(url, "UPDATE app.u SET iv = '1 day', jb = '[1.0]' WHERE id = 2")
    assert reconcile(cfg, "u").updated == 2
    _same(kind, url, source, "u")
