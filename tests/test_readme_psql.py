"""The README of a full export, followed literally: its sh blocks, run with sh and psql.

The schema is as hostile as PostgreSQL allows: quotes, dots, spaces and mixed case in
schema, table, column and type names, reserved words, enum / composite / range /
multirange / domain columns (and arrays of them, and types built from each other), a type
from an extension, text
holding a line that is exactly ``\\.``, CR/LF, backslashes, quotes, commas, NULL next to
the empty string, bytea and json. The loaded copy must equal the source value by value,
with the same types.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.pg import Database, make_config
from topoff.dataset import layout
from topoff.dataset.readme import CSV2COPY
from topoff.export.full import export_full
from topoff.stores import open_store

S = '"My ""Sch.ema"'  # the schema My "Sch.ema
T = f'{S}."Ta ble.""x"""'  # its table Ta ble."x"

SCHEMA = f'''
CREATE SCHEMA {S};
CREATE EXTENSION citext SCHEMA {S};
CREATE TYPE {S}."Mood ""x""" AS ENUM ('sad', 'o''k', 'happy, really', 'a"b', '\\.');
CREATE TYPE {S}.addr AS (street text, "No." int, tags text[], mood {S}."Mood ""x""");
CREATE TYPE {S}."Float Range" AS RANGE (subtype = float8,
    multirange_type_name = {S}."Float Multi");
CREATE DOMAIN {S}.posint AS int DEFAULT 1 NOT NULL CONSTRAINT "positive!" CHECK (VALUE > 0);
CREATE DOMAIN public.email AS varchar(80) COLLATE "C" CHECK (VALUE LIKE '%@%');
CREATE DOMAIN {S}.short AS varchar(20);
CREATE DOMAIN {S}.mood_d AS {S}."Mood ""x""";
CREATE DOMAIN {S}.addr_list AS {S}.addr[];
CREATE TYPE public.wrap AS (inner_addr {S}.addr, r {S}."Float Range", n {S}.posint);
CREATE TABLE {T} (
    id int PRIMARY KEY,
    "select" text,
    "Mixed Case" text,
    "it's ""a"" col,umn" text,
    mood {S}."Mood ""x""",
    moods {S}."Mood ""x"""[],
    address {S}.addr,
    addresses {S}.addr_list,
    r {S}."Float Range",
    mr {S}."Float Multi",
    ir int4range,
    n {S}.posint,
    e public.email,
    md {S}.mood_d,
    w public.wrap,
    b bytea,
    j json,
    jb jsonb,
    grid int[][],
    ts timestamptz,
    num numeric(12, 3),
    ci {S}.citext[],
    s {S}.short
);
CREATE TABLE public."order" (
    "ID" int PRIMARY KEY,
    parent int REFERENCES {T} (id),
    v text
);
'''

TEXTS = ["a\n\\.\nb", "\\.", "\n\\.\n", "\r\n\\.\r\n", "\\.\n", "x\\", "\\\\N", "\\N", "",
         None, "\"", "\"\"", ",", "a,b\nc", "tab\there", "\r", "\n", "'", "ü€𝄞", " "]


