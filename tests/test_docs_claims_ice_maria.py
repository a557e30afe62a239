"""Claims of docs/iceberg.md, docs/mariadb.md and docs/commands/iceberg-*.md, checked by
running what the pages show."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support.cli import run_cli
from test_iceberg_sync import catalog_file, iceberg_table, standard  # noqa: F401
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


def test_the_duckdb_queries_and_catalog_the_page_shows(standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md "Querying the replica": the metadata file's path as shown, the SQL
    catalog's ``iceberg_tables`` with its ``metadata_location`` and the catalog name
    ``topoff``, and the offline DuckDB query over the data files pyiceberg lists."""
    import sqlite3

    import duckdb

    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    table = iceberg_table(target, "public.messages")
    warehouse = tmp_path / "warehouse"
    assert re.fullmatch(rf"(file://)?{warehouse}/replica/messages/metadata/"
                        r"\d{5}-[0-9a-f-]+\.metadata\.json", table.metadata_location), \
        table.metadata_location
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        rows = conn.execute("SELECT catalog_name, table_namespace, metadata_location "
                            "FROM iceberg_tables WHERE table_name = 'messages'").fetchall()
    assert rows == [("topoff", "replica", table.metadata_location)]
    files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    count = duckdb.connect().execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = false, "
        "union_by_name = true)", [files]).fetchone()
    assert count == (table.scan().to_arrow().num_rows,)


@pytest.mark.parametrize("option", [("--since", "2026-01-01"), ("--schema", "x"),
                                    ("--primary-keys",)])
def test_sync_options_an_iceberg_replica_refuses(standard, tmp_path: Path,  # noqa: F811
                                                 option: tuple[str, ...]) -> None:
    """iceberg.md: "`--since`, `--schema` and `--primary-keys` are refused (exit 2)"."""
    _, url = standard
    target = catalog_file(tmp_path)
    out = run_cli("sync", url, target, *option)
    assert out.exit_code == 2, out.stdout + out.stderr
    assert f"{option[0]} is not supported for an Iceberg replica" in out.stderr
    assert not (tmp_path / "warehouse").exists()


