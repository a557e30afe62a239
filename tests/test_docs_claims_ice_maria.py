"""Claims of docs/mariadb.md about what lands in an Iceberg replica (and the others), and
of docs/iceberg.md's type table for a MariaDB source, checked by running them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_iceberg_sync import catalog_file, iceberg_table
from test_mariadb_sync import _norm, _source_rows, published  # noqa: F401 (a fixture)
from topoff.sync import SyncOptions, sync
from topoff.targets.iceberg.config import open_catalog, read_settings

pytest_plugins = ["support.replica_fixtures"]

#: docs/iceberg.md, "Types": each MariaDB column's Iceberg type, from its logical kind
#: (docs/mariadb.md, "Type mapping")
ICEBERG_TYPES = {
    "i8": "int", "u8": "int", "b1": "int", "u16": "int", "i24": "int", "u24": "int",
    "u32": "long", "i64": "long", "u64": "decimal(20, 0)", "zf": "long",
    "zu": "decimal(20, 0)", "zdec": "decimal(8, 2)", "dec": "string", "flt": "float",
    "dbl": "double", "dmd": "double", "dzf": "double", "bits": "string", "b64": "string",
    "dt6": "timestamp", "dt0": "timestamp", "dt3": "timestamp", "ts6": "timestamptz",
    "d": "date", "tm": "string", "tm0": "string", "yr": "int", "en": "string",
    "st": "string", "js": "string", "bl": "binary", "bn": "binary", "vb": "binary",
    "vc": "string", "ch": "string", "c0": "string", "v0": "string", "tx": "string",
    "l1": "string", "u3": "string", "uc": "string", "gen": "long", "gst": "string",
    "zd": "date", "zdt": "timestamp", "at": "timestamp",
}


def test_every_mariadb_type_lands_in_iceberg_as_the_type_table_says(
        published, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md "Types" and mariadb.md "Type mapping": each column's Iceberg type, and
    each value as MariaDB returns it (zero dates NULL)."""
    maria, root = published
    target = catalog_file(tmp_path)
    sync(root, target, SyncOptions(cache_dir=tmp_path / "cache"))
    table = iceberg_table(target, f"{maria.name}.{maria.name}__every_type")
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    assert {n: types[n] for n in ICEBERG_TYPES} == ICEBERG_TYPES
    names, want = _source_rows(maria)
    arrow = table.scan().to_arrow().sort_by("id")
    got = list(zip(*(arrow.column(n).to_pylist() for n in names), strict=True))
    assert len(got) == len(want)
    for w, g in zip(want, got, strict=True):
        for name, a, b in zip(names, w, g, strict=True):
            if name in ("zd", "zdt") and w[0] in (0, 1):
                assert b is None, (name, w[0], b)
                continue
            assert _iceberg_norm(name, a) == _iceberg_norm(name, b), (name, w[0], a, b)


def _iceberg_norm(name: str, v: Any) -> Any:
    """A value of either side as the other holds it: the string columns hold the
    dataset's text, MariaDB returns values."""
    if name in ("tm", "tm0") and v is not None and not isinstance(v, str):
        total = int(v.total_seconds() * 1_000_000)
        sign, total = ("-" if total < 0 else ""), abs(total)
        s, us = divmod(total, 1_000_000)
        text = f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
        return text + (f".{us:06d}".rstrip("0") if us else "")
    if name in ("dec",) and v is not None:
        from decimal import Decimal
        return Decimal(str(v))
    if name in ("bits", "b64") and isinstance(v, str):
        return v
    if name == "u64" or name == "zu":
        return None if v is None else int(v)
    return _norm(name, v)


def test_uuid_inet_and_geometry_land_as_the_type_table_says(maria, replica: str,
                                                           tmp_path: Path) -> None:
    """mariadb.md "Type mapping": UUID is a uuid, geometry its WKT, INET4/INET6 the
    server's text, in every replica kind (Iceberg: strings), and verify finds them equal."""
    from topoff.config import Config, TableConfig
    from topoff.export.full import export_full
    from topoff.stores import open_store
    from topoff.verify import verify

    maria.execute(
        "CREATE TABLE odd (id INT PRIMARY KEY, u UUID, i4 INET4, i6 INET6, g GEOMETRY, "
        "p POINT); INSERT INTO odd VALUES "
        "(1, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '10.0.0.1', '::ffff:1.2.3.4', "
        "ST_GeomFromText('LINESTRING(0 0,1 1.5)'), POINT(-1, 2)), "
        "(2, NULL, NULL, NULL, NULL, NULL)")
    root = str(tmp_path / "pub")
    with open_store(root) as store:
        export_full(Config(dataset="odd", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="odd", method="snapshot"),)), store)
    want = [(1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "10.0.0.1", "::ffff:1.2.3.4",
             "LINESTRING(0 0,1 1.5)", "POINT(-1 2)"), (2, None, None, None, None, None)]
    iceberg = catalog_file(tmp_path)
    for target in (replica, iceberg):
        sync(root, target, SyncOptions(cache_dir=tmp_path / "cache"))
        report = verify(target, maria.replica_url)
        assert report.equal, report.to_json()
    from support.replica import reader
    with reader(replica) as r:
        got = r.query(f'SELECT id, u::text, i4, i6, g, p FROM "{maria.name}".odd ORDER BY id')
    assert [tuple(row) for row in got] == want
    arrow = iceberg_table(iceberg, f"{maria.name}.{maria.name}__odd").scan().to_arrow()
    assert sorted(zip(*(arrow.column(n).to_pylist() for n in
                        ("id", "u", "i4", "i6", "g", "p")), strict=True)) == want


