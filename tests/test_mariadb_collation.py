"""MariaDB keys that compare under a collation the replicas do not have: a VARCHAR key
under ``utf8mb4_general_ci`` holds 'abc' and 'ABC' as one key, which a PostgreSQL or
DuckDB replica (and a dataset's upsert) compares byte for byte. A key respelled on the
source would leave both rows in the replica, so an updater or an upsert export by such a
key is refused unless the config names the key (the user's word that it is never
respelled)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.mariadb import MariaDatabase
from support.replicate import config, new_target, query
from topoff.config import Config, TableConfig
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.replicate.engine import run_once
from topoff.sources.mariadb.catalog import MariaTable, inexact_key
from topoff.sources.mariadb.types import map_column
from topoff.stores import open_store


def test_a_case_insensitive_key_is_refused_for_an_updater(maria: MariaDatabase, cluster,
                                                          tmp_path: Path) -> None:
    """'abc' respelled 'ABC' on the source: the updater's replica held both rows, exit 0."""
    maria.execute(
        "CREATE TABLE ci (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, "
        "ts DATETIME(6) NOT NULL, v INT);"
        "CREATE TABLE cb (k CHAR(20) COLLATE utf8mb4_bin PRIMARY KEY, ts DATETIME(6) NOT NULL);"
        "CREATE TABLE nb (k VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, "
        "ts DATETIME(6) NOT NULL);"
        "CREATE TABLE pb (k VARCHAR(20) COLLATE utf8mb4_bin PRIMARY KEY, "
        "ts DATETIME(6) NOT NULL);"
        "INSERT INTO ci VALUES ('abc', '2026-01-01', 1); INSERT INTO cb VALUES ('a', NOW());"
        "INSERT INTO nb VALUES ('a', NOW()); INSERT INTO pb VALUES ('a', NOW())")
    for engine in ("duckdb", "postgresql"):
        url = new_target(engine, cluster, tmp_path)
        tables = {t: {"method": "updater", "cursor": "ts"} for t in ("ci", "cb", "nb", "pb")}
        cfg = config(url, {"m": (maria.replica_url, tables)})
        runs = {r.table.rsplit(".", 1)[1]: r for r in run_once(cfg)}
        # CHAR under _bin and VARCHAR under a NO PAD binary collation compare as bytes do
        assert runs["cb"].status == runs["nb"].status == "ok", runs
        for t, what in (("ci", "utf8mb4_general_ci"), ("pb", "utf8mb4_bin")):
            run = runs[t]
            assert (run.status, run.exit_code) == ("failed", 2), (engine, run)
            assert what in (run.error or "") and "k" in (run.error or "")
        # a key given in the config that compares exactly is taken; so is the same key
        # named in the config (the user's word that it is never respelled), and an
        # inserter's (its rows never change)
        for settings in ({"key": ["v"]}, {"key": ["k"]}):
            url = new_target(engine, cluster, tmp_path)  # a key of its own: a new replica
            runs = run_once(config(url, {"m": (maria.replica_url, {"ci": {
                "method": "updater", "cursor": "ts", **settings}})}))
            assert runs[0].status == "ok", runs[0].error
            assert query(url, "SELECT k FROM m.ci") == [("abc",)]
        runs = run_once(config(url, {"m": (maria.replica_url, {"pb": {
            "method": "inserter", "cursor": "ts"}})}))
        assert runs[0].status == "ok", runs[0].error


def test_a_case_insensitive_key_is_refused_for_an_upsert_export(maria: MariaDatabase,
                                                                tmp_path: Path) -> None:
    """A dataset's upsert merges by key as the replica compares it: refused at the export."""
    maria.execute("CREATE TABLE ci (k VARCHAR(20) PRIMARY KEY, at DATETIME(6) NOT NULL) "
                  "COLLATE utf8mb4_unicode_ci; INSERT INTO ci VALUES ('é', NOW())")
    cfg = Config(dataset="ci", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="ci", method="upsert", cursor="at"),))
    with pytest.raises(ConfigError) as info:
        export_full(cfg, open_store(str(tmp_path / "d")))
    assert "utf8mb4_unicode_ci" in info.value.message
    assert "never respelled" in (info.value.hint or "")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("manifest.json"))
    cfg = Config(dataset="ci", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="ci", method="upsert", cursor="at", key=("k",)),))
    assert export_full(cfg, open_store(str(tmp_path / "e"))).manifests


