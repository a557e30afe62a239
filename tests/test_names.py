"""Names that collide in a replica: a dataset's schemas and tables against topoff's own
objects, against another dataset's tables and against each other, and a DuckDB file named
like a schema. Each either works exactly or is refused before anything changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.dataset import rewrite_manifest
from support.pg import Database, make_config
from support.replica import Replicas, day
from test_iceberg_sync import catalog_file, iceberg_table
from topoff.dataset.layout import Window
from topoff.errors import ConfigError, TargetError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.targets import open_target
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.names import reserved_schema

THINGS = "CREATE TABLE things (id int PRIMARY KEY, x text); INSERT INTO things VALUES (1, 'a');"


def publish(db: Database, directory: Path, config: str, dataset: str = "d") -> str:
    with open_store(str(directory)) as store:
        export_full(make_config(db, f'dataset = "{dataset}"\n' + config), store)
    return str(directory)


def read(location: str, statement: str) -> list[tuple]:
    with open_target(location, create=False) as target:
        return target.execute(statement)


@pytest.fixture
def things(db: Database, tmp_path: Path) -> str:
    db.execute(THINGS)
    return publish(db, tmp_path / "things", '[tables.things]\nmethod = "snapshot"\n')


@pytest.mark.parametrize("name,schema", [("public", None), ("topoff", None),
                                         ("nommer", "nommer"), ("Nommer", "nommer")])
def test_a_duckdb_file_named_like_a_schema_is_written(things, tmp_path, name, schema):
    """DuckDB names a database after its file: ``public.duckdb`` holding schema ``public``
    (or ``topoff.duckdb`` holding the ledger) made every two-part name ambiguous."""
    target = str(tmp_path / f"{name}.duckdb")
    result = sync(things, target, SyncOptions(schema=schema))
    assert result.rows == 1
    assert read(target, f'SELECT * FROM "{schema or "public"}".things') == [(1, "a")]
    assert read(target, "SELECT dataset, status FROM topoff.replicas") == [("d", "ready")]
    assert sync(things, target).rows == 0  # opened again: up to date


@pytest.fixture(params=["duckdb", "postgresql"])
def replica(request, cluster, tmp_path) -> Iterator[str]:
    r = Replicas(request.param, tmp_path, cluster)
    try:
        yield r.new()
    finally:
        r.close()


def user_tables(location: str) -> list[tuple]:
    return read(location, "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                "ORDER BY 1, 2")


def test_a_dataset_table_in_topoffs_schema_is_refused(db, tmp_path, replica):
    """A dataset whose table is ``topoff.replicate_tables`` made replicate's state table
    (replicate then read and wrote the dataset's rows as its state)."""
    db.execute("CREATE SCHEMA topoff; CREATE TABLE topoff.replicate_tables (id int PRIMARY KEY);"
               "INSERT INTO topoff.replicate_tables VALUES (1);" + THINGS)
    origin = publish(db, tmp_path / "evil", '[tables.things]\nmethod = "snapshot"\n'
                     '[tables."topoff.replicate_tables"]\nschema = "topoff"\n'
                     'name = "replicate_tables"\nmethod = "snapshot"\n')
    with pytest.raises(TargetError) as info:
        sync(origin, replica)
    assert info.value.exit_code == 7
    assert "topoff.replicate_tables" in info.value.message and "--schema" in info.value.hint
    assert ("topoff", "replicate_tables") not in user_tables(replica)
    assert ("public", "things") not in user_tables(replica)
    # into a schema of its own, the same dataset is a replica like any other
    sync(origin, replica, SyncOptions(schema="evil"))
    assert read(replica, "SELECT * FROM evil.replicate_tables") == [(1,)]


@pytest.mark.parametrize("schema", ["TOPOFF", "_topoff_build", "pg_temp", "pg_toast",
                                    "information_schema", "temp", "system", "topoff_replica"])
def test_a_dataset_schema_the_target_keeps_is_refused(things, tmp_path, replica, schema):
    """Named so in the manifest (a publisher writes it): DuckDB takes ``TOPOFF`` for
    ``topoff``; each engine refused its own names with an internal error (exit 70), and
    PostgreSQL took ``information_schema`` and DuckDB ``pg_toast``."""
    folds = not replica.startswith("postgresql")
    if reserved_schema(schema, folds) is None:
        pytest.skip(f"{schema} is an ordinary schema name on this target")
    full = json.loads((Path(things) / "index.json").read_text())["publications"][0]["id"]

    def rename(doc: dict) -> None:
        entry = doc["tables"].pop("public.things")
        doc["tables"][f"{schema}.things"] = {**entry, "schema": schema}

    rewrite_manifest(Path(things), full, rename)
    with pytest.raises(TargetError) as info:
        sync(things, replica)
    assert info.value.exit_code == 7 and schema in info.value.message
    assert [t for t in user_tables(replica) if t[0] != "topoff"] == []


def test_a_schema_option_the_target_keeps_is_refused(things, replica):
    with pytest.raises(ConfigError) as info:
        sync(things, replica, SyncOptions(schema="topoff"))
    assert info.value.exit_code == 2 and "topoff" in info.value.message


def test_a_new_table_on_another_datasets_table_is_refused(db, tmp_path, replica):
    """A partition bringing a table the replica does not hold yet, whose place another
    dataset (or replicate) holds: PostgreSQL's refusal was an internal error (exit 70),
    DuckDB's spoke of letter case; the other dataset's rows are untouched either way."""
    db.execute(THINGS + "CREATE TABLE u (id int PRIMARY KEY, at timestamptz NOT NULL);"
               "INSERT INTO u VALUES (1, now() - interval '1 day');")
    first = publish(db, tmp_path / "first", '[tables.things]\nmethod = "snapshot"\n', "first")
    second = tmp_path / "second"
    u = '[tables.u]\ncursor = "at"\n'
    publish(db, second, u, "second")
    db.execute("INSERT INTO things VALUES (2, 'b')")
    with open_store(str(second)) as store:
        export_incremental(make_config(db, 'dataset = "second"\n' + u +
                                       '[tables.things]\nmethod = "snapshot"\n'),
                           store, Window.day(day(1)))
    sync(first, replica)
    with pytest.raises(TargetError) as info:
        sync(str(second), replica)
    assert info.value.exit_code == 7
    assert "public.things already exists" in info.value.message and "--schema" in info.value.hint
    assert read(replica, "SELECT * FROM public.things") == [(1, "a")]
    # apart, both are kept
    sync(str(second), replica, SyncOptions(schema="second", rebase=True))
    assert read(replica, "SELECT * FROM second.things ORDER BY 1") == [(1, "a"), (2, "b")]
    assert read(replica, "SELECT * FROM public.things") == [(1, "a")]


def test_two_tables_of_a_dataset_landing_in_one_are_refused(db, tmp_path, replica):
    """``--schema`` puts ``public.t`` and ``other.t`` in one table: refused naming both,
    also when the second arrives in a partition (an internal error on PostgreSQL)."""
    db.execute(THINGS + "CREATE SCHEMA other; CREATE TABLE other.things (id int PRIMARY KEY);")
    directory = tmp_path / "two"
    one = '[tables.things]\nmethod = "snapshot"\n'
    two = '[tables."other.things"]\nschema = "other"\nname = "things"\nmethod = "snapshot"\n'
    both = publish(db, tmp_path / "both", one + two)
    with pytest.raises(TargetError) as info:
        sync(both, replica, SyncOptions(schema="x"))
    assert "public.things and other.things" in info.value.message
    assert "--tables" in info.value.hint
    assert all(t[0] == "topoff" for t in user_tables(replica))
    publish(db, directory, one, "two")
    sync(str(directory), replica, SyncOptions(schema="x"))
    with open_store(str(directory)) as store:
        export_incremental(make_config(db, 'dataset = "two"\n' + one + two), store,
                           Window.day(day(1)))
    with pytest.raises(TargetError) as info:
        sync(str(directory), replica)
    assert info.value.exit_code == 7 and "public.things and other.things" in info.value.message
    assert read(replica, "SELECT * FROM x.things") == [(1, "a")]


def test_two_tables_of_one_iceberg_name_are_refused(db, tmp_path):
    """``public.a__b`` and ``a.b`` are both the Iceberg table ``a__b``: refused naming
    both before anything is made, also when the second arrives in a partition (every run
    said another writer had changed a table, run the sync again)."""
    db.execute("CREATE TABLE a__b (id int PRIMARY KEY); INSERT INTO a__b VALUES (1);"
               "CREATE SCHEMA a; CREATE TABLE a.b (id int PRIMARY KEY);")
    one = '[tables.a__b]\nmethod = "snapshot"\n'
    two = '[tables."a.b"]\nschema = "a"\nname = "b"\nmethod = "snapshot"\n'
    both = publish(db, tmp_path / "both", one + two)
    target = catalog_file(tmp_path)
    for _ in range(2):
        with pytest.raises(TargetError) as info:
            sync(both, target, SyncOptions(cache_dir=tmp_path / "c"))
        assert info.value.exit_code == 7, info.value.message
        assert "public.a__b and a.b" in info.value.message and "--tables" in info.value.hint
    settings = read_settings(target)
    assert open_catalog(settings).list_tables(settings.namespace) == []
    directory = tmp_path / "two"
    publish(db, directory, one, "two")
    sync(str(directory), target, SyncOptions(cache_dir=tmp_path / "c"))
    with open_store(str(directory)) as store:
        export_incremental(make_config(db, 'dataset = "two"\n' + one + two), store,
                           Window.day(day(1)))
    with pytest.raises(TargetError) as info:
        sync(str(directory), target, SyncOptions(cache_dir=tmp_path / "c"))
    assert info.value.exit_code == 7 and "public.a__b and a.b" in info.value.message
    assert [r["id"] for r in iceberg_table(target, "replica.a__b").scan().to_arrow()
            .to_pylist()] == [1]


def test_a_column_name_with_a_control_character_is_not_exported(db, tmp_path):
    """PostgreSQL takes a tab in a quoted name, a dataset does not: the export refuses it
    with exit 2 before anything is published (every replica refused the dataset as
    damaged, exit 6)."""
    db.execute('CREATE TABLE t (id int PRIMARY KEY, "a\tb" int); INSERT INTO t VALUES (1, 2)')
    with pytest.raises(ConfigError) as info:
        publish(db, tmp_path / "d", '[tables.t]\nmethod = "snapshot"\n')
    assert info.value.exit_code == 2 and "'a\\tb'" in info.value.message
    assert "private" in info.value.hint
    assert not list((tmp_path / "d").rglob("*.json"))
    publish(db, tmp_path / "d", '[tables.t]\nmethod = "snapshot"\n[tables.t.columns]\n'
            '"a\\tb" = "private"\n')


def test_a_database_name_with_a_control_character_names_no_dataset(cluster, tmp_path):
    """Without a config the dataset is named after the database, and init names it so: a
    database name holding a tab (PostgreSQL takes it) is refused with exit 2 before
    anything is published or written (the export published it, and every replica refused
    the dataset as damaged, exit 6); a config's dataset (init --dataset) is the way out."""
    import psycopg

    from support.cli import error_lines, run_cli

    name = "nommer\tweird"
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(cluster.primary.url(name), autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        url = cluster.standby.url(name)
        Database(name, cluster).sync()
        for args in (("export", "full", "--source", url, "--to", str(tmp_path / "d")),
                     ("init", "--source", url, "-o", str(tmp_path / "c.toml"))):
            result = run_cli(*args)
            assert result.exit_code == 2, (args, result.stderr)
            error, hint = error_lines(result)
            assert "'nommer\\tweird'" in error and "--dataset" in hint, (args, error, hint)
        assert not (tmp_path / "d").exists() or not list((tmp_path / "d").rglob("*.json"))
        assert not (tmp_path / "c.toml").exists()
        result = run_cli("init", "--source", url, "-o", str(tmp_path / "c.toml"), "--dataset",
                         "nommer")
        assert result.exit_code == 0, result.stderr
        result = run_cli("export", "full", "--config", str(tmp_path / "c.toml"), "--source",
                         url, "--to", str(tmp_path / "d"))
        assert result.exit_code == 0, result.stderr
    finally:
        cluster.primary.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_column_of_a_type_no_consumer_loads_is_not_exported(db, tmp_path):
    """A type name consumers refuse (a tab in it: PostgreSQL takes it) is refused with
    exit 2 before anything is published, with a config as check-config refuses it, and
    without one (the export published it, after a warning or none, and every replica
    refused the whole dataset as damaged, exit 6); marked private, the table exports."""
    from support.cli import error_lines, run_cli

    db.execute('CREATE TYPE "we\tird" AS ENUM (\'a\'); CREATE TABLE t (id int PRIMARY KEY, '
               'c "we\tird"); INSERT INTO t VALUES (1, \'a\')')
    db.sync()
    with pytest.raises(ConfigError) as info:
        publish(db, tmp_path / "d", '[tables.t]\nmethod = "snapshot"\n')
    assert info.value.exit_code == 2 and "column c of public.t" in info.value.message
    assert "private" in (info.value.hint or "")
    result = run_cli("export", "full", "--source", db.standby_url, "--to", str(tmp_path / "e"))
    assert result.exit_code == 2, result.stderr
    error, hint = error_lines(result)
    assert "public.t.c" in error and "topoff init" in hint
    assert not list(tmp_path.rglob("*.json"))
    publish(db, tmp_path / "d", '[tables.t]\nmethod = "snapshot"\n[tables.t.columns]\n'
            'id = "public"\nc = "private"\n')


def test_init_keeps_a_column_of_a_type_no_consumer_loads_private(db, tmp_path):
    """init's config passes check-config and the export as it is written (it marked such a
    column public with a note, and check-config and the export refused it, exit 2)."""
    from support.cli import run_cli

    db.execute('CREATE TYPE "we\tird" AS ENUM (\'a\'); CREATE TABLE t (id int PRIMARY KEY, '
               'c "we\tird", v text); INSERT INTO t VALUES (1, \'a\', \'x\')')
    db.sync()
    out = tmp_path / "c.toml"
    assert run_cli("init", "--source", db.standby_url, "-o", str(out)).exit_code == 0
    assert 'c = "private"' in out.read_text()
    check = run_cli("check-config", "--config", str(out), "--source", db.standby_url)
    assert check.exit_code == 0, check.stderr
    done = run_cli("export", "full", "--config", str(out), "--source", db.standby_url, "--to",
                   str(tmp_path / "d"))
    assert done.exit_code == 0, done.stderr