#: iceberg.md "Types", one PostgreSQL column per row of the table
PG_TYPES = {
    "bo": ("boolean", "true", "boolean"),
    "i2": ("smallint", "-32768", "int"), "i4": ("integer", "2147483647", "int"),
    "i8": ("bigint", "-9223372036854775808", "long"),
    "f4": ("real", "'NaN'", "float"), "f8": ("double precision", "'-Infinity'", "double"),
    "n38": ("numeric(38,2)", "'-" + "9" * 36 + ".99'", "decimal(38, 2)"),
    "n": ("numeric", "'NaN'", "string"), "n40": ("numeric(40,2)", "'1.50'", "string"),
    "tz": ("timestamptz", "'2024-01-01 01:00:00.000001+01'", "timestamptz"),
    "ts": ("timestamp", "'9999-12-31 23:59:59.999999'", "timestamp"),
    "d": ("date", "'0001-01-01'", "date"), "by": ("bytea", "'\\x00ff'", "binary"),
    "ai2": ("smallint[]", "'{1,NULL}'", "list<int>"), "ai4": ("integer[]", "'{}'", "list<int>"),
    "ai8": ("bigint[]", "'{1}'", "list<long>"), "af4": ("real[]", "'{1.5}'", "list<float>"),
    "af8": ("double precision[]", "'{NaN}'", "list<double>"),
    "abo": ("boolean[]", "'{t,f}'", "list<boolean>"),
    "atx": ("text[]", "'{a,\"b,c\"}'", "list<string>"), "aen": ("mood[]", "'{ok}'", "list<string>"),
    "anu": ("numeric[]", "'{1.50}'", "list<string>"),
    "js": ("json", "'{\"a\": 1}'", "string"), "jb": ("jsonb", "'{\"a\": 1}'", "string"),
    "tx": ("text", "''", "string"), "en": ("mood", "'ok'", "string"),
    "uu": ("uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "string"),
    "tm": ("time", "'24:00:00'", "string"), "ttz": ("timetz", "'10:00:00+15:59'", "string"),
    "iv": ("interval", "'1 mon'", "string"), "bi": ("bit(3)", "'101'", "string"),
    "ip": ("inet", "'10.0.0.1'", "string"),
}


def test_every_row_of_the_iceberg_type_table(db, tmp_path: Path) -> None:
    """iceberg.md "Types": each kind of column becomes the Iceberg type the table names,
    and the value lands (strings as PostgreSQL's text, lists as lists)."""
    from support.pg import make_config
    from support.replica import publish_full
    from test_iceberg_sync import iceberg_rows
    from topoff.verify import verify

    db.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
    db.execute("CREATE TABLE one (id int PRIMARY KEY, "
               + ", ".join(f"{n} {t}" for n, (t, _v, _i) in PG_TYPES.items()) + ")")
    db.execute(f"INSERT INTO one (id, {', '.join(PG_TYPES)}) VALUES (1, "
               + ", ".join(v for _t, v, _i in PG_TYPES.values()) + "), "
               f"(2, {', '.join('NULL' for _ in PG_TYPES)})")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "t"\n[tables.one]\nmethod = "snapshot"\n'), url)
    target = catalog_file(tmp_path)
    out = run_cli("sync", url, target)
    assert out.exit_code == 0, out.stdout + out.stderr
    table = iceberg_table(target, "public.one")
    types = {f.name: str(f.field_type).replace("list<", "list<").lower()
             for f in table.schema().fields}
    assert {n: types[n] for n in PG_TYPES} == {n: i for n, (_t, _v, i) in PG_TYPES.items()}
    assert all(f.optional for f in table.schema().fields)  # every column is optional
    [full, empty] = [dict(zip(["id", *PG_TYPES], r, strict=True))
                     for r in sorted(iceberg_rows(target, "public.one"),
                                     key=lambda r: r[0])]
    assert set(empty.values()) == {2, None}
    assert (full["n"], full["n40"], full["tm"], full["ttz"], full["iv"], full["bi"]) == \
        ("NaN", "1.50", "24:00:00", "10:00:00+15:59", "1 mon", "101")
    assert full["by"] == b"\x00\xff" and full["atx"] == ["a", "b,c"]
    assert full["aen"] == ["ok"] and full["anu"] == ["1.50"] and full["ai2"] == [1, None]
    assert verify(target, db.standby_url).equal


DOCS = Path(__file__).resolve().parent.parent / "docs"


def _page_lines(page: str) -> list[re.Pattern[str]]:
    """The output lines a command page's examples show, numbers left open."""
    text = (DOCS / "commands" / page).read_text().split("## Examples", 1)[1]
    lines = [ln for block in text.split("```console\n")[1:] for ln in
             block.split("```", 1)[0].splitlines()
             if ln and not ln.startswith(("$ ", "error:", "hint:", "(exit"))]
    patterns = [re.sub(r"\d+(\\\.\d+)?", r"\\d+(\\.\\d+)?", re.escape(ln.split(": ", 1)[1]))
                for ln in lines]
    return [re.compile(r"public\.\w+: " + p.replace("\\ ", " ")) for p in patterns]


def _shown(page: str, stdout: str) -> None:
    patterns = _page_lines(page)
    for line in stdout.splitlines():
        assert any(p.fullmatch(line) for p in patterns), (page, line)


def test_the_maintenance_commands_print_as_their_pages_show(standard, tmp_path: Path,  # noqa: F811
                                                            monkeypatch) -> None:
    """iceberg-compact.md, iceberg-expire.md, iceberg-remove-orphans.md: every line the
    commands print is of a form their examples show."""
    from topoff.sync import iceberg_apply

    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)  # small files to compact
    _, url = standard
    target = catalog_file(tmp_path)
    assert run_cli("sync", url, target).exit_code == 0
    runs = [("iceberg-compact.md", ("compact", "--table", "messages", "--dry-run")),
            ("iceberg-compact.md", ("compact", "--table", "messages",
                                    "--target-file-size", "64MB")),
            ("iceberg-compact.md", ("compact", "--table", "messages")),
            ("iceberg-expire.md", ("expire", "--older-than", "0s", "--dry-run")),
            ("iceberg-expire.md", ("expire", "--older-than", "0s")),
            ("iceberg-remove-orphans.md", ("remove-orphans", "--dry-run")),
            ("iceberg-remove-orphans.md", ("remove-orphans", "--older-than", "3d"))]
    outs = []
    for page, args in runs:
        out = run_cli("iceberg", args[0], target, *args[1:])
        assert out.exit_code == 0, out.stdout + out.stderr
        _shown(page, out.stdout)
        outs.append(out.stdout)
    assert "would rewrite" in outs[0] and "rewrote" in outs[1] and "nothing to merge" in outs[2]

