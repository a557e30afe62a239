"""The rows of MariaDB tables whose FLOATs no ``UPDATE`` can set again, written by topoff.

``mariadb-dump`` prints a FLOAT with 6 significant digits (maria_floats.py). A table with
FLOAT columns whose rows no key finds (no primary key, or a key of FLOAT, BIT, ENUM or
such columns), with an UPDATE trigger (which an ``UPDATE`` in the restore would fire),
with system versioning (each UPDATE would add a version) or with a FLOAT in a unique key,
but with no INSERT trigger, is dumped without its rows (``--ignore-table-data``); topoff
appends them after the dump's last line, read in its own snapshot, which the binlog
positions prove is the dump's: each value exact, as a number Python wrote (a FLOAT as its
exact double, which MariaDB rounds back to the same float), or as hex (``_binary``: the
column's own bytes, no character set conversion; ``_utf8mb4`` for INET6 and UUID, whose
bytes would be read as their binary form). Generated columns are left to the server,
invisible ones named. A system-versioned table: every version with its ``ROW START`` and
``ROW END`` when the dump holds the history (``system_versioning_insert_history``, as
mariadb-dump's ``--dump-history``), else its current rows (as the dump's). Only when the
snapshot is provably the dump's; otherwise mariadb-dump writes the rows, rounded, with a
warning (maria_floats.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from topoff.sources.mariadb.types import quote_ident

_COLUMNS_Q = ("SELECT COLUMN_NAME, DATA_TYPE, COALESCE(GENERATION_EXPRESSION, ''), EXTRA "
              "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND "
              "TABLE_NAME = %s ORDER BY ORDINAL_POSITION")
_VERSIONED_Q = ("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                "DATABASE() AND TABLE_NAME = %s AND TABLE_TYPE = 'SYSTEM VERSIONED'")
_PERIOD = ("ROW START", "ROW END")
#: types whose server text is the number itself (written as it came, after a check)
_NUMBERS = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "double"}
#: types whose bytes are not what their text reads back as
_AS_TEXT = {"inet4", "inet6", "uuid"}
_NUMBER = re.compile(rb"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
#: bytes of SQL after which an INSERT is ended (a longer value makes a longer one)
STATEMENT = 1 << 20
_HISTORY_ON = b"SET @@SESSION.system_versioning_insert_history = 1;\n"
_HISTORY_OFF = b"SET @@SESSION.system_versioning_insert_history = 0;\n"


def raw_text(v: Any) -> str:
    """A value of a raw cursor as text."""
    return bytes(v).decode() if isinstance(v, bytes | bytearray) else str(v)


def raw_rows(conn: Any, stmt: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The rows of ``stmt`` from a raw cursor, a thousand at a time."""
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


def _columns(conn: Any, table: str, history: bool) -> tuple[list[tuple[str, str]], bool]:
    """The columns to write (name, type) and whether the table is system-versioned."""
    ((versioned,),) = list(raw_rows(conn, _VERSIONED_Q, (table,)))
    out, period = [], False
    for c, t, g, extra in raw_rows(conn, _COLUMNS_Q, (table,)):
        if raw_text(g) in _PERIOD:
            period = True
            if history:
                out.append((raw_text(c), raw_text(t)))
        elif not raw_text(g) and "GENERATED" not in raw_text(extra).upper():
            out.append((raw_text(c), raw_text(t)))
    if int(versioned) and history and not period:  # implicit: invisible, not listed
        out += [("row_start", "timestamp"), ("row_end", "timestamp")]
    return out, bool(int(versioned))


def write_rows(conn: Any, table: str, write: Callable[[bytes], Any],
               history: bool = False) -> int:
    """``INSERT`` statements of every row of ``table`` read in ``conn``'s snapshot, written
    (every version of a system-versioned one when ``history``); the bytes written."""
    columns, versioned = _columns(conn, table, history)
    if not columns:
        return 0
    every = versioned and history
    head = (f"INSERT INTO {quote_ident(table)} ("
            f"{', '.join(quote_ident(c) for c, _t in columns)}) VALUES\n")
    select = ", ".join(_item(c, t) for c, t in columns)
    size, values = 0, list[str]()
    pending = 0
    if every:
        write(_HISTORY_ON)
        size += len(_HISTORY_ON)

    def flush() -> None:
        nonlocal size, values, pending
        if values:
            data = (head + ",\n".join(values) + ";\n").encode()
            write(data)
            size += len(data)
        values, pending = [], 0

    all_time = " FOR SYSTEM_TIME ALL" if every else ""
    for row in raw_rows(conn, f"SELECT {select} FROM {quote_ident(table)}{all_time}"):
        line = "(" + ", ".join(_literal(v, t) for v, (_c, t) in
                               zip(row, columns, strict=True)) + ")"
        values.append(line)
        pending += len(line)
        if pending >= STATEMENT:
            flush()
    flush()
    if every:
        write(_HISTORY_OFF)
        size += len(_HISTORY_OFF)
    return size
