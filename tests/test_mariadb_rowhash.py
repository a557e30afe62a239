"""The server's content hashes (rowhash.py): ``my3`` and ``my2`` see a one-byte change of any
column type, NULL against '', values moved between adjacent columns; ``my1`` is still the
sum over the SQL-built CSV lines; a day published with ``my1`` or ``my2`` is re-checked
after the upgrade (published again once, with ``my3``; then unchanged)."""

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
from topoff.sources.mariadb.rowhash import MY1, MY2, MY3, count_hash_sql
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
    ("u4", "VARCHAR(4) CHARACTER SET utf8mb4", "'a\U0001F600'", "'a\U0001F601'"),
    ("b8", "BINARY(2)", "X'0000'", "X'0001'"),
    ("bw", "BIT(64)", "b'1'", "b'10'"),
    ("dz", "DOUBLE", "0e0", "-0e0"),  # stored as 0: no change at all
    ("d0", "DATE", "'0000-00-00'", "'0000-00-01'"),  # both NULL in the dataset
    ("ds", "DECIMAL(30,10)", "'0.1000000000'", "'0.0100000000'"),
    ("gm", "POINT", "POINT(1, 2)", "POINT(1, 20)"),
    ("gc", "GEOMETRY", "POINT(12, 3)", "POINT(1, 23)"),
    ("i6", "INET6", "'::1'", "'::2'"),  # no character set: hashed as bytes
]
UNCHANGED = ("ch", "dz")


