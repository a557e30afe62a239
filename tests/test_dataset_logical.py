"""The neutral column vocabulary: ``logical`` and ``native`` on every column, ``source.engine``.

New manifests carry them; a manifest without them (every dataset written before) reads and
syncs as before, with ``logical`` derived from ``type``; hostile values are refused with
exit 6 and one line; targets choose column types from ``logical``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cli import error_lines, run_cli
from support.dataset import index_ids, rewrite_manifest
from support.pg import Database, make_config
from support.replica import Replicas, contents, day, query
from topoff.dataset.index import read_index, read_manifest
from topoff.dataset.layout import Window
from topoff.dataset.logical import Logical, LogicalError, check_agrees, from_pg_type
from topoff.dataset.manifest import Column
from topoff.demo.cluster import ThrowawayCluster
from topoff.errors import IntegrityError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.pgtypes import LENGTH, PLAIN
from topoff.stores import open_store
from topoff.sync import sync
from topoff.sync.apply import SchemaChangeError
from topoff.targets.duckdb.types import duckdb_type

pytest_plugins = ["support.replica_fixtures"]

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (id integer PRIMARY KEY, at timestamptz NOT NULL, n numeric(10,2),
                    s smallint, b bytea, tags text[], flag boolean, m mood, bits bit(3),
                    ip inet, u numeric(20,0), ts timestamp(3) without time zone);
"""
CONFIG = """
dataset = "kinds"

[tables.kinds]
method = "append"
cursor = "at"
"""
TABLE = "public.kinds"
BIG = 18446744073709551615  # the largest unsigned 64-bit integer


@pytest.fixture(scope="module")
def base_dataset(cluster: ThrowawayCluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Path, list[str]]]:
    name = f"logical{os.getpid()}"
    cluster.create_database(name)
    db = Database(name, cluster)
    try:
        db.execute(SCHEMA)
        for d, n in ((day(2), 4), (day(1), 3)):
            db.execute(
                "INSERT INTO kinds SELECT g + %s, %s::timestamptz + g * interval '1 minute', "
                "g * 1.25, g, '\\xdead'::bytea, ARRAY['a', 'b c'], g %% 2 = 0, 'ok', B'101', "
                "'10.0.0.1', %s - g, '2026-01-02 03:04:05.678' FROM generate_series(1, %s) g",
                [100 * d.day, f"{d.isoformat()} 01:00+00", BIG, n])
        directory = tmp_path_factory.mktemp("logical") / "published"
        config = make_config(db, CONFIG)
        with open_store(str(directory)) as store:
            ids = [p.id for p in export_full(config, store).publications]
            db.execute("INSERT INTO kinds (id, at) VALUES (999, %s)",
                       [f"{day(1).isoformat()} 05:00+00"])
            ids += [p.id for p in export_incremental(config, store,
                                                     Window.day(day(1))).publications]
        yield directory, ids
    finally:
        cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def dataset(base_dataset: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, str]:
    """A fresh copy of the dataset: (directory, full export id)."""
    directory = tmp_path / "published"
    shutil.copytree(base_dataset[0], directory)
    return directory, base_dataset[1][0]


def read_everything(directory: Path) -> None:
    with open_store(str(directory)) as store:
        index = read_index(store)
        assert index is not None
        for p in index.publications:
            read_manifest(store, p)


def column(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["tables"][TABLE]["columns"] if c["name"] == name)


