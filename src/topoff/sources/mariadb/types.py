"""MariaDB column types -> the dataset's neutral vocabulary, a PostgreSQL type, and the SQL
that makes the server write each value in the dataset's CSV text form.

That SQL (:func:`line_sql`) defines the dataset's text and the ``my1`` hash, and builds the
lines ``topoff replicate`` reads; the export builds the same text on the client from the
raw values (fields.py, byte for byte the same), which costs the server far less. The text:
integers and decimals as MariaDB prints them, timestamps as
PostgreSQL's ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (trailing zeros of the fraction dropped;
``+00`` after a TIMESTAMP, read in UTC), binary strings as ``\\x`` hex, BIT(n) as n
``0``/``1`` digits, text quoted as PostgreSQL's ``COPY ... (FORMAT csv)`` quotes it.
Zero dates and zero-in-date values (``0000-00-00``, ``2024-00-10``, year 0) cannot be a
PostgreSQL date: they are written as NULL (docs/mariadb.md, "Zero dates") and every
date-like column is declared nullable. The mapping table is in docs/mariadb.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# (bits, PostgreSQL type signed, PostgreSQL type unsigned)
_INTS = {
    "tinyint": (8, "smallint", "smallint"),
    "smallint": (16, "smallint", "integer"),
    "mediumint": (32, "integer", "integer"),
    "int": (32, "integer", "bigint"),
    "integer": (32, "integer", "bigint"),
    "bigint": (64, "bigint", "numeric(20,0)"),
}
_TEXTS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_BYTES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
             "multipolygon", "geometrycollection"}
NATIVE_MAX = 200


def quote_ident(name: str) -> str:
    """A MariaDB identifier in backticks (backticks inside doubled)."""
    return "`" + name.replace("`", "``") + "`"


def literal(value: Any) -> str:
    """A window bound written into a statement as SQL text.

    Bounds are values topoff computes (times, dates, integers; text and bytes as hex),
    never SQL from a config or a dataset. Passed as driver parameters, they would make the
    driver substitute every ``%s`` in the statement, names in backticks included (a table
    named ``p%s``). Times are compared as the session's time zone (+00:00) reads them:
    naive UTC.
    """
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"'{value.isoformat(sep=' ', timespec='microseconds')}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, str):  # as hex: nothing in it can end the literal
        return f"_utf8mb4 X'{value.encode().hex()}'"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    raise TypeError(f"not a window bound: {type(value).__name__}")


def parse_labels(column_type: str) -> list[str]:
    """The labels of ``enum('a','b''c')`` / ``set(...)`` as information_schema prints them."""
    start = column_type.index("(") + 1
    body = column_type[start:column_type.rindex(")")]
    labels: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != "'":
            i += 1
            continue
        i += 1
        buf = []
        while i < len(body):
            ch = body[i]
            if ch == "'" and i + 1 < len(body) and body[i + 1] == "'":
                buf.append("'")
                i += 2
            elif ch == "\\" and i + 1 < len(body):
                buf.append(body[i + 1])
                i += 2
            elif ch == "'":
                i += 1
                break
            else:
                buf.append(ch)
                i += 1
        labels.append("".join(buf))
    return labels


@dataclass(frozen=True)
class MariaColumn:
    """One column: its names for the dataset, and how the server writes its values."""

    name: str
    native: str  # information_schema COLUMN_TYPE, e.g. "bigint(20) unsigned"
    type: str  # the PostgreSQL type that holds every value exactly
    logical: dict[str, Any]
    nullable: bool
    enum: list[str] | None = None
    generated: bool = False
    #: how the server writes a value: "int", "year", "float", "text", "bytes", "bits", "date",
    #: "datetime", "timestamp", "time", "geometry" ("float": a FLOAT, or a DOUBLE(M,D), whose
    #: CAST prints 6 digits or D decimals, fewer than the value holds: read as a DOUBLE)
    form: str = "text"
    bits: int = 0
    fraction: int = 0
    charset: str = ""  # of a text column (information_schema CHARACTER_SET_NAME)
    collation: str = ""  # of a text column (information_schema COLLATION_NAME)

    @property
    def zero_dates(self) -> bool:
        """Whether a value may be a zero or zero-in-date value (written as NULL)."""
        return self.form in ("date", "datetime", "timestamp")

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type,
                               "nullable": self.nullable, "logical": dict(self.logical),
                               "native": self.native[:NATIVE_MAX]}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        return out


def map_column(row: dict[str, Any], json_columns: frozenset[str] = frozenset()) -> MariaColumn:
    """A MariaColumn from one information_schema.COLUMNS row (keys upper case)."""
    name = str(row["COLUMN_NAME"])
    dt = str(row["DATA_TYPE"]).lower()
    native = str(row["COLUMN_TYPE"])
    low = native.lower()
    nullable = str(row["IS_NULLABLE"]).upper() == "YES"
    generated = "GENERATED" in str(row.get("EXTRA") or "").upper()
    unsigned = "unsigned" in low
    base: dict[str, Any] = {"name": name, "native": native, "nullable": nullable,
                            "generated": generated,
                            "charset": str(row.get("CHARACTER_SET_NAME") or "").lower(),
                            "collation": str(row.get("COLLATION_NAME") or "").lower()}

    def col(pg: str, logical: dict[str, Any], form: str, **kw: Any) -> MariaColumn:
        return MariaColumn(type=pg, logical=logical, form=form, **{**base, **kw})

    if dt in _INTS:
        bits, signed_pg, unsigned_pg = _INTS[dt]
        # MEDIUMINT is 24 bits: signed or not, every value is a signed 32-bit integer
        lg_unsigned = unsigned and dt != "mediumint"
        return col(unsigned_pg if unsigned else signed_pg,
                   {"kind": "int", "bits": bits, "unsigned": lg_unsigned}, "int")
    if dt == "year":
        return col("smallint", {"kind": "int", "bits": 16, "unsigned": False}, "year")
    if dt == "decimal":
        p, s = int(row["NUMERIC_PRECISION"]), int(row["NUMERIC_SCALE"] or 0)
        return col(f"numeric({p},{s})", {"kind": "decimal", "precision": p, "scale": s}, "int")
    if dt == "float":
        return col("real", {"kind": "float", "bits": 32}, "float")
    if dt in ("double", "real"):
        # DOUBLE(M,D) rounds as it stores, to a double its D decimals do not always name
        plain = "(" not in low and "zerofill" not in low
        return col("double precision", {"kind": "float", "bits": 64},
                   "int" if plain else "float")
    if dt == "bit":
        n = int(row["NUMERIC_PRECISION"] or 1)
        return col(f"bit({n})", {"kind": "bits", "length": n, "varying": False}, "bits", bits=n)
    if dt == "date":
        return col("date", {"kind": "date"}, "date", nullable=True)
    if dt in ("datetime", "timestamp"):
        p = int(row["DATETIME_PRECISION"] or 0)
        zone = dt == "timestamp"
        pg = f"timestamp({p}) with{'' if zone else 'out'} time zone"
        return col(pg, {"kind": "timestamp", "precision": p, "zone": zone},
                   dt, nullable=True, fraction=p)
    if dt == "time":
        p = int(row["DATETIME_PRECISION"] or 0)
        return col("interval", {"kind": "interval"}, "time", fraction=p)
    if dt == "enum":
        return col("text", {"kind": "enum"}, "text", enum=parse_labels(native))
    if dt == "set":
        return col("text", {"kind": "set", "labels": parse_labels(native)}, "text")
    if dt == "json" or (dt == "longtext" and name in json_columns):
        return col("json", {"kind": "json"}, "text")
    if dt in ("char", "varchar"):
        n = int(row["CHARACTER_MAXIMUM_LENGTH"])
        if n < 1:  # CHAR(0), VARCHAR(0): '' or NULL; PostgreSQL has no varchar(0)
            return col("text", {"kind": "text"}, "text")
        return col(f"character varying({n})", {"kind": "text", "length": n}, "text")
    if dt in _TEXTS:
        return col("text", {"kind": "text"}, "text")
    if dt in _BYTES:
        return col("bytea", {"kind": "bytes"}, "bytes")
    if dt == "uuid":
        return col("uuid", {"kind": "uuid"}, "int")
    if dt in _GEOMETRY:
        return col("text", {"kind": "other"}, "geometry")
    return col("text", {"kind": "other"}, "text")


def _quoted(s: str, single: bool) -> str:
    """SQL: the CSV field of a non-NULL text ``s``, quoted when PostgreSQL would quote it
    (``\\.`` alone on a line too, when it is the only column)."""
    alone = f" OR {s} = BINARY '\\\\.'" if single else ""
    b = f"CAST({s} AS BINARY)"  # bytes: the delimiters are ASCII, never inside a UTF-8
    # character, and a byte search costs the server a quarter less than a utf8mb4 one
    return (f"IF(OCTET_LENGTH({s}) = 0 OR LOCATE(',', {b}) OR LOCATE('\"', {b}) "
            f"OR LOCATE('\\n', {b}) OR LOCATE('\\r', {b}){alone}, "
            f"CONCAT('\"', REPLACE({s}, '\"', '\"\"'), '\"'), {s})")


def zero_date_sql(c: str) -> str:
    """SQL true when the date-like value ``c`` is a zero or zero-in-date value."""
    return f"(YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0)"


def _trim_fraction(s: str) -> str:
    return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {s}))"


def value_sql(column: MariaColumn, quote: Any = None) -> str:
    """SQL that yields the column's value as the text PostgreSQL prints for its ``type``
    (utf8mb4), NULL for NULL and for zero dates; ``quote(text_sql)`` wraps text values
    (the CSV quoting)."""
    c = quote_ident(column.name)
    f = column.form
    if f == "int":  # ZEROFILL pads the text (00042): + 0 drops it, DECIMAL keeps its scale
        value = f"CAST({c} + 0 AS CHAR)" if "zerofill" in column.native.lower() else \
            f"CAST({c} AS CHAR)"
    elif f == "year":
        value = f"CAST({c} + 0 AS CHAR)"  # YEAR 0 prints as 0000
    elif f == "float":
        # MariaDB prints a FLOAT with 6 digits, a DOUBLE(M,D) with D decimals; as a DOUBLE
        # every digit is there
        value = f"CAST(CAST({c} AS DOUBLE) AS CHAR)"
    elif f == "bytes":
        value = f"CONCAT('\\\\x', LOWER(HEX({c})))"
    elif f == "bits":
        value = f"LPAD(BIN({c} + 0), {column.bits}, '0')"
    elif f == "date":
        return f"IF({c} IS NULL OR {zero_date_sql(c)}, NULL, DATE_FORMAT({c}, '%Y-%m-%d'))"
    elif f in ("datetime", "timestamp"):
        text = f"CAST({c} AS CHAR)"
        if column.fraction:
            text = _trim_fraction(text)
        if f == "timestamp":
            text = f"CONCAT({text}, '+00')"
        return f"IF({c} IS NULL OR {zero_date_sql(c)}, NULL, {text})"
    elif f == "time":
        text = f"CAST({c} AS CHAR)"
        value = _trim_fraction(text) if column.fraction else text
    else:
        if f == "geometry":
            text = f"ST_AsText({c})"
        elif column.charset == "utf8mb4":
            # the same bytes under one collation: CONCAT never meets two collations
            text = f"{c} COLLATE utf8mb4_bin"
        else:
            text = f"CONVERT({c} USING utf8mb4) COLLATE utf8mb4_bin"
        value = quote(text) if quote is not None else text
    return f"IF({c} IS NULL, NULL, {value})"


def field_sql(column: MariaColumn, single: bool = False) -> str:
    """SQL that yields the column's CSV field (utf8mb4 text, never NULL: NULL is '')."""
    return f"COALESCE({value_sql(column, lambda s: _quoted(s, single))}, '')"


def line_sql(columns: list[MariaColumn]) -> str:
    """SQL for one row's CSV line (without the newline)."""
    parts: list[str] = []
    for i, column in enumerate(columns):
        if i:
            parts.append("','")
        parts.append(field_sql(column, single=len(columns) == 1))
    return f"CONCAT({', '.join(parts)})" if len(parts) > 1 else parts[0]