def _hash(maria: MariaDatabase, table: str, algorithm: str = MY3) -> tuple[int, str]:
    with connect(maria.replica_url) as conn:
        t = read_maria_table(conn, maria.name, table)
        return rows.window_hash(conn, t, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", [MY3, pytest.param(MY2, marks=pytest.mark.slow)])
def test_sees_a_one_byte_change_of_every_type(maria: MariaDatabase, algorithm: str) -> None:
    """Every type, nullable and NOT NULL (a NOT NULL column is hashed without a NULL mark
    by ``my3``); texts in two character sets (``my3`` casts the second to bytes)."""
    table = f"t_{algorithm}"
    cols = ", ".join(f"`{n}` {t}" + ("" if "NULL" in t else " NULL") for n, t, _a, _b in ONE_BYTE)
    cols += ", " + ", ".join(f"`n{n}` {t} NOT NULL" for n, t, _a, _b in ONE_BYTE
                             if "NULL" not in t)
    values = ", ".join(a for _n, t, a, _b in ONE_BYTE)
    values += ", " + ", ".join(a for _n, t, a, _b in ONE_BYTE if "NULL" not in t)
    maria.execute(f"SET SESSION sql_mode = ''; CREATE TABLE {table} (id INT PRIMARY KEY, "
                  f"{cols}); INSERT INTO {table} VALUES (1, {values}), (2, {values})")
    first = _hash(maria, table, algorithm)
    assert first[0] == 2
    for name, t, a, b in ONE_BYTE:
        for column in [name] if "NULL" in t else [name, f"n{name}"]:
            maria.execute(f"SET SESSION sql_mode = ''; "
                          f"UPDATE {table} SET `{column}` = {b} WHERE id = 2")
            changed = _hash(maria, table, algorithm)
            if name in UNCHANGED:
                assert changed == first  # the same value (and the same exported text)
            else:
                assert changed != first, column
            maria.execute(f"SET SESSION sql_mode = ''; "
                          f"UPDATE {table} SET `{column}` = {a} WHERE id = 2")
            assert _hash(maria, table, algorithm) == first, column


@pytest.mark.parametrize("algorithm", [MY3, MY2])
def test_tells_null_from_empty_and_values_moved_between_columns(
        maria: MariaDatabase, algorithm: str) -> None:
    m = f"m_{algorithm}"
    maria.execute(f"CREATE TABLE {m} (id INT PRIMARY KEY, a VARCHAR(9) NULL, b VARCHAR(9) "
                  f"NULL, x BLOB NULL, n INT NULL, k INT NULL); "
                  f"INSERT INTO {m} VALUES (1, 'ab', 'c', NULL, 1, NULL)")
    seen = {_hash(maria, m, algorithm)}
    for change in ("UPDATE m SET a = 'a', b = 'bc'",       # a boundary moved
                   "UPDATE m SET a = 'bc', b = 'a'",       # the two values swapped
                   "UPDATE m SET a = 'a', b = 'bc'",       # (back: seen already)
                   "UPDATE m SET x = ''",                  # NULL -> empty
                   "UPDATE m SET a = NULL",                # text -> NULL
                   "UPDATE m SET a = '', b = NULL",        # NULL and '' swapped
                   "UPDATE m SET a = NULL, b = ''",        # (and back)
                   "UPDATE m SET a = 'N', b = NULL",       # NULL's own mark as a value
                   "UPDATE m SET a = '1:N'",               # a length prefix as a value
                   "UPDATE m SET a = '1,N'",               # a separator in a value
                   "UPDATE m SET a = '1', b = 'N'",
                   "UPDATE m SET n = NULL, k = 1",         # NULL moved between numbers
                   "UPDATE m SET n = 11, k = NULL",        # a digit moved between numbers
                   "UPDATE m SET n = 1, k = 1"):
        maria.execute(change.replace("UPDATE m ", f"UPDATE {m} "))
        now = _hash(maria, m, algorithm)
        if change == "UPDATE m SET a = 'a', b = 'bc'" and len(seen) > 2:
            assert now in seen
        else:
            assert now not in seen, change
        seen.add(now)


def test_my3_hashes_texts_of_character_sets_no_one_holds(maria: MariaDatabase) -> None:
    """Texts in latin1 and greek only (CONCAT_WS of the two refuses: no common character
    set): the second is hashed as bytes, and a change of either is seen."""
    maria.execute("CREATE TABLE cs (id INT PRIMARY KEY, l VARCHAR(9) CHARACTER SET latin1, "
                  "g VARCHAR(9) CHARACTER SET greek NULL);"
                  "INSERT INTO cs VALUES (1, 'Grüße', 'αβγ')")
    seen = {_hash(maria, "cs")}
    for change in ("UPDATE cs SET l = 'Grüsse'", "UPDATE cs SET g = 'αβδ'",
                   "UPDATE cs SET g = NULL", "UPDATE cs SET g = ''"):
        maria.execute(change)
        now = _hash(maria, "cs")
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
        count_hash_sql(t.columns, "my9")


@pytest.mark.parametrize("old", [MY1, MY2])
def test_a_day_published_with_an_older_hash_is_rechecked(maria: MariaDatabase, tmp_path,
                                                         monkeypatch: Any, old: str) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    prev = day - timedelta(days=1)
    maria.execute(f"CREATE TABLE hits_{old} (at DATETIME(6) NULL, path VARCHAR(50));"
                  f"INSERT INTO hits_{old} VALUES ('{prev} 10:00:00', '/a'), "
                  f"('{day} 10:00:00', '/b')")
    config = Config(dataset="shop", source_url=maria.replica_url, tables=(
        TableConfig(schema=maria.name, name=f"hits_{old}", cursor="at"),)).with_export(
            lookback_days=1)
    store = open_store(str(tmp_path / "pub"))
    # an earlier version published both days with my1 or my2
    with monkeypatch.context() as m:
        m.setattr(maria_source, "MARIA_HASH", old)
        first = export_incremental(config, store, Window.day(day))
    qualified = f"{maria.name}.hits_{old}"
    hashes = {mf.window.label: mf.tables[qualified].content_hash
              for mf in first.manifests if mf.window}
    assert all(h is not None and h.startswith(f"{old}:") for h in hashes.values())
    assert len(hashes) == 2
    # now: neither day can be compared by my3, so both are published again (once)
    again = export_incremental(config, store, Window.day(day))
    labels = sorted((mf.window.label, mf.revision) for mf in again.manifests if mf.window)
    assert labels == [(str(prev), 2), (str(day), 2)]
    republished = {mf.window.label: mf for mf in again.manifests if mf.window}
    assert all(mf.tables[qualified].content_hash.startswith("my3:")
               for mf in republished.values())
    assert [r[1] for r in read_table(store, republished[str(prev)], qualified).rows] == ["/a"]
    # and from then on it is re-checked by my3: unchanged, then a late row found
    assert export_incremental(config, store, Window.day(day)).manifests == []
    maria.execute(f"INSERT INTO hits_{old} VALUES ('{prev} 11:00:00', '/late')")
    late = export_incremental(config, store, Window.day(day))
    assert sorted((mf.window.label, mf.revision) for mf in late.manifests if mf.window) == [
        (str(prev), 3)]
