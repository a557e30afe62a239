"""How ``topoff verify`` reads a MariaDB source: the canonical hash (topoff.canonical) of its
rows, computed by the MariaDB server the way the replica holds them.

Each value's canonical text is built in SQL from the text the export writes for it
(:func:`topoff.sources.mariadb.types.value_sql`): the text PostgreSQL prints for the
column's ``type``, which is what canonical.py's ``exact`` profile uses, except timestamps
(epoch microseconds) and bytes (hex); the ``duckdb`` profile also spells dates as day
numbers and intervals as months, days and microseconds. Rows are joined with the same
separators and summed with the same 60 bits of MD5, so equal data gives equal hashes.

MariaDB cannot print a float's canonical text (PostgreSQL's shortest form, or C's
``%.16e`` for a DuckDB replica): a table with FLOAT or DOUBLE columns is hashed here
instead, row by row, from every value's canonical text computed by the server and each
float's exact value (floats.py), streamed unbuffered: slower, same hash.

Nor can a server without MD5 (a FIPS build; :data:`HASH_PROBE` checks it once) sum
anything: its tables are hashed here too, as is a table whose sum met a NULL digest (never
left out: the row would count for nothing).

Nor can it build a text longer than its ``max_allowed_packet`` (16 MiB by default): the
``HEX()``, ``REPLACE()`` or ``CONCAT()`` of a longer one is NULL. A row whose text and
bytes columns hold more than a quarter of it is hashed here too, from those columns' raw
values (bytes written as hex, text escaped, as canonical.py does); the server sums the
others.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import date, datetime
from typing import Any

from mysql.connector import errors as my_errors

from topoff.canonical import ESCAPE, FREE_TEXT, NULL_MARK, UNIT_SEP
from topoff.dataset.bounds import Bounds
from topoff.errors import SourceError
from topoff.pgtypes import family
from topoff.sources.mariadb.catalog import MariaTable, read_table
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.floats import float_text
from topoff.sources.mariadb.rowhash import HASH_PROBE, MY2, NULL_WEIGHT, computed, summed
from topoff.sources.mariadb.types import (
    MariaColumn,
    literal,
    quote_ident,
    value_sql,
    zero_date_sql,
)
from topoff.targets.base import TableDef

_SEP = "CHAR(31 USING utf8mb4)"
_NULL = "CHAR(30 USING utf8mb4)"
#: how :meth:`MariaVerifier._hash_rows` turns a value sent raw into its canonical text
HEX, X_HEX, TEXT, ESCAPED = "hex", "xhex", "text", "escaped"
#: the server's digest of a row (canonical.py's MD5)
DIGEST = "MD5({})"


def _sum_sql(row: str) -> str:
    """SQL: a row's 60-bit value; NULL_WEIGHT for a NULL digest (rowhash.summed)."""
    return (f"IFNULL(CAST(CONV(SUBSTR({DIGEST.format(row)}, 1, 15), 16, 10) AS UNSIGNED), "
            f"{NULL_WEIGHT})")


def _raw_canonical(v: bytes, how: str) -> str:
    if how == HEX:
        return v.hex()
    if how == X_HEX:
        return "\\x" + v.hex()
    text = v.decode()
    if how == ESCAPED:
        for ch in (ESCAPE, NULL_MARK, UNIT_SEP):
            text = text.replace(ch, ESCAPE + ch)
    return text


def _raw_form(mc: MariaColumn, kind: str) -> str | None:
    """How a column that can hold a long value is sent raw and made canonical, or None."""
    if mc.form == "bytes":
        return HEX if kind == "bytea" else X_HEX
    if mc.form == "text":
        return ESCAPED if kind in FREE_TEXT else TEXT
    return None


def _escaped(text: str) -> str:
    """SQL: ``text`` escaped as topoff.canonical escapes values that may hold any character."""
    for ch in (29, 30, 31):
        text = (f"REPLACE({text}, CHAR({ch} USING utf8mb4), "
                f"CONCAT(CHAR(29 USING utf8mb4), CHAR({ch} USING utf8mb4)))")
    return text


def canonical_sql(mc: MariaColumn, kind: str, profile: str) -> str:
    """SQL: the canonical text of one value (NULL for NULL and zero dates)."""
    text = _canonical_text(mc, kind, profile)
    return _escaped(text) if kind in FREE_TEXT else text


