"""FLOAT values a MariaDB dump does not carry exactly, set again at the end of the dump.

``mariadb-dump`` (and ``mysqldump``) write a FLOAT as the server's text protocol prints it,
with 6 significant digits: 3.4028234e38 is dumped as ``3.40282e38``, 16777217 as
``1.67772e7``, which a restore stores as other floats. In the dump's own snapshot
(topoff's, proven the same by the binlog positions), after the dump's last line, topoff
appends one ``UPDATE`` per row whose FLOAT values that text does not give back, setting
each such column to the float's exact value (its shortest double text, which MariaDB rounds
back to the same float), found by the row's primary key.

A table is set again this way when it has a primary key of integer, decimal, text, binary
or temporal columns, no UPDATE trigger (it would fire in the restore), no system
versioning (each UPDATE would add a history row) and no FLOAT in a unique key (two FLOATs
alike in 6 digits: the dump's INSERT fails on a duplicate key). ``ON UPDATE
CURRENT_TIMESTAMP`` columns are assigned their own value, so they keep it. Any other
table without an INSERT trigger is dumped without its rows, which topoff writes itself
(:mod:`.maria_float_rows`). A table with an INSERT trigger whose FLOAT values the dump
rounds is named in a warning: a restore holds them rounded, and the drill, which hashes
FLOATs by their exact value, reports the table.

Every statement is made of identifiers (quoted), numbers Python wrote and hex literals:
no text of a value reaches the SQL.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from mysql.connector import errors as my_errors

from topoff.backup.maria_float_rows import raw_rows, raw_text, write_rows
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.types import quote_ident

log = logging.getLogger("topoff")

_FLOATS_Q = ("SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c JOIN "
             "information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND "
             "t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = DATABASE() AND "
             "c.DATA_TYPE = 'float' AND COALESCE(c.GENERATION_EXPRESSION, '') = '' AND "
             "t.TABLE_TYPE IN "
             "('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION")
_TABLE_Q = ("SELECT TABLE_TYPE, (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE "
            "EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = %s AND "
            "EVENT_MANIPULATION = 'UPDATE'), (SELECT COUNT(*) FROM "
            "information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND "
            "EVENT_OBJECT_TABLE = %s AND EVENT_MANIPULATION = 'INSERT') FROM "
            "information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s")
_KEY_Q = ("SELECT s.COLUMN_NAME, c.DATA_TYPE "
          "FROM information_schema.STATISTICS s JOIN information_schema.COLUMNS c ON "
          "c.TABLE_SCHEMA = s.TABLE_SCHEMA AND c.TABLE_NAME = s.TABLE_NAME AND "
          "c.COLUMN_NAME = s.COLUMN_NAME WHERE s.TABLE_SCHEMA = DATABASE() AND "
          "s.TABLE_NAME = %s AND s.INDEX_NAME = 'PRIMARY' ORDER BY s.SEQ_IN_INDEX")
_UNIQUE_Q = ("SELECT DISTINCT COLUMN_NAME FROM information_schema.STATISTICS WHERE "
             "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND NON_UNIQUE = 0")
_ON_UPDATE_Q = ("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
                "DATABASE() AND TABLE_NAME = %s AND EXTRA LIKE '%%on update%%'")
_INTS = {"tinyint", "smallint", "mediumint", "int", "bigint"}
_TEXTS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_BYTES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "date",
          "datetime", "timestamp", "time", "year"}
BEGIN = (b"\n-- topoff: FLOAT values set exactly (mariadb-dump prints 6 digits)\n"
         b"SET @topoff_tz = @@SESSION.time_zone, @topoff_mode = @@SESSION.sql_mode, "
         b"@topoff_fk = @@SESSION.foreign_key_checks;\n"
         b"SET SESSION time_zone = '+00:00', SESSION sql_mode = "
         b"'NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO', SESSION foreign_key_checks = 0;\n")
END = (b"SET SESSION time_zone = @topoff_tz, SESSION sql_mode = @topoff_mode, "
       b"SESSION foreign_key_checks = @topoff_fk;\n")


def _dumped_exactly(printed: str, exact: float) -> bool:
    """Whether the dump's text of a FLOAT restores the same float."""
    try:
        return struct.unpack("f", struct.pack("f", float(printed)))[0] == exact
    except (OverflowError, ValueError):
        return False


def _literal(value: bytes, data_type: str) -> str:
    """A key value as SQL: numbers as Python writes them, anything else in hex (text as
    the connection's utf8mb4 sent it, converted to the column's character set and
    compared under its collation)."""
    if data_type in _INTS:
        return str(int(value))
    if data_type == "decimal":
        return str(Decimal(value.decode()))
    return f"_{'utf8mb4' if data_type in _TEXTS else 'binary'} X'{value.hex()}'"


