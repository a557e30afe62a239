"""Reconcile a table with its replica by key ranges: deletes and missed updates, without
triggers on the source.

Both sides hash a key range the same way (:mod:`topoff.canonical`: row count plus the sum
of the first 60 bits of each row's canonical md5). A range holding more than
``threshold`` rows on either side is cut into up to ``max_parts`` parts of about
``threshold`` rows each, at keys read from the side that holds more of its rows (one
ordered scan of the keys); each side then hashes every part in ONE grouped scan (a row
finds its part by a binary search of the bounds), both sides at once. Parts whose count
and hash agree are done; differing parts are cut again, until they hold at most
``threshold`` rows on both sides; then the keys and row digests of such a part are
fetched from both sides and compared: keys only in the source are inserts, keys only in
the target deletes, keys whose digests differ updates. Each level scans each side's
differing rows once: with n rows and 1,000-row parts, a million-row table takes one
level, the parts that differ are compared row by row.

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

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import psycopg
from psycopg import sql

from topoff.canonical import NULL_MARK, UNIT_SEP, pg_row_hash, pg_value
from topoff.dataset.manifest import Column
from topoff.errors import SourceError
from topoff.pgtypes import family
from topoff.workers import Workers

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

    def count(self, r: KeyRange) -> int: ...

    def hash(self, r: KeyRange) -> tuple[int, str]: ...

    def bounds(self, r: KeyRange, count: int, parts: int) -> list[Key]:
        """Keys cutting ``r`` (``count`` rows on this side) into ``parts`` parts of equal
        size (at most ``parts - 1`` keys, ascending, each inside ``r``)."""
        ...

    def hashes(self, r: KeyRange, bounds: Sequence[Key]) -> list[tuple[int, str]]:
        """count and hash of each part of ``r`` cut at ``bounds`` (``len(bounds) + 1``)."""
        ...

    def rows(self, r: KeyRange) -> dict[Key, str]: ...


def parts_of(r: KeyRange, bounds: Sequence[Key]) -> list[KeyRange]:
    edges: list[Key | None] = [r.lo, *bounds, r.hi]
    return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def bucket_tree(bounds: Sequence[Key], below: Callable[[Key], str]) -> str:
    """A nested CASE giving a row's part number (0..len(bounds)) by binary search of the
    bounds; ``below(b)`` is the condition "the row's key < b"."""
    def tree(lo: int, hi: int) -> str:
        if lo == hi:
            return str(lo)
        mid = (lo + hi + 1) // 2  # first part of the upper half: it starts at bounds[mid-1]
        return (f"CASE WHEN {below(bounds[mid - 1])} THEN {tree(lo, mid - 1)} "
                f"ELSE {tree(mid, hi)} END")
    return tree(0, len(bounds))


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

    def count(self, r: KeyRange) -> int:
        if r.lo is None and r.hi is None:
            self._no_null_keys()
        row = self.conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
            self.table, self._where(r))).fetchone()
        assert row is not None
        return int(row[0])

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

    def bounds(self, r: KeyRange, count: int, parts: int) -> list[Key]:
        step = max(-(-count // parts), 1)
        n = len(self.key)
        rows = self.conn.execute(sql.SQL(
            "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {}) AS topoff_rn "
            "FROM {} WHERE {}) AS s WHERE (topoff_rn - 1) % {} = 0 AND topoff_rn > 1 "
            "AND topoff_rn <= {} "
            "ORDER BY topoff_rn").format(
                sql.SQL(", ").join(sql.Identifier(f"k{i}") for i in range(n)),
                self._key_texts(), sql.SQL(", ").join(self._order), self.table,
                self._where(r), sql.Literal(step), sql.Literal(count))).fetchall()
        return [_key(row) for row in rows]

    def hashes(self, r: KeyRange, bounds: Sequence[Key]) -> list[tuple[int, str]]:
        def below(b: Key) -> str:
            return sql.SQL("{} < ROW({})").format(self._key_row, sql.SQL(", ").join(
                self._bound(i, v) for i, v in enumerate(b))).as_string(self.conn)

        part = sql.SQL(bucket_tree(bounds, below))  # built from literals quoted above
        out = [(0, "0")] * (len(bounds) + 1)
        with _planner(self.conn):
            found = self.conn.execute(sql.SQL(
                "SELECT {} AS topoff_part, {} FROM {} WHERE {} GROUP BY 1").format(
                    part, pg_row_hash(self.columns, self.profile), self.table,
                    self._where(r))).fetchall()
        for i, c, h in found:
            out[int(i)] = (int(c), str(h))
        return out

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


#: for the grouped hash of the parts: the planner takes each row for its own group and
#: sorts whole rows (to disk) where a hash of a few hundred groups is in memory, or
#: gathers whole rows from parallel workers to hash them in one process; JIT spends
#: longer compiling the binary search than running it. The two sides run at once.
_HASH_SETTINGS = {"enable_sort": "off", "jit": "off", "max_parallel_workers_per_gather": "0"}


@contextmanager
def _planner(conn: psycopg.Connection) -> Iterator[None]:
    """Planner settings for one statement, inside the caller's transaction (set_config
    local to it, then the previous values put back)."""
    saved = {}
    for name, value in _HASH_SETTINGS.items():
        row = conn.execute("SELECT current_setting(%s), set_config(%s, %s, true)",
                           (name, name, value)).fetchone()
        assert row is not None
        saved[name] = row[0]
    yield  # after an error the transaction is aborted: nothing to put back
    for name, value in saved.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def _key(values: Sequence[str | None]) -> Key:
    if any(v is None for v in values):
        raise SourceError("a key column is NULL in a row to reconcile",
                          hint="reconcile by NOT NULL unique columns (set key = [...])")
    return tuple(values)  # type: ignore[arg-type]


def reconcile(source: Side, target: Side, threshold: int = 1000,
              max_parts: int = 1024) -> Diff:
    """The exact difference between ``source`` and ``target`` (see the module text)."""
    if threshold < 1 or max_parts < 2:
        raise ValueError("threshold must be at least 1, max_parts at least 2")
    diff = Diff()
    with Workers(2, "topoff-reconcile") as pool:  # interrupted with the command
        def both(on_source: Callable[[], object], on_target: Callable[[], object]
                 ) -> tuple[object, object]:
            a, b = pool.submit(on_source), pool.submit(on_target)
            return a.result(), b.result()

        root = KeyRange()
        sc, tc = both(lambda: source.count(root), lambda: target.count(root))
        assert isinstance(sc, int) and isinstance(tc, int)
        diff.source_rows = sc
        todo: list[tuple[KeyRange, int, int]] = [(root, sc, tc)]
        while todo:
            r, sc, tc = todo.pop()
            most = max(sc, tc)
            if most <= threshold:
                if most:
                    src, tgt = both(lambda r=r: source.rows(r),  # type: ignore[misc]
                                    lambda r=r: target.rows(r))  # type: ignore[misc]
                    assert isinstance(src, dict) and isinstance(tgt, dict)
                    _compare(src, tgt, diff)
                continue
            # parts of 4/5 of the threshold: a few rows more on the other side still
            # leave a differing part small enough to compare row by row
            parts = min(max_parts, max(2, -(-most // max(threshold * 4 // 5, 1))))
            cutter = source if sc >= tc else target
            bounds = cutter.bounds(r, most, parts)
            if not bounds:
                raise RuntimeError("no bounds in a range that counted rows (same snapshot)")
            hs, ht = both(lambda r=r, b=bounds: source.hashes(r, b),  # type: ignore[misc]
                          lambda r=r, b=bounds: target.hashes(r, b))  # type: ignore[misc]
            assert isinstance(hs, list) and isinstance(ht, list)
            diff.ranges += len(hs)
            for sub, a, b in zip(parts_of(r, bounds), hs, ht, strict=True):
                if (a if cutter is source else b)[0] >= most:  # a bound outside the range
                    raise RuntimeError(f"reconcile made no progress in {r}")
                if a != b:
                    todo.append((sub, a[0], b[0]))
    for keys in (diff.inserts, diff.updates, diff.deletes):
        keys.sort()
    return diff


def _compare(src: dict[Key, str], tgt: dict[Key, str], diff: Diff) -> None:
    diff.fetched += len(src) + len(tgt)
    for k, digest in src.items():
        other = tgt.get(k)
        if other is None:
            diff.inserts.append(k)
        elif other != digest:
            diff.updates.append(k)
    diff.deletes.extend(k for k in tgt if k not in src)
