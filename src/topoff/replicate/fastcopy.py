"""Rows straight into a target table, in PostgreSQL's binary COPY format where it is safe.

Between two PostgreSQL servers, ``COPY ... (FORMAT binary)`` spares both sides the text
form of every value (timestamps, numbers: formatted by the source, parsed again by the
target). It is used only where the binary form means the same on both sides:

* the target is PostgreSQL and each target column has exactly the source column's type;
* every replicated column's type is one of PostgreSQL's own (type OID below 16384: the
  same OID and the same binary form on every server of a version), or an array of one;
  a domain counts by its base type (through a domain over a domain), an array of a domain
  by its base element type. Enums, composite types and extensions' types (their
  OIDs differ from server to server, and arrays and records carry them) stay in CSV.

The same goes for the rows staged for a merge (:func:`stage`). Everything else, and
every DuckDB target, moves CSV (stream.py). The rows are counted from the COPY
messages, as in CSV.

A binary COPY carries no column types (an array's element type only): the target reads
each value with its column's own binary input. So the source's select list casts every
column to the type described (:func:`select_list`): where the type is the same the cast
is no work at all (the planner drops it); where a column's type changed on the source
between the description and the COPY, its values are converted exactly or the COPY
fails, never read as other bytes.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

import psycopg
from psycopg import sql

from topoff.dataset.manifest import Column
from topoff.pgtypes import TypeNameError, parse_type
from topoff.replicate import stream
from topoff.replicate.describe import TableInfo
from topoff.sources.pg_domains import VALUE_TYPE
from topoff.targets.base import TableDef, Target

_stages = itertools.count(1)

#: PostgreSQL's first OID for objects made after initdb (FirstNormalObjectId)
FIRST_USER_OID = 16384

#: each column's values' type (domains seen through, pg_domains.py), or its element type
_TYPES_Q = """
SELECT a.attname,
       coalesce(nullif(t.typelem, 0), t.oid)::bigint,
       coalesce(nullif(t.typelem, 0), t.oid) IN (SELECT oid FROM pg_type WHERE typtype = 'b')
FROM pg_attribute a """ + VALUE_TYPE + """
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
"""


def binary_ok(engine: Target, conn: psycopg.Connection, info: TableInfo,
              table: TableDef) -> bool:
    """Whether the rows of ``info`` may move into ``table`` in binary (see above)."""
    if engine.capabilities.name != "postgresql" or not hasattr(engine, "conn"):
        return False
    target = {c.name: c.type for c in table.columns}
    if any(target.get(c.name) != c.type for c in info.columns):
        return False
    try:  # a type pgtypes does not know stays in CSV: no cast to name it by
        [parse_type(c.type).ddl() for c in info.columns]
    except TypeNameError:
        return False
    names = {c.name for c in info.columns}
    for name, oid, base in conn.execute(_TYPES_Q, (info.oid,)).fetchall():
        if name in names and not (base and int(oid) < FIRST_USER_OID):
            return False
    return True


def select_list(columns: Sequence[Column], binary: bool) -> sql.Composable:
    """The columns for ``COPY (SELECT <this> ...)``: in binary, each cast to the type
    described (see above; :func:`binary_ok` checked every type has a name here)."""
    if not binary:
        return sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    return sql.SQL(", ").join(sql.SQL("{}::{} AS {}").format(
        sql.Identifier(c.name), sql.SQL(parse_type(c.type).ddl()), sql.Identifier(c.name))
        for c in columns)  # ddl(): pgtypes' constants and integers only


def copy_into(engine: Target, table: TableDef, columns: Sequence[Column],
              conn: psycopg.Connection, statements: Callable[[str], Iterable[sql.Composable]],
              counter: list[int], binary: bool) -> int:
    """The rows of ``statements(fmt)`` (COPY ... TO STDOUT in format ``fmt``) straight into
    ``table`` (created or cleared by the caller's transaction); the rows written."""
    if not binary:
        return engine.copy_csv(table, columns, stream.copy(conn, statements("csv"), counter))
    pg: psycopg.Connection = engine.conn  # type: ignore[attr-defined]
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    relation = sql.Identifier(table.target.schema, table.target.name)
    with pg.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
                relation, names)) as cp:
            for block in stream.copy(conn, statements("binary"), counter, binary=True):
                cp.write(block)
        return max(cur.rowcount, 0)


@contextlib.contextmanager
def stage(engine: Target, table: TableDef, columns: Sequence[Column],
          conn: psycopg.Connection, statements: Callable[[str], Iterable[sql.Composable]],
          counter: list[int], binary: bool) -> Iterator[str]:
    """Like ``Target.stage_csv`` (a temporary table shaped like ``table`` holding the rows
    of ``statements(fmt)``, for merge.py; dropped at the end), in binary where safe."""
    fmt = "binary" if binary else "csv"
    with stage_blocks(engine, table, columns, stream.copy(conn, statements(fmt), counter,
                                                          binary=binary), binary) as name:
        yield name


@contextlib.contextmanager
def stage_blocks(engine: Target, table: TableDef, columns: Sequence[Column],
                 blocks: Iterable[bytes], binary: bool) -> Iterator[str]:
    """:func:`stage` of rows already read: ``blocks`` of CSV rows, or one binary COPY
    stream (``binary``)."""
    if not binary:
        with engine.stage_csv(table, columns, blocks) as name:
            yield name
        return
    pg: psycopg.Connection = engine.conn  # type: ignore[attr-defined]
    stage = sql.Identifier(f"topoff_replicate_stage_{next(_stages)}")
    pg.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
        stage, sql.Identifier(table.target.schema, table.target.name)))
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    with pg.cursor() as cur, cur.copy(sql.SQL(
            "COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(stage, names)) as cp:
        for block in blocks:
            cp.write(block)
    yield stage.as_string(pg)
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
