"""Every MariaDB type the source maps: its CSV text loads exactly into PostgreSQL.

Each case is a MariaDB column type, values written as SQL on the MariaDB primary, and
the text PostgreSQL prints for each value once the replica's CSV is loaded with COPY into
a column of the mapped type (None: NULL). The CSV is also compared byte for byte with
what PostgreSQL's own ``COPY ... TO (FORMAT csv)`` writes for the loaded table.
"""

from __future__ import annotations

import io
from dataclasses import replace

from psycopg import sql

from support.mariadb import MariaDatabase
from support.pg import Database
from topoff.sources.mariadb import rows
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect

N = None
# name, MariaDB type, [(SQL value, PostgreSQL text)]
CASES: list[tuple[str, str, list[tuple[str, str | None]]]] = [
    ("i8", "TINYINT", [("-128", "-128"), ("127", "127"), ("NULL", N)]),
    ("u8", "TINYINT UNSIGNED", [("255", "255"), ("0", "0")]),
    ("b1", "TINYINT(1)", [("1", "1"), ("0", "0"), ("-5", "-5")]),
    ("u16", "SMALLINT UNSIGNED", [("65535", "65535")]),
    ("i24", "MEDIUMINT", [("-8388608", "-8388608")]),
    ("u24", "MEDIUMINT UNSIGNED", [("16777215", "16777215")]),
    ("u32", "INT UNSIGNED", [("4294967295", "4294967295"), ("0", "0")]),
    ("i64", "BIGINT", [("-9223372036854775808", "-9223372036854775808"),
                       ("9223372036854775807", "9223372036854775807")]),
    ("u64", "BIGINT UNSIGNED", [("18446744073709551615", "18446744073709551615"),
                                ("9223372036854775808", "9223372036854775808")]),
    ("zf", "INT(6) ZEROFILL", [("42", "42"), ("0", "0"), ("4294967295", "4294967295")]),
    ("zu", "BIGINT ZEROFILL", [("18446744073709551615", "18446744073709551615")]),
    ("zdec", "DECIMAL(8,2) ZEROFILL", [("3.5", "3.50"), ("0", "0.00")]),
    ("dec", "DECIMAL(65,30)", [
        ("12345678901234567890123456789012345.123456789012345678901234567890",
         "12345678901234567890123456789012345.123456789012345678901234567890"),
        ("-0.000000000000000000000000000001", "-0.000000000000000000000000000001"),
        ("0", "0.000000000000000000000000000000")]),
    ("flt", "FLOAT", [("3.4028234e38", "3.4028235e+38"), ("1.1754944e-38", "1.1754944e-38"),
                      ("0.1", "0.1"), ("-1.5", "-1.5"), ("16777217", "1.6777216e+07")]),
    ("dbl", "DOUBLE", [("0.1", "0.1"), ("1.7976931348623157e308", "1.7976931348623157e+308"),
                       ("4.9406564584124654e-324", "5e-324"), ("1e15", "1e+15"),
                       ("0.30000000000000004", "0.30000000000000004"),
                       ("123456789.125", "123456789.125")]),
    # DOUBLE(M,D) rounds as it stores, not always to the double nearest the decimal: its
    # CAST prints D decimals (-0.01), which read back as another double
    ("dmd", "DOUBLE(10,2)", [("-0.01", "-0.010000000000000009"), ("0.1", "0.1"),
                             ("12345678.91", "12345678.91")]),
    ("dzf", "DOUBLE(10,2) ZEROFILL", [("0.29", "0.29"), ("1.14", "1.1400000000000001")]),
    ("bits", "BIT(10)", [("b'1010101010'", "1010101010"), ("b'0'", "0000000000"),
                         ("b'1111111111'", "1111111111")]),
    ("b64", "BIT(64)", [("b'1" + "0" * 63 + "'", "1" + "0" * 63)]),
    ("dt6", "DATETIME(6)", [("'2024-01-01 00:00:00.000001'", "2024-01-01 00:00:00.000001"),
                            ("'9999-12-31 23:59:59.999999'", "9999-12-31 23:59:59.999999"),
                            ("'1000-01-01 00:00:00'", "1000-01-01 00:00:00"),
                            ("'2024-02-29 12:30:00.5'", "2024-02-29 12:30:00.5")]),
    ("dt0", "DATETIME", [("'2024-05-06 07:08:09'", "2024-05-06 07:08:09")]),
    ("dt3", "DATETIME(3)", [("'2024-05-06 07:08:09.120'", "2024-05-06 07:08:09.12")]),
    ("ts6", "TIMESTAMP(6) NULL", [
        ("'2038-01-19 03:14:07.999999'", "2038-01-19 03:14:07.999999+00"),
        ("'1970-01-01 00:00:01'", "1970-01-01 00:00:01+00"), ("NULL", N)]),
    ("d", "DATE", [("'2024-02-29'", "2024-02-29"), ("'1000-01-01'", "1000-01-01"),
                   ("'0999-12-31'", "0999-12-31")]),
    ("tm", "TIME(6)", [("'-838:59:59.999999'", "-838:59:59.999999"),
                       ("'838:59:59'", "838:59:59"), ("'12:00:00.5'", "12:00:00.5"),
                       ("'-00:00:01'", "-00:00:01"), ("'00:00:00'", "00:00:00")]),
    ("tm0", "TIME", [("'25:00:00'", "25:00:00")]),
    ("yr", "YEAR", [("2024", "2024"), ("1901", "1901"), ("0", "0")]),
    ("en", "ENUM('a','b c','it''s','x,y')", [("'a'", "a"), ("'it''s'", "it's"),
                                             ("'x,y'", "x,y"), ("'b c'", "b c")]),
    ("st", "SET('x','y','z')", [("'x,z'", "x,z"), ("''", ""), ("'y'", "y")]),
    ("js", "JSON", [("'{\"a\": [1, 2.5, \"é😀\"], \"b\": null}'",
                     "{\"a\": [1, 2.5, \"é😀\"], \"b\": null}"), ("'[]'", "[]")]),
    ("bl", "BLOB", [("X'00ff10'", "\\x00ff10"), ("''", "\\x")]),
    ("bn", "BINARY(4)", [("X'01'", "\\x01000000")]),
    ("vb", "VARBINARY(10)", [("X'2c22'", "\\x2c22")]),
    ("vc", "VARCHAR(20)", [("'a,b'", "a,b"), ("'say \"hi\"'", "say \"hi\""),
                           ("'line\\nbreak\\r'", "line\nbreak\r"), ("''", ""),
                           ("'😀 4-byte'", "😀 4-byte"), ("'\\\\.'", "\\."), ("' '", " "),
                           ("'trail  '", "trail  ")]),
    ("ch", "CHAR(5)", [("'ab'", "ab"), ("''", "")]),
    ("c0", "CHAR(0)", [("''", ""), ("NULL", N)]),
    ("v0", "VARCHAR(0)", [("NULL", N), ("''", "")]),
    ("tx", "LONGTEXT", [("REPEAT('xyz,', 3000)", "xyz," * 3000), ("'NULL'", "NULL"),
                        ("'\\\\N'", "\\N")]),
    ("l1", "VARCHAR(10) CHARACTER SET latin1", [("'Grüße'", "Grüße")]),
    ("u3", "VARCHAR(10) CHARACTER SET utf8mb3", [("'Grüße,'", "Grüße,")]),
    ("uc", "VARCHAR(10) COLLATE utf8mb4_unicode_ci", [("'É\"'", "É\"")]),
]


