"""PostgreSQL types in both targets: a snapshot table holding one column of each kind
(and the awkward values of each: NaN, infinity, quotes, NULL next to empty strings...)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

import pytest

from support.pg import Database, make_config
from support.replica import columns, connect_pg, is_postgres, normalize, query, reader, rows
from topoff.dataset.index import read_index, read_manifest
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.sync import sync
from topoff.targets.duckdb.types import duckdb_type
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE alltypes (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    f4 real, f8 double precision,
    n102 numeric(10,2), n numeric,
    b boolean,
    t text, vc varchar(10), ch char(5),
    j json, jb jsonb,
    tstz timestamptz, ts timestamp, d date, tm time, tmtz timetz,
    iv interval, by bytea, u uuid, m mood, ma mood[],
    ai integer[], at text[], ab boolean[], af double precision[],
    ip inet
);
"""
TEXT = 'a,b "c"\nd; ünïcödé €\t\\back'
JSON = '{"a": [1, 2, {"b": null}], "s": "x,y \\"q\\""}'
UUID = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
ROWS = [
    # typical values
    {"id": 1, "i2": -32768, "i4": 2147483647, "i8": 9223372036854775807, "f4": 1.5,
     "f8": 3.141592653589793, "n102": "12345678.91", "n": "1234567890.0123456789", "b": True,
     "t": TEXT, "vc": "short", "ch": "ab", "j": JSON, "jb": '{"k": "v", "n": 1.50}',
     "tstz": "2024-02-29 12:34:56.789+00", "ts": "2024-02-29 12:34:56.789",
     "d": "2024-02-29", "tm": "12:34:56.5", "tmtz": "12:34:56+02",
     "iv": "-1 years -2 mons +3 days -04:05:06.5", "by": "\\x00ff10", "u": UUID,
     "m": "happy", "ma": "{ok,NULL,sad}", "ai": "{1,2,NULL}",
     "at": '{"a,b","quo\\"te",NULL,"","NULL"}', "ab": "{t,f,NULL}",
     "af": "{1.5,NaN,Infinity}", "ip": "192.168.0.1/24"},
    # the edges: NaN and infinities, empty strings and arrays, negative numbers
    {"id": 2, "i2": 0, "i4": -1, "i8": -9223372036854775808, "f4": "NaN", "f8": "Infinity",
     "n102": "-0.01", "n": "-1e-5", "b": False, "t": "", "vc": "", "ch": "",
     "j": "[]", "jb": '"just a string"', "tstz": "infinity", "ts": "-infinity",
     "d": "1999-12-31", "tm": "00:00:00", "tmtz": "23:59:59-05:30", "iv": "00:00:00",
     "by": "\\x", "u": "00000000-0000-0000-0000-000000000000", "m": "sad", "ma": "{}",
     "ai": "{}",
     "at": "{}", "ab": "{}", "af": "{}", "ip": "::1"},
    {"id": 3, "f4": "-Infinity", "f8": "-Infinity", "tstz": "-infinity", "ts": "infinity",
     "iv": "1 day 00:00:00.000001"},
    # NULL in every column
    {"id": 4},
]
COLUMNS = ["id", "i2", "i4", "i8", "f4", "f8", "n102", "n", "b", "t", "vc", "ch", "j", "jb",
           "tstz", "ts", "d", "tm", "tmtz", "iv", "by", "u", "m", "ma", "ai", "at", "ab", "af",
           "ip"]
CONFIG = """
dataset = "types"

[tables.alltypes]
method = "snapshot"
"""


@pytest.fixture
def types_db(db):
    db.execute(SCHEMA)
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    marks = ", ".join(["%s"] * len(COLUMNS))
    with db.primary() as conn:
        for r in ROWS:
            conn.execute(f"INSERT INTO alltypes ({names}) VALUES ({marks})",
                         [r.get(c) for c in COLUMNS])
    db.sync()
    return db


@pytest.fixture
def synced(types_db, replica, tmp_path):
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(types_db, CONFIG), store)
    sync(url, replica)
    return url


