"""Which tables a source database has, and how each one could be exported.

Used when there is no configuration yet: ``topoff init`` writes one from what is found
here, and ``topoff export full`` without ``--config`` exports everything found. Only
catalog SELECTs run, inside the caller's read-only transaction.

Tables are the plain and partitioned tables of every schema that is not a system schema
(``pg_*``, ``information_schema``), except partitions and inheritance children (their parent
is exported, and a query of the parent shows their rows), tables that belong to an
extension, and on a standby unlogged tables (it holds none of their rows). Views,
materialized views and foreign tables are listed apart: they are exported only when a
configuration names them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import psycopg

from topoff.config import TableConfig
from topoff.errors import ConfigError
from topoff.pgtypes import is_time_cursor
from topoff.sources.pg_domains import VALUE_TYPE
from topoff.sources.pg_keys import folding_columns

_SCHEMAS_Q = """
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname
"""
_RELATIONS_Q = """
SELECT c.oid, n.nspname, c.relname, c.relkind,
       CASE WHEN c.relkind = 'p' THEN
            (SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0) FROM pg_partition_tree(c.oid) pt
             JOIN pg_class pc ON pc.oid = pt.relid WHERE pt.isleaf)
            ELSE c.reltuples END,
       has_table_privilege(c.oid, 'SELECT'), c.relpersistence = 'u' AND pg_is_in_recovery()
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY(%(schemas)s)
  AND (%(all)s OR (NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                       AND d.objid = c.oid AND d.deptype = 'e')))
ORDER BY n.nspname, c.relname
"""
_COLUMNS_Q = """
SELECT a.attrelid, a.attname,
       format_type(v.typid, v.typmod)
FROM pg_attribute a """ + VALUE_TYPE + """
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_PK_Q = """
SELECT i.indrelid, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = ANY(%s) AND i.indisprimary
  -- an inheritance parent's key does not hold over its children's rows (a partitioned
  -- table's does)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhparent
                  WHERE h.inhparent = i.indrelid AND c.relkind = 'r')
GROUP BY i.indrelid
"""
# The column each valid index starts with (0: an expression), as the cursor index check does.
_LEADING_Q = """
SELECT DISTINCT i.indrelid, a.attname
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = ANY(%s) AND i.indisvalid
"""

KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view",
         "f": "foreign table"}

#: names of cursor columns that are set again when a row changes (upsert by them)
_UPDATED = re.compile(r"updat|modif|chang|edit|mtime", re.I)
#: names of cursor columns that say when a row was made (preferred for append)
_CREATED = re.compile(r"creat|insert|added|sent|logged|timestamp|time$|^ts$|_at$|date", re.I)


@dataclass
class FoundTable:
    """A source table as the catalog describes it."""

    schema: str
    name: str
    relkind: str
    est_rows: float  # pg_class.reltuples: -1 when never analyzed (PostgreSQL 14+)
    readable: bool  # the role may SELECT it
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, type), table order
    primary_key: list[str] = field(default_factory=list)
    indexed: set[str] = field(default_factory=set)  # columns that lead a valid index
    unlogged: bool = False  # an unlogged table read on a standby: none of its rows are there
    #: columns that compare text folded (citext, a nondeterministic collation: pg_keys.py)
    folding: set[str] = field(default_factory=set)
    #: each column's type as the source names it, when that is not ``columns``' (MariaDB)
    natives: dict[str, str] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def is_table(self) -> bool:
        return self.relkind in ("r", "p")

    def time_cursors(self) -> list[str]:
        """Indexed timestamp/date columns, in table order."""
        return [n for n, t in self.columns if n in self.indexed and is_time_cursor(t)]


@dataclass(frozen=True)
class Suggestion:
    method: str
    cursor: str | None
    reason: str


def suggest(t: FoundTable) -> Suggestion:
    """A method and cursor for a table, from its keys and indexes (see docs/configuration.md)."""
    cursors = t.time_cursors()
    updated = [c for c in cursors if _UPDATED.search(c)]
    folds = sorted(t.folding & set(t.primary_key))
    if updated and t.primary_key and not folds:
        return Suggestion("upsert", updated[0],
                          f"rows change: {updated[0]} looks like an updated-at column, indexed, "
                          "and there is a primary key (check that every update sets it)")
    created = [c for c in cursors if c not in updated]
    if created:
        best = next((c for c in created if _CREATED.search(c)), created[0])
        return Suggestion("append", best,
                          f"{best} is an indexed timestamp: new rows are found by it")
    if updated and folds:
        return Suggestion("snapshot", None, f"{updated[0]} looks like an updated-at column but "
                          f"the primary key's {folds[0]} compares case-insensitively (a "
                          "replica would keep both spellings of a key)")
    if updated:
        return Suggestion("snapshot", None, f"{updated[0]} looks like an updated-at column but "
                          "there is no primary key to apply changes by")
    return Suggestion("snapshot", None, "no indexed timestamp or date column")


def schemas(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(_SCHEMAS_Q).fetchall()]


def discover(conn: psycopg.Connection, only: list[str] | None = None,
             include_all: bool = False) -> list[FoundTable]:
    """Every table (and view) of the non-system schemas, or of ``only``; ``include_all``
    adds partitions and extensions' tables (to check a configuration that names them)."""
    available = schemas(conn)
    for s in only or []:
        if s not in available:
            close = difflib.get_close_matches(s, available, n=1)
            raise ConfigError(f"schema {s!r} does not exist on the source"
                              + (f" (did you mean {close[0]!r}?)" if close else ""),
                              hint=f"schemas: {', '.join(available) or '(none)'}")
    (saved,) = conn.execute("SELECT current_setting('search_path')").fetchone()  # type: ignore[misc]
    # With only pg_catalog on the path, format_type() qualifies every type of another schema.
    conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")
    try:
        by_oid = {}
        for oid, schema, name, relkind, est, readable, unlogged in conn.execute(
                _RELATIONS_Q, {"schemas": list(only) if only else available,
                               "all": include_all}).fetchall():
            by_oid[oid] = FoundTable(schema, name, relkind, float(est or 0), bool(readable),
                                     unlogged=bool(unlogged))
        oids = list(by_oid)
        for oid, col, typ in conn.execute(_COLUMNS_Q, (oids,)).fetchall():
            by_oid[oid].columns.append((col, typ))
        for oid, pk in conn.execute(_PK_Q, (oids,)).fetchall():
            by_oid[oid].primary_key = list(pk)
        for oid, col in conn.execute(_LEADING_Q, (oids,)).fetchall():
            by_oid[oid].indexed.add(col)
        for oid, cols in folding_columns(conn, oids).items():
            by_oid[oid].folding = cols
    finally:
        conn.execute("SELECT set_config('search_path', %s, true)", (saved,))
    return list(by_oid.values())


def export_everything(found: list[FoundTable]) -> tuple[TableConfig, ...]:
    """Every readable table with every column, each with its suggested method (no config)."""
    out = []
    for t in found:
        if not t.is_table or not t.readable or not t.columns or t.unlogged:
            continue
        s = suggest(t)
        out.append(TableConfig(schema=t.schema, name=t.name, method=s.method, cursor=s.cursor))
    return tuple(out)
