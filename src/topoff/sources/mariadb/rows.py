"""A table's rows in the dataset's CSV text form, streamed; a window's count and hash.

The client reads the rows' values unbuffered (the driver's raw mode: bytes, no conversion)
and builds each CSV line (:func:`topoff.sources.mariadb.fields.batch_formatter`), written in
blocks: constant memory. A window is ``lo <= cursor <
hi`` compared by the server at the column's full precision (DATETIME(6) microseconds).
The window's hash is computed by the server (rowhash.py, ``my3`` unless asked for another):
the sum of the first 60 bits of each row's MD5, which does not depend on row order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from mysql.connector import errors as my_errors

from topoff.sources.mariadb.catalog import MariaTable
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.fields import batch_formatter, select_list
from topoff.sources.mariadb.rowhash import MY3, count_hash_sql, summed
from topoff.sources.mariadb.types import literal, quote_ident, zero_date_sql

BATCH = 2000


@dataclass(frozen=True)
class Window:
    """``lo <= column < hi`` (either bound may be None: open)."""

    column: str
    lo: Any = None
    hi: Any = None


def _where(table: MariaTable, window: Window | None) -> tuple[str, list[Any]]:
    if window is None:
        return "", []
    table.column(window.column)  # KeyError for a column the table does not have
    c = quote_ident(window.column)
    conds: list[str] = []
    params: list[Any] = []  # none: bounds are written as literals (see types.literal)
    if window.lo is not None:
        conds.append(f"{c} >= {literal(window.lo)}")
    if window.hi is not None:
        conds.append(f"{c} < {literal(window.hi)}")
    return (" WHERE " + " AND ".join(conds), params) if conds else ("", [])


def select_sql(table: MariaTable, window: Window | None = None) -> tuple[str, list[Any]]:
    """The SELECT of the rows' values (fields.select_list), and its parameters."""
    where, params = _where(table, window)
    return f"SELECT {select_list(table.columns)} FROM {table.qualified}{where}", params


def iter_blocks(conn: Any, table: MariaTable, window: Window | None = None,
                batch: int = BATCH) -> Iterator[tuple[bytes, int]]:
    """(block of CSV lines, rows in it) until the table or window is read."""
    sql, params = select_sql(table, window)
    lines = batch_formatter(table.columns)
    cur = None
    try:
        cur = conn.cursor(raw=True, buffered=False)
        cur.execute(sql, params)
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            block = b"\n".join(lines(rows))
            yield block + b"\n", len(rows)
    except my_errors.Error as e:
        raise read_failed(f"reading {table.schema}.{table.name}", e,
                          hint="check the connection to the source and the user's SELECT "
                               "privilege") from None
    finally:
        if cur is not None:
            with contextlib.suppress(my_errors.Error):
                cur.close()


def write_csv(conn: Any, table: MariaTable, out: BinaryIO,
              window: Window | None = None) -> int:
    """Write the table's (or window's) rows to ``out``; the number of rows."""
    total = 0
    for block, n in iter_blocks(conn, table, window):
        out.write(block)
        total += n
    return total


def _one(conn: Any, sql: str, params: list[Any], what: str) -> tuple[Any, ...]:
    cur = None
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        return tuple(cur.fetchone())
    except my_errors.Error as e:
        raise read_failed(what, e, hint="check the connection to the source") from None
    finally:
        if cur is not None:
            with contextlib.suppress(my_errors.Error):
                cur.close()


def window_hash(conn: Any, table: MariaTable, window: Window | None = None,
                algorithm: str = MY3) -> tuple[int, str | None]:
    """(rows, order-independent hash) of the table's rows in ``window``, by the server;
    None: a row's digest was NULL (rowhash.summed), the hash equals nothing."""
    where, params = _where(table, window)
    sql = f"SELECT {count_hash_sql(table.columns, algorithm)} FROM {table.qualified}{where}"
    count, total = _one(conn, sql, params, f"hashing {table.schema}.{table.name}")
    got = summed(total)
    return int(count), None if got is None else str(got)


def zero_date_counts(conn: Any, table: MariaTable,
                     window: Window | None = None) -> dict[str, int]:
    """How many zero or zero-in-date values (written as NULL) each date-like column has."""
    cols = [c for c in table.columns if c.zero_dates]
    if not cols:
        return {}
    where, params = _where(table, window)
    sums = ", ".join(
        f"COALESCE(SUM({quote_ident(c.name)} IS NOT NULL AND "
        f"{zero_date_sql(quote_ident(c.name))}), 0)" for c in cols)
    counts = _one(conn, f"SELECT {sums} FROM {table.qualified}{where}", params,
                  f"counting the zero dates of {table.schema}.{table.name}")
    return {c.name: int(n) for c, n in zip(cols, counts, strict=True) if int(n)}