def every_manifest(directory: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    for pub in index_ids(directory):
        rewrite_manifest(directory, pub, edit)


# -- what the PostgreSQL source writes -----------------------------------------------------

def test_new_manifests_name_the_engine_and_every_columns_types(dataset):
    directory, full = dataset
    doc = json.loads((directory / full / "manifest.json").read_bytes())
    assert doc["source"]["engine"] == "postgresql"
    by_name = {c["name"]: c for c in doc["tables"][TABLE]["columns"]}
    assert all(c["native"] == c["type"] for c in by_name.values())
    assert by_name["n"]["logical"] == {"kind": "decimal", "precision": 10, "scale": 2}
    assert by_name["s"]["logical"] == {"kind": "int", "bits": 16, "unsigned": False}
    assert by_name["at"]["logical"] == {"kind": "timestamp", "zone": True}
    assert by_name["ts"]["logical"] == {"kind": "timestamp", "precision": 3, "zone": False}
    assert by_name["tags"]["logical"] == {"kind": "array", "element": {"kind": "text"}}
    assert by_name["m"]["logical"] == {"kind": "enum"}
    assert by_name["bits"]["logical"] == {"kind": "bits", "length": 3, "varying": False}
    assert by_name["ip"]["logical"] == {"kind": "other"}
    assert by_name["b"]["logical"] == {"kind": "bytes"}


# -- hostile values are refused when the manifest is read -----------------------------------

HOSTILE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "unknown kind": lambda d: column(d, "s").update(logical={"kind": "tinyblob"}),
    "kind not text": lambda d: column(d, "s").update(logical={"kind": ["int"]}),
    "logical not an object": lambda d: column(d, "s").update(logical="int"),
    "bits 7": lambda d: column(d, "s").update(logical={"kind": "int", "bits": 7}),
    "bits as text": lambda d: column(d, "s").update(logical={"kind": "int", "bits": "16"}),
    "bits as a boolean": lambda d: column(d, "s").update(logical={"kind": "int", "bits": True}),
    "int without bits": lambda d: column(d, "s").update(logical={"kind": "int"}),
    "unsigned as text": lambda d: column(d, "s").update(
        logical={"kind": "int", "bits": 8, "unsigned": "yes"}),
    "precision -1": lambda d: column(d, "n").update(
        logical={"kind": "decimal", "precision": -1, "scale": 0}),
    "precision 10**9": lambda d: column(d, "n").update(
        logical={"kind": "decimal", "precision": 10**9}),
    "scale above precision": lambda d: column(d, "n").update(
        logical={"kind": "decimal", "precision": 2, "scale": 3}),
    "time precision 7": lambda d: column(d, "ts").update(
        logical={"kind": "timestamp", "precision": 7}),
    "extra key": lambda d: column(d, "s").update(
        logical={"kind": "int", "bits": 16, "unsigned": False, "sql": "DROP TABLE x"}),
    "field of another kind": lambda d: column(d, "s").update(
        logical={"kind": "int", "bits": 16, "zone": True}),
    "array of arrays": lambda d: column(d, "tags").update(
        logical={"kind": "array", "element": {"kind": "array", "element": {"kind": "text"}}}),
    "deep nesting": lambda d: column(d, "tags").update(logical=_nested(200)),
    "set label with a comma": lambda d: column(d, "ip").update(
        type="text", logical={"kind": "set", "labels": ["a,b"]}),
    "int over text": lambda d: column(d, "ip").update(
        type="text", logical={"kind": "int", "bits": 64}),
    "logical int on a numeric(10,2)": lambda d: column(d, "n").update(
        logical={"kind": "int", "bits": 32}),
    "unsigned 64 in numeric(19,0)": lambda d: column(d, "u").update(
        type="numeric(19,0)", logical={"kind": "int", "bits": 64, "unsigned": True}),
    "64 bits in a smallint": lambda d: column(d, "s").update(
        logical={"kind": "int", "bits": 64}),
    "float 64 in a decimal": lambda d: column(d, "n").update(
        logical={"kind": "float", "bits": 64}),
    "zone disagreeing": lambda d: column(d, "ts").update(
        logical={"kind": "timestamp", "precision": 3, "zone": True}),
    "precision disagreeing": lambda d: column(d, "ts").update(
        logical={"kind": "timestamp", "precision": 6}),
    "decimal scale disagreeing": lambda d: column(d, "n").update(
        logical={"kind": "decimal", "precision": 10, "scale": 3}),
    "enum without labels": lambda d: column(d, "ip").update(logical={"kind": "enum"}),
    "bits length disagreeing": lambda d: column(d, "bits").update(
        logical={"kind": "bits", "length": 4, "varying": False}),
    "array over a scalar": lambda d: column(d, "s").update(
        logical={"kind": "array", "element": {"kind": "int", "bits": 16}}),
    "native with control characters": lambda d: column(d, "s").update(
        native="smallint\x1b]0;owned\x07"),
    "native with a newline": lambda d: column(d, "s").update(native="smallint\nerror: fake"),
    "native 10 kB long": lambda d: column(d, "s").update(native="x" * 10_000),
    "native empty": lambda d: column(d, "s").update(native=""),
    "native a number": lambda d: column(d, "s").update(native=5),
    "unknown engine": lambda d: d["source"].update(engine="oracle"),
    "engine a list": lambda d: d["source"].update(engine=["postgresql"]),
}