def _settable(conn: Any, table: str, floats: list[str]
              ) -> tuple[list[tuple[str, ...]], list[str]] | str:
    """(the key's columns with their types, the ON UPDATE columns), or why the table's
    FLOATs cannot be set again (by an UPDATE; "rows": topoff may write its rows). A FLOAT
    in a unique key: two values alike in 6 digits would make the dump's INSERT fail."""
    ((kind, triggers, inserts),) = list(raw_rows(conn, _TABLE_Q, (table, table, table)))
    unique = {raw_text(c) for (c,) in raw_rows(conn, _UNIQUE_Q, (table,))}.intersection(floats)
    key = [tuple(raw_text(v) if v is not None else "" for v in r)
           for r in raw_rows(conn, _KEY_Q, (table,))]
    odd = [k[1] for k in key if k[1] not in _INTS | _TEXTS | _BYTES | {"decimal"}]
    if raw_text(kind) != "BASE TABLE":  # system-versioned: an UPDATE adds a version
        return "rows" if not int(inserts) else "system versioning and an INSERT trigger"
    if key and not odd and not int(triggers) and not unique:
        return key, [raw_text(c) for (c,) in raw_rows(conn, _ON_UPDATE_Q, (table,))]
    if not int(inserts):
        return "rows"
    if unique:
        return "a FLOAT in a unique key and an INSERT trigger: a restore may fail"
    if int(triggers):
        return "an UPDATE trigger and an INSERT trigger"
    return ("no primary key" if not key else f"a {odd[0]} column in its primary key") + \
        " and an INSERT trigger"


def _float_tables(conn: Any) -> dict[str, list[str]]:
    by_table: dict[str, list[str]] = {}
    for table, column in raw_rows(conn, _FLOATS_Q):
        by_table.setdefault(raw_text(table), []).append(raw_text(column))
    return by_table


def row_tables(conn: Any) -> list[str]:
    """The tables whose rows topoff writes (:mod:`.maria_float_rows`), not mariadb-dump."""
    try:
        return [t for t, floats in _float_tables(conn).items()
                if _settable(conn, t, floats) == "rows"]
    except my_errors.Error as e:
        raise read_failed("reading the tables holding FLOAT values", e,
                          hint="the backup user needs SELECT on every table") from None


def _table(conn: Any, table: str, floats: list[str], write: Callable[[bytes], Any]) -> int:
    """The statements of one table, written; the bytes written."""
    settable = _settable(conn, table, floats)
    key, on_update = settable if isinstance(settable, tuple) else ([], [])
    keys = [quote_ident(k[0]) for k in key]
    cols = ", ".join([*keys, *(f"CAST({quote_ident(f)} AS DOUBLE), CAST({quote_ident(f)} "
                               "AS CHAR)" for f in floats)])
    where = " OR ".join(f"{quote_ident(f)} IS NOT NULL" for f in floats)
    keep = "".join(f", {quote_ident(c)} = {quote_ident(c)}" for c in on_update)
    size = rounded = 0
    for row in raw_rows(conn, f"SELECT {cols} FROM {quote_ident(table)} WHERE {where}"):
        sets = []
        for i, name in enumerate(floats):
            exact, printed = row[len(keys) + 2 * i], row[len(keys) + 2 * i + 1]
            if exact is not None and not _dumped_exactly(raw_text(printed), float(raw_text(exact))):
                sets.append(f"{quote_ident(name)} = {float(raw_text(exact))!r}")
        if not sets:
            continue
        rounded += 1
        if isinstance(settable, str):  # (not "rows": dumped without them)
            continue
        match = " AND ".join(f"{k} = {_literal(bytes(v), meta[1])}"
                             for k, v, meta in zip(keys, row, key, strict=False))
        stmt = f"UPDATE {quote_ident(table)} SET {', '.join(sets)}{keep} WHERE {match};\n"
        data = stmt.encode()
        write(data)
        size += len(data)
    if rounded and isinstance(settable, str):
        log.warning("table %s: %d rows hold FLOAT values that mariadb-dump writes with 6 "
                    "significant digits and topoff cannot set again (%s): a restore holds "
                    "them rounded (a DOUBLE column, or a primary key, keeps them)",
                    table, rounded, settable)
    return size


def write_float_fixes(conn: Any, write: Callable[[bytes], Any], same_snapshot: bool,
                      rows_of: Sequence[str] = (), history: bool = False) -> int:
    """Append to the dump (``write``) the statements that set its FLOATs exactly, read in
    ``conn``'s snapshot, the dump's own when ``same_snapshot``; the rows of the tables
    ``rows_of`` (dumped without them: :func:`row_tables`), every version of a
    system-versioned one when the dump holds ``history``; the bytes written."""
    try:
        by_table = _float_tables(conn)
        if not by_table and not rows_of:
            return 0
        assert same_snapshot or not rows_of, "rows written from another snapshot"
        if not same_snapshot:
            log.warning("tables %s hold FLOAT columns, which mariadb-dump writes with 6 "
                        "significant digits: not set exactly again, as topoff's snapshot is "
                        "not provably the dump's (enable log_bin and log_slave_updates)",
                        ", ".join(by_table))
            return 0
        write(BEGIN)
        size = len(BEGIN)
        for table in rows_of:
            size += write_rows(conn, table, write, history)
        for table, floats in by_table.items():
            if table not in rows_of:
                size += _table(conn, table, floats, write)
        write(END)
        return size + len(END)
    except my_errors.Error as e:
        raise read_failed("reading the FLOAT values to set exactly", e,
                          hint="the backup user needs SELECT on every table") from None