def _rows_count() -> int:
    return max(len(values) for _n, _t, values in CASES)


def _create(maria: MariaDatabase) -> None:
    cols = ", ".join(f"`{n}` {t}" + ("" if "NULL" in t else " NULL") for n, t, _v in CASES)
    stmts = [f"CREATE TABLE every_type (id INT PRIMARY KEY, {cols}, "
             "gen BIGINT AS (u32 + 1) VIRTUAL, gst VARCHAR(30) AS (CONCAT(vc, '!')) STORED)"]
    for i in range(_rows_count()):
        values = [values[i][0] if i < len(values) else "NULL" for _n, _t, values in CASES]
        names = ", ".join(f"`{n}`" for n, _t, _v in CASES)
        stmts.append(f"INSERT INTO every_type (id, {names}) VALUES ({i}, {', '.join(values)})")
    maria.execute(";\n".join(stmts))


def _load_into_pg(db: Database, table, data: bytes) -> None:
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in table.columns)
    with db.primary() as conn:
        conn.execute(sql.SQL("CREATE TABLE every_type ({})").format(cols))
        with conn.cursor().copy("COPY every_type FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)


def test_every_type_loads_exactly_into_postgresql(maria: MariaDatabase, db: Database) -> None:
    _create(maria)
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "every_type")
        out = io.BytesIO()
        assert rows.write_csv(conn, table, out) == _rows_count()
    data = out.getvalue()
    _load_into_pg(db, table, data)
    with db.primary() as conn:
        for name, mtype, values in CASES:
            got = conn.execute(sql.SQL("SELECT {}::text FROM every_type ORDER BY id").format(
                sql.Identifier(name))).fetchall()
            want = [v[1] for v in values] + [None] * (_rows_count() - len(values))
            assert [g[0] for g in got] == want, (name, mtype)
        gen = conn.execute("SELECT gen::text, gst FROM every_type WHERE id = 0").fetchone()
        assert gen == ("4294967296", "a,b!")
        # Byte for byte what PostgreSQL's COPY writes (quoting, NULL and "" included), but
        # floats: MariaDB cannot print a float's shortest text, so it prints every digit
        # of the exact value (the same value once read, checked above).
        exact = [c for c in table.columns if c.logical["kind"] != "float"]
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in exact)
        pg_csv = io.BytesIO()
        with conn.cursor().copy(sql.SQL(
                "COPY (SELECT {} FROM every_type ORDER BY id) TO STDOUT (FORMAT csv)").format(
                    names)) as copy:
            for chunk in copy:
                pg_csv.write(chunk)
    with connect(maria.replica_url) as conn:
        out = io.BytesIO()
        rows.write_csv(conn, replace(table, columns=exact), out)
    # InnoDB reads in primary key order: the two texts compare as they are
    assert out.getvalue() == pg_csv.getvalue()