def _nested(depth: int) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": "text"}
    for _ in range(depth):
        d = {"kind": "array", "element": d}
    return d


@pytest.mark.parametrize("edit", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_logical_or_native_field_is_refused(dataset, edit):
    directory, full = dataset
    rewrite_manifest(directory, full, HOSTILE[edit])
    with pytest.raises(IntegrityError) as info:
        read_everything(directory)
    assert info.value.exit_code == 6 and info.value.hint
    assert "\n" not in info.value.message and len(info.value.message) < 500
    assert "\x1b" not in info.value.message


@pytest.mark.parametrize("edit", ["unknown kind", "native with control characters",
                                  "logical int on a numeric(10,2)"])
def test_sync_stops_on_a_hostile_column_with_exit_6(dataset, edit, tmp_path):
    directory, full = dataset
    rewrite_manifest(directory, full, HOSTILE[edit])
    result = run_cli("sync", str(directory), str(tmp_path / "r.duckdb"))
    assert result.exit_code == 6, result.stderr
    error, _ = error_lines(result)
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "logical" in error or "native" in error


# -- datasets written before the vocabulary -------------------------------------------------

def _strip(doc: dict[str, Any]) -> None:
    doc["source"].pop("engine", None)
    for t in doc["tables"].values():
        for c in t["columns"]:
            c.pop("logical", None)
            c.pop("native", None)


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_an_old_dataset_without_logical_types_still_syncs(dataset, engine, cluster, tmp_path):
    directory, _ = dataset
    old = tmp_path / "old"
    shutil.copytree(directory, old)
    every_manifest(old, _strip)
    r = Replicas(engine, tmp_path, cluster)
    try:
        now, before = r.new(), r.new()
        sync(str(directory), now)
        result = sync(str(old), before)
        assert result.base_loaded and len(result.applied) == len(index_ids(old)) - 1
        assert contents(before) == contents(now)
        assert query(before, "SELECT count(*) FROM public.kinds") == [(8,)]
    finally:
        r.close()


def test_derived_logical_types_are_read_back_the_same(dataset):
    directory, full = dataset
    every_manifest(directory, _strip)
    with open_store(str(directory)) as store:
        index = read_index(store)
        assert index is not None
        m = read_manifest(store, index.get(full))  # type: ignore[arg-type]
    assert m.engine == "postgresql"
    cols = {c.name: c for c in m.tables[TABLE].columns}
    assert cols["u"].logical == Logical("decimal", precision=20, scale=0)
    assert cols["tags"].logical == Logical("array", element=Logical("text"))
    assert cols["s"].native is None


def test_a_partition_changing_a_logical_type_stops_the_sync(base_dataset, tmp_path):
    directory = tmp_path / "published"
    shutil.copytree(base_dataset[0], directory)
    partition = base_dataset[1][-1]
    rewrite_manifest(directory, partition, lambda d: column(d, "s").update(
        logical={"kind": "int", "bits": 8}))
    with pytest.raises(SchemaChangeError, match="another logical type") as info:
        sync(str(directory), str(tmp_path / "r.duckdb"))
    assert info.value.exit_code == 7 and "--rebase" in (info.value.hint or "")


# -- targets map from logical -------------------------------------------------------------

def _as_mariadb(doc: dict[str, Any]) -> None:
    doc["source"]["engine"] = "mariadb"
    column(doc, "u").update(logical={"kind": "int", "bits": 64, "unsigned": True},
                            native="bigint(20) unsigned")
    column(doc, "s").update(logical={"kind": "int", "bits": 8, "unsigned": False},
                            native="tinyint(4)")
    column(doc, "ip").update(type="text", logical={"kind": "set", "labels": ["a", "b"]},
                             native="set('a','b')")


def test_duckdb_columns_follow_the_logical_type(dataset, tmp_path):
    directory, _ = dataset
    every_manifest(directory, _as_mariadb)
    replica = str(tmp_path / "r.duckdb")
    sync(str(directory), replica)
    types = dict(query(replica, "SELECT column_name, data_type FROM duckdb_columns() "
                                "WHERE table_name = 'kinds'"))
    assert types["u"] == "UBIGINT" and types["s"] == "TINYINT" and types["ip"] == "VARCHAR"
    assert types["n"] == "DECIMAL(10,2)" and types["tags"] == "VARCHAR[]"
    assert query(replica, "SELECT max(u) FROM public.kinds") == [(BIG - 1,)]


def test_a_postgresql_replica_keeps_the_exact_type(dataset, tmp_path, cluster):
    directory, _ = dataset
    every_manifest(directory, _as_mariadb)
    r = Replicas("postgresql", tmp_path, cluster)
    try:
        replica = r.new()
        sync(str(directory), replica)
        found = dict(query(replica, "SELECT attname::text, format_type(atttypid, atttypmod) "
                           "FROM pg_attribute WHERE attrelid = 'public.kinds'::regclass "
                           "AND attnum > 0"))
        assert found["u"] == "numeric(20,0)" and found["s"] == "smallint"
        assert query(replica, "SELECT max(u) FROM public.kinds") == [(BIG - 1,)]
    finally:
        r.close()


# -- the vocabulary itself ----------------------------------------------------------------

TYPES = [*sorted(PLAIN), *LENGTH, "numeric", "numeric(12,4)", "numeric(5,-2)", "numeric(60,2)",
         "time(3) with time zone", "timestamp without time zone", "interval",
         "interval day to second(2)", "integer[]", "text[][]", "public.t", "citext",
         "bit(9)", "bit varying(4)", "character varying(20)[]"]


@pytest.mark.parametrize("pg_type", TYPES)
def test_every_postgresql_type_has_a_logical_type_that_agrees(pg_type):
    lg = from_pg_type(pg_type)
    check_agrees(lg, pg_type, None, "c")
    assert Logical.from_json(json.loads(json.dumps(lg.to_json())), "c") == lg
    assert Column("c", pg_type).logical == lg
    if lg.kind == "array":
        assert lg.element is not None and lg.element.kind != "array"


def test_a_text_enum_from_a_source_without_enum_types():
    c = Column.from_json({"name": "e", "type": "text", "enum": ["a", "b"],
                          "logical": {"kind": "enum"}, "native": "enum('a','b')"}, "c")
    assert c.enum == ["a", "b"] and duckdb_type(c) == "VARCHAR"
    with pytest.raises(ValueError, match="enum labels"):
        Column.from_json({"name": "e", "type": "text", "enum": ["a"]}, "c")


@pytest.mark.parametrize(("logical", "pg_type", "duck"), [
    ({"kind": "int", "bits": 8}, "smallint", "TINYINT"),
    ({"kind": "int", "bits": 8, "unsigned": True}, "smallint", "SMALLINT"),
    ({"kind": "int", "bits": 16, "unsigned": True}, "integer", "INTEGER"),
    ({"kind": "int", "bits": 32, "unsigned": True}, "bigint", "BIGINT"),
    ({"kind": "int", "bits": 64, "unsigned": True}, "numeric(20,0)", "UBIGINT"),
    ({"kind": "timestamp", "precision": 6, "zone": False}, "timestamp(6) without time zone",
     "TIMESTAMP"),
    ({"kind": "set", "labels": ["a", "b"]}, "text", "VARCHAR"),
    ({"kind": "bits", "length": 1, "varying": False}, "bit(1)", "VARCHAR"),
    ({"kind": "json"}, "jsonb", "JSON"),
    ({"kind": "other"}, "integer", "VARCHAR"),
])
def test_duckdb_type_of_a_logical_type(logical, pg_type, duck):
    c = Column.from_json({"name": "c", "type": pg_type, "logical": logical}, "c")
    assert duckdb_type(c) == duck


@pytest.mark.parametrize(("logical", "pg_type"), [
    ({"kind": "int", "bits": 32, "unsigned": True}, "integer"),
    ({"kind": "int", "bits": 16}, "oid"),
    ({"kind": "bool"}, "smallint"),
    ({"kind": "uuid"}, "text"),
    ({"kind": "timestamp"}, "date"),
])
def test_a_logical_type_the_column_type_cannot_hold_is_refused(logical, pg_type):
    with pytest.raises(LogicalError):
        check_agrees(Logical.from_json(logical, "c"), pg_type, None, "c")
