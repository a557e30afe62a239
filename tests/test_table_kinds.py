"""PostgreSQL table kinds and their rows: a dataset table holds the rows a query of its
source table shows (an inheritance parent's and partitioned table's children included),
so a table whose rows another configured table already holds is not exported twice."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import error_lines, run_cli
from support.pg import Database
from support.replica import rows, user_tables
from support.replicate import new_target

_FAMILY = ("CREATE TABLE p (id int PRIMARY KEY, v text); "
           "CREATE TABLE c (extra int) INHERITS (p); CREATE TABLE g () INHERITS (c); "
           "INSERT INTO p VALUES (1, 'a'), (2, 'b'); INSERT INTO c VALUES (3, 'c', 9); "
           "INSERT INTO g VALUES (4, 'd', 8)")


def test_inheritance_children_are_exported_once_in_their_parent(db: Database,
                                                                 tmp_path: Path) -> None:
    db.execute(_FAMILY)
    db.sync()
    out, replica = tmp_path / "out", str(tmp_path / "r.duckdb")
    result = run_cli("export", "full", "--source", db.standby_url, "--to", str(out))
    assert result.exit_code == 0, result.stderr
    assert run_cli("sync", str(out), replica).exit_code == 0
    assert user_tables(replica) == ["public.p"]
    assert sorted(rows(replica, "public.p")) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    verify = run_cli("verify", replica, "--against", db.standby_url)
    assert verify.exit_code == 0, verify.stdout + verify.stderr
    assert "public.p: equal (4 rows)" in verify.stdout


def test_a_table_configured_with_its_parent_is_refused(db: Database, tmp_path: Path) -> None:
    db.execute(_FAMILY + "; CREATE TABLE q (id int) PARTITION BY RANGE (id); "
               "CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (10)")
    db.sync()
    config = tmp_path / "c.toml"
    for pair in (("p", "g"), ("q", "q1")):
        config.write_text(f'dataset = "d"\n[tables.{pair[0]}]\nmethod = "snapshot"\n'
                          f'[tables.{pair[1]}]\nmethod = "snapshot"\n')
        out = tmp_path / "out"
        result = run_cli("export", "full", "--config", str(config), "--source",
                         db.standby_url, "--to", str(out))
        assert result.exit_code == 2, result.stderr
        error, hint = error_lines(result)
        assert f"public.{pair[1]}" in error and f"public.{pair[0]}" in error
        assert f"[tables.{pair[1]}]" in hint
        assert not (out / "index.json").exists()
    config.write_text('dataset = "d"\n[tables.c]\nmethod = "snapshot"\n')
    result = run_cli("export", "full", "--config", str(config), "--source", db.standby_url,
                     "--to", str(tmp_path / "child"))
    assert result.exit_code == 0, result.stderr
    assert "1 tables, 2 rows" in result.stdout


def test_materialized_views_and_foreign_tables_are_exported(db: Database,
                                                            tmp_path: Path) -> None:
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text); "
               "INSERT INTO s VALUES (1, 'a'), (2, 'b'); "
               "CREATE MATERIALIZED VIEW m AS SELECT id, v FROM s; "
               "CREATE EXTENSION file_fdw; CREATE SERVER files FOREIGN DATA WRAPPER file_fdw; "
               "CREATE FOREIGN TABLE f (id int, v text) SERVER files "
               "OPTIONS (program 'printf ''1,a\\n2,b\\n''', format 'csv')")
    db.sync()
    config = tmp_path / "c.toml"
    config.write_text('dataset = "d"\n[tables.m]\nmethod = "snapshot"\n'
                      '[tables.f]\nmethod = "snapshot"\n')
    out, replica = tmp_path / "out", str(tmp_path / "r.duckdb")
    result = run_cli("export", "full", "--config", str(config), "--source", db.standby_url,
                     "--to", str(out))
    assert result.exit_code == 0, result.stderr
    assert run_cli("sync", str(out), replica).exit_code == 0
    assert rows(replica, "public.m") == rows(replica, "public.f") == [(1, "a"), (2, "b")]
    verify = run_cli("verify", replica, "--against", db.standby_url)
    assert verify.exit_code == 0, verify.stdout + verify.stderr


def test_what_a_standby_cannot_read_is_refused_with_a_reason(db: Database,
                                                             tmp_path: Path) -> None:
    """An unlogged table has no rows on a standby, a materialized view made WITH NO DATA
    none anywhere: both are source errors (exit 3) saying so, in export and replicate."""
    from support.replicate import config_text

    db.execute("CREATE UNLOGGED TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1); "
               "CREATE MATERIALIZED VIEW mn AS SELECT 1 AS id WITH NO DATA")
    db.sync()
    for name, why, hint in (("u", "unlogged", "allow_primary"),
                            ("mn", "not been populated", "REFRESH MATERIALIZED VIEW")):
        config = tmp_path / f"{name}.toml"
        config.write_text(f'dataset = "d"\n[tables.{name}]\nmethod = "snapshot"\n')
        result = run_cli("export", "full", "--config", str(config), "--source",
                         db.standby_url, "--to", str(tmp_path / f"o{name}"))
        assert result.exit_code == 3, result.stderr
        error, said = error_lines(result)
        assert f"public.{name}" in error and why in error and hint in said
        path = tmp_path / f"r{name}.toml"
        path.write_text(config_text(str(tmp_path / f"r{name}.duckdb"), {
            "app": (db.standby_url, {name: {"method": "snapshot", "key": ["id"]}})}))
        result = run_cli("replicate", "--config", str(path), "--once")
        assert result.exit_code == 3, result.stdout + result.stderr
        assert why in result.stderr and "internal error" not in result.stderr
    # from the primary (allowed), the unlogged table's rows are there
    config = tmp_path / "u.toml"
    result = run_cli("export", "full", "--config", str(config), "--source", db.primary_url,
                     "--allow-primary", "--to", str(tmp_path / "primary"))
    assert result.exit_code == 0, result.stderr
    # without a config, a standby's unlogged tables are left out, saying so (as init does)
    db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    db.sync()
    result = run_cli("export", "full", "--source", db.standby_url, "--to", str(tmp_path / "all"))
    assert result.exit_code == 0, result.stderr
    assert "skipping 1 unlogged tables" in result.stderr and "public.u" in result.stderr
    assert "1 tables, 1 rows" in result.stdout
    init = tmp_path / "init.toml"
    assert run_cli("init", "--source", db.standby_url, "--output", str(init)).exit_code == 0
    assert "public.u (unlogged: a standby holds none of its rows)" in init.read_text()


def test_a_recheck_sees_a_member_attached_with_as_many_rows_as_were_deleted(
        db: Database, tmp_path: Path) -> None:
    """A published day of a table whose partition or inheritance child attached since
    brings old rows (their xmin older than the day's snapshot) while as many rows left the
    day: the count is the same and no row is new, so the xmin rule cannot decide."""
    from datetime import timedelta

    from support.pg import make_config
    from topoff.dataset.layout import Window
    from topoff.export.incremental import export_incremental
    from topoff.export.windows import yesterday
    from topoff.stores import open_store

    d = yesterday() - timedelta(days=1)
    db.execute(f"CREATE TABLE p (id int, ts timestamptz NOT NULL); CREATE INDEX ON p (ts); "
               f"CREATE TABLE c (LIKE p); "
               f"INSERT INTO p SELECT g, '{d}'::date + g * interval '1 min' "
               f"FROM generate_series(1, 3) g; "
               f"INSERT INTO c VALUES (9, '{d}'::date + interval '9 min')")
    db.sync()
    config = make_config(db, '[tables.p]\ncursor = "ts"\nmethod = "append"\n', lookback_days=1)
    store = open_store(str(tmp_path / "out"))
    export_incremental(config.with_export(lookback_days=0), store, Window.day(d))
    db.execute("DELETE FROM p WHERE id = 1; ALTER TABLE c INHERIT p")
    db.sync()
    result = export_incremental(config, store, Window.day(d + timedelta(days=1)))
    [recheck] = result.manifests[-1].rechecked
    assert recheck["window"] == d.isoformat() and recheck["result"] == "changed-hash"
    assert next(p.id for p in result.publications).endswith("r2")


def test_an_inheritance_parent_s_key_is_not_the_dataset_s(db: Database, cluster: object,
                                                          tmp_path: Path) -> None:
    """A parent's primary key constrains its own rows only: a child may hold the same key
    (here id 1 twice). The export published the key all the same: a PostgreSQL replica
    refused the dataset (duplicate keys, exit 6) and a DuckDB one kept both rows under a
    declared key. Now the dataset has no key for such a table (nor its unique indexes), so
    every target holds the rows the source shows; a partitioned table's key holds and stays."""
    db.execute(_FAMILY + "; INSERT INTO c VALUES (1, 'again', 7); "
               "CREATE UNIQUE INDEX p_v ON p (v); CREATE INDEX p_v_plain ON p (v); "
               "CREATE TABLE q (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); "
               "CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (10); "
               "INSERT INTO q VALUES (1, 'x')")
    db.sync()
    out = tmp_path / "out"
    result = run_cli("export", "full", "--source", db.standby_url, "--to", str(out))
    assert result.exit_code == 0, result.stderr
    assert "public.p: its primary key does not hold" in result.stderr
    [full] = [p for p in out.glob("full/*/manifest.json")]
    manifest = json.loads(full.read_text())
    keys = {t["name"]: t.get("primary_key") for t in manifest["tables"].values()}
    assert not keys["p"] and keys["q"] == ["id"]
    post = (full.parent / "schema" / "post-data.sql").read_text()
    assert "p_v_plain" in post and "p_v " not in post and "p_pkey" not in post
    for replica in (str(tmp_path / "r.duckdb"), new_target("postgresql", cluster, tmp_path)):
        synced = run_cli("sync", str(out), replica)
        assert synced.exit_code == 0, synced.stderr
        assert sorted(rows(replica, "public.p")) == [(1, "a"), (1, "again"), (2, "b"),
                                                      (3, "c"), (4, "d")]
        verify = run_cli("verify", replica, "--against", db.standby_url)
        assert verify.exit_code == 0, verify.stdout + verify.stderr
