"""What the source says about the configured tables, read inside the export's snapshot.

Checks the configuration against the catalog (unknown tables and columns are errors,
unclassified columns are errors under ``--strict``) and produces the pre-data (types and
tables) and post-data (keys, indexes, foreign keys) statements of a full export. Only
catalog SELECTs run here: no DDL, no temp objects, nothing a SELECT-only role cannot do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from topoff.config import Config, TableConfig
from topoff.dataset.manifest import Column
from topoff.errors import ConfigError
from topoff.pgtypes import is_time_cursor
from topoff.safety import unreadable_relation
from topoff.sources.base import SourceTable
from topoff.sources.configured import check_names, check_types, exported_columns, near
from topoff.sources.pg_domains import VALUE_TYPE
from topoff.sources.pg_keys import HINT as KEY_HINT
from topoff.sources.pg_keys import folding_key
from topoff.sources.types import TypeDef, TypeWalker, merge

log = logging.getLogger("topoff")
PAGE = 8192  # bytes per page (block_size), as pg_relation_size / block_size counts them


@dataclass
class PgTable(SourceTable):
    """A table of a PostgreSQL source, with what only the PostgreSQL source needs."""

    oid: int = 0
    relkind: str = "r"
    pages: int = 0
    #: attnums of the columns that are not exported (indexes on them are left out)
    private_attnums: set[int] = field(default_factory=set)
    attnums: dict[str, int] = field(default_factory=dict)
    #: how pre-data declares each exported column (domains kept, user types quoted)
    declared_types: dict[str, str] = field(default_factory=dict)
    #: the user types (and extensions) the exported columns need, dependencies first
    types: list[TypeDef] = field(default_factory=list)

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.config.schema, self.config.name)


_TABLE_Q = """
SELECT c.oid, c.relkind, pg_relation_size(c.oid) / current_setting('block_size')::int,
       c.reltuples, c.relpersistence, c.relispopulated, pg_is_in_recovery(),
       c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
_COLUMNS_Q = """
SELECT a.attnum, a.attname,
       format_type(v.typid, v.typmod)
       -- format_type() prints integer[][] as integer[]: the declared dimensions say more
       || repeat('[]', greatest(a.attndims - 1, 0)),
       NOT a.attnotnull,
       (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
         WHERE e.enumtypid = CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END),
       a.atttypid, a.atttypmod, a.attndims
FROM pg_attribute a """ + VALUE_TYPE + """
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PK_Q = """
SELECT array_agg(a.attname ORDER BY k.ord)
FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary
"""
_INDEX_Q = """
SELECT i.indexrelid, pg_get_indexdef(i.indexrelid), i.indkey::int2[],
       con.conname, pg_get_constraintdef(con.oid), i.indisvalid, i.indisunique,
       ARRAY(SELECT d.refobjsubid FROM pg_depend d
             WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
               AND d.refobjid = i.indrelid AND d.refobjsubid > 0)::int2[]
FROM pg_index i
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
     AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = %s
ORDER BY i.indisprimary DESC, con.conname NULLS LAST, i.indexrelid
"""
_FK_Q = """
SELECT con.conname, pg_get_constraintdef(con.oid), con.confrelid, con.conkey, con.confkey
FROM pg_constraint con WHERE con.conrelid = %s AND con.contype = 'f' ORDER BY con.conname
"""


def introspect(conn: psycopg.Connection, config: Config) -> list[PgTable]:
    """Read and check every configured table; raises ConfigError on a mismatch."""
    if not config.tables:
        raise ConfigError("no tables are configured",
                          hint="list the tables to export under [tables.<name>] in the config "
                          "file (see docs/configuration.md)")
    (saved_path,) = conn.execute("SELECT current_setting('search_path')").fetchone()  # type: ignore[misc]
    # With only pg_catalog on the path, format_type() and pg_get_*def() qualify every name.
    conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")
    try:
        walker = TypeWalker(conn)
        tables = [_one_table(conn, walker, t, config.strict) for t in config.tables]
        by_oid = {t.oid: t for t in tables}
        _no_rows_twice(conn, by_oid)
        for t in tables:
            t.foreign_keys.extend(_foreign_keys(conn, t, by_oid))
    finally:  # (a failed transaction forgets the local setting, and refuses this)
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            conn.execute("SELECT set_config('search_path', %s, true)", (saved_path,))
    for t in tables:
        if t.config.filter:
            _check_filter(conn, t)
    return tables


# Every configured relation with each of its inheritance ancestors (partitioned or not).
_ANCESTORS_Q = """
WITH RECURSIVE up(child, parent) AS (
    SELECT inhrelid, inhparent FROM pg_inherits WHERE inhrelid = ANY(%s)
    UNION SELECT up.child, i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.parent)
