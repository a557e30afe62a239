"""A row's CSV line, built by the server where that is cheap and by the client where it is
not.

Profiled on the benchmark's replica, nearly all the server's cost of building CSV lines in
SQL (:func:`topoff.sources.mariadb.types.line_sql`) is quoting text: four ``LOCATE`` and an
``IF`` per value, a ``REPLACE`` and a ``CONCAT`` when it needs quotes, a collation for
every value. Integers, decimals, dates (the zero-date test, the fraction's trailing zeros)
and hex cost it little. So each run of adjacent columns that are not text is one
select-list item, their CSV fields joined by the server (never NULL: an empty field); each
text column (CHAR, VARCHAR, TEXT, ENUM, SET, JSON, geometry as WKT) is its own item, its
raw utf8mb4 bytes (the connection's character set: the server converts others) quoted by
the client as PostgreSQL's ``COPY ... (FORMAT csv)`` quotes them.

The client reads in the driver's raw mode (bytes, None for NULL) a batch of rows at a
time: the items become columns, a text column without ``,`` ``"`` CR LF or an empty string
in the whole batch (one byte search over the batch's values) is taken as it is, others
value by value, and each row's items are joined by commas. The text is byte for byte what
``line_sql`` makes the server build (tests/test_mariadb_fields.py); a table without text
columns is read as exactly that, one value per row.
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


def _raw_text(column: MariaColumn) -> str:
    c = quote_ident(column.name)
    return f"ST_AsText({c})" if column.form == "geometry" else c


def export_items(columns: Sequence[MariaColumn]) -> list[tuple[str, bool]]:
    """The select-list items of a row and whether each is a raw text value (else the
    server's CSV fields of a run of columns, joined by commas)."""
    items: list[tuple[str, bool]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            joined = ", ',', ".join(run)
            items.append((f"CONCAT({joined})" if len(run) > 1 else run[0], False))
            run.clear()
    for c in columns:
        if c.form in _TEXT_FORMS:
            flush()
            items.append((_raw_text(c), True))
        else:
            run.append(field_sql(c))
    flush()
    return items


def select_list(columns: Sequence[MariaColumn]) -> str:
    """The select list of a row (:func:`batch_formatter`'s input)."""
    return ", ".join(sql for sql, _text in export_items(columns))


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


def _text_alone(col: Column) -> Fields:
    """A text field of a one-column table: ``\\.`` alone on a line is quoted too."""
    return [b'"\\."' if v == b"\\." else f for v, f in zip(col, _text(col), strict=True)]


def batch_formatter(columns: Sequence[MariaColumn]) -> Callable[[Sequence[Row]], list[bytes]]:
    """A function from a batch of raw rows (the values of :func:`select_list`) to their
    CSV lines, without newlines."""
    items = export_items(columns)
    single = len(columns) == 1
    convert = [(_text_alone if single else _text) if text else _fields for _sql, text in items]
    join = b",".join

    def lines(rows: Sequence[Row]) -> list[bytes]:
        if not rows:
            return []
        by_item = zip(*rows, strict=True)
        out = [f(col) for f, col in zip(convert, by_item, strict=True)]
        return list(map(join, zip(*out, strict=True)))
    return lines
