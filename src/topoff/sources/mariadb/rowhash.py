"""The content hashes a MariaDB server computes over a table's (or window's) rows.

All are order independent: the sum of the first 60 bits of each row's digest, as a
decimal integer (``SUM`` of 60-bit values cannot overflow MariaDB's DECIMAL sum).

* ``my3`` (written by this version): the SHA-256 of the row's raw values
  (:func:`value_item`: the column itself; YEAR, FLOAT and BIT as numbers, geometry as
  WKT), the same texts ``my2`` hashes, joined by ``,`` in one ``CONCAT_WS``: first the
  length in bytes of each text-like value (text, bytes, WKT; ``N`` for NULL), then the
  other values (numbers, times: never a ``,``; ``N`` for NULL), then the text-like values
  themselves (a NULL one left out; one longer than :data:`LONG` bytes as ``M`` and its
  own SHA-256 in hex, so that no row's string passes ``max_allowed_packet``, past which
  the server's ``CONCAT_WS`` is NULL and the row would count for nothing). The first
  tokens hold no ``,`` and tell the length of each later one, so the row's values can be
  read back from the string (the length says whether a value was replaced): unambiguous
  (NULL is not '', ``'ab', 'c'`` is not ``'a', 'bc'``). Texts of a second character set
  are cast to bytes (``CONCAT_WS`` would convert them). One function a column where
  ``my2`` had five; SHA-256 (hardware instructions on most CPUs) instead of MD5: 40 % of
  the server CPU of ``my2`` (docs/mariadb.md, "Measured").
* ``my2`` (written by earlier versions): the MD5 of the same values, each written as its
  length in bytes, ``:`` and its bytes (``N`` for NULL), one after the other.
* ``my1`` (written by earlier versions): the MD5 of the row's CSV line built in SQL
  (:func:`topoff.sources.mariadb.types.line_sql`).

``my2`` and ``my1`` are still computed on request; the exporter compares a published hash
only with its own algorithm, so a day published with either is exported again once
(docs/late-rows.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from topoff.sources.mariadb.types import MariaColumn, line_sql, quote_ident

MY1, MY2, MY3 = "my1", "my2", "my3"
#: preferred first
ALGORITHMS = (MY3, MY2, MY1)
#: the server's functions each algorithm needs, and what they give for ``'abc'``: SHA2 is
#: NULL on a server built without TLS, MD5 may be missing from a FIPS build (a row's
#: digest would then be NULL, which a sum skips: only counts compared)
HASH_PROBE = "SELECT SHA2('abc', 256), MD5('abc')"
_PROBED = ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "900150983cd24fb0d6963f7d28e17f72")
_NEEDS = {MY3: 0, MY2: 1, MY1: 1}
#: what a row whose digest is NULL adds to the sum: more than 2**60 rows' 60-bit values
#: (the DECIMAL sum holds 65 digits)
NULL_WEIGHT = 10**40
#: the forms whose text may hold any byte: hashed after their lengths
_TEXT_LIKE = ("text", "bytes", "geometry")
#: bytes of a text-like value hashed inline in ``my3``; a longer one by its own SHA-256
LONG = 1024
_CHARSET = re.compile(r"^[a-z0-9_]+$")


def computed(probe: Sequence[Any]) -> tuple[str, ...]:
    """The algorithms (preferred first) whose functions gave the right digests in the row
    of :data:`HASH_PROBE`."""
    got = [v.decode() if isinstance(v, (bytes, bytearray)) else v for v in probe]
    return tuple(a for a in ALGORITHMS if got[_NEEDS[a]] == _PROBED[_NEEDS[a]])


def preferred(usable: Sequence[str]) -> str | None:
    """The algorithm new hashes are made with (None: none, the client's ``cs1``)."""
    return usable[0] if usable else None


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


def _long_hashed(c: MariaColumn, v: str, in_charset: bool) -> str:
    """SQL: ``v`` (the value of ``c``), or past :data:`LONG` bytes ``M`` and its own
    SHA-256: no row's string passes max_allowed_packet, past which the server's CONCAT_WS
    is NULL (a row the sum skips: a change of it unseen); the length before it tells the
    two apart. ``in_charset``: ``v`` is a text in its column's character set, which the
    hex digest is converted to (IF takes one). A text with no character set (INET6 and
    such types of the server's own) is never that long."""
    if c.form == "text" and not c.charset:
        return v
    digest = f"CONCAT('M', SHA2({v}, 256))"
    if in_charset:
        if not _CHARSET.match(c.charset):
            raise ValueError(f"unexpected character set name {c.charset!r}")
        digest = f"CONVERT({digest} USING {c.charset})"
    return f"IF(LENGTH({v}) > {LONG}, {digest}, {v})"


def _my3_sql(columns: Sequence[MariaColumn]) -> str:
    """SQL: the row's ``my3`` string (the module's docstring)."""
    charsets = [c.charset for c in columns if c.form == "text"]
    home = charsets[0] if charsets else ""
    lengths, others, texts = [], [], []
    for c in columns:
        v = value_item(c)
        if c.form in _TEXT_LIKE:
            if c.form == "text" and c.charset != home:
                v = f"CAST({v} AS BINARY)"
            lengths.append(f"IFNULL(LENGTH({v}), 'N')" if c.nullable else f"LENGTH({v})")
            texts.append(_long_hashed(c, v, c.form == "text" and c.charset == home))
        else:
            others.append(f"IFNULL({v}, 'N')" if c.nullable else v)
    return f"CONCAT_WS(',', {', '.join(lengths + others + texts)})"


def row_md5_sql(columns: Sequence[MariaColumn], algorithm: str) -> str:
    """SQL: a row's digest (hex: SHA-256 for ``my3``, MD5 for the others) under
    ``algorithm``."""
    if algorithm == MY3:
        return f"SHA2({_my3_sql(columns)}, 256)"
    if algorithm == MY2:
        values = [_value_sql(c) for c in columns]
        return f"MD5(CONCAT({', '.join(values)}))"
    if algorithm == MY1:
        return f"MD5({line_sql(list(columns))})"
    raise ValueError(f"unknown content hash algorithm {algorithm!r}")


def count_hash_sql(columns: Sequence[MariaColumn], algorithm: str) -> str:
    """The select list ``COUNT(*), <sum>`` of the rows' hashes under ``algorithm``; a row
    whose digest is NULL adds :data:`NULL_WEIGHT` (read by :func:`summed`)."""
    md5 = row_md5_sql(columns, algorithm)
    return (f"COUNT(*), COALESCE(SUM(IFNULL(CAST(CONV(SUBSTR({md5}, 1, 15), 16, 10) AS "
            f"UNSIGNED), {NULL_WEIGHT})), 0)")


def summed(total: Any) -> int | None:
    """The hash sum of :func:`count_hash_sql`, or None when a row's digest was NULL (its
    string longer than max_allowed_packet, a value the server could not convert, a hash
    function missing): such rows would count for nothing, a change of them unseen."""
    total = int(total)
    return None if total >= NULL_WEIGHT else total