M = f'{S}."Mood ""x"""'
FR = f'{S}."Float Range"'
INSERT = f'''
INSERT INTO {T}
SELECT i, t, CASE WHEN i %% 2 = 1 THEN t END, t,
    (ARRAY['sad', 'o''k', 'happy, really', 'a"b', '\\.']::{M}[])[i %% 5 + 1],
    CASE WHEN i %% 3 > 0 THEN ARRAY['\\.', 'a"b', NULL]::{M}[] ELSE '{{}}' END,
    CASE WHEN i %% 4 > 0 THEN ROW(t, i, ARRAY['x', 'y z', t, NULL], 'o''k')::{S}.addr END,
    CASE WHEN i %% 3 > 0 THEN ARRAY[ROW(t, i, '{{}}', 'sad')::{S}.addr, NULL]::{S}.addr_list END,
    CASE WHEN i %% 2 = 1 THEN {FR}(i + 0.5, i + 2) ELSE 'empty' END,
    {S}."Float Multi"({FR}(1, 2), {FR}(i + 3, i + 4, '[]')),
    int4range(i, i + 10),
    i + 1,
    CASE WHEN i %% 5 > 0 THEN ('u' || i || '@example.org')::public.email END,
    CASE WHEN i %% 2 = 1 THEN 'a"b'::{S}.mood_d END,
    ROW(ROW(t, 1, '{{}}', 'sad')::{S}.addr, {FR}(1, 2, '[]'), i + 1)::public.wrap,
    CASE WHEN i %% 3 > 0 THEN '\\x005c0a0d2e22'::bytea || int2send(i::int2) ELSE '' END,
    CASE WHEN i %% 2 = 1 THEN json_build_object('k', i, 't', t) ELSE '[]' END,
    jsonb_build_object('a', t, 'b', ARRAY[t, '\\.']),
    ARRAY[[i, i + 1], [NULL, 3]],
    CASE WHEN i %% 2 = 1 THEN '2024-03-31 01:30:00.123456+00'::timestamptz ELSE 'infinity' END,
    i + 0.125,
    ARRAY[t, 'ÄB']::{S}.citext[],
    CASE WHEN i %% 7 = 0 THEN 'far too long' ELSE 'ok' END
FROM generate_series(0, %(n)s - 1) i,
     LATERAL (SELECT (%(texts)s::text[])[i %% %(len)s + 1] AS t) x
'''


def fill(conn) -> None:
    conn.execute(SCHEMA)
    conn.execute(INSERT, {"n": len(TEXTS) * 12, "texts": TEXTS, "len": len(TEXTS)})
    # a constraint rows already break: it must come after the load
    conn.execute(f"ALTER DOMAIN {S}.short ADD CONSTRAINT tiny CHECK (length(VALUE) < 5) "
                 "NOT VALID")
    conn.execute('INSERT INTO public."order" SELECT i, CASE WHEN i % 2 = 0 THEN i END, '
                 "repeat(E'\\\\.\\n', i % 3) FROM generate_series(0, 99) i")


CONFIG = """
dataset = "hostile"
strict = false

[tables.'Ta ble."x"']
schema = 'My "Sch.ema'
method = "snapshot"

[tables.order]
method = "snapshot"
"""

TABLES = [(T, "id"), ('public."order"', '"ID"')]

