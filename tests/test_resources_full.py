"""A disk that fills under a run (a real tmpfs, mounted for the test): one error line, one
hint, the documented exit code, nothing half made, and the same command run again once
there is room ends as an uninterrupted run (verify passes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import error_lines, run_cli, write_config
from support.full_disk import fill_up, no_traceback
from support.replica import (
    add_messages,
    cli,
    day,
    fill,
    nommer_config,
    publish_day,
    publish_full,
    publish_standard,
)
from support.replicate import config_text, hashes, new_database
from topoff.targets.iceberg.config import open_catalog, read_settings


@pytest.fixture
def published(db, tmp_path: Path) -> Path:
    fill(db, days=2, per_day=50)
    url = tmp_path / "published"
    publish_standard(nommer_config(db), str(url))
    return url


def test_a_duckdb_replica_the_full_disk_cannot_hold_a_header_of(db, published: Path,
                                                                disk: Path):
    """The file DuckDB starts on a full disk is left without its header: the failed first
    sync removes it (a later run would take it for a damaged database)."""
    replica = disk / "r.duckdb"
    filler = fill_up(disk, 4096)
    result = cli("sync", str(published), str(replica))
    assert result.exit_code == 7, result.stderr
    no_traceback(result.stderr)
    error, hint = error_lines(result)
    assert error == f"error: the disk of DuckDB replica {replica} is full", error
    assert "free some space" in hint
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    filler.unlink()
    result = cli("sync", str(published), str(replica))
    assert result.exit_code == 0, result.stderr
    result = cli("verify", str(replica), "--against", db.standby_url)
    assert result.exit_code == 0, result.stdout + result.stderr


@pytest.fixture
def replicate_conf(cluster, tmp_path: Path, disk: Path) -> tuple[Path, str, object]:
    src = new_database(cluster)
    src.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
                "INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
                "repeat('a', 50) FROM generate_series(1, 20000) g; "
                "CREATE TABLE snap (id int PRIMARY KEY, v text); "
                "INSERT INTO snap SELECT g, 'v' FROM generate_series(1, 2000) g")
    url = disk / "rep.duckdb"
    tables = {"ev": {"method": "updater", "cursor": "ts", "batch_rows": 5000},
              "snap": {"method": "snapshot"}}
    path = write_config(tmp_path / "replica.toml",
                        config_text(str(url), {"app": (src.standby_url, tables)}))
    return url, path, src


def assert_replicated(url: Path, src) -> None:
    for table in ("public.ev", "public.snap"):
        mine, theirs = hashes(str(url), src.primary_url, "app", table)
        assert mine == theirs, table


@pytest.mark.parametrize("leave", [0, 8192])
def test_replicate_into_a_duckdb_file_on_a_full_disk(replicate_conf, disk: Path, leave: int):
    url, path, src = replicate_conf
    filler = fill_up(disk, leave)
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    error, hint = error_lines(r)
    assert error == f"error: the disk of DuckDB replica {url} is full", error
    assert "free some space" in hint
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    filler.unlink()
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    assert_replicated(url, src)



def test_replicate_with_the_duckdb_spool_s_disk_full(replicate_conf, disk: Path):
    """The rows of a refresh spooled under REPLICA.tmp fill the disk: the failure names
    the spool's directory, the refresh's table once, and a way out replicate has."""
    url, path, src = replicate_conf
    filler = fill_up(disk, 100 * 1024)
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("error: app.public.ev")]
    assert failed, r.stderr
    assert failed[0].startswith(f"error: app.public.ev: the disk of DuckDB replica {url} is "
                                f"full (writing under {url}.tmp)"), failed[0]
    assert "--cache-dir" not in r.stderr and "free some space" in failed[0]
    filler.unlink()
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    assert_replicated(url, src)
    assert not list(Path(f"{url}.tmp").glob("*.csv"))


def test_an_iceberg_sql_catalog_on_a_full_disk(db, tmp_path: Path, disk: Path):
    """The SQLite file of an Iceberg SQL catalog cannot take a commit: the sync says the
    catalog's disk is full (exit 7), and resumes once there is room."""
    fill(db, days=2, per_day=50)
    url = tmp_path / "published"
    config = nommer_config(db)
    publish_full(config, str(url))
    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{disk}/catalog.db"\n'
                    f'warehouse = "{tmp_path}/warehouse"\nnamespace = "replica"\n')
    target = f"iceberg:{path}"
    assert cli("sync", str(url), target).exit_code == 0
    add_messages(db, day(1), 30)
    publish_day(config, str(url), day(1))
    filler = fill_up(disk, 0)
    result = cli("sync", str(url), target)
    assert result.exit_code == 7, result.stderr
    no_traceback(result.stderr)
    error, hint = error_lines(result)
    assert error.startswith(f"error: the Iceberg catalog of {target} cannot be written: its "
                            "disk is full (database or disk is full)"), error
    assert "free some space" in hint and "resumes" in hint
    filler.unlink()
    result = cli("sync", str(url), target)
    assert result.exit_code == 0, result.stderr
    result = cli("verify", target, "--against", db.standby_url)
    assert result.exit_code == 0, result.stdout + result.stderr


def test_replicate_into_an_iceberg_sql_catalog_on_a_full_disk(cluster, tmp_path: Path,
                                                              disk: Path):
    src = new_database(cluster)
    src.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
                "INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
                "'a' FROM generate_series(1, 2000) g")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'type = "sql"\nuri = "sqlite:///{disk}/catalog.db"\n'
                       f'warehouse = "{tmp_path}/warehouse"\nnamespace = "replica"\n')
    tables = {"ev": {"method": "updater", "cursor": "ts", "batch_rows": 500}}
    path = write_config(tmp_path / "replica.toml",
                        config_text(f"iceberg:{catalog}", {"app": (src.standby_url, tables)}))
    assert run_cli("replicate", "--config", path, "--once").exit_code == 0
    src.execute("INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
                "'b' FROM generate_series(2001, 3000) g")
    filler = fill_up(disk, 0)
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    assert ("error: app.public.ev: the Iceberg catalog cannot be written: its disk is full "
            "(database or disk is full)") in r.stderr, r.stderr
    filler.unlink()
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    assert "1,000 rows moved" in r.stdout
    table = open_catalog(read_settings(f"iceberg:{catalog}")).load_table(("app", "ev"))
    rows = table.scan().to_arrow().sort_by("id")
    assert rows["id"].to_pylist() == list(range(1, 3001))
    assert rows["v"].to_pylist() == ["a"] * 2000 + ["b"] * 1000