def test_compact_of_a_table_in_a_catalog_without_tables_says_there_are_none(
        tmp_path: Path) -> None:
    """iceberg-compact.md: an unknown --table is exit 2, its hint names the tables there;
    a catalog that holds none says so (the hint was "tables here: ", naming nothing)."""
    target = catalog_file(tmp_path)
    out = run_cli("iceberg", "compact", target, "--table", "public.nope")
    assert out.exit_code == 2, out.stdout + out.stderr
    hint = [ln for ln in out.stderr.splitlines() if ln.startswith("hint: ")]
    assert hint == ["hint: no table topoff made is here: build one with `topoff sync` or "
                    "`topoff replicate`"], out.stderr


def test_the_mariadb_commands_example_prints_what_the_page_shows(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Commands": the shop example, run as shown (days relative to today)."""
    from datetime import UTC, datetime, timedelta
    today = datetime.now(UTC).date()
    d1, d2 = today - timedelta(days=4), today - timedelta(days=3)
    maria.execute(
        "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6), what TEXT);"
        f"INSERT INTO events VALUES (1, '{d1} 10:00:00.000001', 'a'),"
        f"(2, '{d1} 23:59:59.999999', 'b'), (3, '{d2} 00:00:00', 'c'),"
        f"(4, '{d2} 12:00:00.5', 'd'), (5, '{today} 00:00:01', 'e')")
    config = tmp_path / "shop.toml"
    config.write_text(
        f'dataset = "shop"\n\n[source]\nurl = "{maria.replica_url}"\n\n[export]\n'
        f'lookback_days = 1\n\n[tables.events]\nschema = "{maria.name}"\n'
        'method = "append"\ncursor = "at"\n')
    to, replica = str(tmp_path / "shop"), str(tmp_path / "replica.duckdb")
    outs = [run_cli("export", "full", "--config", str(config), "--to", to),
            run_cli("export", "incremental", "--config", str(config), "--to", to,
                    "--date", str(d2)),
            run_cli("sync", to, replica),
            run_cli("verify", replica, "--against", maria.replica_url)]
    maria.execute("DELETE FROM events WHERE id = 4")
    outs.append(run_cli("verify", replica, "--against", maria.replica_url))
    assert [o.exit_code for o in outs] == [0, 0, 0, 0, 1]
    names = {str(tmp_path / "shop"): "/srv/dumps/shop", replica: "replica.duckdb",
             maria.name: "shop", str(d1): "2026-11-26", str(d2): "2026-11-27"}
    got = []
    for o in outs:
        text = "\n".join([ln.split(" ", 1)[1] for ln in o.stderr.splitlines()
                          if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", ln)]
                         + [ln for ln in o.stderr.splitlines() if ln.startswith("hint: ")]
                         + o.stdout.splitlines())
        for real, shown in names.items():
            text = text.replace(real, shown)
        got.append(_open_numbers(text))
    print("\n\n".join(got))
    assert got == _page_outputs("mariadb.md", "$ topoff export full --config shop.toml")


def _open_numbers(text: str) -> str:
    """``text`` with what changes from run to run left open: a full export's time,
    sizes, durations."""
    text = re.sub(r"full/\d{4}-\d\d-\d\dT\d{6}Z", "full/T", text)
    return re.sub(r"\d+\.\ds\b", "0.0s", re.sub(r"\b\d+ bytes", "N bytes", text))


def _page_outputs(page: str, first: str) -> list[str]:
    """The output under each command of the console block of ``page`` starting with
    ``first``."""
    text = (DOCS / page).read_text()
    block = first + text.split(first, 1)[1].split("```", 1)[0]
    parts = re.split(r"^\$ .*\n", block, flags=re.M)[1:]
    return [_open_numbers(p.rstrip("\n")) for p in parts]


def test_the_privileges_the_page_lists_are_enough(maria, tmp_path: Path) -> None:
    """mariadb.md "Privileges the source user needs": a user with exactly SELECT on the
    database, REPLICA MONITOR, BINLOG MONITOR and RELOAD exports with two workers (the
    GTID pinned), verifies and replicates; `init` and `check-config` work for it."""
    import json

    from support.cli import write_config

    user = f"pv{maria.name}"
    maria.execute(
        "CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, v TEXT);"
        "INSERT INTO ev SELECT seq, UTC_TIMESTAMP(6) - INTERVAL 2 DAY, 'x' "
        "FROM seq_1_to_50; CREATE TABLE other (id INT PRIMARY KEY); "
        "INSERT INTO other VALUES (1);"
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
        f"GRANT SELECT ON `{maria.name}`.* TO '{user}'@'127.0.0.1';"
        f"GRANT REPLICA MONITOR, BINLOG MONITOR, RELOAD ON *.* TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    url = maria.pair.replica.url(maria.name, user=user, password="p")
    try:
        out = run_cli("init", "--source", url, "--output", str(tmp_path / "init.toml"))
        assert out.exit_code == 0, out.stdout + out.stderr
        text = (f'dataset = "shop"\n[source]\nurl = "{url}"\n'
                f'[tables.ev]\nschema = "{maria.name}"\nmethod = "append"\ncursor = "at"\n'
                f'[tables.other]\nschema = "{maria.name}"\n')
        cfg = write_config(tmp_path / "c.toml", text)
        out = run_cli("check-config", "--config", cfg)
        assert out.exit_code == 0, out.stdout + out.stderr
        out = run_cli("export", "full", "--config", cfg, "--to", str(tmp_path / "d"),
                      "--jobs", "2")
        assert out.exit_code == 0, out.stdout + out.stderr
        assert "one connection" not in out.stderr, out.stderr
        [manifest] = (tmp_path / "d").rglob("manifest.json")
        position = json.loads(manifest.read_text())["snapshot"]["position"]
        assert position["engine"] == "mariadb" and position["gtid"], position
        replica = str(tmp_path / "r.duckdb")
        assert run_cli("sync", str(tmp_path / "d"), replica).exit_code == 0
        out = run_cli("verify", replica, "--against", url)
        assert out.exit_code == 0, out.stdout + out.stderr
        from support.replicate import config
        from topoff.replicate.engine import run_once
        runs = run_once(config(str(tmp_path / "rep.duckdb"), {"m": (url, {
            "ev": {"method": "updater", "cursor": "at"}, "other": {"method": "snapshot"}})}))
        assert [(r.status, r.rows) for r in runs] == [("ok", 50), ("ok", 1)], runs
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


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
    import json

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


def test_the_ledger_properties_and_summaries_the_page_names(standard, tmp_path: Path  # noqa: F811
                                                            ) -> None:
    """iceberg.md "What one commit holds": the table properties and snapshot summary keys
    of the ledger, `topoff.step` `ready` once built; `topoff.revision` in a partition's
    snapshots only (the page named it for every snapshot: a full export has none)."""
    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    table = iceberg_table(target, "public.messages")
    props = {k for k in table.properties if k.startswith("topoff.")}
    assert props >= {"topoff.dataset", "topoff.origin", "topoff.base", "topoff.sequence",
                     "topoff.publication", "topoff.step", "topoff.definition"}, props
    assert table.properties["topoff.step"] == "ready"
    for snap in table.metadata.snapshots:
        keys = {k for k in snap.summary.additional_properties if k.startswith("topoff.")}
        partition = not snap.summary["topoff.publication"].startswith("full/")
        assert keys == {"topoff.dataset", "topoff.publication", "topoff.sequence",
                        "topoff.step", "topoff.manifest-sha256"} | (
                            {"topoff.revision"} if partition else set()), keys
    assert any("topoff.revision" in s.summary.additional_properties
               for s in table.metadata.snapshots)
    assert "topoff.revision" in (DOCS / "iceberg.md").read_text().split(
        "into the summary of each snapshot it adds", 1)[0].rsplit("writes", 1)[1]
    assert "a partition's snapshots only" in " ".join((DOCS / "iceberg.md").read_text().split())


def test_tables_with_a_time_cursor_are_partitioned_by_its_day(standard, tmp_path: Path  # noqa: F811
                                                              ) -> None:
    """iceberg.md "Full export": partitioned by `day(cursor)` for tables with a date or
    timestamp cursor; the others are not partitioned."""
    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    messages = iceberg_table(target, "public.messages")
    [field] = messages.spec().fields
    assert str(field.transform) == "day"
    assert messages.schema().find_field(field.source_id).name == "timestamp"
    assert not iceberg_table(target, "public.users").spec().fields


def test_init_without_a_database_reads_every_database_the_user_may_see(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Writing and checking a config": `--schema NAME` picks databases (repeat
    for several); without it and without a database in the URL, every database the user
    may see is read, system ones left out."""
    import tomllib

    other = maria.pair.create_database()
    user = f"in{maria.name}"
    maria.execute(f"CREATE TABLE a1 (id INT PRIMARY KEY); CREATE TABLE `{other}`.b1 "
                  f"(id INT PRIMARY KEY); CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY "
                  f"'p'; GRANT SELECT ON `{maria.name}`.* TO '{user}'@'127.0.0.1';"
                  f"GRANT SELECT ON `{other}`.* TO '{user}'@'127.0.0.1';"
                  f"GRANT SELECT ON mysql.* TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    try:
        url = maria.pair.replica.url("", user=user, password="p")
        made = run_cli("init", "--source", url, "--output", "-", "--dataset", "d")
        assert made.exit_code == 0, made.output
        schemas = {t["schema"] for t in tomllib.loads(made.stdout)["tables"].values()}
        assert schemas == {maria.name, other}, schemas
        picked = run_cli("init", "--source", url, "--output", "-", "--dataset", "d",
                         "--schema", other)
        assert picked.exit_code == 0, picked.output
        assert {t["schema"] for t in tomllib.loads(picked.stdout)["tables"].values()} == \
            {other}
        both = run_cli("init", "--source", url, "--output", "-", "--dataset", "d",
                       "--schema", other, "--schema", maria.name)
        assert {t["schema"] for t in tomllib.loads(both.stdout)["tables"].values()} == \
            {maria.name, other}
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'; DROP DATABASE `{other}`",
                               check=False)


def test_every_session_sets_what_the_page_lists(maria) -> None:
    """mariadb.md "Connecting": time_zone +00:00, sql_mode NO_ENGINE_SUBSTITUTION,
    sql_select_limit at its maximum, net_write_timeout/net_read_timeout 3600,
    max_statement_time 0, utf8mb4."""
    from topoff.sources.mariadb.connect import connect

    with connect(maria.replica_url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT @@session.time_zone, @@session.sql_mode, "
                    "@@session.sql_select_limit, @@session.net_write_timeout, "
                    "@@session.net_read_timeout, @@session.max_statement_time, "
                    "@@session.character_set_client, @@session.character_set_results")
        got = [v.decode() if isinstance(v, bytes | bytearray) else v for v in cur.fetchone()]
        cur.close()
    assert [str(v) for v in got] == ["+00:00", "NO_ENGINE_SUBSTITUTION",
                                     str(2 ** 64 - 1), "3600", "3600", "0.0",
                                     "utf8mb4", "utf8mb4"]


def test_iceberg_verify_leaves_out_a_column_named_like_another_but_for_case(
        db, tmp_path: Path) -> None:
    """iceberg.md "Verify": a column whose name differs from an earlier one's only in the
    case of its letters is left out, with a `note:`; the others are compared."""
    from support.pg import make_config
    from support.replica import publish_full

    db.execute('CREATE TABLE twins (id int PRIMARY KEY, "A" text, a text, v int);'
               "INSERT INTO twins SELECT g, 'x' || g, 'y' || g, g FROM generate_series(1, 9) g")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "t"\n[tables.twins]\nmethod = "snapshot"\n'), url)
    target = catalog_file(tmp_path)
    sync(url, target)
    out = run_cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stdout + out.stderr
    assert any(ln.startswith("note:") and "twins.a" in ln for ln in
               (out.stdout + out.stderr).splitlines()), out.stdout + out.stderr
    db.execute("UPDATE twins SET v = -1 WHERE id = 3")
    db.sync()
    assert run_cli("verify", target, "--against", db.standby_url).exit_code == 1


def test_a_sql_catalog_in_postgresql(standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md: `uri = "postgresql+psycopg://..."` keeps the SQL catalog in PostgreSQL
    (the one to share between machines): sync, status, verify and the maintenance
    commands work on it, and its password shows in no output."""
    from urllib.parse import urlsplit

    db, url = standard
    # the catalog in the source's primary database: a database the user may write
    parts = urlsplit(db.primary_url)
    uri = f"postgresql+psycopg://{parts.netloc}{parts.path}"
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "{uri}"\nwarehouse = "warehouse"\nnamespace = "lake"\n')
    target = f"iceberg:{path}"
    outs = [run_cli("sync", url, target), run_cli("status", target),
            run_cli("verify", target, "--against", db.standby_url),
            run_cli("iceberg", "compact", target),
            run_cli("iceberg", "expire", target, "--older-than", "0s"),
            run_cli("iceberg", "remove-orphans", target)]
    for out in outs:
        assert out.exit_code == 0, out.stdout + out.stderr
        if parts.password:
            assert parts.password not in out.stdout + out.stderr
    assert iceberg_table(target, "public.messages").scan().to_arrow().num_rows > 0


def test_a_bc_date_is_refused_with_the_lines_the_page_shows(db, tmp_path: Path) -> None:
    """iceberg.md "Types": the error and hint of a BC date in a date column, as shown."""
    from support.pg import make_config
    from support.replica import publish_full

    db.execute("CREATE TABLE edges (id integer PRIMARY KEY, d date)")
    db.execute("INSERT INTO edges VALUES (1, NULL), (2, '0044-03-15 BC')")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, 'dataset = "t"\n[tables.edges]\nmethod = "snapshot"\n'), url)
    out = run_cli("sync", url, catalog_file(tmp_path))
    assert out.exit_code == 7, out.stdout + out.stderr
    page = (DOCS / "iceberg.md").read_text()
    shown = page.split("commits nothing of that publication", 1)[1].split("```\n", 1)[1] \
        .split("```", 1)[0]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith(("error:", "hint:"))]
    assert [re.sub(r"full/\S+Z/", "full/T/", ln) for ln in lines] == \
        [re.sub(r"full/\S+Z/", "full/T/", ln) for ln in shown.splitlines()]


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