def by_id_of(replica: str, table: str, column: str) -> dict[int, object]:
    return {r[0]: r[1] for r in query(replica, f'SELECT id, "{column}" FROM public.{table}')}


def by_column(replica: str) -> dict[str, dict[int, Any]]:
    """Every column of alltypes as {id: value} (one read of the table)."""
    with reader(replica) as r:
        found = r.conn.execute("SELECT * FROM public.alltypes")
        names = [d[0] for d in found.description]
        data = found.fetchall()
    return {n: {row[0]: row[i] for row in data} for i, n in enumerate(names)}


def test_every_type_arrives_and_verifies(types_db, replica, synced):
    v = by_column(replica)
    report = verify(replica, types_db.standby_url)
    assert report.equal, json.dumps(report.to_json(), indent=1, default=str)
    assert [(t.table, t.compared_rows) for t in report.tables] == [("public.alltypes", 4)]

    # NULL and the empty string stay apart
    assert v["t"] == {1: TEXT, 2: "", 3: None, 4: None}
    assert v["vc"] == {1: "short", 2: "", 3: None, 4: None}
    assert v["i8"] == {1: 9223372036854775807, 2: -9223372036854775808,
                                    3: None, 4: None}
    assert v["n102"] == {1: Decimal("12345678.91"), 2: Decimal("-0.01"),
                                      3: None, 4: None}
    assert v["b"] == {1: True, 2: False, 3: None, 4: None}
    assert v["d"] == {1: date(2024, 2, 29), 2: date(1999, 12, 31), 3: None,
                                   4: None}
    assert v["tm"][1] == dtime(12, 34, 56, 500000)
    assert v["u"][1] == uuid.UUID(UUID)
    assert bytes(v["by"][1]) == b"\x00\xff\x10"
    assert bytes(v["by"][2]) == b""
    assert v["by"][4] is None
    assert v["tstz"][1] == datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=UTC)
    assert v["ts"][1] == datetime(2024, 2, 29, 12, 34, 56, 789000)
    floats = v["f8"]
    assert floats[1] == 3.141592653589793 and floats[2] == float("inf")
    assert floats[3] == float("-inf") and floats[4] is None
    assert normalize(v["f4"][2]) == "NaN"
    assert v["m"] == {1: "happy", 2: "sad", 3: None, 4: None}


    if is_postgres(replica):
        check_postgresql(replica, types_db)
    else:
        check_duckdb(replica, synced)


