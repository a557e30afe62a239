"""The fast paths of a PostgreSQL-to-PostgreSQL replica: binary COPY, value for value, for
every built-in type with hostile values (first build, new rows straight in, updated rows
staged and merged); a type that changed on the source between runs is followed; the
select list casts each column to the type described, so a binary COPY never hands the
target other bytes than it reads; and no second index on a cursor that the key or a
source index already leads with."""

from __future__ import annotations

import psycopg
import pytest

from support.replicate import config, new_database, new_target, query, stored, target
from topoff.replicate import fastcopy
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.engine import run_once
from topoff.replicate.read import open_snapshot
from topoff.replicate.shape import table_def
from topoff.targets.base import TableRef

HOSTILE = r"""
CREATE TABLE h (id int PRIMARY KEY, ts timestamptz NOT NULL,
  i2 smallint, i8 bigint, n numeric, n2 numeric(20, 6), f4 real, f8 float8,
  t text, vc varchar(7), c char(3), b bytea, bo boolean,
  d date, tm time, tz time with time zone, tsp timestamp(3), tst timestamptz,
  iv interval, ivd interval day to second(2), u uuid, j json, jb jsonb,
  ip inet, cd cidr, mac macaddr, bt bit(3), vb bit varying(9),
  a int[], a2 text[], a3 numeric[], ats timestamptz[]);
INSERT INTO h SELECT g, '2026-01-01'::timestamptz + g * interval '1 s',
  CASE WHEN g % 2 = 0 THEN -32768 ELSE 32767 END,
  CASE WHEN g % 2 = 0 THEN -9223372036854775808 ELSE 9223372036854775807 END,
  (ARRAY['NaN', 'Infinity', '-Infinity', '0.000000000000000000001',
         '-123456789012345678901234567890.5', '0'])[g % 6 + 1]::numeric,
  g / 7.0,
  (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '1.17549435e-38', '3.4028235e+38'])[
    g % 6 + 1]::real,
  (ARRAY['NaN', 'Infinity', '-Infinity', '-0', '5e-324', '1.7976931348623157e308'])[
    g % 6 + 1]::float8,
  CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'\\N,"q"\n\r\t\\\\ ü中😀'
    ELSE repeat('x', 3000) END,
  'é' || g % 10, 'a', CASE WHEN g % 3 = 0 THEN '\x'::bytea ELSE '\x00ff5c0a'::bytea END,
  g % 2 = 0,
  (ARRAY['infinity', '-infinity', '4713-01-01 BC', '5874897-12-31'])[g % 4 + 1]::date,
  '23:59:59.999999', '00:00:00+15:59', '0044-03-15 12:00:00.123 BC',
  (ARRAY['infinity', '-infinity', '2026-03-29 01:59:59.999999+00'])[g % 3 + 1]::timestamptz,
  '-178000000 years -1 mon 3 days -04:05:06.000007', '1 day 02:03:04.56',
  gen_random_uuid(), '{"b": 1, "b": 2,  "a" : [ ]}', '{"k": "\\u0000x", "n": 1e400}',
  '::ffff:10.0.0.1/64', '10.0.0.0/8', '08:00:2b:01:02:03', B'101', B'1',
  ARRAY[[1, NULL], [3, 4]], '[0:1]={"a,b",NULL}'::text[], ARRAY['NaN', '-1.5']::numeric[],
  ARRAY['infinity'::timestamptz]
FROM generate_series(1, 600) g;
"""


