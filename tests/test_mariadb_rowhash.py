"""The server's content hashes (rowhash.py): ``my2`` sees a one-byte change of any column
type, NULL against '', values moved between adjacent columns; ``my1`` is still the sum over
the SQL-built CSV lines; a day published with ``my1`` is re-checked after the upgrade
(published again once, with ``my2``; then unchanged)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.dataset import read_table
from support.mariadb import MariaDatabase
from topoff.config import Config, TableConfig
from topoff.dataset.layout import Window
from topoff.export.incremental import export_incremental
from topoff.sources.mariadb import rows
from topoff.sources.mariadb import source as maria_source
from topoff.sources.mariadb.catalog import read_table as read_maria_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.rowhash import MY1, MY2, count_hash_sql
from topoff.sources.mariadb.types import line_sql
from topoff.stores import open_store

# column, type, value, the same value one byte (of its text) away
ONE_BYTE: list[tuple[str, str, str, str]] = [
    ("i", "INT", "10", "11"),
    ("u64", "BIGINT UNSIGNED", "18446744073709551615", "18446744073709551614"),
    ("dc", "DECIMAL(6,2)", "1.50", "1.51"),
    ("db", "DOUBLE", "0.5", "0.6"),
    ("fl", "FLOAT", "0.5", "0.75"),
    ("bt", "BIT(3)", "b'101'", "b'100'"),
    ("yr", "YEAR", "2024", "2025"),
    ("d", "DATE", "'2024-01-01'", "'2024-01-02'"),
    ("dt", "DATETIME(6)", "'2024-01-01 00:00:00.000001'", "'2024-01-01 00:00:00.000002'"),
    ("ts", "TIMESTAMP(3) NULL", "'2024-01-01 00:00:00.100'", "'2024-01-01 00:00:00.200'"),
    ("tm", "TIME", "'10:00:00'", "'10:00:01'"),
    ("vc", "VARCHAR(10)", "'abc'", "'abd'"),
    ("ch", "CHAR(3)", "'ab'", "'ab '"),  # CHAR drops trailing spaces: no change at all
    ("l1", "VARCHAR(10) CHARACTER SET latin1", "'Grüße'", "'Grüsse'"),
    ("tx", "TEXT", "'x,y'", "'x;y'"),
    ("bl", "BLOB", "X'00ff'", "X'00fe'"),
    ("vb", "VARBINARY(4)", "X''", "X'00'"),
    ("en", "ENUM('a','b')", "'a'", "'b'"),
    ("st", "SET('a','b')", "'a'", "'a,b'"),
    ("js", "JSON", "'[1]'", "'[2]'"),
    ("uu", "UUID", "'123e4567-e89b-12d3-a456-426614174000'",
     "'123e4567-e89b-12d3-a456-426614174001'"),
]


def _hash(maria: MariaDatabase, table: str, algorithm: str = MY2) -> tuple[int, str]:
    with connect(maria.replica_url) as conn:
        t = read_maria_table(conn, maria.name, table)
        return rows.window_hash(conn, t, algorithm=algorithm)


def test_my2_sees_a_one_byte_change_of_every_type(maria: MariaDatabase) -> None:
    cols = ", ".join(f"`{n}` {t}" + ("" if "NULL" in t else " NULL") for n, t, _a, _b in ONE_BYTE)
    values = ", ".join(a for _n, _t, a, _b in ONE_BYTE)
    maria.execute(f"CREATE TABLE t (id INT PRIMARY KEY, {cols});"
                  f"INSERT INTO t VALUES (1, {values}), (2, {values})")
    first = _hash(maria, "t")
    assert first[0] == 2
    for name, _type, a, b in ONE_BYTE:
        maria.execute(f"UPDATE t SET `{name}` = {b} WHERE id = 2")
        changed = _hash(maria, "t")
        if name == "ch":
            assert changed == first  # the same value (and the same exported text)
        else:
            assert changed != first, name
        maria.execute(f"UPDATE t SET `{name}` = {a} WHERE id = 2")
        assert _hash(maria, "t") == first, name


def test_my2_tells_null_from_empty_and_values_moved_between_columns(
        maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE m (id INT PRIMARY KEY, a VARCHAR(9) NULL, b VARCHAR(9) NULL,"
                  " x BLOB NULL); INSERT INTO m VALUES (1, 'ab', 'c', NULL)")
    seen = {_hash(maria, "m")}
    for change in ("UPDATE m SET a = 'a', b = 'bc'",       # a boundary moved
                   "UPDATE m SET a = 'bc', b = 'a'",       # the two values swapped
                   "UPDATE m SET a = 'a', b = 'bc'",       # (back: seen already)
                   "UPDATE m SET x = ''",                  # NULL -> empty
                   "UPDATE m SET a = NULL",                # text -> NULL
                   "UPDATE m SET a = '', b = NULL",        # NULL and '' swapped
                   "UPDATE m SET a = 'N', b = NULL",       # NULL's own mark as a value
                   "UPDATE m SET a = '1:N'"):              # a length prefix as a value
        maria.execute(change)
        now = _hash(maria, "m")
        if change == "UPDATE m SET a = 'a', b = 'bc'" and len(seen) > 2:
            assert now in seen
        else:
            assert now not in seen, change
        seen.add(now)


def test_my1_is_still_the_sum_over_the_sql_lines(maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE o (id INT PRIMARY KEY, v VARCHAR(9) NULL, at DATETIME(6));"
                  "INSERT INTO o VALUES (1, 'a,\"b', '2024-01-01 00:00:00.5'), (2, NULL, NULL)")
    with connect(maria.replica_url) as conn:
        t = read_maria_table(conn, maria.name, "o")
        line = line_sql(t.columns)
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTR(MD5("
                    f"{line}), 1, 15), 16, 10) AS UNSIGNED)), 0) FROM {t.qualified}")
        want = tuple(cur.fetchone())
        cur.close()
        assert rows.window_hash(conn, t, algorithm=MY1) == (int(want[0]), str(want[1]))
        assert rows.window_hash(conn, t, algorithm=MY2) != rows.window_hash(conn, t,
                                                                            algorithm=MY1)
    with pytest.raises(ValueError, match="unknown content hash"):
        count_hash_sql(t.columns, "my3")


def test_a_day_published_with_my1_is_rechecked(maria: MariaDatabase, tmp_path,
                                                monkeypatch: Any) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    prev = day - timedelta(days=1)
    maria.execute(f"CREATE TABLE hits (at DATETIME(6) NULL, path VARCHAR(50));"
                  f"INSERT INTO hits VALUES ('{prev} 10:00:00', '/a'), ('{day} 10:00:00', '/b')")
    config = Config(dataset="shop", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name="hits", cursor="at"),)).with_export(
            lookback_days=1)
    store = open_store(str(tmp_path / "pub"))
    # an earlier version published both days with my1
    with monkeypatch.context() as m:
        m.setattr(maria_source, "MARIA_HASH", MY1)
        first = export_incremental(config, store, Window.day(day))
    qualified = f"{maria.name}.hits"
    hashes = {mf.window.label: mf.tables[qualified].content_hash
              for mf in first.manifests if mf.window}
    assert all(h is not None and h.startswith("my1:") for h in hashes.values())
    assert len(hashes) == 2
    # now: neither day can be compared by my2, so both are published again (once)
    again = export_incremental(config, store, Window.day(day))
    labels = sorted((mf.window.label, mf.revision) for mf in again.manifests if mf.window)
    assert labels == [(str(prev), 2), (str(day), 2)]
    republished = {mf.window.label: mf for mf in again.manifests if mf.window}
    assert all(mf.tables[qualified].content_hash.startswith("my2:")
               for mf in republished.values())
    assert [r[1] for r in read_table(store, republished[str(prev)], qualified).rows] == ["/a"]
    # and from then on it is re-checked by my2: unchanged, then a late row found
    assert export_incremental(config, store, Window.day(day)).manifests == []
    maria.execute(f"INSERT INTO hits VALUES ('{prev} 11:00:00', '/late')")
    late = export_incremental(config, store, Window.day(day))
    assert sorted((mf.window.label, mf.revision) for mf in late.manifests if mf.window) == [
        (str(prev), 3)]