def _canonical_text(mc: MariaColumn, kind: str, profile: str) -> str:
    c = quote_ident(mc.name)
    if mc.form in ("date", "datetime", "timestamp"):
        null = f"{c} IS NULL OR {zero_date_sql(c)}"
        if kind in ("timestamp", "timestamptz"):
            return (f"IF({null}, NULL, CAST(TIMESTAMPDIFF(MICROSECOND, "
                    f"'1970-01-01 00:00:00', {c}) AS CHAR))")
        if kind == "date" and profile == "duckdb":
            return f"IF({null}, NULL, CAST(DATEDIFF({c}, '1970-01-01') AS CHAR))"
    if kind == "bytea" and mc.form == "bytes":
        return f"IF({c} IS NULL, NULL, LOWER(HEX({c})))"
    if kind == "interval" and mc.form == "time" and profile == "duckdb":
        return (f"IF({c} IS NULL, NULL, CONCAT('0 0 ', "
                f"CAST(CAST(TIME_TO_SEC({c}) * 1000000 AS SIGNED) AS CHAR)))")
    return value_sql(mc)


class MariaVerifier:
    """:class:`topoff.sources.base.SourceVerifier` of a MariaDB source (in its snapshot)."""

    HASH_PROBE = HASH_PROBE

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._tables: dict[tuple[str, str], MariaTable | None] = {}
        self._md5: bool | None = None  # whether the server computes MD5 (checked once)

    def _server_md5(self) -> bool:
        if self._md5 is None:
            cur = self.conn.cursor()
            try:
                cur.execute(self.HASH_PROBE)
                self._md5 = MY2 in computed(tuple(cur.fetchone()))
            except my_errors.Error:  # refused outright (a FIPS build's MD5)
                self._md5 = False
            finally:
                with contextlib.suppress(my_errors.Error):
                    cur.close()
        return self._md5

    def _table(self, table: TableDef) -> MariaTable | None:
        ref = table.source_ref()
        key = (ref.schema, ref.name)
        if key not in self._tables:
            try:
                self._tables[key] = read_table(self.conn, ref.schema, ref.name)
            except SourceError:
                self._tables[key] = None
        return self._tables[key]

    def mismatch(self, table: TableDef) -> str | None:
        mt = self._table(table)
        if mt is None:
            return "the table is missing on the source"
        names = {c.name: c for c in mt.columns}
        gone = [c.name for c in table.columns if c.name not in names]
        if gone:
            return f"column(s) {', '.join(gone)} missing on the source"
        changed = [c.name for c in table.columns
                   if family(names[c.name].type, names[c.name].enum).kind
                   != family(c.type, c.enum).kind]
        if changed:
            return f"column(s) {', '.join(changed)} changed type on the source"
        return None

    def hash(self, table: TableDef, by_day: bool, since: datetime | date | None,
             window: Bounds | None, profile: str) -> dict[str | None, tuple[int, str]]:
        mt = self._table(table)
        assert mt is not None, "mismatch() first"
        stored = {c.name: family(c.type, c.enum).kind for c in table.columns}
        floats = {c.name: 32 if c.type.strip() == "real" else 64 for c in table.columns
                  if stored[c.name] == "float"}
        texts = [f"CAST(CAST({quote_ident(c.name)} AS DOUBLE) AS CHAR)" if c.name in floats
                 else canonical_sql(mt.column(c.name), stored[c.name], profile)
                 for c in table.columns]
        parts = [f"COALESCE({t}, {_NULL})" for t in texts]
        row = f"CONCAT_WS({_SEP}, {', '.join(parts)})"
        h = f"COUNT(*), COALESCE(SUM({_sum_sql(row)}), 0)"
        conds: list[str] = []
        params: list[Any] = []
        if table.cursor:
            cur = quote_ident(table.cursor)
            if since is not None:
                conds.append(f"{cur} >= {literal(since)}")
            if window is not None:
                conds.append(f"{cur} >= {literal(window.lo)} AND {cur} < {literal(window.hi)}")
            if conds and mt.column(table.cursor).zero_dates:
                # MariaDB orders 2026-01-00 inside 2025-12-31's window, but it is NULL in the
                # replica, which no bound takes in
                conds.append(f"NOT {zero_date_sql(cur)}")
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        day = "NULL"
        if by_day:
            assert table.cursor
            c = quote_ident(table.cursor)  # a zero date is NULL in the replica
            day = f"IF({c} IS NULL OR {zero_date_sql(c)}, NULL, DATE_FORMAT({c}, '%Y-%m-%d'))"
        raw = {c.name: _raw_form(mt.column(c.name), stored[c.name]) for c in table.columns
               if c.name not in floats}
        raw = {n: how for n, how in raw.items() if how is not None}
        how: list[int | str | None] = [floats.get(c.name) or raw.get(c.name)
                                       for c in table.columns]
        streamed = ", ".join(quote_ident(c.name) if c.name in raw else t
                             for c, t in zip(table.columns, texts, strict=True))
        every = f"SELECT {day}, {streamed} FROM {mt.qualified}{where}"
        if floats or not self._server_md5():
            return self._hash_rows(table, every, params, how, profile, by_day)
        if not raw:
            out = self._summed(table, f"SELECT {day}, {h} FROM {mt.qualified}{where}",
                               params, by_day)
            return self._hash_rows(table, every, params, how, profile, by_day) \
                if out is None else out
        # rows too long for the server's texts are hashed here (a second read, of them
        # only, when there are some), the others by the server
        size = " + ".join(f"COALESCE(OCTET_LENGTH({quote_ident(n)}), 0)" for n in raw)
        long = f"({size}) > @@max_allowed_packet DIV 4"
        split = (f"COALESCE(SUM(NOT {long}), 0), COALESCE(SUM(IF({long}, 0, "
                 f"{_sum_sql(row)})), 0), COALESCE(SUM({long}), 0)")
        longs: list[int] = []
        out = self._summed(table, f"SELECT {day}, {split} FROM {mt.qualified}{where}", params,
                           by_day, longs)
        if out is None:  # a NULL digest: every row hashed here
            return self._hash_rows(table, every, params, how, profile, by_day)
        if not sum(longs):
            return out
        more = self._hash_rows(table, f"SELECT {day}, {streamed} FROM {mt.qualified} WHERE "
                               + " AND ".join([*conds, long]), params, how, profile, True)
        for key, (n, total) in more.items():
            had = out.get(key, (0, "0"))
            out[key] = (had[0] + n, str(int(had[1]) + int(total)))
        return out

    def _summed(self, table: TableDef, select: str, params: list[Any], by_day: bool,
                longs: list[int] | None = None) -> dict[str | None, tuple[int, str]] | None:
        """The hash per day the server sums (``select``: day, count, sum and, with
        ``longs``, the rows left out as too long, appended to it); None when a row's
        digest was NULL."""
        sql = select + (" GROUP BY 1" if by_day else "")
        cur_ = self.conn.cursor()
        try:
            cur_.execute(sql, params)
            rows = cur_.fetchall()
        except my_errors.Error as e:
            raise read_failed(f"hashing {table.source} on the MariaDB source", e,
                              hint="check the connection to the source") from None
        finally:
            cur_.close()
        out: dict[str | None, tuple[int, str]] = {}
        for d, count, total, *left_out in rows:
            if longs is not None:
                longs.append(int(left_out[0]))
            key = d.decode() if isinstance(d, bytes | bytearray) else d
            got = summed(total)
            if got is None:
                return None
            out[None if key is None else str(key)] = (int(count), str(got))
        return out

    def _hash_rows(self, table: TableDef, sql: str, params: list[Any],
                   how: list[int | str | None], profile: str, by_day: bool
                   ) -> dict[str | None, tuple[int, str]]:
        """The canonical hash per day, summed here from each row's canonical texts (``how``
        per column: None the server's canonical text, bits a float's exact value, else a
        raw value, :func:`_raw_canonical`)."""
        sums: dict[str | None, list[int]] = {}
        cur = self.conn.cursor(raw=True, buffered=False)
        try:
            cur.execute(sql, params)
            while rows := cur.fetchmany(2000):
                for r in rows:
                    key = None if r[0] is None else bytes(r[0]).decode()
                    texts = []
                    for v, b in zip(r[1:], how, strict=True):
                        if v is None:
                            texts.append(NULL_MARK)
                        elif b is None:
                            texts.append(bytes(v).decode())
                        elif isinstance(b, str):
                            texts.append(_raw_canonical(bytes(v), b))
                        else:
                            texts.append(float_text(float(bytes(v)), b, profile))
                    digest = hashlib.md5(UNIT_SEP.join(texts).encode(), usedforsecurity=False)
                    acc = sums.setdefault(key, [0, 0])
                    acc[0] += 1
                    acc[1] += int(digest.hexdigest()[:15], 16)
        except my_errors.Error as e:
            raise read_failed(f"hashing {table.source} on the MariaDB source", e,
                              hint="check the connection to the source") from None
        finally:
            with contextlib.suppress(my_errors.Error):
                cur.close()
        if not sums and not by_day:
            return {None: (0, "0")}
        return {k: (n, str(total)) for k, (n, total) in sums.items()}