def test_reconcile_from_mariadb_into_iceberg_takes_any_key_and_floats(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Not yet": `--reconcile` into Iceberg takes every key and column type
    (a text key, FLOAT and DOUBLE columns), where PostgreSQL and DuckDB take integer and
    decimal keys and no float."""
    from support.replicate import config
    from topoff.replicate.engine import run_once
    from topoff.replicate.operate import reconcile

    maria.execute(
        "CREATE TABLE kv (k VARCHAR(10) COLLATE utf8mb4_nopad_bin PRIMARY KEY, "
        "f FLOAT, d DOUBLE, at DATETIME(6) NOT NULL);"
        "INSERT INTO kv SELECT CONCAT('k', seq), seq / 3, seq / 7, "
        "'2026-01-01' + INTERVAL seq SECOND FROM seq_1_to_40")
    cfg = config(catalog_file(tmp_path), {"m": (maria.replica_url, {"kv": {
        "method": "updater", "cursor": "at", "boundary": "1s"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    maria.execute("DELETE FROM kv WHERE k IN ('k1', 'k2'); UPDATE kv SET f = -1.5, "
                  "d = 0.1 WHERE k = 'k3'")
    maria.pair.wait_replica()
    got = reconcile(cfg, f"m.{maria.name}.kv")
    assert (got.inserted, got.updated, got.deleted) == (0, 1, 2)
    from topoff.sources.mariadb.connect import connect
    with connect(maria.replica_url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT k, CAST(f AS DOUBLE), d FROM kv ORDER BY k")
        want = [(k, float(f), float(d)) for k, f, d in cur.fetchall()]
    catalog = open_catalog(read_settings(catalog_file(tmp_path)))
    [name] = [t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)
              if t[-1] == "kv"]
    table = catalog.load_table(name)
    arrow = table.scan().to_arrow().sort_by("k")
    got_rows = list(zip(*(arrow.column(n).to_pylist() for n in ("k", "f", "d")), strict=True))
    assert got_rows == want


def test_a_zero_date_in_a_not_null_column_lands_as_null_in_every_replica(
        maria, replica: str, tmp_path: Path) -> None:
    """mariadb.md "Zero dates": "Every DATE, DATETIME and TIMESTAMP column is therefore
    declared nullable in the manifest, whatever its definition"; the NULL lands."""

    from topoff.config import Config, TableConfig
    from topoff.export.full import export_full
    from topoff.stores import open_store

    maria.execute(
        "SET SESSION sql_mode = ''; CREATE TABLE z (id INT PRIMARY KEY, d DATE NOT NULL, "
        "dt DATETIME(6) NOT NULL, ts TIMESTAMP(6) NOT NULL DEFAULT '2024-01-01'); "
        "INSERT INTO z VALUES (1, '0000-00-00', '2024-00-10 00:00:00', '0000-00-00'), "
        "(2, '2024-05-06', '2024-05-06 01:02:03.5', '2024-05-06 01:02:03')")
    root = tmp_path / "pub"
    with open_store(str(root)) as store:
        export_full(Config(dataset="z", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="z", method="snapshot"),)), store)
    [manifest] = root.rglob("manifest.json")
    [table] = json.loads(manifest.read_text())["tables"].values()
    assert {c["name"]: c.get("nullable") for c in table["columns"]} == {
        "id": False, "d": True, "dt": True, "ts": True}
    iceberg = catalog_file(tmp_path)
    for target in (replica, iceberg):
        sync(str(root), target, SyncOptions(cache_dir=tmp_path / "cache"))
    from support.replica import reader
    with reader(replica) as r:
        got = r.query(f'SELECT id, d, dt FROM "{maria.name}".z ORDER BY id')
    assert tuple(got[0]) == (1, None, None)
    arrow = iceberg_table(iceberg, f"{maria.name}.{maria.name}__z").scan().to_arrow()
    assert sorted(arrow.to_pylist(), key=lambda r: r["id"])[0] == {
        "id": 1, "d": None, "dt": None, "ts": None}


def test_replicate_lands_every_mariadb_type_in_iceberg_as_sync_does(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Replicate": the same mapping and values as an export (here into an
    Iceberg target, iceberg.md "Types")."""
    from support.replicate import config
    from test_mariadb_types import _create
    from topoff.replicate.engine import run_once

    _create(maria)
    target = catalog_file(tmp_path)
    [run] = run_once(config(target, {"m": (maria.replica_url, {
        "every_type": {"method": "snapshot"}})}))
    assert run.status == "ok", run.error
    catalog = open_catalog(read_settings(target))
    [name] = [t for ns in catalog.list_namespaces() for t in catalog.list_tables(ns)
              if t[-1] == "every_type"]
    table = catalog.load_table(name)
    types = {f.name: str(f.field_type) for f in table.schema().fields}
    want_types = {n: t for n, t in ICEBERG_TYPES.items() if n not in ("zd", "zdt", "at")}
    assert {n: types[n] for n in want_types} == want_types
    names, want = _source_rows(maria)
    arrow = table.scan().to_arrow().sort_by("id")
    got = list(zip(*(arrow.column(n).to_pylist() for n in names), strict=True))
    assert len(got) == len(want)
    for w, g in zip(want, got, strict=True):
        for n, a, b in zip(names, w, g, strict=True):
            assert _iceberg_norm(n, a) == _iceberg_norm(n, b), (n, w[0], a, b)
