"""Reading a MariaDB table for ``topoff replicate``: cursor values at full precision, the
rows of a refresh in keyset batches, a table's count and content hash.

Everything runs on the session's connection inside its consistent snapshot. Rows come
as the export's CSV lines, made as the export makes them
(:func:`topoff.sources.mariadb.fields.batch_formatter`: the server sends the columns, the
client writes text, bytes, numbers and times; never a line built in SQL, which the server
makes NULL, or a BLOB's hex empty, past its ``max_allowed_packet``), read unbuffered in
the driver's raw mode: constant memory.

Cursor and key values never pass through a Python value that could lose digits: the
server prints them (``CAST(... AS CHAR)``: every microsecond of a DATETIME(6), every digit
of a BIGINT UNSIGNED or DECIMAL; ``HEX()`` of bytes), and they go back into statements as
literals rebuilt from that text after checking its shape (numbers bare, times quoted,
text and bytes as hex), never as the text itself.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SourceError
from topoff.sources.mariadb.catalog import MariaTable
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.fields import batch_formatter, select_list
from topoff.sources.mariadb.reader import MARIA_HASH
from topoff.sources.mariadb.rowhash import count_hash_sql, summed
from topoff.sources.mariadb.types import MariaColumn, literal, quote_ident

log = logging.getLogger("topoff")

CHUNK = 1 << 20
FETCH = 2000
_NUMBER = re.compile(r"^-?\d{1,80}(\.\d{1,80})?$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}:\d{2}(\.\d{1,6})?)?$")
_HEX = re.compile(r"^[0-9A-Fa-f]*$")

Position = tuple[str, ...]
_UNKNOWN_TABLE = 1109  # ER_UNKNOWN_TABLE: an information_schema view the server lacks


def failed(what: str, e: my_errors.Error) -> SourceError:
    return read_failed(f"{what} on the MariaDB source", e,
                       hint="check the connection to the source and the user's SELECT "
                            "privilege")


def query(conn: Any, statement: str, what: str) -> list[tuple[Any, ...]]:
    cur = None
    try:  # the cursor too: the driver refuses one on a connection it found gone
        cur = conn.cursor()
        cur.execute(statement)
        return [tuple(v.decode() if isinstance(v, bytes | bytearray) else v for v in r)
                for r in cur.fetchall()]
    except my_errors.Error as e:
        raise failed(what, e) from None
    finally:
        if cur is not None:
            cur.close()


def created(conn: Any, mt: MariaTable) -> str | None:
    """Which table ``mt`` is, whatever its name: its creation time (whole seconds; a view
    has none) and, where the user may read it (PROCESS), InnoDB's table id. A table dropped
    and created again under the name has another id, and another creation time unless
    within the same second; so has one the server rebuilt (OPTIMIZE TABLE, an ALTER TABLE
    that copies it). :func:`topoff.replicate.state.same_identity` compares two."""
    rows = query(conn, "SELECT CAST(CREATE_TIME AS CHAR) FROM information_schema.TABLES "
                 f"WHERE TABLE_SCHEMA = {literal(mt.schema)} AND TABLE_NAME = "
                 f"{literal(mt.name)} AND TABLE_TYPE = 'BASE TABLE'", "reading the table's "
                 "creation time")
    if not rows or rows[0][0] is None:
        return None
    table_id = innodb_id(conn, mt)
    return f"created {rows[0][0]}" + ("" if table_id is None else f"; table id {table_id}")


def innodb_id(conn: Any, mt: MariaTable) -> str | None:
    """InnoDB's id of the table (MariaDB's INNODB_SYS_TABLES, MySQL 8's INNODB_TABLES,
    which name it ``database/table`` in the server's file name encoding); None when the
    user may not read them (they need PROCESS), or the table is not one InnoDB table."""
    # each part encoded alone (a '/' in the encoding's CONCAT would be encoded too), in
    # lower case where the server keeps names so (lower_case_table_names 1 or 2)
    parts = [f"CAST(CONVERT(IF(@@lower_case_table_names = 0, {v}, LOWER({v})) USING "
             "filename) AS BINARY)" for v in (literal(mt.schema), literal(mt.name))]
    name = f"CONCAT({parts[0]}, '/', {parts[1]})"
    for view in ("INNODB_SYS_TABLES", "INNODB_TABLES"):
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT CAST(TABLE_ID AS CHAR) FROM information_schema.{view} WHERE "
                        f"CAST(NAME AS BINARY) = {name}")
            found = cur.fetchall()
        except my_errors.Error as e:
            if e.errno == _UNKNOWN_TABLE:
                continue  # the other flavour's view
            return None  # no PROCESS privilege, or no InnoDB
        finally:
            cur.close()
        if len(found) != 1:
            return None
        value = found[0][0]
        return value.decode() if isinstance(value, bytes | bytearray) else str(value)
    return None


def text_sql(c: MariaColumn) -> str:
    """SQL: a value's exact text (hex for bytes; BIT as its number, whose CAST is its raw
    bytes; FLOAT and DOUBLE(M,D) as the double they are, whose CAST has 6 digits or D
    decimals)."""
    q = quote_ident(c.name)
    if c.form == "bytes":
        return f"HEX({q})"
    if c.form == "bits":
        return f"CAST({q} + 0 AS CHAR)"
    if c.form == "float":
        return f"CAST(CAST({q} AS DOUBLE) AS CHAR)"
    return f"CAST({q} AS CHAR)"


def value_literal(c: MariaColumn, text: str) -> str:
    """The value printed by :func:`text_sql` as a literal of the column's own kind."""
    if c.form == "bytes":
        if not _HEX.match(text):
            raise SourceError(f"unexpected bytes text for {c.name}: not hex",
                              hint="this is a bug in topoff; report it")
        return f"X'{text}'"
    if c.form in ("int", "year", "bits") and _NUMBER.match(text):
        return text  # compared as numbers, exactly (a quoted one would become a double)
    if c.form in ("date", "datetime", "timestamp") and _TIME.match(text):
        return f"'{text}'"  # converted to the column's type: compared at full precision
    return f"_utf8mb4 X'{text.encode().hex()}'"  # text: nothing in it ends the literal


