"""The content hashes a MariaDB server computes over a table's (or window's) rows.

Both are order independent: the sum of the first 60 bits of each row's MD5, as a decimal
integer (``SUM`` of 60-bit values cannot overflow MariaDB's DECIMAL sum).

* ``my2`` (written by this version): the MD5 of the row's raw values (:func:`value_item`:
  the column itself; YEAR, FLOAT and BIT as numbers, geometry as WKT), each written as its
  length in bytes, ``:`` and its bytes (``N`` for NULL), one after the other. The
  exported text is a function of those bytes, so any change of a row's exported text
  changes them; the length prefix keeps them unambiguous (``'ab', 'c'`` is not ``'a',
  'bc'``; NULL is not ''). The server reads and hashes the values without formatting
  them: a little over half the CPU of ``my1`` (docs/mariadb.md, "Measured").
* ``my1`` (written by earlier versions): the MD5 of the row's CSV line built in SQL
  (:func:`topoff.sources.mariadb.types.line_sql`). Still computed on request; the
  exporter compares a published hash only with its own algorithm, so a day published
  with ``my1`` is exported again once (docs/late-rows.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from topoff.sources.mariadb.types import MariaColumn, line_sql, quote_ident

MY1, MY2 = "my1", "my2"
#: preferred first
ALGORITHMS = (MY2, MY1)


def value_item(column: MariaColumn) -> str:
    """SQL: the column's value as the server sends it, where that is not the dataset's text
    made simpler (a YEAR, FLOAT or BIT as a number, geometry as WKT)."""
    c = quote_ident(column.name)
    f = column.form
    if f == "year":
        return f"{c} + 0"
    if f == "float":
        return f"CAST({c} AS DOUBLE)"  # a FLOAT is sent with 6 digits, DOUBLE(M,D) with D
    if f == "bits":
        return f"BIN({c} + 0)"
    if f == "geometry":
        return f"ST_AsText({c})"
    return c


def _value_sql(column: MariaColumn) -> str:
    b = f"CAST({value_item(column)} AS BINARY)"  # one charset: CONCAT never mixes two
    return f"IFNULL(CONCAT(OCTET_LENGTH({b}), ':', {b}), 'N')"


def row_md5_sql(columns: Sequence[MariaColumn], algorithm: str) -> str:
    """SQL: a row's MD5 (hex) under ``algorithm``."""
    if algorithm == MY2:
        values = [_value_sql(c) for c in columns]
        return f"MD5(CONCAT({', '.join(values)}))"
    if algorithm == MY1:
        return f"MD5({line_sql(list(columns))})"
    raise ValueError(f"unknown content hash algorithm {algorithm!r}")


def count_hash_sql(columns: Sequence[MariaColumn], algorithm: str) -> str:
    """The select list ``COUNT(*), <sum>`` of the rows' hashes under ``algorithm``."""
    md5 = row_md5_sql(columns, algorithm)
    return (f"COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTR({md5}, 1, 15), 16, 10) AS UNSIGNED)), "
            "0)")
