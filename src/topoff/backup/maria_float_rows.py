"""The rows of MariaDB tables whose FLOATs no ``UPDATE`` can set again, written by topoff.

``mariadb-dump`` prints a FLOAT with 6 significant digits (maria_floats.py). A table with
FLOAT columns whose rows no key finds (no primary key, or a key of FLOAT, BIT, ENUM or
such columns) or with an UPDATE trigger (which an ``UPDATE`` in the restore would fire),
but with no INSERT trigger, no system versioning and no generated-only FLOAT, is dumped
without its rows (``--ignore-table-data``); topoff appends them after the dump's last line,
read in its own snapshot, which the binlog positions prove is the dump's: each value
exact, as a number Python wrote (a FLOAT as its exact double, which MariaDB rounds back to
the same float), or as hex (``_binary``: the column's own bytes, no character set
conversion; ``_utf8mb4`` for INET6 and UUID, whose bytes would be read as their binary
form). Generated columns are left to the server, invisible ones named. Only when the
snapshot is provably the dump's; otherwise mariadb-dump writes the rows, rounded, with a
warning (maria_floats.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from topoff.sources.mariadb.types import quote_ident

_COLUMNS_Q = ("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE "
              "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND "
              "COALESCE(GENERATION_EXPRESSION, '') = '' AND EXTRA NOT LIKE '%%GENERATED%%' "
              "ORDER BY ORDINAL_POSITION")
#: types whose server text is the number itself (written as it came, after a check)
_NUMBERS = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "double"}
#: types whose bytes are not what their text reads back as
_AS_TEXT = {"inet4", "inet6", "uuid"}
_NUMBER = re.compile(rb"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
#: bytes of SQL after which an INSERT is ended (a longer value makes a longer one)
STATEMENT = 1 << 20


def _text(v: Any) -> str:
    return bytes(v).decode() if isinstance(v, bytes | bytearray) else str(v)


def _rows(conn: Any, stmt: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    cur = conn.cursor(raw=True)
    try:
        cur.execute(stmt, params)
        while batch := cur.fetchmany(1000):
            yield from batch
    finally:
        cur.close()


def _item(name: str, data_type: str) -> str:
    """SQL: what to read of a column to write it back exactly."""
    c = quote_ident(name)
    if data_type == "float":
        return f"CAST({c} AS DOUBLE)"
    if data_type in ("bit", "year"):
        return f"{c} + 0"
    if data_type in _NUMBERS:
        return c
    if data_type in _AS_TEXT:
        return f"CAST({c} AS CHAR)"
    return f"CAST({c} AS BINARY)"


def _literal(value: Any, data_type: str) -> str:
    if value is None:
        return "NULL"
    raw = bytes(value)
    if data_type == "float":
        return repr(float(raw.decode()))
    if data_type in _NUMBERS or data_type in ("bit", "year"):
        if not _NUMBER.match(raw):  # never: the server's text of a number
            raise ValueError(f"unexpected text of a {data_type}: {raw[:40]!r}")
        return raw.decode()
    if data_type in _AS_TEXT:
        return f"_utf8mb4 X'{raw.hex()}'"
    return f"_binary X'{raw.hex()}'"


def write_rows(conn: Any, table: str, write: Callable[[bytes], Any]) -> int:
    """``INSERT`` statements of every row of ``table`` read in ``conn``'s snapshot, written;
    the bytes written."""
    columns = [(_text(c), _text(t)) for c, t in _rows(conn, _COLUMNS_Q, (table,))]
    if not columns:
        return 0
    head = (f"INSERT INTO {quote_ident(table)} ("
            f"{', '.join(quote_ident(c) for c, _t in columns)}) VALUES\n")
    select = ", ".join(_item(c, t) for c, t in columns)
    size, values = 0, list[str]()
    pending = 0

    def flush() -> None:
        nonlocal size, values, pending
        if values:
            data = (head + ",\n".join(values) + ";\n").encode()
            write(data)
            size += len(data)
        values, pending = [], 0

    for row in _rows(conn, f"SELECT {select} FROM {quote_ident(table)}"):
        line = "(" + ", ".join(_literal(v, t) for v, (_c, t) in
                               zip(row, columns, strict=True)) + ")"
        values.append(line)
        pending += len(line)
        if pending >= STATEMENT:
            flush()
    flush()
    return size
