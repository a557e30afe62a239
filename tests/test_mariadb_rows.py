"""The MariaDB source's row streams: windows at full precision, zero dates, hostile names,
sparse keys, and the server-side count + hash of a window."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import datetime

import pytest

from support.mariadb import MariaDatabase
from support.pg import Database
from topoff.sources.mariadb import rows
from topoff.sources.mariadb.catalog import list_tables, read_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.rows import Window


def _csv(conn, table, window=None) -> list[list[str]]:
    out = io.BytesIO()
    n = rows.write_csv(conn, table, out, window)
    parsed = list(csv.reader(io.StringIO(out.getvalue().decode())))
    assert len(parsed) == n
    return parsed


def test_datetime6_rows_one_microsecond_apart_land_in_exactly_one_window(
        maria: MariaDatabase) -> None:
    maria.execute(
        "CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, KEY (at));"
        "INSERT INTO ev VALUES (1, '2024-03-01 23:59:59.999998'), "
        "(2, '2024-03-01 23:59:59.999999'), (3, '2024-03-02 00:00:00.000000'), "
        "(4, '2024-03-02 00:00:00.000001'), (5, '2024-03-02 23:59:59.999999')")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "ev")
        edge = "2024-03-02 00:00:00"
        day1 = _csv(conn, table, Window("at", "2024-03-01 00:00:00", edge))
        day2 = _csv(conn, table, Window("at", edge, "2024-03-03 00:00:00"))
        assert [r[0] for r in day1] == ["1", "2"]
        assert [r[0] for r in day2] == ["3", "4", "5"]
        assert day2[0][1] == "2024-03-02 00:00:00" and day2[1][1] == "2024-03-02 00:00:00.000001"
        # a bound with microseconds is compared with microseconds, not seconds
        inner = _csv(conn, table, Window("at", "2024-03-01 23:59:59.999999",
                                         "2024-03-02 00:00:00.000001"))
        assert [r[0] for r in inner] == ["2", "3"]
        # Python datetimes as bounds keep their microseconds too
        lo, hi = datetime(2024, 3, 1, 23, 59, 59, 999999), datetime(2024, 3, 2, 0, 0, 0, 1)
        assert [r[0] for r in _csv(conn, table, Window("at", lo, hi))] == ["2", "3"]
        # the windows' hashes add up to the whole table's, whatever the order
        c1, h1 = rows.window_hash(conn, table, Window("at", None, edge))
        c2, h2 = rows.window_hash(conn, table, Window("at", edge, None))
        call, hall = rows.window_hash(conn, table)
        assert (c1, c2, call) == (2, 3, 5) and int(h1) + int(h2) == int(hall)


def test_window_hash_sees_every_change(maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE h (id INT PRIMARY KEY, v VARCHAR(10) NULL, n INT NULL);"
                  "INSERT INTO h VALUES (1, 'a', NULL), (2, NULL, 2), (3, '', 3)")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "h")
        before = rows.window_hash(conn, table)
    seen = {before}
    for change in ("UPDATE h SET v = '' WHERE id = 2",      # NULL -> empty string
                   "UPDATE h SET n = 0 WHERE id = 1",       # NULL -> 0
                   "UPDATE h SET v = 'a ' WHERE id = 1",    # a trailing space
                   "UPDATE h SET v = 'A ' WHERE id = 1"):   # case
        maria.execute(change)
        with connect(maria.replica_url) as conn:
            now = rows.window_hash(conn, table)
        assert now[0] == 3 and now not in seen, change
        seen.add(now)


def test_zero_dates_never_abort_and_are_counted(maria: MariaDatabase, db: Database) -> None:
    maria.execute(
        "SET SESSION sql_mode = '';"
        "CREATE TABLE z (id INT PRIMARY KEY, d DATE NOT NULL, dt DATETIME(6) NOT NULL,"
        " ts TIMESTAMP NULL);"
        "INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00'),"
        " (2, '2024-00-10', '2024-05-00 10:00:00.5', NULL),"
        " (3, '0000-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00'),"
        " (4, '2024-01-31', '2024-01-31 10:00:00.25', '2024-01-31 10:00:00')")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "z")
        got = _csv(conn, table)
        counts = rows.zero_date_counts(conn, table)
    assert got == [["1", "", "", ""], ["2", "", "", ""],
                   ["3", "", "2024-01-01 00:00:00", "2024-01-01 00:00:00+00"],
                   ["4", "2024-01-31", "2024-01-31 10:00:00.25", "2024-01-31 10:00:00+00"]]
    assert counts == {"d": 3, "dt": 2, "ts": 1}
    assert all(c.nullable for c in table.columns if c.name != "id")
    # and the text loads into PostgreSQL columns of the mapped types
    with db.primary() as pg:
        pg.execute("CREATE TABLE z (" + ", ".join(
            f'"{c.name}" {c.type}' for c in table.columns) + ")")
        with pg.cursor().copy("COPY z FROM STDIN (FORMAT csv)") as copy, \
                connect(maria.replica_url) as conn:
            for block, _n in rows.iter_blocks(conn, table):
                copy.write(block)
        assert pg.execute("SELECT count(*), count(d) FROM z").fetchone() == (4, 1)


HOSTILE_TABLE = "we`ird \"tab'le\" ü€"
HOSTILE_COLS = ["c`1", "c\"2", "c'3", "ẞ €", "select", "a,b"]


def test_hostile_identifiers(maria: MariaDatabase) -> None:
    def q(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"
    cols = ", ".join(f"{q(c)} VARCHAR(20)" for c in HOSTILE_COLS)
    maria.execute(f"CREATE TABLE {q(HOSTILE_TABLE)} (id INT PRIMARY KEY, {cols});"
                  f"INSERT INTO {q(HOSTILE_TABLE)} VALUES (1, 'a', 'b', 'c', 'd', 'e', 'f'),"
                  " (2, '`', '\"', '''', ',', '\\\\.', NULL)")
    with connect(maria.replica_url) as conn:
        assert (HOSTILE_TABLE, 2) in [(n, 2) for n, _r in list_tables(conn, maria.name)]
        table = read_table(conn, maria.name, HOSTILE_TABLE)
        assert [c.name for c in table.columns] == ["id", *HOSTILE_COLS]
        got = _csv(conn, table, Window("ẞ €", "", None))
        assert got == [["1", "a", "b", "c", "d", "e", "f"], ["2", "`", '"', "'", ",", "\\.", ""]]
        assert rows.window_hash(conn, table, Window("c`1", "a", None))[0] == 1
        with pytest.raises(KeyError):
            rows.select_sql(table, Window("nope`; DROP TABLE x; --", 1, 2))


def test_single_text_column_quotes_a_lone_backslash_dot(maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE one (v VARCHAR(5) NULL); "
                  "INSERT INTO one VALUES ('\\\\.'), (''), (NULL), ('x')")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "one")
        out = io.BytesIO()
        rows.write_csv(conn, table, out)
    assert sorted(out.getvalue().split(b"\n")) == sorted([b'"\\."', b'""', b"", b"x", b""])


def test_sparse_bigint_keys_in_windows(maria: MariaDatabase) -> None:
    keys = [0, 1, 2**31, 2**40 + 7, 2**62, 2**63 - 1]
    maria.execute("CREATE TABLE sp (id BIGINT UNSIGNED PRIMARY KEY, v INT);"
                  "INSERT INTO sp VALUES " + ", ".join(f"({k}, {i})" for i, k in enumerate(keys))
                  + f", ({2**64 - 1}, 99)")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "sp")
        bounds = [0, 2**31, 2**62, 2**64 - 1, None]
        seen: list[int] = []
        for lo, hi in itertools.pairwise(bounds):
            seen += [int(r[0]) for r in _csv(conn, table, Window("id", lo, hi))]
    assert seen == [*keys, 2**64 - 1]


def test_percent_signs_in_names_are_not_parameters(maria: MariaDatabase) -> None:
    """The driver fills ``%s`` parameters into the statement's text: a name holding ``%s``
    or ``%%`` must stay a name, with the window's bounds still bound as values."""
    maria.execute("CREATE TABLE `p%s` (`k%d` INT PRIMARY KEY, `v%s` VARCHAR(9), `w%%` INT);"
                  "INSERT INTO `p%s` VALUES (1, 'a', 1), (2, '%s', 2), (3, 'c', 3)")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "p%s")
        assert _csv(conn, table, Window("k%d", 2, 4)) == [["2", "%s", "2"], ["3", "c", "3"]]
        assert rows.window_hash(conn, table, Window("k%d", 1, 2))[0] == 1
