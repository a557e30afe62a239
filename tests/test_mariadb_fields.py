"""The CSV lines the client builds from raw values (fields.py) are byte for byte the lines
the server builds in SQL (types.line_sql, which the ``my1`` hash still hashes): every type,
zero dates, fractions, quoting, NULL against '', one-column tables, non-utf8mb4 charsets."""

from __future__ import annotations

from typing import Any

import pytest

from support.mariadb import MariaDatabase
from test_mariadb_types import _create
from topoff.sources.mariadb import fields, rows
from topoff.sources.mariadb.catalog import MariaTable, read_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.types import field_sql, line_sql


def _server_lines(conn: Any, table: MariaTable) -> list[bytes]:
    """Each row's line as the server builds it (a table scan: InnoDB's key order)."""
    cur = conn.cursor(raw=True)
    cur.execute(f"SELECT {line_sql(table.columns)} FROM {table.qualified}")
    out = [bytes(r[0]) for r in cur.fetchall()]
    cur.close()
    return out


def _same(conn: Any, table: MariaTable, batch: int = 2) -> list[bytes]:
    """The server's lines, once checked to be exactly the client's blocks."""
    client = b"".join(block for block, _n in rows.iter_blocks(conn, table, batch=batch))
    server = _server_lines(conn, table)
    assert client == b"".join(line + b"\n" for line in server)
    return sorted(server)


def test_every_type_matches_the_server_lines(maria: MariaDatabase) -> None:
    _create(maria)
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "every_type")
        assert len(_same(conn, table)) >= 5


EDGES = """
SET SESSION sql_mode = '';
CREATE TABLE edge (id INT PRIMARY KEY, d DATE NULL, dt0 DATETIME NULL, dt3 DATETIME(3) NULL,
  dt6 DATETIME(6) NULL, ts0 TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL, tm3 TIME(3) NULL,
  tm0 TIME NULL, v VARCHAR(40) NULL, l1 TEXT CHARACTER SET latin1 NULL,
  u3 VARCHAR(20) CHARACTER SET utf8mb3 NULL, bl BLOB NULL, bt BIT(3) NULL, yr YEAR NULL,
  f FLOAT NULL, en ENUM('', 'a,b', 'q"') NULL, js JSON NULL, g POINT NULL, dc DECIMAL(5,2) NULL,
  u UUID NULL);
INSERT INTO edge VALUES
 (1, '0000-00-00', '0000-00-00 00:00:00', '2024-00-01 00:00:00', '2024-01-00 10:00:00.5',
  '0000-00-00 00:00:00', '0000-00-00 00:00:00', '00:00:00', '00:00:00', '', '', '',
  '', b'0', 0, 0, '', '[]', NULL, 0, NULL),
 (2, '0999-12-31', '1000-01-01 00:00:00', '2024-01-01 00:00:00.100',
  '2024-01-01 00:00:00.000000', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999990',
  '-838:59:59.000', '-00:00:01', 'a\\rb', 'Gr\\xfc\\xdfe,"', '\\\\.', X'00', b'101', 1901,
  -1.5e-10, 'a,b', '{"k": "a,\\\\"b"}', ST_GeomFromText('POINT(1 2)'), -1.5,
  '123e4567-e89b-12d3-a456-426614174000'),
 (3, '2024-02-29', '2024-02-29 23:59:59', '2024-02-29 23:59:59.120',
  '2024-02-29 23:59:59.000010', '2024-02-29 23:59:59', '2024-02-29 23:59:59.100000',
  '12:00:00.5', '838:59:59', '"', NULL, 'x\\ny', X'2C22', b'111', 2155, 3.4028234e38, 'q"',
  'null', NULL, 999.99, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL),
 (5, '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00.000', '2024-01-01 00:00:00',
  '2024-01-01 00:00:00', '2024-01-01 00:00:00', '00:00:00.000', '00:00:00', ',', 'NULL',
  ' ', X'', b'0', 2024, 16777217, '', '{"a": "\\\\u0000"}', NULL, -0.01, NULL)
"""


def test_edge_values_match_the_server_lines(maria: MariaDatabase) -> None:
    maria.execute(EDGES.replace("\\xfc\\xdf", "üß"))
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "edge")
        lines = _same(conn, table)
    assert lines[0].startswith(b"1,,,,,,,00:00:00,00:00:00,\"\",\"\",\"\",\\x,000,0,0,\"\",")
    assert b"2024-01-01 00:00:00,2024-01-01 00:00:00+00,2024-01-01 00:00:00+00,00:00:00," \
        in lines[4]


