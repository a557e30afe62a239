"""A row's CSV line, built by the client from the values the server sends, and by the
server only where that is cheap and the client's text would differ.

Profiled on the benchmark's replica, the server's cost of building CSV lines in SQL
(:func:`topoff.sources.mariadb.types.line_sql`) is quoting text (four ``LOCATE`` and an
``IF`` per value, a ``REPLACE`` and a ``CONCAT`` when it needs quotes, a collation per
value), and for integers and dates the per-row expressions themselves (``CAST`` to text,
the zero-date test, trimming the fraction): ``SELECT`` of those items cost it 2 to 4 times
what ``SELECT *`` of the same rows does. So the select list names the columns themselves
wherever the text the server sends (the driver's raw mode: bytes, None for NULL) is the
dataset's field or a cheap step from it:

* text (CHAR, VARCHAR, TEXT, ENUM, SET, JSON, geometry as WKT): its utf8mb4 bytes (the
  connection's character set: the server converts others), quoted by the client as
  PostgreSQL's ``COPY ... (FORMAT csv)`` quotes them;
* integers and DECIMAL (not ZEROFILL): as sent, NULL an empty field (NOT NULL ones join
  the run of other columns next to them as they are: fewer items for the client);
* DATE, DATETIME, TIMESTAMP, TIME: as sent, a fraction's trailing zeros dropped, ``+00``
  after a TIMESTAMP, NULL and a zero or zero-in-date date (not a TIME) an empty field;
* bytes (BINARY, VARBINARY, BLOB): as sent, written as ``\\x`` and hex by the client (the
  server's ``HEX()`` of a value longer than half its ``max_allowed_packet`` is NULL).

Each run of adjacent other columns (FLOAT, DOUBLE, BIT, YEAR, UUID, ZEROFILL) is one
select-list item, their CSV fields joined by the server (never NULL).

The client reads a batch of rows at a time: the items become columns, a text column
without ``,`` ``"`` CR LF or an empty string in the whole batch (one byte search over the
batch's values) is taken as it is, others value by value; a date or time column without
NULL or a zero date (one search too) is trimmed without tests; each row's items are joined
by commas. The text is byte for byte what ``line_sql`` makes the server build
(tests/test_mariadb_fields.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from topoff.sources.mariadb.types import MariaColumn, field_sql, quote_ident

Value = bytes | bytearray | None
Row = Sequence[Value]
Column = Sequence[Value]
Fields = Sequence[bytes | bytearray]

_COMMA, _QUOTE, _LF, _CR = 44, 34, 10, 13  # ints: ``44 in v`` is one memchr
_TEXT_FORMS = ("text", "geometry")
_MOMENT_FORMS = ("date", "datetime", "timestamp", "time")
_INTEGERS = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal")

#: how the client turns a batch's values of a select-list item into CSV fields
TEXT, PLAIN, MOMENT, BYTES, FIELDS = "text", "plain", "moment", "bytes", "fields"


def _raw_text(column: MariaColumn) -> str:
    c = quote_ident(column.name)
    return f"ST_AsText({c})" if column.form == "geometry" else c


def _raw_kind(column: MariaColumn) -> str | None:
    """How the client writes the column's raw value, or None: the server writes its field."""
    if column.form in _TEXT_FORMS:
        return TEXT
    native = column.native.lower()
    if column.form == "int" and native.split("(")[0].split()[0] in _INTEGERS \
            and "zerofill" not in native:
        return PLAIN  # the server sends an integer or DECIMAL as CAST(... AS CHAR) prints it
    if column.form in _MOMENT_FORMS:
        return MOMENT
    if column.form == "bytes":
        return BYTES
    return None