# Every user type of a database, as the catalog describes it: the same in source and copy.
TYPES_Q = """
SELECT n.nspname, t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod),
       t.typnotnull, pg_get_expr(t.typdefaultbin, 0), co.collname,
       (SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid),
       (SELECT array_agg(attname || ' ' || format_type(atttypid, atttypmod) ORDER BY attnum)
          FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0),
       (SELECT format_type(rngsubtype, NULL) || ' ' || format_type(rngmultitypid, NULL)
          FROM pg_range WHERE rngtypid = t.oid),
       (SELECT array_agg(conname || ' ' || pg_get_constraintdef(c.oid) ORDER BY conname)
          FROM pg_constraint c WHERE contypid = t.oid)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_collation co ON co.oid = t.typcollation AND t.typtype = 'd'
LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND t.typtype IN ('e', 'c', 'r', 'm', 'd') AND (c.relkind IS NULL OR c.relkind = 'c')
ORDER BY 1, 2
"""
COLUMNS_Q = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum
"""


def sh_blocks(readme: str) -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M)
    assert blocks, "the README has no sh block"
    return "\n".join(blocks)


@pytest.fixture
def hostile(db: Database) -> Database:
    with db.primary() as conn:
        fill(conn)
    db.sync()
    return db


def published(hostile: Database, dest: Path, **export: object) -> Path:
    config = make_config(hostile, CONFIG, **export)
    [pub] = export_full(config, open_store(str(dest))).publications
    return dest / pub.id


def run_readme(pubdir: Path, hostile: Database, target: str) -> subprocess.CompletedProcess:
    script = sh_blocks((pubdir / layout.README).read_text())
    (pubdir.parent / "load.sh").write_text(script)
    primary = hostile.cluster.primary
    env = {"PATH": os.environ["PATH"], "PGHOST": "127.0.0.1", "PGPORT": str(primary.port),
           "PGUSER": "postgres", "PGDATABASE": target, "LC_ALL": "C"}
    return subprocess.run(["sh", str(pubdir.parent / "load.sh")], cwd=pubdir, env=env,
                          capture_output=True, text=True, timeout=300)


def table_text(primary, dbname: str, table: str, key: str) -> list[tuple]:
    cols = [r[0] for r in primary.execute(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", dbname=dbname, params=(table,))]
    select = ", ".join(f"{c}::text" for c in cols)
    return primary.execute(f"SELECT {select} FROM {table} ORDER BY {key}", dbname=dbname)


@pytest.fixture
def empty_db(hostile: Database):
    name = f"{hostile.name}_loaded"
    primary = hostile.cluster.primary
    primary.execute(f'CREATE DATABASE "{name}"')
    yield name
    primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_readme_loads_a_hostile_schema_with_sh_and_psql(hostile, dest, empty_db):
    pubdir = published(hostile, dest, chunk_bytes=4096)
    assert len(list((pubdir / "data").iterdir())) > 2  # several files per table
    res = run_readme(pubdir, hostile, empty_db)
    assert res.returncode == 0, res.stderr
    primary = hostile.cluster.primary
    for table, key in TABLES:
        source = table_text(primary, hostile.name, table, key)
        loaded = table_text(primary, empty_db, table, key)
        assert len(source) > 50
        assert loaded == source, table
    assert primary.execute(TYPES_Q, dbname=empty_db) == primary.execute(TYPES_Q,
                                                                        dbname=hostile.name)
    assert primary.execute(COLUMNS_Q, dbname=empty_db) == primary.execute(COLUMNS_Q,
                                                                          dbname=hostile.name)
    fks = primary.execute("SELECT conrelid::regclass::text, confrelid::regclass::text "
                          "FROM pg_constraint WHERE contype = 'f'", dbname=empty_db)
    assert fks == [('"order"', T)]
    # the domain's CHECK came along
    with pytest.raises(Exception, match="positive!"):
        primary.execute(f"SELECT 0::{S}.posint", dbname=empty_db)


def test_readme_stops_at_a_damaged_file_before_loading_anything(hostile, dest, empty_db):
    pubdir = published(hostile, dest)
    data = sorted((pubdir / "data").iterdir())[0]
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    res = run_readme(pubdir, hostile, empty_db)
    assert res.returncode != 0
    assert "FAILED" in res.stdout
    tables = hostile.cluster.primary.execute(
        "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace NOT IN "
        "('pg_catalog'::regnamespace, 'information_schema'::regnamespace)", dbname=empty_db)
    assert tables == [(0,)]


@pytest.mark.parametrize("cut", ['a,b\n"x\n\\.\n', 'a,b\n"x""', ""])
def test_csv2copy_turns_a_truncated_file_into_a_failed_copy(cut, tmp_path):
    awk = shutil.which("awk")
    assert awk
    res = subprocess.run([awk, CSV2COPY], input=cut, capture_output=True, text=True)
    assert res.returncode != 0
    assert "ends inside a value" in res.stderr
    # the last line has more fields than the header: COPY refuses it
    assert res.stdout.endswith("\t\n")


def test_a_type_pre_data_cannot_create_is_named_at_export(db, dest, caplog):
    """A column of a table's row type: pre-data cannot make it, and says so."""
    db.execute("CREATE TABLE pair (a int, b text); "
               "CREATE TABLE holder (id int PRIMARY KEY, p pair, e int)")
    config = make_config(db, '[tables.holder]\nmethod = "snapshot"\n')
    with caplog.at_level("WARNING", logger="topoff"):
        [pub] = export_full(config, open_store(str(dest))).publications
    assert any('"public"."pair"' in r.getMessage() and "row type" in r.getMessage()
               for r in caplog.records)
    pre = (dest / pub.id / layout.PRE_DATA).read_text()
    assert '"p" "public"."pair"' in pre and "CREATE TYPE" not in pre