def check_duckdb(replica: str, synced: str) -> None:
    v = by_column(replica)
    types = dict(query(replica, "SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = 'alltypes' ORDER BY ordinal_position"))
    assert types == {
        "id": "INTEGER", "i2": "SMALLINT", "i4": "INTEGER", "i8": "BIGINT", "f4": "FLOAT",
        "f8": "DOUBLE", "n102": "DECIMAL(10,2)", "n": "VARCHAR", "b": "BOOLEAN",
        "t": "VARCHAR", "vc": "VARCHAR", "ch": "VARCHAR", "j": "JSON", "jb": "JSON",
        "tstz": "TIMESTAMP WITH TIME ZONE", "ts": "TIMESTAMP", "d": "DATE", "tm": "TIME",
        "tmtz": "TIME WITH TIME ZONE", "iv": "INTERVAL", "by": "BLOB", "u": "UUID",
        "m": "VARCHAR", "ma": "VARCHAR[]", "ai": "INTEGER[]", "at": "VARCHAR[]", "ab": "BOOLEAN[]",
        "af": "VARCHAR", "ip": "VARCHAR"}
    # JSON keeps the source's text (json as written, jsonb as PostgreSQL normalised it)
    assert v["j"] == {1: JSON, 2: "[]", 3: None, 4: None}
    assert v["jb"][1] == '{"k": "v", "n": 1.50}'
    assert v["jb"][2] == '"just a string"'
    assert v["ch"][1] == "ab   "  # char(n) keeps its padding
    # lists: NULL elements, quotes, commas, empty strings and the string "NULL"
    assert v["ai"] == {1: [1, 2, None], 2: [], 3: None, 4: None}
    assert v["at"][1] == ["a,b", 'quo"te', None, "", "NULL"]
    assert v["at"][2] == []
    assert v["ab"][1] == [True, False, None]
    assert v["ma"] == {1: ["ok", None, "sad"], 2: [], 3: None, 4: None}
    assert v["af"][1] == "{1.5,NaN,Infinity}"
    assert v["ip"] == {1: "192.168.0.1/24", 2: "::1", 3: None, 4: None}
    # an unconstrained numeric keeps every digit, as PostgreSQL's text
    assert v["n"] == {1: "1234567890.0123456789", 2: "-0.00001", 3: None, 4: None}
    # intervals keep their negative parts (months, days and time apart)
    (months, days, micros) = query(
        replica, "SELECT datepart('month', iv) + 12 * datepart('year', iv), "
        "datepart('day', iv), datepart('microseconds', iv) + 60000000 * "
        "(datepart('minute', iv) + 60 * datepart('hour', iv)) FROM public.alltypes "
        "WHERE id = 1")[0]
    assert (months, days, micros) == (-14, 3, -(4 * 3600 + 5 * 60 + 6.5) * 1_000_000)
    # infinities of timestamps survive
    inf = query(replica, "SELECT id, isinf(tstz), tstz > now(), isinf(ts), ts > now() "
                "FROM public.alltypes WHERE id IN (2, 3) ORDER BY id")
    assert inf == [(2, True, True, True, False), (3, True, False, True, True)]
    assert v["tmtz"][2] is not None
    # the mapping is what types.py documents, from the manifest's types
    with open_store(synced) as store:
        index = read_index(store)
        assert index is not None
        manifest = read_manifest(store, index.publications[0])
    assert {c.name: duckdb_type(c) for c in manifest.tables["public.alltypes"].columns} == {
        **types, "tstz": "TIMESTAMPTZ", "tmtz": "TIMETZ"}


def check_postgresql(replica: str, types_db: Database) -> None:
    with connect_pg(types_db.standby_url) as conn:
        found = conn.execute("SELECT * FROM alltypes").fetchall()
    source = [tuple(normalize(v) for v in r) for r in found]
    assert rows(replica, "public.alltypes") == sorted(source, key=repr)
    types = dict(query(replica, "SELECT attname, format_type(atttypid, atttypmod) FROM "
                       "pg_attribute WHERE attrelid = 'public.alltypes'::regclass AND "
                       "attnum > 0"))
    # the replica's own enum type, named after the source's and a hash of its labels
    assert re.fullmatch(r"mood_[0-9a-f]{8}", types["m"]) and types["ma"] == types["m"] + "[]"
    assert types["n102"] == "numeric(10,2)"
    assert types["vc"] == "character varying(10)" and types["af"] == "double precision[]"
    assert types["iv"] == "interval" and types["ip"] == "inet"
    assert query(replica, f"SELECT enum_range(NULL::{types['m']})::text")[0][0] == \
        "{sad,ok,happy}"
    (iv,) = query(replica, "SELECT iv FROM public.alltypes WHERE id = 1")[0]
    assert iv == timedelta(days=-365 - 2 * 30 + 3, hours=-4, minutes=-5, seconds=-6.5)



def test_a_two_dimensional_array_is_kept_as_text(db, replica, tmp_path):
    """format_type() prints integer[][] as integer[]; the declared dimensions are published
    so DuckDB keeps the column as PostgreSQL's array text."""
    db.execute("CREATE TABLE grid (id integer PRIMARY KEY, a2 integer[][]); "
               "INSERT INTO grid VALUES (1, '{{1,2},{3,4}}'), (2, '{}'), (3, NULL)")
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(db, "[tables.grid]\nmethod = \"snapshot\"\n"), store)
    sync(url, replica)
    assert by_id_of(replica, "grid", "a2")[1] in ("{{1,2},{3,4}}", [[1, 2], [3, 4]])
    if is_postgres(replica):
        assert query(replica, "SELECT array_dims(a2) FROM public.grid WHERE id = 1")[0][0] \
            == "[1:2][1:2]"
    else:
        assert columns(replica, "public.grid") == [("id", "INTEGER"), ("a2", "VARCHAR")]
    assert verify(replica, db.standby_url).equal