SELECT child, parent FROM up ORDER BY child, parent
"""


def _no_rows_twice(conn: psycopg.Connection, by_oid: dict[int, PgTable]) -> None:
    """A table whose parent (any depth) is configured too is a ConfigError: a query of the
    parent shows the child's rows, so they would be exported in both tables."""
    for child, parent in conn.execute(_ANCESTORS_Q, (list(by_oid),)).fetchall():
        if parent in by_oid:
            c, p = by_oid[child].config, by_oid[parent].config
            raise ConfigError(
                f"{c.qualified} is a partition or inheritance child of {p.qualified}, and both "
                f"are configured: its rows would be exported twice",
                hint=f"remove [tables.{c.name}] ({p.qualified} holds its rows) or "
                     f"[tables.{p.name}]")


def _one_table(conn: psycopg.Connection, walker: TypeWalker, tc: TableConfig,
               strict: bool) -> PgTable:
    row = conn.execute(_TABLE_Q, (tc.schema, tc.name)).fetchone()
    if row is None:
        names = [f"{s}.{n}" for s, n in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE c.relkind IN ('r','p','v','m','f') AND n.nspname NOT IN "
            "('pg_catalog', 'information_schema')").fetchall()]
        raise ConfigError(f"table {tc.qualified} does not exist on the source"
                          f"{near(tc.qualified, names)}",
                          hint=f"fix [tables.{tc.name}] in the config, or check --source")
    oid, relkind, pages, est_rows, persistence, populated, in_recovery, parent = row
    unreadable = unreadable_relation(tc.qualified, relkind, persistence, populated, in_recovery)
    if unreadable is not None:
        raise unreadable
    cols = conn.execute(_COLUMNS_Q, (oid,)).fetchall()
    names = [c[1] for c in cols]
    exported = set(exported_columns(tc, names, strict))
    check_names(tc, [n for n in names if n in exported])
    check_types(tc, [(c[1], c[2]) for c in cols if c[1] in exported])
    private = tc.private_columns()
    columns = [Column(name, typ, bool(nullable), list(labels) if labels else None, native=typ)
               for _attnum, name, typ, nullable, labels, *_ in cols if name in exported]
    attnums = {name: attnum for attnum, name, *_ in cols}
    (pk,) = conn.execute(_PK_Q, (oid,)).fetchone()  # type: ignore[misc]
    if parent and pk and not tc.key:
        # an inheritance parent's key constrains its own rows, not its children's, which
        # its rows include: the same key may be there twice (a partitioned table's holds)
        log.warning("%s: its primary key does not hold over its inheritance children's rows "
                    "and is left out of the dataset (set key = [...] under [tables.%s] if "
                    "the rows are unique)", tc.qualified, tc.name)
        pk = None
    key = list(tc.key) if tc.key else list(pk or [])
    for k in key:
        if k in private:
            raise ConfigError(f"key column {k} of {tc.qualified} is marked private",
                              hint="key columns are published; make it public or set `key`")
    # a key the config names is the user's word that its values are never respelled
    folding = folding_key(conn, oid, key) if tc.method == "upsert" and not tc.key else None
    if folding:  # a replica's upsert compares text: both spellings would stay
        raise ConfigError(f"[tables.{tc.name}] {tc.qualified}: {folding}; a key respelled "
                          "on the source would stay in every replica beside the new one",
                          hint=KEY_HINT)
    if tc.method == "upsert" and not key:
        raise ConfigError(f"{tc.qualified} uses method upsert but has no primary key",
                          hint=f"set key = [\"<unique column>\"] under [tables.{tc.name}]")
    cursor_type = None
    if tc.cursor:
        cursor_type = next(c.type for c in columns if c.name == tc.cursor)
        if not is_time_cursor(cursor_type):
            raise ConfigError(
                f"cursor column {tc.cursor} of {tc.qualified} has type {cursor_type}",
                hint="a cursor must be a timestamp, timestamp with time zone or date column")
    table = PgTable(
        config=tc, oid=oid, relkind=relkind, columns=columns, source_columns=names,
        primary_key=key, cursor_type=cursor_type, pages=int(pages or 0),
        size=int(pages or 0) * PAGE, est_rows=max(float(est_rows or 0), 0.0),
        private_attnums={attnums[p] for p in private}, attnums=attnums,
    )
    published = [c for c in cols if c[1] not in private]
    table.declared_types = {name: walker.ref(typid, typmod, ndims)
                            for _, name, _, _, _, typid, typmod, ndims in published}
    table.types = merge([walker.needs(c[5]) for c in published])
    has_cursor_index = _indexes(conn, table, unique=not parent)
    if tc.cursor and not has_cursor_index and relkind in ("r", "p", "m"):
        log.warning("%s: no index starts with cursor column %s; every incremental export scans "
                    "the whole table (create one on the primary: CREATE INDEX ON %s (%s))",
                    tc.qualified, *[x.as_string(conn) for x in (
                        sql.Identifier(tc.cursor), table.ident, sql.Identifier(tc.cursor))])
    return table