def test_the_float_texts_the_type_table_shows(maria) -> None:
    """mariadb.md "Type mapping": FLOAT 0.1 is written `0.10000000149011612`, DOUBLE 1e15
    `1e15`, a DOUBLE(10,2) -0.01 `-0.010000000000000009`; BIGINT UNSIGNED max
    `18446744073709551615`, TINYINT -128 `-128`, YEAR 0000 `0`, BIT(3) `101`."""
    import csv
    import io

    from topoff.sources.mariadb import rows
    from topoff.sources.mariadb.catalog import read_table
    from topoff.sources.mariadb.connect import connect

    maria.execute("CREATE TABLE f (id INT PRIMARY KEY, f FLOAT, d DOUBLE, dmd DOUBLE(10,2), "
                  "u BIGINT UNSIGNED, t TINYINT, y YEAR, b BIT(3)); INSERT INTO f VALUES "
                  "(1, 0.1, 1e15, -0.01, 18446744073709551615, -128, 0, b'101')")
    with connect(maria.replica_url) as conn:
        out = io.BytesIO()
        rows.write_csv(conn, read_table(conn, maria.name, "f"), out)
    assert list(csv.reader(io.StringIO(out.getvalue().decode()))) == [
        ["1", "0.10000000149011612", "1e15", "-0.010000000000000009",
         "18446744073709551615", "-128", "0", "101"]]