def after_sql(cols: list[MariaColumn], pos: Position, op: str) -> str:
    """SQL: the row's (cols) position is after ``pos`` (``op`` ">"), or at or before it
    (``op`` "<="), lexicographically, as OR of ANDs (each an index range)."""
    ors = []
    strict = ">" if op == ">" else "<"
    for i, c in enumerate(cols):
        ands = [f"{quote_ident(p.name)} = {value_literal(p, v)}"
                for p, v in zip(cols[:i], pos[:i], strict=True)]
        ands.append(f"{quote_ident(c.name)} {strict} {value_literal(c, pos[i])}")
        ors.append("(" + " AND ".join(ands) + ")")
    if op == "<=":
        ors.append("(" + " AND ".join(f"{quote_ident(c.name)} = {value_literal(c, v)}"
                                      for c, v in zip(cols, pos, strict=True)) + ")")
    return "(" + " OR ".join(ors) + ")"


class KeysetRead:
    """The rows of ``condition`` in keyset batches of at most ``batch_rows`` by
    (cursor, key); without a key, a batch holds whole cursor groups (mimeo's rule) and a
    group larger than ``batch_rows`` is a SourceError naming its value."""

    def __init__(self, conn: Any, table: MariaTable, columns: list[MariaColumn],
                 cursor: str, key: tuple[str, ...], condition: str, batch_rows: int,
                 qualified: str) -> None:
        self.conn, self.table, self.columns = conn, table, columns
        self.order = [table.column(n) for n in dict.fromkeys([cursor, *key])]
        self.key, self.condition, self.n, self.qualified = key, condition, batch_rows, qualified

    def _where(self, *extra: str) -> str:
        return " WHERE " + " AND ".join([self.condition, *extra])

    def _no_null_keys(self) -> None:
        nullable = [self.table.column(k) for k in self.key if self.table.column(k).nullable]
        if not nullable:
            return
        nulls = " OR ".join(f"{quote_ident(c.name)} IS NULL" for c in nullable)
        if query(self.conn, f"SELECT EXISTS (SELECT 1 FROM {self.table.qualified}"
                            f"{self._where(f'({nulls})')})", "a key check")[0][0]:
            raise SourceError(f"{self.qualified}: a key column is NULL in a row inside the "
                              "refresh", hint="use NOT NULL key columns (set key = [...])")

    def ranges(self) -> Iterator[str]:
        """The row conditions of the batches, in order."""
        self._no_null_keys()
        texts = ", ".join(text_sql(c) for c in self.order)
        order = ", ".join(quote_ident(c.name) for c in self.order)
        start = "TRUE"
        while True:
            rows = query(self.conn, f"SELECT {texts} FROM {self.table.qualified}"
                                    f"{self._where(start)} ORDER BY {order} "
                                    f"LIMIT 2 OFFSET {self.n - 1}", "finding a batch's end")
            if not rows:
                yield start
                return
            last: Position = tuple(str(v) for v in rows[0])
            if self.key or len(rows) == 1 or rows[1][0] != rows[0][0]:
                yield f"{start} AND {after_sql(self.order, last, '<=')}"
                start = after_sql(self.order, last, ">")
                continue
            c = self.order[0]
            first = query(self.conn, f"SELECT {text_sql(c)} FROM {self.table.qualified}"
                                     f"{self._where(start)} ORDER BY {quote_ident(c.name)} "
                                     "LIMIT 1", "finding a batch's start")[0][0]
            if str(first) == last[0]:
                raise SourceError(
                    f"{self.qualified}: more than {self.n} rows share the cursor value "
                    f"{last[0]}, and the table has no key to page through them",
                    hint=f"set key = [...] for {self.qualified} (a NOT NULL unique column), "
                    "or raise batch_rows")
            before = f"{quote_ident(c.name)} < {value_literal(c, last[0])}"
            yield f"{start} AND {before}"
            start = f"{quote_ident(c.name)} >= {value_literal(c, last[0])}"

    def blocks(self, counter: list[int]) -> Iterator[bytes]:
        """Every batch's CSV lines, in blocks of about CHUNK bytes; rows counted."""
        for cond in self.ranges():
            yield from lines(self.conn, self.columns,
                             f"FROM {self.table.qualified}{self._where(cond)}", counter,
                             self.qualified)


