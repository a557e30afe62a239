"""A MariaDB table as one side of a reconciliation (reconcile.py's :class:`Side`), read in
the session's consistent snapshot.

Values are hashed by the canonical text verify uses for a MariaDB source
(:func:`topoff.sources.mariadb.verify.canonical_sql`: the text the replica holds, in the
profile of the replica, ``exact`` for PostgreSQL, ``duckdb`` for DuckDB), rows summed with
the same 60 bits of MD5 as :func:`topoff.canonical.pg_row_hash`, so equal rows hash alike
on both sides.

Both sides must order keys alike: only integer and decimal key columns are taken (their
order is the same in MariaDB, PostgreSQL and DuckDB, and their text is the same digits);
other keys, and tables with FLOAT or DOUBLE columns (whose canonical text MariaDB cannot
print), are refused with a ConfigError (exit 2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from mysql.connector import errors as my_errors

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError
from topoff.pgtypes import family
from topoff.replicate.maria_read import failed, query, value_literal
from topoff.replicate.reconcile import Key, KeyRange, _key, bucket_tree
from topoff.sources.mariadb.catalog import MariaTable
from topoff.sources.mariadb.types import MariaColumn, quote_ident, value_sql
from topoff.sources.mariadb.verify import canonical_sql

_SEP = "CHAR(31 USING utf8mb4)"
_NULL = "CHAR(30 USING utf8mb4)"
KEY_KINDS = ("int", "numeric")


def check_reconcilable(mt: MariaTable, key: Sequence[str], columns: Sequence[Column],
                       qualified: str) -> None:
    """Refuse what a MariaDB side cannot reconcile exactly (see the module text)."""
    for k in key:
        c = mt.column(k)
        if c.form != "int" or family(c.type).kind not in KEY_KINDS:
            wide = c.form == "int" and family(c.type).kind == "numeric_any"
            raise ConfigError(f"{qualified}: key column {k} is {c.native}; reconcile from "
                              "MariaDB takes integer and decimal keys only" + (
                                  " of at most 38 digits" if wide else ""),
                              hint="set key = [...] to integer columns, or --resync the table")
    floats = [c.name for c in columns if family(c.type, c.enum).kind == "float"]
    if floats:
        raise ConfigError(f"{qualified}: column {floats[0]} is a float; reconcile from "
                          "MariaDB does not hash floats", hint="leave the column out "
                          "(exclude = [...]), or --resync the table")


def literals(columns: Sequence[MariaColumn], key: Key) -> str:
    """A key as a row of MariaDB literals (checked digits: see maria_read.value_literal)."""
    return "(" + ", ".join(value_literal(c, v) for c, v in zip(columns, key, strict=True)) + ")"


def key_row(key: Sequence[str]) -> str:
    return "(" + ", ".join(quote_ident(k) for k in key) + ")"


class MariaSide:
    """``columns``: the compared columns as the replica stores them (their family decides
    each value's canonical text, as verify's); ``where``: the operator's checked
    condition."""

    def __init__(self, conn: Any, mt: MariaTable, columns: Sequence[Column],
                 key: Sequence[str], profile: str, where: str | None) -> None:
        self.conn, self.mt, self.key = conn, mt, list(key)
        self.condition = where
        texts = [canonical_sql(mt.column(c.name), family(c.type, c.enum).kind, profile)
                 for c in columns]
        self.row = f"CONCAT_WS({_SEP}, {', '.join(f'COALESCE({t}, {_NULL})' for t in texts)})"
        self.keys = [mt.column(k) for k in self.key]
        self.key_row = key_row(self.key)
        # keys as the replica prints them (a ZEROFILL key without its padding)
        self.key_texts = ", ".join(value_sql(c) for c in self.keys)

    def _lits(self, key: Key) -> str:
        return literals(self.keys, key)

    def _where(self, r: KeyRange) -> str:
        parts = ["TRUE"]
        if self.condition:
            parts.append(f"({self.condition})")
        if r.lo is not None:
            parts.append(f"{self.key_row} >= {self._lits(r.lo)}")
        if r.hi is not None:
            parts.append(f"{self.key_row} < {self._lits(r.hi)}")
        return " WHERE " + " AND ".join(parts)

    def _hash(self) -> str:
        return (f"COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTR(MD5({self.row}), 1, 15), 16, 10) "
                "AS UNSIGNED)), 0)")

    def count(self, r: KeyRange) -> int:
        if r.lo is None and r.hi is None:
            nullable = [c.name for c in self.keys if c.nullable]
            if nullable:
                nulls = " OR ".join(f"{quote_ident(n)} IS NULL" for n in nullable)
                if query(self.conn, f"SELECT EXISTS (SELECT 1 FROM {self.mt.qualified}"
                         f"{self._where(r)} AND ({nulls}))", "a key check")[0][0]:
                    _key([None])
        return int(query(self.conn, f"SELECT COUNT(*) FROM {self.mt.qualified}"
                                    f"{self._where(r)}", "counting")[0][0])

    def hash(self, r: KeyRange) -> tuple[int, str]:
        count, total = query(self.conn, f"SELECT {self._hash()} FROM {self.mt.qualified}"
                                        f"{self._where(r)}", "hashing")[0]
        return int(count), str(int(total))

    def bounds(self, r: KeyRange, count: int, parts: int) -> list[Key]:
        step = max(-(-count // parts), 1)
        names = ", ".join(f"k{i}" for i in range(len(self.key)))
        texts = ", ".join(f"{value_sql(c)} AS k{i}" for i, c in enumerate(self.keys))
        order = ", ".join(quote_ident(k) for k in self.key)
        rows = query(self.conn, f"SELECT {names} FROM (SELECT {texts}, ROW_NUMBER() OVER "
                                f"(ORDER BY {order}) AS topoff_rn FROM {self.mt.qualified}"
                                f"{self._where(r)}) AS s WHERE (topoff_rn - 1) % {step} = 0 "
                                f"AND topoff_rn > 1 AND topoff_rn <= {int(count)} "
                                "ORDER BY topoff_rn", "cutting key ranges")
        return [_key([str(v) for v in row]) for row in rows]

    def hashes(self, r: KeyRange, bounds: Sequence[Key]) -> list[tuple[int, str]]:
        part = bucket_tree(bounds, lambda b: f"{self.key_row} < {self._lits(b)}")
        out = [(0, "0")] * (len(bounds) + 1)
        for i, c, h in query(self.conn, f"SELECT {part} AS topoff_part, {self._hash()} FROM "
                                        f"{self.mt.qualified}{self._where(r)} GROUP BY 1",
                             "hashing key ranges"):
            out[int(i)] = (int(c), str(int(h)))
        return out

    def rows(self, r: KeyRange) -> dict[Key, str]:
        n = len(self.key)
        return {_key([str(v) for v in row[:n]]): str(row[n]) for row in query(
            self.conn, f"SELECT {self.key_texts}, MD5({self.row}) FROM {self.mt.qualified}"
                       f"{self._where(r)}", "reading row digests")}


def source_rows(conn: Any, mt: MariaTable, columns: Sequence[Column], key: Sequence[str],
                keys: Sequence[Key], where: str | None,
                batch: int = 1000) -> Iterator[tuple[str | None, ...]]:
    """The rows of ``keys`` as PostgreSQL's text of each value (the export's), in batches."""
    cols = [mt.column(k) for k in key]
    values = ", ".join(value_sql(mt.column(c.name)) for c in columns)
    cond = f" AND ({where})" if where else ""
    for i in range(0, len(keys), batch):
        wanted = ", ".join(literals(cols, k) for k in keys[i:i + batch])
        cur = None
        try:  # the cursor too: the driver refuses one on a connection it found gone
            cur = conn.cursor(raw=True, buffered=False)
            cur.execute(f"SELECT {values} FROM {mt.qualified} WHERE {key_row(key)} IN "
                        f"({wanted}){cond}")
            rows = cur.fetchall()
        except my_errors.Error as e:
            raise failed("reading rows to repair", e) from None
        finally:
            if cur is not None:
                with contextlib.suppress(my_errors.Error):
                    cur.close()
        for row in rows:
            yield tuple(None if v is None else bytes(v).decode() for v in row)