def test_check_config_judges_a_mariadb_key_under_a_collation_as_the_export_does(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Keys under a collation" and "Writing and checking a config": an
    `upsert` table whose key folds case is refused with exit 2 naming the column and its
    collation, by `check-config`, `export full --dry-run` and the export alike; a config
    that names the key (the user's word) passes all three. (check-config and the dry run
    said "citext, a nondeterministic collation", PostgreSQL's words, and refused the
    named key the export takes.)"""
    from support.cli import write_config

    maria.execute("CREATE TABLE acc (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, "
                  "updated_at DATETIME(6) NOT NULL, KEY (updated_at)); INSERT INTO acc "
                  "VALUES ('a', UTC_TIMESTAMP(6) - INTERVAL 2 DAY)")
    text = (f'dataset = "shop"\n[source]\nurl = "{maria.replica_url}"\n[tables.acc]\n'
            f'schema = "{maria.name}"\nmethod = "upsert"\ncursor = "updated_at"\n')
    for named, code in (('key = ["k"]\n', 0), ("", 2)):
        cfg = write_config(tmp_path / f"c{code}.toml", text + named)
        to = str(tmp_path / f"d{code}")
        for args in (("check-config", "--config", cfg),
                     ("export", "full", "--config", cfg, "--to", to, "--dry-run"),
                     ("export", "full", "--config", cfg, "--to", to)):
            out = run_cli(*args)
            assert out.exit_code == code, (args, out.stdout + out.stderr)
            if code:
                error = next(ln for ln in out.stderr.splitlines() if ln.startswith("error: "))
                assert "'k'" in error and "utf8mb4_general_ci" in error, (args, error)
                assert "citext" not in out.stderr, (args, out.stderr)



def test_check_config_says_a_table_is_readable_only_in_part(maria, tmp_path: Path) -> None:
    """mariadb.md "Privileges": a table granted only by column is refused, its other
    columns would be left out; `check-config` and `export --dry-run` say so in one problem
    (they said the cursor column did not exist, that the table had no columns, and that
    the user might not SELECT it: three problems, two of them false)."""
    from support.cli import write_config

    user = f"cp{maria.name}"
    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, "
                  "secret TEXT, v INT);"
                  f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT (id, at, v) ON `{maria.name}`.ev TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    url = maria.pair.replica.url(maria.name, user=user, password="p")
    try:
        cfg = write_config(tmp_path / "c.toml", f'dataset = "shop"\n[source]\nurl = "{url}"\n'
                           f'[tables.ev]\nschema = "{maria.name}"\nmethod = "append"\n'
                           'cursor = "at"\n')
        for args in (("check-config", "--config", cfg),
                     ("export", "full", "--config", cfg, "--to", str(tmp_path / "d"),
                      "--dry-run")):
            out = run_cli(*args)
            assert out.exit_code == 2, (args, out.stdout + out.stderr)
            errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
            assert len(errors) == 2 and "1 problem" in errors[1], (args, errors)
            assert "may read only some columns of" in errors[0], (args, errors)
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


@pytest.mark.parametrize(("column", "native"), [("id", "int(11)"), ("t", "time"),
                                                ("y", "year(4)")])
def test_check_config_names_a_mariadb_cursor_s_own_type(maria, tmp_path: Path, column: str,
                                                       native: str) -> None:
    """mariadb.md "Writing and checking a config": cursors (a DATETIME, TIMESTAMP or DATE)
    are checked; a cursor of another type is named by its MariaDB type, as the export
    names it (check-config said a TIME column "has type interval", a YEAR "smallint", and
    that a cursor must be a "timestamp with time zone")."""
    from support.cli import write_config

    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, t TIME, y YEAR)")
    cfg = write_config(tmp_path / "c.toml", f'dataset = "shop"\n[source]\nurl = '
                       f'"{maria.replica_url}"\n[tables.ev]\nschema = "{maria.name}"\n'
                       f'method = "append"\ncursor = "{column}"\n')
    out = run_cli("check-config", "--config", cfg)
    assert out.exit_code == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert f"cursor column {column} of {maria.name}.ev has type {native}" in lines[0], lines
    assert lines[1] == "hint: a cursor must be a DATETIME, TIMESTAMP or DATE column", lines


def test_verify_against_a_mariadb_primary_is_exit_4_unless_allowed(maria, tmp_path: Path
                                                                  ) -> None:
    """mariadb.md "Commands": verify's exit codes, 4 for a primary without
    `--allow-primary`; with it the replica is compared (0)."""
    from topoff.config import Config, TableConfig
    from topoff.export.full import export_full
    from topoff.stores import open_store

    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')")
    root = str(tmp_path / "pub")
    with open_store(root) as store:
        export_full(Config(dataset="t", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="t", method="snapshot"),)), store)
    replica = str(tmp_path / "r.duckdb")
    assert run_cli("sync", root, replica).exit_code == 0
    out = run_cli("verify", replica, "--against", maria.primary_url)
    assert out.exit_code == 4, out.stdout + out.stderr
    assert "--allow-primary" in out.stderr
    out = run_cli("verify", replica, "--against", maria.primary_url, "--allow-primary")
    assert out.exit_code == 0, out.stdout + out.stderr


def _half_applied(db: Any, url: str, target: str) -> tuple[Path, bytes]:
    """A sync of a new day that applied it to public.messages, then stopped at a damaged
    file of public.users_messages (exit 6); the damaged file and its bytes."""
    from support.replica import add_messages, day, nommer_config, publish_day
    from test_iceberg_sync import CHUNK

    assert run_cli("sync", url, target).exit_code == 0
    add_messages(db, day(1), 30)
    publish_day(nommer_config(db, chunk_bytes=CHUNK), url, day(1))
    [victim] = [f for f in Path(url).rglob("public.users_messages.*.csv.zst")
                if str(day(1)) in f.name]
    good = victim.read_bytes()
    victim.write_bytes(good[:-5] + bytes([good[-5] ^ 0xFF]) + good[-4:])
    return victim, good


def test_status_of_an_iceberg_replica_a_sync_left_half_way(standard, tmp_path: Path  # noqa: F811
                                                           ) -> None:
    """iceberg.md: `topoff status` reads the tables' ledgers, the replica's sequence the
    smallest of its tables'; the publication it says was last applied is that one (it named
    the newest table's, one publication ahead of the number it printed, and listed that
    publication as pending too)."""
    from support.replica import day

    db, url = standard
    target = catalog_file(tmp_path)
    victim, good = _half_applied(db, url, target)
    assert run_cli("sync", url, target).exit_code == 6
    assert iceberg_table(target, "public.messages").properties["topoff.sequence"] == "4"
    out = run_cli("status", target, "--json")
    assert out.exit_code == 0, out.stdout + out.stderr
    [state] = json.loads(out.stdout)
    assert (state["last_sequence"], state["last_applied"]) == (
        3, f"incremental/{day(2)}/r1"), state
    assert [p["id"] if isinstance(p, dict) else p for p in state["pending"]] == [
        f"incremental/{day(1)}/r1"], state
    victim.write_bytes(good)
    assert run_cli("sync", url, target).exit_code == 0
    [state] = json.loads(run_cli("status", target, "--json").stdout)
    assert (state["last_sequence"], state["last_applied"], state["pending"]) == (
        4, f"incremental/{day(1)}/r1", []), state


def test_a_damaged_file_after_a_table_committed_does_not_say_nothing_was_applied(
        standard, tmp_path: Path) -> None:  # noqa: F811
    """iceberg.md: a damaged file stops the sync with exit 6 "and nothing of its commit is
    applied"; a publication is one commit per table, so the error says that of its commit
    (it said "nothing was applied" after the sync had applied the publication to
    public.messages, as its log line said)."""
    db, url = standard
    target = catalog_file(tmp_path)
    _half_applied(db, url, target)
    out = run_cli("sync", url, target)
    assert out.exit_code == 6, out.stdout + out.stderr
    assert "applied incremental/" in out.stderr  # public.messages' commit
    [error] = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert "nothing was applied" not in error, error
    assert error.endswith("does not match the size and sha256 in its manifest; nothing of "
                          "the commit that reads it was applied"), error


def test_verify_of_an_iceberg_replica_a_sync_left_half_way_is_equal(standard, tmp_path: Path  # noqa: F811
                                                                    ) -> None:
    """iceberg.md "Verify": days after the newest window the tables have applied are "not
    yet published"; a sync stopped between two tables' commits leaves tables one
    publication apart, each compared up to its own (the tables behind were reported
    different by the rows of the day they had not applied yet, exit 1)."""
    db, url = standard
    target = catalog_file(tmp_path)
    _half_applied(db, url, target)
    assert run_cli("sync", url, target).exit_code == 6
    out = run_cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stdout + out.stderr
    db.execute("DELETE FROM users_messages WHERE msg_id = (SELECT min(msg_id) FROM "
               "users_messages)")
    db.sync()
    out = run_cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 1, out.stdout + out.stderr  # a day it applied still differs


def test_the_driver_pin_the_page_names_is_the_project_s() -> None:
    """mariadb.md "Connecting": the mysql-connector-python versions it names are those
    pyproject.toml takes (the page said `<26`, the pin is `<9.7`)."""
    import tomllib

    project = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["project"]
    [pin] = [d for d in project["dependencies"] if d.startswith("mysql-connector-python")]
    upper = re.search(r"<([\d.]+)", pin)
    assert upper is not None
    page = " ".join((DOCS / "mariadb.md").read_text().split())
    assert f"hence `<{upper.group(1)}`" in page, pin


def test_a_warehouse_that_cannot_be_made_is_not_called_a_race(standard, tmp_path: Path  # noqa: F811
                                                              ) -> None:
    """iceberg.md: a commit refused because another writer changed the table is "run the
    sync again"; a warehouse directory that cannot be made is the warehouse's failure, exit
    7, "fix the warehouse" (it said another writer changed or made a table)."""
    _, url = standard
    path = tmp_path / "catalog.toml"
    path.write_text('uri = "sqlite:///c.db"\nwarehouse = "/proc/topoff-nowhere/w"\n')
    out = run_cli("sync", url, f"iceberg:{path}")
    assert out.exit_code == 7, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    error = next(ln for ln in lines if ln.startswith("error: "))
    assert "another writer" not in error and "failed" in error, error
    assert lines[lines.index(error) + 1].startswith("hint: fix the warehouse"), lines


def test_init_names_a_table_it_cannot_read_when_it_lists_none(maria, tmp_path: Path) -> None:
    """mariadb.md "Writing and checking a config": a table whose columns the user may
    read only in part is named as not readable, also when it is the only one (init said
    the database had no table to list, naming none)."""
    user = f"ir{maria.name}"
    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, secret TEXT);"
                  f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT (id) ON `{maria.name}`.ev TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    try:
        out = run_cli("init", "--source", maria.pair.replica.url(maria.name, user=user,
                                                                 password="p"),
                      "--output", "-")
        assert out.exit_code == 2, out.stdout + out.stderr
        error = next(ln for ln in out.stderr.splitlines() if ln.startswith("error: "))
        assert f"{maria.name}.ev (no SELECT privilege)" in error, error
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)