def lines(url: str, table: str) -> list[str]:
    """Every row's text, in key order, under one time zone and date style."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'ISO, YMD'; "
                     "SET IntervalStyle = 'postgres'; SET extra_float_digits = 3")
        return [r[0] for r in conn.execute(f"SELECT r::text FROM {table} r ORDER BY id")]


def binary(url: str, db, name: str, method: str = "inserter") -> bool:
    with target(url) as engine:
        conn = open_snapshot(db.standby_url, False)
        try:
            info = describe(conn, ReplicateTable("app", "public", name, method, "ts"))
            return fastcopy.binary_ok(engine, conn, info, table_def(info, TableRef("app", name)))
        finally:
            conn.close()


def refresh(cfg) -> dict[str, tuple[str, int]]:
    runs = run_once(cfg)
    assert all(r.error is None for r in runs), [r.error for r in runs]
    return {r.table: (r.status, r.rows) for r in runs}


def test_every_builtin_type_moves_exactly_in_binary(cluster, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute(HOSTILE)
    db.execute("CREATE TABLE hu AS SELECT * FROM h; ALTER TABLE hu ADD PRIMARY KEY (id)")
    cfg = config(url, {"app": (db.standby_url, {
        "h": {"method": "inserter", "cursor": "ts", "batch_rows": 250},
        "hu": {"method": "updater", "cursor": "ts"}})})
    assert binary(url, db, "h") and binary(url, db, "hu", "updater")
    assert refresh(cfg) == {"public.h": ("ok", 600), "public.hu": ("ok", 600)}
    for t in ("h", "hu"):
        assert lines(url, f"app.{t}") == lines(db.primary_url, f"public.{t}"), t
    # new rows straight in (inserter), new and updated rows staged and merged (updater)
    db.execute("INSERT INTO h SELECT id + 1000, ts + interval '1 day', i2, i8, n, n2, f4, f8, "
               "t, vc, c, b, bo, d, tm, tz, tsp, tst, iv, ivd, u, j, jb, ip, cd, mac, bt, vb, "
               "a, a2, a3, ats FROM h")
    db.execute("INSERT INTO hu SELECT * FROM h WHERE id > 1000; UPDATE hu SET "
               "ts = ts + interval '2 days', f8 = -f8, t = t || E'\\n' WHERE id % 3 = 0")
    assert refresh(cfg) == {"public.h": ("ok", 600), "public.hu": ("ok", 800)}
    for t in ("h", "hu"):
        assert lines(url, f"app.{t}") == lines(db.primary_url, f"public.{t}"), t


def test_a_type_changed_on_the_source_is_followed(cluster, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE s (id int PRIMARY KEY, ts timestamptz NOT NULL, n int, r int, "
               "v varchar(5)); INSERT INTO s SELECT g, now() - interval '1 h', g, -g, 'ab' "
               "FROM generate_series(1, 300) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "updater", "cursor": "ts"}})})
    assert refresh(cfg) == {"public.s": ("ok", 300)}
    # the same width in binary (int -> real: four bytes either way), a wider one, a typmod
    db.execute("ALTER TABLE s ALTER COLUMN n TYPE real, ALTER COLUMN r TYPE bigint, "
               "ALTER COLUMN v TYPE varchar(9)")
    db.execute("UPDATE s SET ts = now(), n = n + 0.5, r = r * 5000000000, v = 'abcdefghi' "
               "WHERE id % 2 = 0")
    assert binary(url, db, "s", "updater")
    assert refresh(cfg) == {"public.s": ("ok", 300)}  # the rewrite gave every row a new xmin
    assert {c.name: c.type for c in stored(url, "app", "public.s").columns} == {
        "id": "integer", "ts": "timestamp with time zone", "n": "real", "r": "bigint",
        "v": "character varying(9)"}
    assert lines(url, "app.s") == lines(db.primary_url, "public.s")


def test_binary_reads_cast_to_the_described_types(cluster, tmp_path):
    """A column whose type is not the one described (changed between the description
    and the COPY) is converted exactly, or the COPY fails: never other bytes."""
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE s (id int PRIMARY KEY, ts timestamptz NOT NULL, n int); "
               "INSERT INTO s VALUES (1, now(), 7), (2, now(), 8)")
    conn = open_snapshot(db.standby_url, False)
    try:
        info = describe(conn, ReplicateTable("app", "public", "s", "inserter", "ts"))
    finally:
        conn.close()
    db.execute("ALTER TABLE s ALTER COLUMN n TYPE real USING n + 0.25")
    statement = psycopg.sql.SQL("COPY (SELECT {} FROM s ORDER BY id) TO STDOUT "
                                "WITH (FORMAT binary)").format(
        fastcopy.select_list(info.columns, True))
    with psycopg.connect(db.primary_url, autocommit=True) as src, \
            psycopg.connect(url, autocommit=True) as dst:
        dst.execute("CREATE TABLE s (id int, ts timestamptz, n int)")
        with src.cursor().copy(statement) as out, dst.cursor().copy(
                "COPY s FROM STDIN WITH (FORMAT binary)") as into:
            for block in out:
                into.write(block)
        assert dst.execute("SELECT n FROM s ORDER BY id").fetchall() == [(7,), (8,)]
        db.execute("UPDATE s SET n = 1e20 WHERE id = 2")  # out of int's range: refused
        dst.execute("TRUNCATE s")
        with pytest.raises(psycopg.errors.NumericValueOutOfRange), \
                src.cursor().copy(statement) as out:
            for _ in out:
                pass


def test_no_second_index_on_a_cursor_an_index_leads_with(cluster, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE led (id int PRIMARY KEY, ts timestamptz NOT NULL, v int); "
               "CREATE INDEX ON led (ts, id); "
               "CREATE TABLE plain (id int PRIMARY KEY, ts timestamptz NOT NULL, v int); "
               "CREATE INDEX ON plain (v, ts); "
               "CREATE TABLE bykey (ts timestamptz PRIMARY KEY, v int); "
               "INSERT INTO led SELECT g, now(), g FROM generate_series(1, 100) g; "
               "INSERT INTO plain SELECT * FROM led; "
               "INSERT INTO bykey SELECT ts - id * interval '1 s', v FROM led")
    tables = {t: {"method": "inserter", "cursor": "ts"} for t in ("led", "plain", "bykey")}
    assert refresh(config(url, {"app": (db.standby_url, tables)})) == {
        f"public.{t}": ("ok", 100) for t in tables}
    found = query(url, "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                  "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = "
                  "c.relnamespace WHERE n.nspname = 'app'")
    defs: dict[str, list[str]] = {}
    for table, d in found:
        defs.setdefault(table, []).append(d.split(" USING ")[1])
    assert {t: sorted(d) for t, d in defs.items()} == {
        "led": ["btree (id)", "btree (ts, id)"],
        "plain": ["btree (id)", "btree (ts)", "btree (v, ts)"],
        "bykey": ["btree (ts)"]}


def test_an_upsert_rewrites_changed_rows_only_and_every_change_counts(cluster, tmp_path):
    """Columns compare as they are where equal means the same text, else by their text:
    1.0 -> 1.00, 0 -> -0, 1 day -> 24 hours are changes; a row read again, unchanged, is
    not written."""
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE u (id int PRIMARY KEY, ts timestamptz NOT NULL, i int, t text, "
               "vc varchar(4), n numeric, f float8, iv interval, jb jsonb, tz timetz); "
               "INSERT INTO u SELECT g, now() - interval '1 h', g, 'a', 'b', 1.0, 0, "
               "'1 day', '{\"a\": 1.0}', '12:00+02' FROM generate_series(1, 8) g")
    cfg = config(url, {"app": (db.standby_url, {"u": {"method": "updater", "cursor": "ts"}})})
    assert refresh(cfg) == {"public.u": ("ok", 8)}
    written = dict(query(url, "SELECT id, xmin::text FROM app.u"))
    db.execute("UPDATE u SET i = i WHERE id = 1; UPDATE u SET n = 1.00 WHERE id = 2; "
               "UPDATE u SET f = '-0' WHERE id = 3; UPDATE u SET iv = '24 hours' WHERE id = 4; "
               "UPDATE u SET jb = '{\"a\": 1.00}' WHERE id = 5; "
               "UPDATE u SET tz = '10:00+00' WHERE id = 6; UPDATE u SET t = 'a ' WHERE id = 7")
    assert refresh(cfg) == {"public.u": ("ok", 7)}  # read again: seven rows
    assert lines(url, "app.u") == lines(db.primary_url, "public.u")
    now = dict(query(url, "SELECT id, xmin::text FROM app.u"))
    assert [i for i in written if now[i] != written[i]] == [2, 3, 4, 5, 6, 7]


def test_rows_read_again_are_read_aside_while_new_rows_move(cluster, tmp_path):
    """An inserter's rows at or below the watermark, committed since (here more than
    the aside's memory spool holds), are read on a second connection in the same
    snapshot while the new rows move, then merged; the connection is gone after."""
    from topoff.replicate import overlap

    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE ins (id int PRIMARY KEY, ts timestamptz NOT NULL, p text); "
               "INSERT INTO ins SELECT g, now() - interval '2 h' + g * interval '1 ms', "
               "repeat('x', 600) FROM generate_series(1, 20000) g")
    cfg = config(url, {"app": (db.standby_url, {"ins": {"method": "inserter", "cursor": "ts",
                                                       "boundary": "1s"}})})
    assert refresh(cfg) == {"public.ins": ("ok", 20000)}
    db.execute("UPDATE ins SET p = repeat('y', 1000) || id WHERE id % 2 = 0")
    db.execute("INSERT INTO ins SELECT g, now() - interval '1 h' + g * interval '1 ms', "
               "'new' FROM generate_series(20001, 23000) g")
    assert overlap.SPOOL < 10000 * 1000  # spilled to a temporary file
    assert refresh(cfg) == {"public.ins": ("ok", 13000)}
    assert lines(url, "app.ins") == lines(db.primary_url, "public.ins")
    with psycopg.connect(db.standby_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                            "= 'topoff replicate aside'").fetchone() == (0,)
    # a new row whose key the table holds: refused by the key, merged the slow way
    db.execute("DELETE FROM ins WHERE id = 5; INSERT INTO ins VALUES (5, now(), 'again')")
    assert refresh(cfg)["public.ins"][0] == "ok"
    assert lines(url, "app.ins") == lines(db.primary_url, "public.ins")


def test_domains_over_domains_and_arrays_of_domains_move_in_binary(cluster, tmp_path):
    """A domain counts by its base type through a domain over a domain, and an array of a
    domain by its base element type (they moved as CSV: only one domain was seen through,
    and an array's element was taken for a type of its own)."""
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE DOMAIN posint AS int CHECK (VALUE > 0); "
               "CREATE DOMAIN small AS posint CHECK (VALUE < 1000); "
               "CREATE DOMAIN moment AS timestamptz; CREATE DOMAIN stamp AS moment; "
               "CREATE DOMAIN code AS varchar(3); CREATE DOMAIN posints AS posint[]; "
               "CREATE TABLE dd (id int PRIMARY KEY, ts stamp NOT NULL, s small, "
               "p posint[], c code[], ps posints, pp posint[][]); "
               "INSERT INTO dd SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
               "g % 999 + 1, ARRAY[g, NULL], '[0:1]={abc,\"a,b\"}', ARRAY[g], "
               "ARRAY[[g, 1], [2, 3]] FROM generate_series(1, 300) g")
    assert binary(url, db, "dd")
    cfg = config(url, {"app": (db.standby_url, {"dd": {"method": "inserter", "cursor": "ts"}})})
    assert refresh(cfg) == {"public.dd": ("ok", 300)}
    assert {c.name: c.type for c in stored(url, "app", "public.dd").columns} == {
        "id": "integer", "ts": "timestamp with time zone", "s": "integer",
        "p": "integer[]", "c": "character varying(3)[]", "ps": "integer[]",
        "pp": "integer[]"}
    assert lines(url, "app.dd") == lines(db.primary_url, "public.dd")
