"""``topoff sync DATASET iceberg:catalog.toml``: Iceberg tables (SQL catalog on SQLite, local
warehouse) built from a full export and topped off, read back through pyiceberg and through
DuckDB on the tables' Parquet files, and compared with the source value by value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from support.pg import Database
from support.replica import (
    TABLES,
    add_messages,
    day,
    fill,
    nommer_config,
    publish_day,
    publish_standard,
)
from topoff.status import status
from topoff.sync import sync
from topoff.targets.iceberg.config import open_catalog, read_settings

CHUNK = 16 * 1024  # small files: several per table and per day


def catalog_file(tmp_path: Path) -> str:
    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                    'warehouse = "warehouse"\nnamespace = "replica"\n')
    return f"iceberg:{path}"


def iceberg_table(location: str, table: str) -> Any:
    settings = read_settings(location)
    name = table.split(".", 1)[1]
    return open_catalog(settings).load_table((settings.namespace, name))


def _key(row: tuple) -> tuple:
    return tuple((v is None, str(v)) for v in row)


def iceberg_rows(location: str, table: str) -> list[tuple]:
    """Every row through pyiceberg, sorted; json as text, in the columns' order."""
    t = iceberg_table(location, table).scan().to_arrow()
    return sorted(zip(*(t.column(n).to_pylist() for n in t.column_names), strict=True),
                  key=_key) if t.num_rows else []


def duckdb_rows(location: str, table: str) -> list[tuple]:
    """Every row through DuckDB, reading the Parquet data files pyiceberg lists."""
    files = [task.file.file_path for task in iceberg_table(location, table).scan().plan_files()]
    if not files:
        return []
    paths = [f.removeprefix("file://") for f in files]
    rows = duckdb.sql("SELECT * FROM read_parquet($files, hive_partitioning = false)",
                      params={"files": paths}).fetchall()
    return sorted(rows, key=_key)


def source_rows(db: Database, table: str, names: list[str]) -> list[tuple]:
    """The standby's rows of the columns ``names`` (those published), json columns as
    text (as the dataset's CSV holds them)."""
    schema, name = table.split(".")
    with db.standby() as conn:
        types = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            "attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [f'"{schema}"."{name}"']).fetchall())
        cols = [(n, types[n]) for n in names]
        exprs = ", ".join(f'"{c}"::text' if t in ("jsonb", "json") else f'"{c}"'
                          for c, t in cols)
        rows = conn.execute(f'SELECT {exprs} FROM "{schema}"."{name}"').fetchall()
    return sorted((tuple(r) for r in rows), key=_key)


def assert_same(location: str, db: Database, tables: list[str] = TABLES) -> None:
    for t in tables:
        names = [f.name for f in iceberg_table(location, t).schema().fields]
        want = source_rows(db, t, names)
        assert iceberg_rows(location, t) == want, t
        have = duckdb_rows(location, t)
        assert len(have) == len(want), t
        for a, b in zip(have, want, strict=True):
            assert a == b, t


@pytest.fixture
def standard(db, tmp_path) -> tuple[Database, str]:
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    return db, url


def test_build_top_off_and_revision(standard, tmp_path):
    db, url = standard
    target = catalog_file(tmp_path)
    first = sync(url, target)
    assert first.base_loaded and first.base_loaded.startswith("full/")
    assert len(first.applied) == 2 and first.last_sequence == 3
    assert_same(target, db)
    msgs = iceberg_table(target, "public.messages")
    assert [f.name for f in msgs.spec().fields] == ["timestamp_day"]
    summary = msgs.current_snapshot().summary
    assert summary["topoff.dataset"] == "datanommer"
    assert summary["topoff.sequence"] == "3"

    again = sync(url, target)  # nothing new: nothing written
    assert again.applied == [] and again.rows == 0 and again.base_loaded is None

    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(1), 40, tag="next")
    publish_day(config, url, day(1))
    add_messages(db, day(2), 7, tag="late")  # late rows: a new revision of day(2)
    revision = [p.id for p in publish_day(config, url, day(2)).publications]
    result = sync(url, target)
    assert any(r.endswith("/r2") for r in result.applied), (result.applied, revision)
    assert_same(target, db)  # the day replaced: nothing twice, nothing missing

    [s] = status(target)
    assert s.dataset == "datanommer" and s.complete and s.pending == []
    assert {t.table for t in s.tables} == set(TABLES)
