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

:func:`row_formatter` builds, once per table, one small function per column; a row's line
is those functions' results joined by commas. The text is byte for byte the one
:func:`topoff.sources.mariadb.types.line_sql` makes the server build (the ``my1`` hash is
still computed from that SQL): the server then only reads and sends values, which costs it
a fraction of the CPU that formatting them in SQL did (docs/mariadb.md, "Cost").
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence

from topoff.sources.mariadb.types import MariaColumn, quote_ident

Value = bytes | bytearray | None
Field = Callable[[Value], bytes | bytearray]
Row = Sequence[Value]

#: the forms whose text-protocol bytes are the dataset's text as they are
_DIRECT = frozenset({"int"})
#: the forms the server still prints (an expression in the select list, then direct)
_SERVER = frozenset({"year", "float32", "bits"})
_COMMA, _QUOTE, _LF, _CR = 44, 34, 10, 13  # ints: ``44 in v`` is one memchr


def select_item(column: MariaColumn) -> str:
    """The select-list item whose text-protocol bytes :func:`field` formats."""
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
    """The select list of a row, one item per column (:func:`row_formatter`'s input)."""
    return ", ".join(select_item(c) for c in columns)


def _direct(v: Value) -> bytes | bytearray:
    return b"" if v is None else v


def _text(v: Value) -> bytes | bytearray:
    if v is None:
        return b""
    if not v or _COMMA in v or _QUOTE in v or _LF in v or _CR in v:
        return b'"' + v.replace(b'"', b'""') + b'"'
    return v


def _text_alone(v: Value) -> bytes | bytearray:
    """A text field of a one-column table: ``\\.`` alone on a line is quoted too."""
    if v == b"\\.":
        return b'"\\."'
    return _text(v)


def _bytes(v: Value) -> bytes | bytearray:
    return b"" if v is None else b"\\x" + binascii.hexlify(v)


def _zero_date(v: bytes | bytearray) -> bool:
    """A zero or zero-in-date value (``0000-00-00``, ``2024-00-10``, year 0): NULL."""
    return v[:4] == b"0000" or v[5:7] == b"00" or v[8:10] == b"00"


def _date(v: Value) -> bytes | bytearray:
    return b"" if v is None or _zero_date(v) else v


def _trim(v: bytes | bytearray) -> bytes | bytearray:
    """The trailing zeros of a fraction dropped, and its dot when nothing is left."""
    return v.rstrip(b"0").rstrip(b".")


def _datetime_fraction(v: Value) -> bytes | bytearray:
    return b"" if v is None or _zero_date(v) else _trim(v)


def _timestamp(v: Value) -> bytes | bytearray:
    return b"" if v is None or _zero_date(v) else v + b"+00"


def _timestamp_fraction(v: Value) -> bytes | bytearray:
    return b"" if v is None or _zero_date(v) else _trim(v) + b"+00"


def _time_fraction(v: Value) -> bytes | bytearray:
    return b"" if v is None else _trim(v)


def field(column: MariaColumn, single: bool = False) -> Field:
    """The function that turns the column's select-item bytes into its CSV field
    (``single``: the table's only column)."""
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


def row_formatter(columns: Sequence[MariaColumn]) -> Callable[[Row], bytes]:
    """A function from a raw row (the values of :func:`select_list`) to its CSV line,
    without the newline."""
    fields = [field(c, single=len(columns) == 1) for c in columns]
    if len(fields) == 1:
        [only] = fields

        def one(row: Row) -> bytes:
            return bytes(only(row[0]))
        return one
    join = b",".join

    def line(row: Row) -> bytes:
        return join([f(v) for f, v in zip(fields, row, strict=True)])
    return line
