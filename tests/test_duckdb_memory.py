"""A DuckDB replica uses bounded memory: 1GB and at most 4 threads by default, spilling
next to the file; ``--memory-limit`` / $TOPOFF_DUCKDB_MEMORY_LIMIT change the limit, and a
bad value is a configuration error (exit 2) before anything is touched."""

from __future__ import annotations

import os

import pytest

from support.pg import make_config
from support.replica import cli, query
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.targets.duckdb import DuckDBTarget
from topoff.targets.duckdb.resources import MEMORY_ENV

MIB = 2**20


def settings(target: DuckDBTarget) -> tuple[float, int, str]:
    limit, threads, temp = target.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('temp_directory')")[0]
    value, unit = limit.split()  # DuckDB prints 1GB as "953.6 MiB"
    return float(value) * {"MiB": MIB, "GiB": 1024 * MIB}[unit], int(threads), temp


def test_defaults_and_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    path = tmp_path / "r.duckdb"
    with DuckDBTarget(path) as t:
        limit, threads, temp = settings(t)
    assert limit == pytest.approx(1e9, rel=0.01)
    assert 1 <= threads <= min(os.cpu_count() or 1, 4)
    assert temp == str(path) + ".tmp"
    monkeypatch.setenv(MEMORY_ENV, "512MB")
    with DuckDBTarget(path) as t:
        assert settings(t)[0] == pytest.approx(512e6, rel=0.01)
        with DuckDBTarget(tmp_path / "other.duckdb", memory_limit="2GiB") as other:
            assert settings(other)[0] == pytest.approx(2 * 1024 * MIB, rel=0.01)


@pytest.mark.parametrize("bad", ["lots", "1KB", "512", "-1GB", "1GB'; ATTACH 'x", "",
                                 "99999999TB"])  # DuckDB refused it: an internal error
def test_a_bad_limit_is_a_configuration_error(tmp_path, monkeypatch, bad):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    with pytest.raises(ConfigError, match="invalid DuckDB memory limit") as info:
        DuckDBTarget(tmp_path / "r.duckdb", memory_limit=bad)
    assert "512MB" in (info.value.hint or "")
    assert not (tmp_path / "r.duckdb").exists()
    if bad:
        monkeypatch.setenv(MEMORY_ENV, bad)
        with pytest.raises(ConfigError):
            DuckDBTarget(tmp_path / "r.duckdb")


def test_sync_memory_limit_option(db, tmp_path, monkeypatch):
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    db.execute("CREATE TABLE t (id integer PRIMARY KEY, s text); "
               "INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(1, 20000) g")
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(db, 'dataset = "m"\n[tables.t]\nmethod = "snapshot"\n'), store)
    replica = str(tmp_path / "r.duckdb")

    result = cli("sync", url, replica, "--memory-limit", "lots")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "error: invalid DuckDB memory limit 'lots'"
    assert result.stderr.splitlines()[1].startswith("hint: give --memory-limit or ")
    assert not os.path.exists(replica)
    monkeypatch.setenv(MEMORY_ENV, "nope")
    assert cli("sync", url, replica).exit_code == 2
    result = cli("sync", url, replica, "--memory-limit", "64MB")  # the option wins
    assert result.exit_code == 0, result.stderr
    assert query(replica, "SELECT count(*), sum(length(s)) FROM public.t") == [
        (20000, 20000 * 1000)]


def test_a_row_longer_than_the_limit_allows_is_a_clear_error(db, tmp_path, monkeypatch):
    """A row may be a quarter of the memory limit (256 MB at most): a longer one is a
    TargetError (exit 7) that says to raise the limit, and nothing is half loaded; with more
    memory the same dataset loads."""
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    db.execute("CREATE TABLE t (id integer PRIMARY KEY, s text); "
               "INSERT INTO t VALUES (1, repeat('x', 40 * 1024 * 1024)), (2, 'short')")
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(db, 'dataset = "m"\n[tables.t]\nmethod = "snapshot"\n'), store)
    replica = str(tmp_path / "r.duckdb")
    for limit in ("100MB", "64MB"):  # the line size, then memory itself
        result = cli("sync", url, replica, "--memory-limit", limit)
        assert result.exit_code == 7, result.stderr
        error, hint = result.stderr.splitlines()[-2:]
        assert error.startswith("error: public.t: "), error
        assert hint.startswith("hint: give the sync more memory with --memory-limit"), hint
    result = cli("sync", url, replica, "--memory-limit", "400MB")
    assert result.exit_code == 0, result.stderr
    assert query(replica, "SELECT id, length(s) FROM public.t ORDER BY id") == [
        (1, 40 * 1024 * 1024), (2, 5)]
