"""The one merge: how staged rows replace rows of a replica table, for every target and
every caller (``sync`` staging dataset files, ``replicate`` staging a row stream).

A caller stages rows (``Target.stage_files`` or ``Target.stage_rows``: a temporary table
the engine fills), then calls :func:`merge` inside its own transaction. The sequence is
the same on every engine:

* ``initial``: insert (into a table the caller just made; nothing to replace);
* ``snapshot``: delete every row, insert;
* ``append``: delete the rows whose cursor falls in the window, delete the rows whose key
  a staged row has (a row that moved from another window), insert;
* ``upsert``: delete the rows whose key a staged row has, insert;
* ``delete-keys``: delete the rows whose key a staged row has, insert nothing (reconcile);
* ``upsert-unique``: as ``upsert``, for a caller that knows the staged rows hold each key
  once and the table has its key as a unique index (``replicate`` into PostgreSQL, whose
  tables get their primary key): where the engine makes primary keys, one
  ``INSERT ... ON CONFLICT (key) DO UPDATE`` that rewrites only the rows whose values
  changed (a row read again, unchanged, costs an index probe, not a delete and an insert);
  elsewhere (DuckDB) the same as ``upsert``.

Statements are built here from parsed parts only: names through the engine's ``ident``,
values through its ``literal`` (bound, quoted by the driver's rules), cast to types named
by constants. Nothing of a dataset is run as SQL text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import date, datetime

from topoff.dataset.bounds import Bounds
from topoff.dataset.manifest import Column
from topoff.pgtypes import TypeNameError, family, parse_type
from topoff.targets.base import TableDef, Target

MODES = ("initial", "snapshot", "append", "upsert", "delete-keys", "upsert-unique")
#: modes that read the staged rows twice (once to delete by key, once to insert)
_BY_KEY = ("append", "upsert", "delete-keys", "upsert-unique")


def cursor_literal(engine: Target, table: TableDef, value: datetime | date) -> str:
    """A cursor value as a literal of the cursor's type (``CAST('...' AS timestamptz)``)."""
    kind = family(table.cursor_type or "").kind
    cast = {"timestamptz": "timestamptz", "timestamp": "timestamp"}.get(kind, "date")
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return f"CAST({engine.literal(text)} AS {cast})"


def since_condition(engine: Target, table: TableDef, since: datetime | date,
                    alias: str = "") -> str:
    assert table.cursor
    return f"{alias}{engine.ident(table.cursor)} >= {cursor_literal(engine, table, since)}"


def window_condition(engine: Target, table: TableDef, b: Bounds) -> str:
    """The rows whose cursor falls in ``b`` (``lo <= cursor < hi``)."""
    assert table.cursor
    c = engine.ident(table.cursor)
    return (f"{c} >= {cursor_literal(engine, table, b.lo)} AND "
            f"{c} < {cursor_literal(engine, table, b.hi)}")


def reads_twice(table: TableDef, mode: str) -> bool:
    """Whether :func:`merge` reads the staged rows twice (so they must be a table, not a
    query over files read once)."""
    return bool(table.primary_key) and mode in _BY_KEY


def clear(engine: Target, table: TableDef, mode: str, window: Bounds | None) -> None:
    """The deletes that come before the new rows: every row (snapshot), or the window's
    (append). Also the first half of an engine's in-place load."""
    relation = engine.ident(table.target.schema, table.target.name)
    if mode == "snapshot":
        engine.execute(f"DELETE FROM {relation}")
    elif mode == "append" and window is not None:
        engine.execute(f"DELETE FROM {relation} WHERE {window_condition(engine, table, window)}")


def delete_keys(engine: Target, table: TableDef, source: str) -> int:
    """Delete the rows of ``table`` whose primary key a row of ``source`` (a relation, or a
    parenthesised query) holds; returns how many. A hash join: an index is not needed."""
    if not table.primary_key:
        raise ValueError(f"{table.source} has no primary key to match rows on")
    relation = engine.ident(table.target.schema, table.target.name)
    types = {c.name: c.type for c in table.columns}
    match = " AND ".join(_key_equal(engine, types.get(k, ""), f"t.{engine.ident(k)}",
                                    f"s.{engine.ident(k)}") for k in table.primary_key)
    return engine.run_count(f"DELETE FROM {relation} AS t USING {source} AS s WHERE {match}")


def _key_equal(engine: Target, pg_type: str, mine: str, theirs: str) -> str:
    """Whether two values of a key column are the same key. An unconstrained numeric is
    kept as PostgreSQL's text where the engine has no such type (DuckDB), and equal
    numbers may be written otherwise (2 and 2.00): compared without the trailing zeros of
    their fraction, as the source compares them (its text never has an exponent)."""
    if engine.capabilities.native_types or family(pg_type).kind != "numeric_any":
        return f"{mine} = {theirs}"
    return f"{_numeric_text(mine)} = {_numeric_text(theirs)}"


