"""A table of a DuckDB replica as one side of a reconciliation (see reconcile.py).

The DuckDB side computes what :class:`~topoff.replicate.reconcile.PostgresSide` computes on
the source with the ``duckdb`` profile of :mod:`topoff.canonical`: the same count and sum
of row hashes per key range, the same md5 per row, and each key as PostgreSQL's output
text of the key column, so that keys from either side are one identity and a split key
from either side bounds the same rows on both.

* Row values are hashed from the columns as the replica stores them (``stored``: widened
  columns as PostgreSQL's text), exactly as ``verify`` does.
* A key bound is PostgreSQL's text; for a ``native`` key column it is read by the DuckDB
  target's own load expression (BC dates, ``\\x`` bytea), so it compares as the column's
  type; ``collate`` and ``text`` columns compare as bytes (DuckDB's only string order,
  PostgreSQL's ``COLLATE "C"``). char(n) compares without its trailing blanks, as in
  PostgreSQL.
* A key is printed back as PostgreSQL prints it (``0044-03-15 BC``, ``...+00`` in UTC,
  ``\\x0a``), whatever DuckDB's session time zone.

Key columns of types whose text DuckDB cannot reproduce (float, interval, json, time,
arrays kept as lists) are refused with a TargetError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from topoff.canonical import duck_ident, duckdb_row_hash, duckdb_value
from topoff.dataset.manifest import Column
from topoff.errors import TargetError
from topoff.pgtypes import family
from topoff.replicate.reconcile import Key, KeyRange, _key, bucket_tree, key_modes
from topoff.targets.base import Target
from topoff.targets.duckdb.types import duckdb_type, load_expression

#: key kinds whose PostgreSQL text DuckDB can print back exactly
_KEY_KINDS = frozenset({"int", "numeric", "date", "timestamp", "timestamptz", "uuid", "bool",
                        "bytea", "text", "bpchar", "enum", "numeric_any", "other"})


def _bc(text: str) -> str:
    """DuckDB's ``0044-03-15 (BC) 10:00:00`` as PostgreSQL's ``0044-03-15 10:00:00 BC``."""
    return (f"CASE WHEN contains({text}, ' (BC)') THEN replace({text}, ' (BC)', '') || ' BC' "
            f"ELSE {text} END")


def duck_key_text(col: str, c: Column) -> str:
    """PostgreSQL's output text of a key value held by the DuckDB replica (column ``c`` as
    the replica stores it)."""
    if duckdb_type(c) == "VARCHAR":
        return col  # kept as PostgreSQL's text (text, char(n) padded, enum, widened...)
    kind = family(c.type, c.enum).kind
    if kind not in _KEY_KINDS:
        raise TargetError(f"key column {c.name} has type {c.type}, which cannot be "
                          "reconciled with a DuckDB replica",
                          hint="reconcile by other key columns (set key = [...]), or "
                          "replicate into PostgreSQL")
    if kind == "bytea":
        return f"'\\x' || lower(hex({col}))"
    if kind == "timestamptz":
        utc = f"CAST(timezone('UTC', {col}) AS VARCHAR)"
        return (f"CASE WHEN NOT isfinite({col}) THEN CAST({col} AS VARCHAR) "
                f"WHEN contains({utc}, ' (BC)') THEN replace({utc}, ' (BC)', '') || '+00 BC' "
                f"ELSE {utc} || '+00' END")
    if kind in ("date", "timestamp"):
        return _bc(f"CAST({col} AS VARCHAR)")
    return f"CAST({col} AS VARCHAR)"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DuckDBSide:
    """A table of a DuckDB replica (``engine``, inside the caller's transaction).

    ``columns``: the compared columns as the replica stores them (``stored_columns``);
    ``modes``: the key columns' order modes, the same as the source side's
    (:func:`~topoff.replicate.reconcile.key_modes`)."""

    def __init__(self, engine: Target, relation: str, columns: Sequence[Column],
                 key: Sequence[str], modes: Mapping[str, str] | None = None) -> None:
        if not key:
            raise ValueError("reconciliation needs a key")
        by_name = {c.name: c for c in columns}
        missing = [k for k in key if k not in by_name]
        if missing:
            raise TargetError(f"key column {missing[0]} is not in the replica's table",
                              hint="resync the table, or set key = [...] to columns it has")
        self.engine, self.relation, self.columns = engine, relation, list(columns)
        self.key = list(key)
        self.modes = dict(modes) if modes is not None else key_modes(self.columns, self.key)
        self._cols = [by_name[k] for k in self.key]
        self._texts = [duck_key_text(duck_ident(k), c) for k, c in zip(self.key, self._cols,
                                                                        strict=True)]
        self._order = [self._ordered(i) for i in range(len(self.key))]

    def _ordered(self, i: int) -> str:
        c, mode = self._cols[i], self.modes[self.key[i]]
        ident = duck_ident(c.name)
        if mode == "native":
            return ident
        if mode == "collate" and family(c.type, c.enum).kind == "bpchar":
            return f"rtrim({ident}, ' ')"
        if mode == "collate":
            return ident
        return self._texts[i]

    def _bound(self, i: int, value: str) -> str:
        c = self._cols[i]
        if self.modes[self.key[i]] == "native":
            return load_expression(_literal(value), c)
        if self.modes[self.key[i]] == "collate" and family(c.type, c.enum).kind == "bpchar":
            return f"rtrim({_literal(value)}, ' ')"
        return _literal(value)

    def _compare(self, bound: Key, strict: bool, op: str) -> str:
        """Lexicographic ``key op bound`` (op ``>`` or ``<``; ``strict``: not equal)."""
        terms = []
        for i in range(len(self.key)):
            eqs = [f"{self._order[j]} = {self._bound(j, bound[j])}" for j in range(i)]
            terms.append(" AND ".join([*eqs, f"{self._order[i]} {op} "
                                       f"{self._bound(i, bound[i])}"]))
        if not strict:
            terms.append(" AND ".join(f"{self._order[j]} = {self._bound(j, bound[j])}"
                                      for j in range(len(self.key))))
        return "(" + " OR ".join(f"({t})" for t in terms) + ")"

    def _where(self, r: KeyRange) -> str:
        parts = ["true"]
        if r.lo is not None:
            parts.append(self._compare(r.lo, False, ">"))
        if r.hi is not None:
            parts.append(self._compare(r.hi, True, "<"))
        return " AND ".join(parts)

    def _no_null_keys(self) -> None:
        nulls = " OR ".join(f"{duck_ident(k)} IS NULL" for k in self.key)
        if self.engine.execute(f"SELECT EXISTS (SELECT 1 FROM {self.relation} "
                               f"WHERE {nulls})")[0][0]:
            raise TargetError(f"a key column is NULL in a row of {self.relation} in the "
                              "replica", hint="the replica was changed by hand; delete that "
                              "row or resync the table")

    def count(self, r: KeyRange) -> int:
        if r.lo is None and r.hi is None:
            self._no_null_keys()
        return int(self.engine.execute(f"SELECT count(*) FROM {self.relation} "
                                       f"WHERE {self._where(r)}")[0][0])

    def hash(self, r: KeyRange) -> tuple[int, str]:
        if r.lo is None and r.hi is None:
            self._no_null_keys()
        row = self.engine.execute(f"SELECT {duckdb_row_hash(self.columns)} FROM "
                                  f"{self.relation} WHERE {self._where(r)}")[0]
        return int(row[0]), str(row[1])

    def _key_select(self) -> str:
        return ", ".join(self._texts)

    def bounds(self, r: KeyRange, count: int, parts: int) -> list[Key]:
        step = max(-(-count // parts), 1)
        names = ", ".join(f"k{i}" for i in range(len(self.key)))
        texts = ", ".join(f"{t} AS k{i}" for i, t in enumerate(self._texts))
        rows = self.engine.execute(
            f"SELECT {names} FROM (SELECT {texts}, row_number() OVER (ORDER BY "
            f"{', '.join(self._order)}) AS topoff_rn FROM {self.relation} WHERE "
            f"{self._where(r)}) WHERE (topoff_rn - 1) % {step} = 0 AND topoff_rn > 1 "
            f"AND topoff_rn <= {int(count)} "
            "ORDER BY topoff_rn")
        return [_key(row) for row in rows]

    def hashes(self, r: KeyRange, bounds: Sequence[Key]) -> list[tuple[int, str]]:
        part = bucket_tree(bounds, lambda b: self._compare(b, True, "<"))
        out = [(0, "0")] * (len(bounds) + 1)
        for i, c, h in self.engine.execute(
                f"SELECT {part} AS topoff_part, {duckdb_row_hash(self.columns)} FROM "
                f"{self.relation} WHERE {self._where(r)} GROUP BY 1"):
            out[int(i)] = (int(c), str(h))
        return out

    def rows(self, r: KeyRange) -> dict[Key, str]:
        parts = [f"coalesce({duckdb_value(duck_ident(c.name), family(c.type, c.enum))}, "
                 "chr(30))" for c in self.columns]
        digest = f"md5(concat_ws(chr(31), {', '.join(parts)}))"
        n = len(self.key)
        out: dict[Key, str] = {}
        for row in self.engine.execute(f"SELECT {self._key_select()}, {digest} FROM "
                                       f"{self.relation} WHERE {self._where(r)}"):
            out[_key(row[:n])] = row[n]
        return out