def _items(columns: Sequence[MariaColumn]) -> list[tuple[str, str, MariaColumn | None]]:
    """Each column the client writes one item (:func:`_raw_kind`); each run of adjacent
    others, and of NOT NULL integers (sent as their text, never NULL), one item joined by
    the server."""
    items: list[tuple[str, str, MariaColumn | None]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            joined = ", ',', ".join(run)
            items.append((f"CONCAT({joined})" if len(run) > 1 else run[0], FIELDS, None))
            run.clear()
    for c in columns:
        kind = _raw_kind(c)
        if kind is None:
            run.append(field_sql(c))
        elif kind == PLAIN and not c.nullable:
            run.append(quote_ident(c.name))
        else:
            flush()
            items.append((_raw_text(c), kind, c))
    flush()
    return items


def export_items(columns: Sequence[MariaColumn]) -> list[tuple[str, str]]:
    """The select-list items of a row and how the client writes each (:data:`TEXT`,
    :data:`PLAIN`, :data:`MOMENT`: one column's raw value; :data:`FIELDS`: the server's
    CSV fields of a run of columns, joined by commas)."""
    return [(sql, kind) for sql, kind, _c in _items(columns)]


def select_list(columns: Sequence[MariaColumn]) -> str:
    """The select list of a row (:func:`batch_formatter`'s input)."""
    return ", ".join(sql for sql, _kind in export_items(columns))


def _fields(col: Column) -> Fields:
    """The server's fields of a run of columns: as they are (never NULL)."""
    return col  # type: ignore[return-value]


def _quoted(col: Column) -> list[bytes | bytearray]:
    return [b"" if v is None else b'"' + v.replace(b'"', b'""') + b'"'
            if not v or _COMMA in v or _QUOTE in v or _LF in v or _CR in v else v
            for v in col]


def _text(col: Column) -> Fields:
    """A batch's values of a text column as CSV fields (NULL: empty, '': ``""``)."""
    if b"" in col:  # an empty string (quoted): value by value
        return _quoted(col)
    filled: Fields = [b"" if v is None else v for v in col] if None in col \
        else col  # type: ignore[assignment]
    every = b"".join(filled)
    if _COMMA in every or _QUOTE in every or _LF in every or _CR in every:
        return _quoted(col)
    return filled


def _plain(col: Column) -> Fields:
    """A batch's values of a number column as they are (NULL: empty)."""
    if None in col:
        return [b"" if v is None else v for v in col]
    return col  # type: ignore[return-value]


def _bytes(col: Column) -> Fields:
    """A batch's values of a bytes column as ``\\x`` and lower-case hex (NULL: empty)."""
    return [b"" if v is None else b"\\x" + v.hex().encode() for v in col]


def _moment(column: MariaColumn) -> Callable[[Column], Fields]:
    """The converter of a date, datetime, timestamp or time column's raw values to the
    fields the server wrote (types.value_sql): NULL and a zero or zero-in-date value empty
    (year, month or day ``0``: the only ``-00`` in the text), a fraction's trailing zeros
    and a bare ``.`` dropped, ``+00`` after a TIMESTAMP (the session's time zone is UTC)."""
    trim = column.fraction > 0  # the text then always has a '.' before the fraction
    zone = b"+00" if column.form == "timestamp" else b""
    dated = column.zero_dates

    def zero(v: bytes | bytearray) -> bool:
        return dated and (v.startswith(b"0000") or b"-00" in v)

    def one(v: Value) -> bytes | bytearray:
        if v is None or zero(v):
            return b""
        return (v.rstrip(b"0").rstrip(b".") if trim else v) + zone

    def convert(col: Column) -> Fields:
        if None not in col:
            every = b"\n".join(col)  # type: ignore[arg-type]
            if not (dated and (b"-00" in every or every.startswith(b"0000")
                               or b"\n0000" in every)):
                if trim:
                    return [v.rstrip(b"0").rstrip(b".") + zone for v in col]  # type: ignore[union-attr]
                return [v + zone for v in col] if zone else col  # type: ignore[operator,return-value]
        return [one(v) for v in col]
    return convert


def _text_alone(col: Column) -> Fields:
    """A text field of a one-column table: ``\\.`` alone on a line is quoted too."""
    return [b'"\\."' if v == b"\\." else f for v, f in zip(col, _text(col), strict=True)]


def batch_formatter(columns: Sequence[MariaColumn]) -> Callable[[Sequence[Row]], list[bytes]]:
    """A function from a batch of raw rows (the values of :func:`select_list`) to their
    CSV lines, without newlines."""
    single = len(columns) == 1
    convert: list[Callable[[Column], Fields]] = []
    for _sql, kind, column in _items(columns):
        if kind == TEXT:
            convert.append(_text_alone if single else _text)
        elif kind == PLAIN:
            convert.append(_plain)
        elif kind == MOMENT:
            assert column is not None
            convert.append(_moment(column))
        elif kind == BYTES:
            convert.append(_bytes)
        else:
            convert.append(_fields)
    join = b",".join

    def lines(rows: Sequence[Row]) -> list[bytes]:
        if not rows:
            return []
        by_item = zip(*rows, strict=True)
        out = [f(col) for f, col in zip(convert, by_item, strict=True)]
        return list(map(join, zip(*out, strict=True)))
    return lines