@pytest.mark.parametrize(("ctype", "values"), [
    ("VARCHAR(5)", "('\\\\.'), (''), (NULL), ('x'), ('\\\\.x'), ('.')"),
    ("BLOB", "(X''), (NULL), (X'5c2e')"),
    ("DATETIME(6)", "('2024-01-01 00:00:00'), (NULL), ('0000-00-00 00:00:00')"),
    ("INT", "(1), (NULL)"),
    ("JSON", "('\"\\\\\\\\.\"'), ('[]')"),
])
def test_one_column_tables_match_the_server_lines(maria: MariaDatabase, ctype: str,
                                                  values: str) -> None:
    maria.execute(f"SET SESSION sql_mode = ''; CREATE TABLE one (v {ctype} NULL); "
                  f"INSERT INTO one VALUES {values}")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "one")
        lines = _same(conn, table)
    if ctype.startswith("VARCHAR"):
        assert b'"\\."' in lines and b'""' in lines and b"\\.x" in lines


def test_numbers_and_times_read_raw_match_the_server_lines(maria: MariaDatabase) -> None:
    """Integers, DECIMAL, dates and times are read as the server sends them and written by
    the client: whole batches without a NULL or a zero date at once, others value by
    value; each the server's field."""
    maria.execute(
        "SET SESSION sql_mode = ''; CREATE TABLE nt (id BIGINT UNSIGNED PRIMARY KEY, "
        "t TINYINT NULL, m MEDIUMINT UNSIGNED NULL, z INT(6) ZEROFILL NULL, "
        "dc DECIMAL(65,30) NULL, d DATE NULL, dt DATETIME NULL, dt6 DATETIME(6) NULL, "
        "ts3 TIMESTAMP(3) NULL, tm6 TIME(6) NULL, tm TIME NULL, dbl DOUBLE NULL);"
        "INSERT INTO nt SELECT IF(seq = 7, 18446744073709551615, seq), "
        "CAST(seq % 256 AS SIGNED) - 128, "
        "seq * 999, seq, CAST(seq AS SIGNED) / 7 - 100, '0999-01-01' + INTERVAL seq DAY, "
        "'2024-01-01' + INTERVAL seq * 7 MINUTE, "
        "'2024-01-01' + INTERVAL seq * 100001 MICROSECOND, "
        "'1970-01-02' + INTERVAL seq * 250000 MICROSECOND, "
        "SEC_TO_TIME(CAST(seq AS SIGNED) * 1.033333 - 1000), "
        "SEC_TO_TIME(CAST(seq AS SIGNED) - 5), seq / 3 "
        "FROM seq_1_to_2500;"
        "INSERT INTO nt VALUES (0, NULL, NULL, NULL, NULL, '2024-00-01', '0000-00-00', "
        "'2024-01-00 00:00:00.5', '0000-00-00', '00:00:00', '00:00:00', NULL),"
        "(3000, -128, 16777215, 999999, -0.000000000000000000000000000001, '9999-12-31', "
        "'9999-12-31 23:59:59', '1000-01-01 00:00:00.000000', '2038-01-19 03:14:07.999', "
        "'838:59:59.999999', '-838:59:59', -1.5e-300);"
        "ALTER TABLE nt ADD k INT NOT NULL DEFAULT -7, ADD k2 DECIMAL(10,3) NOT NULL "
        "DEFAULT 1.5; UPDATE nt SET k = CAST(id % 1000 AS SIGNED) - 500 WHERE id < 3000")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "nt")
        for batch in (2, 1000):
            assert len(_same(conn, table, batch)) == 2502


def test_a_long_text_with_every_special_byte(maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE big (id INT PRIMARY KEY, t LONGTEXT NULL, c CHAR(3) NULL);"
                  "INSERT INTO big SELECT seq, CASE seq % 5 WHEN 0 THEN REPEAT('a\"b,', seq)"
                  " WHEN 1 THEN REPEAT('x', seq * 100) WHEN 2 THEN CONCAT(REPEAT('y', seq), "
                  "CHAR(13)) WHEN 3 THEN CONCAT(CHAR(10), seq) ELSE NULL END,"
                  " IF(seq % 2, '', 'é😀') FROM seq_1_to_300")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "big")
        assert len(_same(conn, table)) == 300