def _numeric_text(value: str) -> str:
    v = f"CAST({value} AS VARCHAR)"  # a replica made before kept a double: its shortest text
    trimmed = (f"(CASE WHEN contains({v}, '.') AND NOT contains(lower({v}), 'e') "
               f"THEN rtrim(rtrim({v}, '0'), '.') ELSE {v} END)")
    return f"(CASE WHEN {trimmed} = '-0' THEN '0' ELSE {trimmed} END)"


def merge(engine: Target, table: TableDef, columns: Sequence[Column], stage: str,
          mode: str, window: Bounds | None = None,
          since: datetime | date | None = None) -> int:
    """Put the staged rows into ``table`` as ``mode`` says, in the caller's transaction.

    ``stage``: the staged relation as SQL (a quoted table name, or a parenthesised query
    when :func:`reads_twice` is false). ``since``: only staged rows whose cursor is at
    least this (partial replicas). Returns the rows inserted (deleted, for
    ``delete-keys``)."""
    if mode not in MODES:
        raise ValueError(f"unknown merge mode {mode!r}")
    relation = engine.ident(table.target.schema, table.target.name)
    names = ", ".join(engine.ident(c.name) for c in columns)
    if mode == "upsert-unique" and table.primary_key and engine.capabilities.primary_keys \
            and since is None:
        return _on_conflict(engine, table, columns, stage)
    source = f"SELECT {names} FROM {stage} AS s"
    if since is not None and table.cursor:
        source += f" WHERE {since_condition(engine, table, since, 's.')}"
    clear(engine, table, mode, window)
    if table.primary_key and mode in _BY_KEY:
        # rows of the partition replace those with the same key (updated rows, or rows
        # that moved between windows), with or without a key index on the replica
        deleted = delete_keys(engine, table, f"({source})")
        if mode == "delete-keys":
            return deleted
    elif mode == "delete-keys":
        raise ValueError(f"{table.source} has no primary key to delete rows by")
    return engine.run_count(f"INSERT INTO {relation} ({names}) {source}")


#: types whose equality means the same text (not numeric: 1.0 = 1.00; not float: -0 = 0;
#: not interval: 1 day = 24 hours; not json/jsonb, ranges, inet...)
EXACT_EQUALITY = frozenset({"smallint", "integer", "bigint", "boolean", "text", "bytea",
                            "uuid", "date", "timestamp", "time", "character varying"})


def _as_compared(c: Column) -> str:
    """How ``_on_conflict`` compares column ``c``: as it is, or by its text."""
    if c.enum is None:
        with contextlib.suppress(TypeNameError):
            t = parse_type(c.type)
            if not t.user and not t.dims and t.base in EXACT_EQUALITY:
                return ""
    return "::text"


def _on_conflict(engine: Target, table: TableDef, columns: Sequence[Column],
                 stage: str) -> int:
    """``upsert-unique`` on an engine with key indexes: returns the staged rows (as
    ``upsert`` does), though only new and changed rows are written. Values compare by
    their text (types such as json have no equality; equal text is the same value), or
    as they are where equal values always have the same text (:data:`EXACT_EQUALITY`:
    no text to make for every row)."""
    relation = engine.ident(table.target.schema, table.target.name)
    names = [engine.ident(c.name) for c in columns]
    keys = set(table.primary_key)
    # a key column is set too where equal keys may differ in text (0 and -0, 2 and 2.00):
    # the row takes the source's key, not the one it held
    kept = [(c, n) for c, n in zip(columns, names, strict=True)
            if c.name not in keys or _as_compared(c)]
    conflict = ", ".join(engine.ident(k) for k in table.primary_key)
    if kept:
        sets = ", ".join(f"{n} = EXCLUDED.{n}" for _, n in kept)
        mine = ", ".join(f"t.{n}{_as_compared(c)}" for c, n in kept)
        theirs = ", ".join(f"EXCLUDED.{n}{_as_compared(c)}" for c, n in kept)
        action = (f"DO UPDATE SET {sets} WHERE ROW({mine}) IS DISTINCT FROM "
                  f"ROW({theirs})")
    else:
        action = "DO NOTHING"
    engine.execute(f"INSERT INTO {relation} AS t ({', '.join(names)}) "
                   f"SELECT {', '.join(names)} FROM {stage} AS s "
                   f"ON CONFLICT ({conflict}) {action}")
    return int(engine.execute(f"SELECT count(*) FROM {stage}")[0][0])