def lines(conn: Any, columns: list[MariaColumn], tail: str, counter: list[int], what: str
          ) -> Iterator[bytes]:
    """The CSV lines of ``columns`` of the rows ``tail`` (``FROM ... [WHERE ...]``)
    selects, in blocks; rows counted."""
    cur = None
    buf = bytearray()
    made = batch_formatter(columns)
    try:
        cur = conn.cursor(raw=True, buffered=False)
        cur.execute(f"SELECT {select_list(columns)} {tail}")
        while rows := cur.fetchmany(FETCH):
            for line in made(rows):
                buf += line
                buf += b"\n"
            counter[0] += len(rows)
            if len(buf) >= CHUNK:
                yield bytes(buf)
                buf.clear()
    except my_errors.Error as e:
        raise failed(f"reading {what}", e) from None
    finally:
        if cur is not None:
            with contextlib.suppress(my_errors.Error):
                cur.close()
    if buf:
        yield bytes(buf)


def count_hash(conn: Any, table: MariaTable, columns: list[MariaColumn], where: str,
               what: str) -> tuple[int, str | None]:
    """Rows and ``count:my3:sum`` of the rows (the export's content hash, rowhash.py: the
    sum of the first 60 bits of each row's SHA-256), computed by the server in the snapshot.
    A state stored with another algorithm compares unequal: the table is rebuilt once.
    None: a row's digest was NULL (SHA2() missing, rowhash.summed): equal to no state."""
    count, total = query(conn, f"SELECT {count_hash_sql(columns, MARIA_HASH)} FROM "
                               f"{table.qualified}{where}", f"hashing {what}")[0]
    got = summed(total)
    if got is None:
        log.warning("%s: the server's SHA-256 of a row was NULL (SHA2() on a server built "
                    "without TLS, or a row past max_allowed_packet): copied whole at every "
                    "run", what)
        return int(count), None
    return int(count), f"{int(count)}:{MARIA_HASH}:{got}"
