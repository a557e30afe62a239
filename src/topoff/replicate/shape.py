"""The replicated table in the target: its definition from the source's catalog, its first
build (table, primary key, the source's plain indexes) and how it follows column changes.

* A new source column is added to the target; later rows fill it (earlier rows: NULL).
* A dropped source column is kept, nullable (rows written later hold NULL in it), or
  dropped too with ``drop_columns = true``.
* A type change: a snapshot table takes the new type (its rows are all replaced in the
  same transaction); an inserter or updater table's column is converted with a cast
  (``ALTER ... TYPE ... USING col::type``); when the cast fails, the refresh fails with a
  TargetError naming ``--resync``, and nothing is changed.

Keys and indexes follow the target's declared capabilities: where primary keys are made
by default (PostgreSQL), the first build creates the source's primary key (or the
configured key), an index on the cursor (unless the key or a source index starts with
it) and one plain index per plain source index (columns only). Unique source indexes
become plain indexes (a row deleted on the source stays in the replica until reconcile,
and its value may be reused by a new row).
Expression and partial indexes are skipped with a warning. DuckDB gets neither: its ART
indexes are rewritten whole at each checkpoint and forbid altering an indexed column;
merges match keys with a join, index or not.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import psycopg

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError, TargetError
from topoff.replicate.describe import TableInfo
from topoff.targets.base import TableDef, TableRef, Target

log = logging.getLogger("topoff")

_INDEX_Q = """
SELECT c.relname, am.amname, i.indexprs IS NOT NULL OR i.indpred IS NOT NULL,
       (SELECT array_agg(a.attname ORDER BY k.ord)
          FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = %s AND NOT i.indisprimary ORDER BY c.relname
"""


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]


def table_def(info: TableInfo, target: TableRef) -> TableDef:
    t = info.table
    ctype = next((c.type for c in info.columns if c.name == t.cursor), None)
    return TableDef(t.qualified, target, t.method, list(info.columns), list(info.key),
                    t.cursor, ctype, t.cursor_timezone or "", (t.schema, t.name))


def source_indexes(conn: psycopg.Connection, info: TableInfo) -> list[Index]:
    """The source table's plain b-tree indexes over replicated columns (catalog only)."""
    if info.relkind not in ("r", "p", "m"):
        return []
    kept = {c.name for c in info.columns}
    out = []
    for name, am, special, cols in conn.execute(_INDEX_Q, (info.oid,)).fetchall():
        where = f"{info.table.qualified}: index {name}"
        if special or not cols:
            log.warning("%s is an expression or partial index: not created in the replica",
                        where)
        elif am != "btree":
            log.warning("%s is a %s index: not created in the replica", where, am)
        elif not set(cols) <= kept:
            log.info("%s covers a column that is not replicated: not created", where)
        else:
            out.append(Index(name, tuple(cols)))
    return out


def build_keys(engine: Target, table: TableDef, indexes: list[Index]) -> None:
    """Primary key, cursor index and the source's plain indexes, once the table holds its
    first rows (in the same transaction), where the target makes keys by default."""
    if not engine.capabilities.primary_keys:
        return
    # the key or a source index led by the cursor serves every cursor lookup: no second
    # index on it (each index costs every new row of every refresh an insert)
    led = table.cursor is not None and (table.primary_key[:1] == [table.cursor] or any(
        ix.columns[:1] == (table.cursor,) for ix in indexes))
    try:  # (a failure aborts the refresh's transaction: nothing of the table is kept)
        engine.create_keys(dataclasses.replace(table, cursor=None) if led else table, True)
    except Exception as e:
        if "duplicate" not in str(e).lower() and "unique" not in str(e).lower():
            raise
        raise ConfigError(f"{table.source}: its key ({', '.join(table.primary_key)}) is not "
                          "unique in the source's rows",
                          hint="set key = [...] to columns that identify a row") from None
    relation = engine.ident(table.target.schema, table.target.name)
    done = {tuple(table.primary_key), (table.cursor,) if table.cursor and not led else ()}
    for ix in indexes:
        if ix.columns in done:
            continue
        done.add(ix.columns)
        cols = ", ".join(engine.ident(c) for c in ix.columns)
        engine.execute(f"CREATE INDEX ON {relation} ({cols})")


def _key_words(key: list[str]) -> str:
    return f"({', '.join(key)})" if key else "none"


def same_key(stored: TableDef, current: TableDef) -> None:
    """The replica merges rows by the key it was built with: a key changed since (the
    source's primary key, or ``key`` in the config) is a TargetError naming --resync."""
    if list(stored.primary_key) == list(current.primary_key):
        return
    raise TargetError(
        f"{current.source}: its key changed from {_key_words(stored.primary_key)} to "
        f"{_key_words(current.primary_key)}, and the replica matches rows by the key it was "
        "built with; nothing was changed",
        hint=f"rebuild the table: topoff replicate --resync {current.source}")


def follow_columns(engine: Target, stored: TableDef, current: TableDef,
                   drop: bool, replaced_whole: bool) -> tuple[TableDef, list[str]]:
    """Change the target table to hold ``current``'s columns; return the definition to
    store (``current`` plus the kept columns of ``stored``) and what changed, in words.
    A key that changed is followed where the target makes no key index (merges join on
    the key), else refused first (:func:`same_key`)."""
    notes: list[str] = []
    if engine.capabilities.primary_keys:
        same_key(stored, current)
    elif list(stored.primary_key) != list(current.primary_key):
        notes.append(f"key is now {_key_words(current.primary_key)}")
    old = {c.name: c for c in stored.columns}
    now = {c.name for c in current.columns}
    columns: list[Column] = []
    for c in current.columns:
        before = old.get(c.name)
        if before is None:
            engine.add_column(stored, c)
            notes.append(f"added column {c.name}")
        elif before.type != c.type or (before.enum or None) != (c.enum or None):
            try:
                engine.change_column_type(stored, c, keep_values=not replaced_whole)
            except Exception as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise TargetError(
                    f"{current.source}: column {c.name} changed type from {before.type} to "
                    f"{c.type} and its values cannot be converted in the replica ({first})",
                    hint=f"rebuild the table: topoff replicate --resync "
                    f"{current.source}") from None
            notes.append(f"column {c.name} is now {c.type}")
        columns.append(c)
    for c in stored.columns:
        if c.name in now:
            continue
        if drop:
            engine.drop_column(stored, c.name)
            notes.append(f"dropped column {c.name}")
        else:
            columns.append(Column(c.name, c.type, True, c.enum))
            if c.nullable is False:
                notes.append(f"kept column {c.name}, dropped on the source")
    result = TableDef(current.source, current.target, current.method, columns,
                      list(current.primary_key), current.cursor, current.cursor_type,
                      current.cursor_timezone, current.source_parts)
    return result, notes
