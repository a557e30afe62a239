"""Names that collide in a replica: a dataset's schemas and tables against topoff's own
objects, against another dataset's tables and against each other, and a DuckDB file named
like a schema. Each either works exactly or is refused before anything changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.pg import Database, make_config
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.targets import open_target

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
