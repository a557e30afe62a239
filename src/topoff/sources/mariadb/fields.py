"""A row's CSV line built by the client from the values' text-protocol bytes.

The export's rows are read in the driver's raw mode: every value arrives as the bytes the
server's text protocol sends (None for NULL), with no per-value conversion. For most
columns those bytes already are the dataset's text (integers, DECIMAL, DOUBLE, UUID) or
become it with one cheap step done here: a zero date becomes NULL, the trailing zeros of a
DATETIME(6) / TIME(6) fraction go, ``+00`` follows a TIMESTAMP (the session reads them in
UTC), bytes become ``\\x`` hex, text is quoted as PostgreSQL's ``COPY ... (FORMAT csv)``
quotes it. The few forms whose bytes are not the dataset's text (FLOAT, YEAR, BIT,
geometry) are selected as an expression that makes the server print the final text
(:func:`topoff.sources.mariadb.types.value_sql`'s, without the CSV quoting).

:func:`batch_formatter` builds, once per table, one small function per column; a batch of
rows is turned into columns, each column into CSV fields by its function (one list
comprehension), and each row's fields are joined by commas. The text is byte for byte the one
:func:`topoff.sources.mariadb.types.line_sql` makes the server build (the ``my1`` hash is
still computed from that SQL): the server then only reads and sends values, which costs it
a fraction of the CPU that formatting them in SQL did (docs/mariadb.md, "Measured").
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence

from topoff.sources.mariadb.types import MariaColumn, quote_ident

Value = bytes | bytearray | None
Row = Sequence[Value]

#: the forms whose text-protocol bytes are the dataset's text as they are
_DIRECT = frozenset({"int"})
#: the forms the server still prints (an expression in the select list, then direct)
_SERVER = frozenset({"year", "float32", "bits"})
_COMMA, _QUOTE, _LF, _CR = 44, 34, 10, 13  # ints: ``44 in v`` is one memchr


def select_item(column: MariaColumn) -> str:
    """The select-list item whose text-protocol bytes :func:`converter` formats."""
    c = quote_ident(column.name)
    f = column.form
    if f == "year":
        return f"{c} + 0"  # YEAR 0 is sent as 0000, written as 0
    if f == "float32":
        return f"CAST({c} AS DOUBLE)"  # a FLOAT is sent with 6 digits; a DOUBLE with all
    if f == "bits":
        return f"LPAD(BIN({c} + 0), {column.bits}, '0')"  # BIT is sent as raw bytes
    if f == "geometry":
        return f"ST_AsText({c})"
    return c


def select_list(columns: Sequence[MariaColumn]) -> str:
    """The select list of a row, one item per column (:func:`batch_formatter`'s input)."""
    return ", ".join(select_item(c) for c in columns)


Column = Sequence[Value]
Fields = list[bytes | bytearray]


# Each converter turns one column of a batch of rows into its CSV fields, in one list
# comprehension: no Python call per value (a batch costs about half of one call per value).

def _direct(col: Column) -> Fields:
    return [b"" if v is None else v for v in col]


def _text(col: Column) -> Fields:
    return [b"" if v is None else b'"' + v.replace(b'"', b'""') + b'"'
            if not v or _COMMA in v or _QUOTE in v or _LF in v or _CR in v else v
            for v in col]


def _text_alone(col: Column) -> Fields:
    """A text field of a one-column table: ``\\.`` alone on a line is quoted too."""
    return [b'"\\."' if v == b"\\." else f for v, f in zip(col, _text(col), strict=True)]


def _bytes(col: Column) -> Fields:
    return [b"" if v is None else b"\\x" + binascii.hexlify(v) for v in col]


# A zero or zero-in-date value (``0000-00-00``, ``2024-00-10``, year 0) is NULL: the year
# is ``0000``, or a ``-00`` starts at the month (4) or the day (7).

def _date(col: Column) -> Fields:
    return [b"" if v is None or v.startswith(b"0000") or v.find(b"-00", 4, 10) >= 0 else v
            for v in col]


def _datetime_fraction(col: Column) -> Fields:
    """The fraction's trailing zeros dropped, and its dot when nothing is left."""
    return [b"" if v is None or v.startswith(b"0000") or v.find(b"-00", 4, 10) >= 0
            else v.rstrip(b"0").rstrip(b".") for v in col]


def _timestamp(col: Column) -> Fields:
    return [b"" if v is None or v.startswith(b"0000") or v.find(b"-00", 4, 10) >= 0
            else v + b"+00" for v in col]


def _timestamp_fraction(col: Column) -> Fields:
    return [b"" if v is None or v.startswith(b"0000") or v.find(b"-00", 4, 10) >= 0
            else v.rstrip(b"0").rstrip(b".") + b"+00" for v in col]


def _time_fraction(col: Column) -> Fields:
    return [b"" if v is None else v.rstrip(b"0").rstrip(b".") for v in col]


def converter(column: MariaColumn, single: bool = False) -> Callable[[Column], Fields]:
    """The function that turns a batch's values of the column (its select item's bytes)
    into CSV fields (``single``: the table's only column)."""
    f = column.form
    if f in _DIRECT or f in _SERVER:
        return _direct
    if f == "bytes":
        return _bytes
    if f == "date":
        return _date
    if f == "datetime":
        return _datetime_fraction if column.fraction else _date
    if f == "timestamp":
        return _timestamp_fraction if column.fraction else _timestamp
    if f == "time":
        return _time_fraction if column.fraction else _direct
    return _text_alone if single else _text  # text, JSON, ENUM, SET, geometry


def batch_formatter(columns: Sequence[MariaColumn]) -> Callable[[Sequence[Row]], list[bytes]]:
    """A function from a batch of raw rows (the values of :func:`select_list`) to their
    CSV lines, without newlines."""
    convert = [converter(c, single=len(columns) == 1) for c in columns]
    join = b",".join

    def lines(rows: Sequence[Row]) -> list[bytes]:
        if not rows:
            return []
        by_column = zip(*rows, strict=True)
        fields = [f(col) for f, col in zip(convert, by_column, strict=True)]
        return list(map(join, zip(*fields, strict=True)))
    return lines
