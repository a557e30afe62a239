"""A MariaDB table as the exporter sees it, and its rows as a RowStream (sources/base.py).

Rows are read unbuffered in the driver's raw mode (each value the bytes the server sends)
and turned into CSV lines by :func:`topoff.sources.mariadb.fields.batch_formatter`: a header
line (the column names, quoted as PostgreSQL's COPY quotes them) first, then one line per
row. A window is
``lo <= cursor < hi`` with the bounds of :func:`topoff.dataset.bounds.cursor_bounds`
passed as parameters and compared by the server at the column's full precision.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from mysql.connector import errors as my_errors

from topoff.dataset.bounds import cursor_bounds
from topoff.dataset.layout import Window
from topoff.errors import SourceError
from topoff.sources.base import SourceTable
from topoff.sources.mariadb.catalog import MariaTable
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.fields import batch_formatter, select_list
from topoff.sources.mariadb.rowhash import MY3, count_hash_sql
from topoff.sources.mariadb.types import MariaColumn, literal, quote_ident, zero_date_sql

#: the content hash a MariaDB server computes for new datasets (rowhash.py: ``my3``, over
#: the values the export reads; ``my2`` and ``my1`` are still computed to compare with
#: hashes published by earlier versions)
MARIA_HASH = MY3
BATCH = 2000


@dataclass
class MariaSourceTable(SourceTable):
    """A configured table of a MariaDB source: its catalog entry (exported columns only)."""

    maria: MariaTable | None = None

    @property
    def exported(self) -> list[MariaColumn]:
        assert self.maria is not None
        return self.maria.columns


def _csv_name(name: str) -> bytes:
    """A column name as a CSV header field (quoted as PostgreSQL's COPY HEADER quotes it)."""
    if name == "" or any(ch in name for ch in ',"\n\r') or name == "\\.":
        name = '"' + name.replace('"', '""') + '"'
    return name.encode("utf-8")


def header_line(t: MariaSourceTable) -> bytes:
    return b",".join(_csv_name(c.name) for c in t.exported) + b"\n"


def where_sql(t: MariaSourceTable, window: Window | None) -> tuple[str, list[Any]]:
    conds: list[str] = []
    params: list[Any] = []
    if t.config.filter:  # the operator's own SQL from the config file (not a dataset's)
        conds.append(f"({t.config.filter})")
    if window is not None:
        assert t.config.cursor and t.cursor_type
        b = cursor_bounds(t.cursor_type, t.config.cursor_timezone, window, t.qualified)
        c = quote_ident(t.config.cursor)
        conds.append(f"{c} >= {literal(b.lo)} AND {c} < {literal(b.hi)}")
        if t.maria is not None and t.maria.column(t.config.cursor).zero_dates:
            # MariaDB orders 2026-01-00 inside 2025-12-31's window; written as NULL, the row
            # would be in no window of the replica, and added again by every revision
            conds.append(f"NOT {zero_date_sql(c)}")
    return (" WHERE " + " AND ".join(conds), params) if conds else ("", params)


def select_sql(t: MariaSourceTable, window: Window | None,
               ordered: bool) -> tuple[str, list[Any]]:
    """The SELECT of the rows' values, :class:`LineStream`'s input (in (cursor, key) order
    when ``ordered``)."""
    assert t.maria is not None
    where, params = where_sql(t, window)
    order = ""
    if ordered:
        keys = list(dict.fromkeys(k for k in [t.config.cursor, *t.primary_key] if k))
        if keys:
            order = " ORDER BY " + ", ".join(quote_ident(k) for k in keys)
    return f"SELECT {select_list(t.exported)} FROM {t.maria.qualified}{where}{order}", params


def hash_sql(t: MariaSourceTable, window: Window | None,
             algorithm: str = MARIA_HASH) -> tuple[str, list[Any]]:
    """count(*) and the ``algorithm`` sum of the rows (rowhash.py)."""
    assert t.maria is not None
    where, params = where_sql(t, window)
    return (f"SELECT {count_hash_sql(t.exported, algorithm)} FROM {t.maria.qualified}{where}",
            params)


def _failed(t: SourceTable, e: my_errors.Error) -> SourceError:
    return read_failed(f"reading {t.qualified} from the MariaDB source", e,
                       hint="check the connection to the source and the user's SELECT "
                            "privilege")


class LineStream:
    """The rows of one SELECT of :func:`select_list` as CSV lines, header first (a
    RowStream)."""

    def __init__(self, conn: Any, t: MariaSourceTable, sql: str, params: list[Any]) -> None:
        self.table = t
        self.done = False
        self._header: bytes | None = header_line(t)
        self._lines = batch_formatter(t.exported)
        self._rows: list[bytes] = []  # the CSV lines of the batch read last
        self._at = 0
        try:
            self._cur = conn.cursor(raw=True, buffered=False)
        except my_errors.Error as e:
            self.done = True
            raise _failed(t, e) from None
        try:
            self._cur.execute(sql, params)
        except my_errors.Error as e:
            self.close()
            raise _failed(t, e) from None

    def _fill(self) -> bool:
        """More rows fetched; False at the end (the stream is then done)."""
        try:
            self._rows = self._lines(self._cur.fetchmany(BATCH))
        except my_errors.Error as e:
            self.close()
            raise _failed(self.table, e) from None
        self._at = 0
        if not self._rows:
            self.close()
            return False
        return True

    def close(self) -> None:
        if not self.done:
            self.done = True
            with contextlib.suppress(my_errors.Error):
                self._cur.close()

    def read_row(self) -> bytes | None:
        if self._header is not None:
            row, self._header = self._header, None
            return row
        if self._at >= len(self._rows) and (self.done or not self._fill()):
            return None
        line = self._rows[self._at]
        self._at += 1
        return line + b"\n"

    def read_into(self, buf: bytearray, until: int) -> int:
        count = 0
        if self._header is not None:
            buf += self._header
            self._header = None
        while len(buf) < until:
            if self._at >= len(self._rows) and (self.done or not self._fill()):
                break
            rows, at = self._rows, self._at
            rest = rows[at:] if at else rows
            if sum(map(len, rest)) + len(rest) <= until - len(buf):  # the batch fits
                buf += b"\n".join(rest)
                buf += b"\n"
                count += len(rest)
                self._at = len(rows)
                continue
            while at < len(rows) and len(buf) < until:
                buf += rows[at]
                buf += b"\n"
                at += 1
                count += 1
            self._at = at
        if self._at >= len(self._rows) and not self.done:
            self._fill()  # learn now whether the rows ended (the writer asks ``done``)
        return count
