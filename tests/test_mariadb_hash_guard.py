"""A MariaDB content hash is never a sum over NULL digests: the server's hash functions are
checked when a source opens (SHA2 is NULL on a server built without TLS, MD5 may be absent
from a FIPS build), and a window holding a row whose digest is NULL is never unchanged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from support.dataset import topoff_log
from support.mariadb import MariaDatabase
from support.replicate import config
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.export.incremental import export_incremental
from topoff.replicate import maria_read
from topoff.replicate.engine import run_once
from topoff.sources.mariadb import rows
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.rowhash import MY1, MY2, MY3, NULL_WEIGHT, computed, preferred
from topoff.sources.mariadb.source import MariaSource
from topoff.stores import open_store


@pytest.mark.parametrize(("probe", "usable", "chosen"), [
    ("SHA2('abc', 256), MD5('abc')", (MY3, MY2, MY1), MY3),
    ("NULL, MD5('abc')", (MY2, MY1), MY2),  # a server built without TLS
    ("SHA2('abc', 256), NULL", (MY3,), MY3),  # a FIPS build without MD5
    ("NULL, NULL", (), None),
    ("SHA2('abd', 256), MD5('abd')", (), None),  # a function giving other digests
])
def test_the_hash_functions_the_server_computes_decide_the_algorithm(
        maria: MariaDatabase, probe: str, usable: tuple[str, ...], chosen: str | None) -> None:
    with connect(maria.replica_url) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {probe}")
        (row,) = cur.fetchall()
    assert computed(row) == usable
    assert preferred(usable) == chosen


class NoHashSource(MariaSource):
    """A MariaDB source whose server computes neither SHA2 nor MD5."""

    HASH_PROBE = "SELECT NULL, NULL"


def test_an_export_from_a_server_without_hash_functions_hashes_the_rows_it_reads(
        maria: MariaDatabase, tmp_path) -> None:
    """Tables with a key get ``cs1``, the others none (my3 would have summed NULLs: 0 for
    every window, a changed value unseen); a changed value is then found."""
    day = (datetime.now(UTC) - timedelta(days=2)).date()
    maria.execute("CREATE TABLE nh_k (id INT PRIMARY KEY, at DATETIME(6), v TEXT);"
                  "CREATE TABLE nh_n (at DATETIME(6), v TEXT);"
                  f"INSERT INTO nh_k VALUES (1, '{day} 10:00:00', 'a');"
                  f"INSERT INTO nh_n VALUES ('{day} 10:00:00', 'a')")
    config = Config(dataset="nohash", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="nh_k", cursor="at"),
        TableConfig(schema=maria.name, name="nh_n", cursor="at"))).with_export(
            lookback_days=0)
    store = open_store(str(tmp_path / "pub"))
    first = export_incremental(config, store, Window.day(day), kind=NoHashSource)
    (mf,) = first.manifests
    hashes = {q: e.content_hash for q, e in mf.tables.items()}
    assert hashes[f"{maria.name}.nh_k"].startswith("cs1:")
    assert hashes[f"{maria.name}.nh_n"] is None
    maria.execute("UPDATE nh_k SET v = 'b'; UPDATE nh_n SET v = 'b'")
    again = export_incremental(config, store, Window.day(day), kind=NoHashSource)
    (mf,) = again.manifests
    assert mf.revision == 2 and set(mf.tables) == {f"{maria.name}.nh_k", f"{maria.name}.nh_n"}


@pytest.mark.slow  # a 16 MB geometry hashed three times: 10-25 s
def test_a_window_holding_a_row_whose_digest_is_null_is_never_unchanged(
        maria: MariaDatabase, caplog: pytest.LogCaptureFixture) -> None:
    """A LINESTRING whose WKT (20 MB) is longer than max_allowed_packet: the ``my1`` line
    the server builds of its row is NULL, which the sum skipped (the same hash once the
    line had changed); the window's hash is now none, so it compares with nothing. The
    export's re-check of such a window: no hash, and a warning naming the table (a day
    published again at every re-check, without a word)."""
    point = "2A1BD6546F8EE9BF2A1BD6546F8EE9BF"
    maria.execute("CREATE TABLE wide_g (id INT PRIMARY KEY, g LINESTRING NULL);"
                  "INSERT INTO wide_g VALUES (1, ST_GeomFromWKB(CONCAT(X'0102000000', "
                  f"X'20A10700', REPEAT(X'{point}', 500000)))), (2, NULL)")
    with connect(maria.replica_url) as conn:
        t = read_table(conn, maria.name, "wide_g")
        assert rows.window_hash(conn, t, algorithm=MY1) == (2, None)
        count, digest = rows.window_hash(conn, t, algorithm=MY3)
        assert count == 2 and digest is not None
    config = Config(dataset="w", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="wide_g", method="snapshot"),))
    with MariaSource(maria.replica_url, False) as source:
        source.open()
        (t,) = source.tables(config)
        with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
            assert source.reader().count_hash(t, None, MY1) == (2, None)
    assert f"{maria.name}.wide_g" in caplog.text and "NULL" in caplog.text


def test_a_replicated_snapshot_table_whose_hash_meets_a_null_digest_is_copied_again(
        maria: MariaDatabase, tmp_path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The server's sum as a server without SHA2 gives it (every row's digest NULL): the
    table is copied at every run, with a warning (its state equalled itself: "unchanged"
    for good)."""
    maria.execute("CREATE TABLE snap_n (id INT PRIMARY KEY, v TEXT);"
                  "INSERT INTO snap_n VALUES (1, 'a'), (2, 'b')")
    monkeypatch.setattr(maria_read, "count_hash_sql", lambda columns, algorithm: (
        f"COUNT(*), COALESCE(SUM(IFNULL(CONV(SUBSTR(IF(FALSE, 'x', NULL), 1, 15), 16, 10), "
        f"{NULL_WEIGHT})), 0)"))
    target = str(tmp_path / "snap.duckdb")
    cfg = config(target, {"m": (maria.replica_url, {"snap_n": {"method": "snapshot"}})})
    for _ in range(2):
        with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
            (run,) = run_once(cfg)
        assert (run.status, run.rows) == ("ok", 2), run
    assert caplog.text.count("copied whole at every run") == 2
