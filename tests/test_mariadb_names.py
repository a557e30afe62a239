"""Names MariaDB allows and PostgreSQL does not: identifiers of 64 characters (up to 256
bytes), where PostgreSQL keeps 63 bytes and silently cuts the rest. A dataset holds names
of 63 bytes at most (docs/dataset-format.md): an export refuses a longer one before
anything is published; ``topoff replicate`` lands it exactly in DuckDB and Iceberg, and
refuses it for a PostgreSQL target before anything is made there."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.mariadb import MariaDatabase
from support.replicate import config, new_target, query
from test_iceberg_sync import catalog_file
from topoff.config import Config, TableConfig
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.replicate.engine import run_once
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.targets.iceberg.config import open_catalog, read_settings

LONG, WIDE = "a" * 64, "é" * 40  # 64 and 80 bytes
SHARED = ("p" * 63 + "x", "p" * 63 + "y")  # one name once cut to 63 bytes
CASES = {
    "ascii column": (f"CREATE TABLE t (id INT PRIMARY KEY, `{LONG}` INT);"
                     "INSERT INTO t VALUES (1, 2)", "t", [LONG]),
    "multi-byte column": (f"CREATE TABLE t (id INT PRIMARY KEY, `{WIDE}` INT);"
                          "INSERT INTO t VALUES (1, 2)", "t", [WIDE]),
    "two columns of one prefix": (
        f"CREATE TABLE t (id INT PRIMARY KEY, `{SHARED[0]}` INT, `{SHARED[1]}` INT);"
        "INSERT INTO t VALUES (1, 2, 3)", "t", list(SHARED)),
    "table": (f"CREATE TABLE `{LONG}` (id INT PRIMARY KEY); INSERT INTO `{LONG}` VALUES (1)",
              LONG, []),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_export_refuses_a_name_longer_than_63_bytes(maria: MariaDatabase, tmp_path: Path,
                                                       case: str) -> None:
    """Published, the dataset was refused by every replica as damaged (exit 6)."""
    ddl, table, columns = CASES[case]
    maria.execute(ddl)
    root = tmp_path / "pub"
    with open_store(str(root)) as store, pytest.raises(ConfigError) as info:
        export_full(Config(dataset="n", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name=table, method="snapshot"),)), store)
    assert info.value.exit_code == 2
    assert "63 bytes" in info.value.message and (columns or [table])[0] in info.value.message
    assert "private" in info.value.hint if columns else "rename" in info.value.hint
    assert not [p for p in root.rglob("*") if p.is_file() and p.name != ".lock"]


def test_a_long_column_left_private_is_not_exported(maria: MariaDatabase, tmp_path: Path
                                                    ) -> None:
    ddl, _, _ = CASES["ascii column"]
    maria.execute(ddl)
    root = str(tmp_path / "pub")
    with open_store(root) as store:
        export_full(Config(dataset="n", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="t", method="snapshot",
                        columns={LONG: "private"}),)), store)
    replica = str(tmp_path / "r.duckdb")
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))


@pytest.mark.parametrize("case", list(CASES))
def test_replicate_lands_a_long_name_exactly_or_refuses_it(maria: MariaDatabase, cluster,
                                                           tmp_path: Path, case: str) -> None:
    """PostgreSQL cut the names to 63 bytes (two columns of one prefix: an internal error,
    exit 70); DuckDB and Iceberg hold them whole."""
    ddl, table, columns = CASES[case]
    maria.execute(ddl)
    target = new_target("postgresql", cluster, tmp_path)
    cfg = config(target, {"m": (maria.replica_url, {table: {"method": "snapshot"}})})
    for _ in range(2):
        [run] = run_once(cfg)
        assert (run.status, run.exit_code) == ("failed", 7), run.error
        assert "63 bytes" in (run.error or "") and (columns or [table])[0] in (run.error or "")
    assert query(target, "SELECT table_name FROM information_schema.tables WHERE "
                         "table_schema = 'm'") == []
    duck = str(tmp_path / "r.duckdb")
    [run] = run_once(config(duck, {"m": (maria.replica_url, {table: {"method": "snapshot"}})}))
    assert run.status == "ok", run.error
    names = [r[0] for r in query(duck, "SELECT column_name FROM information_schema.columns "
                                       f"WHERE table_name = '{table}' ORDER BY ordinal_position")]
    assert names == ["id", *columns]
    iceberg = catalog_file(tmp_path)
    [run] = run_once(config(iceberg, {"m": (maria.replica_url,
                                            {table: {"method": "snapshot"}})}))
    assert run.status == "ok", run.error
    held = open_catalog(read_settings(iceberg)).load_table(("m", table))
    assert [f.name for f in held.schema().fields] == ["id", *columns]


def test_names_of_63_bytes_land_exactly_in_postgresql(maria: MariaDatabase, cluster,
                                                      tmp_path: Path) -> None:
    """The longest names a dataset and PostgreSQL hold, through an export and a sync and
    through replicate, twice (a second refresh finds the table it made)."""
    table, column = "t" * 63, "é" * 31 + "c"  # 63 bytes each
    maria.execute(f"CREATE TABLE `{table}` (id INT PRIMARY KEY, `{column}` INT);"
                  f"INSERT INTO `{table}` VALUES (1, 2)")
    root = str(tmp_path / "pub")
    with open_store(root) as store:
        export_full(Config(dataset="n", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name=table, method="snapshot"),)), store)
    replica = new_target("postgresql", cluster, tmp_path)
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    assert query(replica, f'SELECT id, "{column}" FROM "{maria.name}"."{table}"') == [(1, 2)]
    target = new_target("postgresql", cluster, tmp_path)
    cfg = config(target, {"m": (maria.replica_url, {table: {"method": "snapshot"}})})
    assert [(r.status, r.error) for r in run_once(cfg)] == [("ok", None)]
    maria.execute(f"INSERT INTO `{table}` VALUES (2, 3)")
    assert [(r.status, r.error) for r in run_once(cfg)] == [("ok", None)]
    assert query(target, f'SELECT id, "{column}" FROM m."{table}" ORDER BY id') == \
        [(1, 2), (2, 3)]