def test_formatter_turns_a_batch_into_lines() -> None:
    from topoff.sources.mariadb.types import MariaColumn
    text = MariaColumn("t", "text", "text", {"kind": "text"}, True)
    stamp = MariaColumn("s", "timestamp(6)", "timestamp(6) with time zone",
                        {"kind": "timestamp"}, True, form="timestamp", fraction=6)
    number = MariaColumn("n", "int", "integer", {"kind": "int"}, True, form="int")
    bits = MariaColumn("b", "bit(2)", "bit(2)", {"kind": "bits"}, True, form="bits", bits=2)
    items = fields.export_items([text, stamp, number, bits, bits, text])
    assert [kind for _sql, kind in items] == ["text", "moment", "plain", "fields", "text"]
    assert [sql for sql, _kind in items[:3]] == ["`t`", "`s`", "`n`"]
    assert items[3][0].startswith("CONCAT(COALESCE(IF(`b` IS NULL")
    key = MariaColumn("k", "bigint(20)", "bigint", {"kind": "int"}, False, form="int")
    # NOT NULL integers are sent as their text, never NULL: joined by the server as they are
    assert fields.export_items([key, bits, key, text]) == [
        (f"CONCAT(`k`, ',', {field_sql(bits)}, ',', `k`)", "fields"), ("`t`", "text")]
    lines = fields.batch_formatter([text, stamp, number, text])
    # a batch whose text needs no quoting anywhere is taken as it is, NULL as empty
    assert lines([(b"a", b"2024-01-02 03:04:05.100000", b"1", None),
                  (None, b"2024-01-02 03:04:05.000000", None, b"b")]) == [
        b"a,2024-01-02 03:04:05.1+00,1,", b",2024-01-02 03:04:05+00,,b"]
    # one value to quote, or one empty string: value by value; a zero date is empty
    assert lines([(b'a"b', b"0000-00-00 00:00:00.000000", b"-1", b"c"),
                  (b"d", b"2024-00-10 00:00:00.000010", b"2", b"e")]) == [
        b'"a""b",,-1,c', b"d,,2,e"]
    assert lines([(bytearray(b""), None, b"0", None),
                  (b"d", b"0999-12-31 23:59:59.999999", b"0", b"e\r")]) == [
        b'"",,0,', b'd,0999-12-31 23:59:59.999999+00,0,"e\r"']
    assert lines([]) == []
    one = fields.batch_formatter([text])
    assert one([(b"\\.",), (b"",), (None,), (b"\\.\\.",)]) == [b'"\\."', b'""', b"", b"\\.\\."]
    assert one([(b"\\.",), (b"x",)]) == [b'"\\."', b"x"]


def test_line_stream_gives_the_same_bytes_in_any_piece_size(maria: MariaDatabase) -> None:
    """The export's RowStream: whole batches when they fit, row by row when they do not,
    or one row at a time; every way gives the same bytes, header first."""
    from topoff.config import TableConfig
    from topoff.sources.mariadb.reader import LineStream, MariaSourceTable, header_line

    maria.execute("CREATE TABLE s (id INT PRIMARY KEY, t VARCHAR(40) NULL);"
                  "INSERT INTO s SELECT seq, IF(seq % 3, REPEAT('a,', seq % 17), NULL)"
                  " FROM seq_1_to_4500")
    with connect(maria.replica_url) as conn:
        mt = read_table(conn, maria.name, "s")
        t = MariaSourceTable(config=TableConfig(schema=maria.name, name="s"), columns=[],
                             source_columns=["id", "t"], primary_key=["id"], cursor_type=None,
                             maria=mt)
        sql = f"SELECT {fields.select_list(mt.columns)} FROM {mt.qualified}"
        want = header_line(t) + b"".join(block for block, _n in rows.iter_blocks(conn, mt))
        for step in (7, 1000, 1 << 20):
            stream, buf, n = LineStream(conn, t, sql, []), bytearray(), 0
            while not stream.done:
                n += stream.read_into(buf, len(buf) + step)
            assert bytes(buf) == want and n == 4500, step
        stream, pieces = LineStream(conn, t, sql, []), []
        while (row := stream.read_row()) is not None:
            pieces.append(row)
        assert b"".join(pieces) == want and len(pieces) == 4501
