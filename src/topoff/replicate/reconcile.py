"""Reconcile a table with its replica by key ranges: deletes and missed updates, without
triggers on the source.

Both sides hash a key range the same way (:mod:`topoff.canonical`: row count plus the sum
of the first 60 bits of each row's canonical md5). Ranges whose count and hash agree are
done; a differing range is split at the median key of the side that holds more of its
rows, until it holds at most ``threshold`` rows on both sides; then the keys and row
digests of that range are fetched from both sides and compared: keys only in the source
are inserts, keys only in the target deletes, keys whose digests differ updates. With d
differences among n rows, about ``2 d log2(n / threshold)`` ranges are hashed.

Keys are handled as PostgreSQL's text of each key column (its output function's text, what
COPY writes) and compared as untyped literals (PostgreSQL reads them as the key columns'
own types); compound keys are compared as rows. Both sides must put keys in the same order,
so each key column has an order mode (:func:`key_modes`): ``native`` (the type's own order,
the same in PostgreSQL and DuckDB: integers, numeric, dates, timestamps, uuid, boolean,
bytea), ``collate`` (text and char(n), byte order: ``COLLATE "C"``, which is DuckDB's
order) or ``text`` (anything else, and a column the replica keeps as text: the text's byte
order). Key columns must not be NULL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import sql

from topoff.canonical import NULL_MARK, UNIT_SEP, pg_row_hash, pg_value
from topoff.dataset.manifest import Column
from topoff.errors import SourceError
from topoff.pgtypes import family

Key = tuple[str, ...]
#: key column kinds whose order is the same in PostgreSQL and DuckDB
NATIVE_ORDER = frozenset({"int", "numeric", "date", "timestamp", "timestamptz", "uuid", "bool",
                          "bytea"})


def key_mode(source: Column, stored: Column | None = None) -> str:
    """How a key column is ordered on both sides: ``native``, ``collate`` or ``text``
    (``stored``: the column as the replica holds it, when that can differ)."""
    fam = family(source.type, source.enum)
    if stored is not None and family(stored.type, stored.enum).kind != fam.kind:
        return "text"
    if fam.kind in NATIVE_ORDER:
        return "native"
    if fam.kind == "bpchar" or (fam.kind == "text" and fam.pg_type != "citext"):
        return "collate"
    return "text"


def key_modes(columns: Sequence[Column], key: Sequence[str],
              stored: Sequence[Column] | None = None) -> dict[str, str]:
    by_name = {c.name: c for c in columns}
    held = {c.name: c for c in stored or ()}
    return {k: key_mode(by_name[k], held.get(k)) if k in by_name else "text" for k in key}


def pg_key_text(col: sql.Composable, c: Column | None) -> sql.Composable:
    """A key value as PostgreSQL's output text (COPY's, which ``::text`` is not for every
    type: char(n) keeps its padding, inet its form)."""
    kind = family(c.type, c.enum).kind if c is not None else "other"
    if kind in ("bpchar", "other"):
        return sql.SQL("concat({})").format(col)
    return sql.SQL("{}::text").format(col)


@dataclass(frozen=True)
class KeyRange:
    lo: Key | None = None  # inclusive; None: from the first key
    hi: Key | None = None  # exclusive; None: to the last key


class Side(Protocol):
    """One side of a reconciliation (the source in its snapshot, or the target)."""

    def hash(self, r: KeyRange) -> tuple[int, str]: ...

    def split(self, r: KeyRange, count: int) -> Key: ...

    def rows(self, r: KeyRange) -> dict[Key, str]: ...


@dataclass
class Diff:
    inserts: list[Key] = field(default_factory=list)  # in the source, not in the target
    updates: list[Key] = field(default_factory=list)  # in both, with other values
    deletes: list[Key] = field(default_factory=list)  # in the target, not in the source
    ranges: int = 0  # key ranges hashed (on both sides)
    fetched: int = 0  # rows whose digests were fetched (both sides)
    source_rows: int = 0  # rows of the source compared (the whole key range)


class PostgresSide:
    """A PostgreSQL table as a side; ``conn`` is inside the transaction to read in.

    ``profile``: how values are hashed (topoff.canonical: ``exact`` against another
    PostgreSQL table, ``duckdb`` against a DuckDB replica, with ``columns`` typed as the
    replica holds them). ``where``: a row condition (the source's, checked by describe).
    ``modes``: each key column's order mode (:func:`key_modes`; by default from
    ``columns``)."""

    def __init__(self, conn: psycopg.Connection, table: sql.Composable,
                 columns: Sequence[Column], key: Sequence[str], *, profile: str = "exact",
                 where: sql.Composable | None = None,
                 modes: Mapping[str, str] | None = None) -> None:
        if not key:
            raise ValueError("reconciliation needs a key")
        self.conn, self.table, self.columns, self.key = conn, table, list(columns), list(key)
        self.profile, self.condition = profile, where
        self.modes = dict(modes) if modes is not None else key_modes(self.columns, self.key)
        by_name = {c.name: c for c in self.columns}
        self._texts = [pg_key_text(sql.Identifier(k), by_name.get(k)) for k in self.key]
        self._order = [self._ordered(i) for i in range(len(self.key))]
        self._key_row = sql.SQL("ROW({})").format(sql.SQL(", ").join(self._order))

    def _ordered(self, i: int) -> sql.Composable:
        mode = self.modes[self.key[i]]
        if mode == "native":
            return sql.Identifier(self.key[i])
        if mode == "collate":
            return sql.SQL('{} COLLATE "C"').format(sql.Identifier(self.key[i]))
        return sql.SQL('({}) COLLATE "C"').format(self._texts[i])

    def _bound(self, i: int, value: str) -> sql.Composable:
        # an untyped literal: read as the key column's type (char(n) compares without its
        # trailing blanks); the key side's explicit collation decides the order
        if self.modes[self.key[i]] == "text":
            return sql.SQL("{}::text").format(sql.Literal(value))
        return sql.Literal(value)

    def _where(self, r: KeyRange) -> sql.Composable:
        parts: list[sql.Composable] = [sql.SQL("true")]
        if self.condition is not None:
            parts.append(sql.SQL("({})").format(self.condition))
        for bound, op in ((r.lo, ">="), (r.hi, "<")):
            if bound is not None:
                parts.append(sql.SQL("{} {} ROW({})").format(
                    self._key_row, sql.SQL(op), sql.SQL(", ").join(
                        self._bound(i, v) for i, v in enumerate(bound))))
        return sql.SQL(" AND ").join(parts)

    def _no_null_keys(self) -> None:
        """Rows with a NULL key fall outside every bounded range: refuse them up front
        (checked only when a key column is nullable)."""
        types = {c.name: c for c in self.columns}
        nullable = [k for k in self.key if k not in types or types[k].nullable]
        if not nullable:
            return
        (found,) = self.conn.execute(sql.SQL(  # type: ignore[misc]
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} AND ({}))").format(
                self.table, self._where(KeyRange()), sql.SQL(" OR ").join(
                    sql.SQL("{} IS NULL").format(sql.Identifier(k)) for k in nullable)
        )).fetchone()
        if found:
            _key([None])

    def hash(self, r: KeyRange) -> tuple[int, str]:
        if r.lo is None and r.hi is None:
            self._no_null_keys()
        row = self.conn.execute(sql.SQL("SELECT {} FROM {} WHERE {}").format(
            pg_row_hash(self.columns, self.profile), self.table, self._where(r))).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def _key_texts(self) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL("{} AS {}").format(
            t, sql.Identifier(f"k{i}")) for i, t in enumerate(self._texts))

    def split(self, r: KeyRange, count: int) -> Key:
        row = self.conn.execute(sql.SQL(
            "SELECT {} FROM {} WHERE {} ORDER BY {} OFFSET {} LIMIT 1").format(
                self._key_texts(), self.table, self._where(r),
                sql.SQL(", ").join(self._order), sql.Literal(max(count // 2, 1)))).fetchone()
        if row is None:
            raise RuntimeError("no split key in a range that counted rows (same snapshot)")
        return _key(row)

    def rows(self, r: KeyRange) -> dict[Key, str]:
        parts = [sql.SQL("coalesce({}, {})").format(
            pg_value(sql.Identifier(c.name), family(c.type, c.enum), self.profile),
            sql.Literal(NULL_MARK))
            for c in self.columns]
        digest = sql.SQL("md5(concat_ws({}, {}))").format(
            sql.Literal(UNIT_SEP), sql.SQL(", ").join(parts))
        n = len(self.key)
        out: dict[Key, str] = {}
        with self.conn.cursor() as cur:
            for row in cur.stream(sql.SQL("SELECT {}, {} FROM {} WHERE {}").format(
                    self._key_texts(), digest, self.table, self._where(r))):
                out[_key(row[:n])] = row[n]
        return out


def _key(values: Sequence[str | None]) -> Key:
    if any(v is None for v in values):
        raise SourceError("a key column is NULL in a row to reconcile",
                          hint="reconcile by NOT NULL unique columns (set key = [...])")
    return tuple(values)  # type: ignore[arg-type]


def reconcile(source: Side, target: Side, threshold: int = 1000) -> Diff:
    """The exact difference between ``source`` and ``target`` (see the module text)."""
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    diff = Diff()
    todo = [KeyRange()]
    while todo:
        r = todo.pop()
        sc, sh = source.hash(r)
        tc, th = target.hash(r)
        diff.ranges += 1
        if r.lo is None and r.hi is None:
            diff.source_rows = sc
        if sc == tc and sh == th:
            continue
        if max(sc, tc) > threshold:
            mid = source.split(r, sc) if sc >= tc else target.split(r, tc)
            todo.append(KeyRange(mid, r.hi))
            todo.append(KeyRange(r.lo, mid))
            continue
        src, tgt = source.rows(r), target.rows(r)
        diff.fetched += len(src) + len(tgt)
        for k, digest in src.items():
            other = tgt.get(k)
            if other is None:
                diff.inserts.append(k)
            elif other != digest:
                diff.updates.append(k)
        diff.deletes.extend(k for k in tgt if k not in src)
    for keys in (diff.inserts, diff.updates, diff.deletes):
        keys.sort()
    return diff