def test_a_prefix_key_is_refused_for_an_updater_and_an_upsert_export(
        maria: MariaDatabase, cluster, tmp_path: Path) -> None:
    """PRIMARY KEY (k(4)): MariaDB holds one row for all values sharing their first 4
    characters (bytes, for a binary column), so 'abcd1' updated to 'abcd2' is one key
    there and two in a replica, which compares the whole value: the updater's replica held
    both rows, exit 0."""
    maria.execute(
        "CREATE TABLE pre (k VARCHAR(20) COLLATE utf8mb4_nopad_bin NOT NULL, "
        "ts DATETIME(6) NOT NULL, v INT, PRIMARY KEY (k(4)));"
        "CREATE TABLE bpre (id INT NOT NULL, k BLOB NOT NULL, ts DATETIME(6) NOT NULL, "
        "PRIMARY KEY (id, k(3)));"
        "INSERT INTO pre VALUES ('abcd1', '2026-01-01', 1); "
        "INSERT INTO bpre VALUES (1, 'xyz1', '2026-01-01')")
    url = new_target("duckdb", cluster, tmp_path)
    tables = {t: {"method": "updater", "cursor": "ts"} for t in ("pre", "bpre")}
    runs = {r.table.rsplit(".", 1)[1]: r for r in run_once(config(url, {
        "m": (maria.replica_url, tables)}))}
    for t, what in (("pre", "first 4 characters"), ("bpre", "first 3 bytes")):
        run = runs[t]
        assert (run.status, run.exit_code) == ("failed", 2), run
        assert what in (run.error or "") and "'k'" in (run.error or ""), run.error
        assert "respelled" not in (run.error or ""), run.error
    # the key named in the config is the user's word; an inserter's rows never change
    for settings in ({"method": "updater", "key": ["k"]}, {"method": "inserter"}):
        url = new_target("duckdb", cluster, tmp_path)
        runs = run_once(config(url, {"m": (maria.replica_url, {"pre": {
            "cursor": "ts", **settings}})}))
        assert runs[0].status == "ok", runs[0].error
    cfg = Config(dataset="pre", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="pre", method="upsert", cursor="ts"),))
    with pytest.raises(ConfigError) as info:
        export_full(cfg, open_store(str(tmp_path / "d")))
    assert "first 4 characters" in info.value.message
    # its own words: a prefix key's values are not respelled, they share a prefix
    assert "respelled" not in info.value.message + (info.value.hint or "")
    assert "written over one sharing its first 4 characters" in (info.value.hint or "")


def test_which_collations_compare_as_bytes() -> None:
    """MySQL 8's utf8mb4_0900_bin is NO PAD: exact, as MariaDB's _nopad_bin (it was
    refused as a PAD SPACE collation)."""
    def table(native: str, collation: str) -> MariaTable:
        c = map_column({"COLUMN_NAME": "k", "DATA_TYPE": native.split("(")[0],
                        "COLUMN_TYPE": native, "IS_NULLABLE": "NO",
                        "CHARACTER_MAXIMUM_LENGTH": 20, "COLLATION_NAME": collation})
        return MariaTable("d", "t", [c], ["k"], 0, "InnoDB")

    for native, collation in (("varchar(20)", "utf8mb4_0900_bin"),
                              ("varchar(20)", "utf8mb4_nopad_bin"),
                              ("char(20)", "utf8mb4_bin"), ("varbinary(20)", "")):
        assert inexact_key(table(native, collation), ["k"]) is None, collation
    for native, collation in (("varchar(20)", "utf8mb4_bin"), ("text", "latin1_bin"),
                              ("varchar(20)", "utf8mb4_0900_ai_ci"),
                              ("char(20)", "utf8mb4_uca1400_as_cs"),
                              ("varchar(20)", "utf8mb4_nopad_general_ci")):
        assert inexact_key(table(native, collation), ["k"]) is not None, collation