def _publish_and_sync(db, replica: str, url: str, toml: str) -> None:
    with open_store(url) as store:
        export_full(make_config(db, toml), store)
    sync(url, replica)


def test_an_enum_from_another_schema(db, replica, tmp_path):
    db.execute("CREATE SCHEMA lookup; CREATE TYPE lookup.state AS ENUM ('open', 'closed'); "
               "CREATE TABLE tickets (id integer PRIMARY KEY, st lookup.state, "
               "sts lookup.state[]); INSERT INTO tickets VALUES "
               "(1, 'open', '{open,closed}'), (2, 'closed', '{}'), (3, NULL, NULL)")
    _publish_and_sync(db, replica, str(tmp_path / "published"),
                      '[tables.tickets]\nmethod = "snapshot"\n')
    got = {r[0]: r[1:] for r in query(replica, "SELECT id, st, sts::VARCHAR FROM public.tickets")}
    assert got[1][0] == "open" and got[2][0] == "closed" and got[3] == (None, None)
    if is_postgres(replica):
        assert dict(columns(replica, "public.tickets"))["st"] == "USER-DEFINED"
        (name,) = query(replica, "SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE "
                        "attrelid = 'public.tickets'::regclass AND attname = 'st'")[0]
        assert name.startswith("state_")  # made by the replica in the table's schema
        assert query(replica, f"SELECT enum_range(NULL::{name})::text")[0][0] == \
            "{open,closed}"
        assert got[1][1] == "{open,closed}"
    else:
        assert got[1][1] == "[open, closed]"
    assert verify(replica, db.standby_url).equal


def test_a_column_named_like_the_hash_alias(db, tmp_path):
    """The content hash takes the whole row (s.*), even when a column is named s."""
    replica = str(tmp_path / "replica.duckdb")
    db.execute("CREATE TABLE notes (id integer PRIMARY KEY, s text[]); "
               "INSERT INTO notes VALUES (1, '{a,b}'), (2, NULL)")
    _publish_and_sync(db, replica, str(tmp_path / "published"),
                      '[tables.notes]\nmethod = "snapshot"\n')
    assert verify(replica, db.standby_url).equal


def test_a_value_that_does_not_fit_its_duckdb_column_widens_it_to_text(db, tmp_path):
    """A column declared integer[] may hold 2-D values and explicit lower bounds on
    PostgreSQL; DuckDB's list cannot: the column becomes PostgreSQL's text, every row of it
    (also rows loaded before), and the sync goes on."""
    replica = str(tmp_path / "replica.duckdb")
    db.execute("CREATE TABLE bad (id integer PRIMARY KEY, a integer[], t text[]); "
               "INSERT INTO bad VALUES (1, '{{1,2},{3,4}}', '{\"a b\",NULL,c}'), "
               "(2, '[0:1]={5,6}', '{{x,y}}'), (3, '{7,NULL}', '{}'), (4, NULL, NULL)")
    _publish_and_sync(db, replica, str(tmp_path / "published"),
                      '[tables.bad]\nmethod = "snapshot"\n')
    assert columns(replica, "public.bad") == [("id", "INTEGER"), ("a", "VARCHAR"),
                                              ("t", "VARCHAR")]
    assert sorted(query(replica, "SELECT id, a, t FROM public.bad")) == [
        (1, "{{1,2},{3,4}}", '{"a b",NULL,c}'), (2, "[0:1]={5,6}", "{{x,y}}"),
        (3, "{7,NULL}", "{}"), (4, None, None)]
    assert verify(replica, db.standby_url).equal