def _indexes(conn: psycopg.Connection, t: PgTable, unique: bool = True) -> bool:
    """Fill t.post_data with keys and indexes; return whether one starts with the cursor.
    ``unique`` false (an inheritance parent): its keys, unique indexes and exclusion
    constraints are left out, as they do not hold over the rows the dataset holds."""
    cursor_attnum = t.attnums.get(t.config.cursor or "", -1)
    has_cursor_index = False
    for _oid, indexdef, indkey, conname, condef, valid, is_unique, deps in conn.execute(
            _INDEX_Q, (t.oid,)).fetchall():
        if indkey and indkey[0] == cursor_attnum and valid:
            has_cursor_index = True
        used = set(indkey or []) | set(deps or [])
        if used & t.private_attnums or not valid or (not unique and (is_unique or conname)):
            continue
        if conname:
            t.post_data.append(
                sql.SQL("ALTER TABLE ONLY {} ADD CONSTRAINT {} {};").format(
                    t.ident, sql.Identifier(conname), sql.SQL(condef)).as_string(conn))
        else:
            t.post_data.append(indexdef + ";")
    return has_cursor_index


def _foreign_keys(conn: psycopg.Connection, t: PgTable,
                  by_oid: dict[int, PgTable]) -> list[str]:
    out = []
    for conname, condef, confrelid, conkey, confkey in conn.execute(_FK_Q, (t.oid,)).fetchall():
        ref = by_oid.get(confrelid)
        if ref is None or set(conkey) & t.private_attnums or set(confkey) & ref.private_attnums:
            continue  # the referenced table or a column is not in the dataset
        if t.config.filter or ref.config.filter:
            continue  # filtered rows could leave dangling references
        out.append(sql.SQL("ALTER TABLE ONLY {} ADD CONSTRAINT {} {};").format(
            t.ident, sql.Identifier(conname), sql.SQL(condef)).as_string(conn))
    return out


def _check_filter(conn: psycopg.Connection, t: PgTable) -> None:
    assert t.config.filter
    try:
        with conn.transaction():  # a savepoint: a bad filter must not end the export snapshot
            conn.execute(sql.SQL("SELECT 1 FROM {} WHERE ({}) LIMIT 0").format(
                t.ident, sql.SQL(t.config.filter)))
    except psycopg.Error as e:
        raise ConfigError(f"filter of {t.qualified} is not valid: {str(e).splitlines()[0]}",
                          hint=f"fix `filter` under [tables.{t.config.name}]; it is an SQL "
                          "condition over the table's columns, naming other tables, "
                          "functions and types with their schema (search_path is pg_catalog)"
                          ) from None


def pre_data_sql(tables: list[PgTable]) -> str:
    """CREATE SCHEMA/EXTENSION/TYPE/DOMAIN/TABLE for the exported columns, in dependency
    order; no column defaults, no sequences."""
    types = merge([t.types for t in tables])
    lines = ["-- pre-data: schemas, types and tables, written by topoff",
             "SET client_encoding = 'UTF8';", ""]
    schemas = {t.config.schema for t in tables} | {d.schema for d in types if d.schema}
    for schema in sorted(schemas):
        lines.append(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)};")
    lines.append("")
    lines.extend(d.statement for d in types)
    lines.append("")
    for t in tables:
        cols = [f"    {_ident(c.name)} {t.declared_types.get(c.name, c.type)}"
                f"{'' if c.nullable else ' NOT NULL'}" for c in t.columns]
        lines.append(f"CREATE TABLE {_ident(t.config.schema, t.config.name)} (\n"
                     + ",\n".join(cols) + "\n);\n")
    return "\n".join(lines)


def post_data_sql(tables: list[PgTable]) -> str:
    """Keys and indexes of every table, then the foreign keys between exported tables, then
    the NOT VALID constraints of domains the tables use."""
    lines = ["-- post-data: primary keys, unique constraints, indexes, foreign keys",
             "SET client_encoding = 'UTF8';", ""]
    lines.extend(s for t in tables for s in t.post_data)
    lines.extend(s for t in tables for s in t.foreign_keys)
    lines.extend(s for d in merge([t.types for t in tables]) for s in d.post_data)
    return "\n".join(lines) + "\n"


def _ident(*names: str) -> str:
    return sql.Identifier(*names).as_string()