def test_mapping_names_the_types(maria: MariaDatabase) -> None:
    _create(maria)
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "every_type")
    by = {c.name: c for c in table.columns}
    assert by["u64"].type == "numeric(20,0)"
    assert by["u64"].logical == {"kind": "int", "bits": 64, "unsigned": True}
    assert by["u64"].native == "bigint(20) unsigned"
    assert by["b1"].native == "tinyint(1)" and by["b1"].type == "smallint"
    assert by["dt6"].type == "timestamp(6) without time zone"
    assert by["ts6"].logical == {"kind": "timestamp", "precision": 6, "zone": True}
    assert by["js"].type == "json" and by["js"].logical == {"kind": "json"}
    assert by["en"].enum == ["a", "b c", "it's", "x,y"]
    assert by["st"].logical == {"kind": "set", "labels": ["x", "y", "z"]}
    assert by["bits"].logical == {"kind": "bits", "length": 10, "varying": False}
    assert by["dec"].logical == {"kind": "decimal", "precision": 65, "scale": 30}
    assert by["tm"].type == "interval" and by["vc"].type == "character varying(20)"
    assert by["gen"].generated and by["gst"].generated and not by["vc"].generated
    assert by["d"].nullable  # zero dates become NULL
    assert table.primary_key == ["id"]
    manifest = by["u64"].manifest()
    assert manifest["native"] == "bigint(20) unsigned" and manifest["type"] == "numeric(20,0)"

