"""Has a snapshot-method table changed since the previous run?

Statistics counters (``pg_stat_user_tables.n_tup_*``) are not replicated to a standby and
are reset by a crash or ``pg_stat_reset()``, and TRUNCATE leaves them misleading, so they
are not used. What decides is a content hash of the replicated columns, taken in the
run's snapshot through :func:`topoff.canonical.pg_row_hash` (the row count plus the sum of
the first 60 bits of each row's canonical md5: order-independent, exact up to 2^-60): the
same function verify uses, so a target can compute the same value.

Hints, reported but never trusted: ``pg_relation_filenode()`` changes on TRUNCATE,
VACUUM FULL and CLUSTER (a rewrite; the rows may still be the same), and the relation's
size in pages. A table can change while both stay the same (an UPDATE in place), and a
rewrite can leave the rows as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from topoff.canonical import pg_row_hash
from topoff.replicate.describe import TableInfo


@dataclass(frozen=True)
class Hints:
    filenode: int | None  # None for a view
    pages: int


@dataclass(frozen=True)
class Change:
    changed: bool
    content: str  # "count:hash" of this run, to store in TableState.content
    rows: int
    hints: Hints
    #: what the hints say, for the log ("rewritten" after TRUNCATE/VACUUM FULL), or None
    hint: str | None


def content_hash(conn: psycopg.Connection, info: TableInfo) -> tuple[int, str]:
    """``(count, hash)`` of the table's replicated rows in the current snapshot."""
    where = info.table.where  # checked by describe.check_where
    stmt = sql.SQL("SELECT {h} FROM {t}{w}").format(
        h=pg_row_hash(info.columns), t=info.ident,
        w=sql.SQL(" WHERE ({})").format(sql.SQL(where)) if where else sql.SQL(""))
    row = conn.execute(stmt).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def copy_all(info: TableInfo) -> sql.Composable:
    """The COPY of a changed snapshot table: every replicated column of every row (under
    the operator's where), as CSV, in key order when there is a key."""
    where = info.table.where  # checked by describe.check_where
    order = sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(map(sql.Identifier, info.key))) \
        if info.key else sql.SQL("")
    return sql.SQL("COPY (SELECT {cols} FROM {t}{w}{order}) TO STDOUT WITH (FORMAT csv)").format(
        cols=sql.SQL(", ").join(sql.Identifier(c.name) for c in info.columns), t=info.ident,
        w=sql.SQL(" WHERE ({})").format(sql.SQL(where)) if where else sql.SQL(""), order=order)


def hints(conn: psycopg.Connection, info: TableInfo) -> Hints:
    row = conn.execute(
        "SELECT pg_relation_filenode(%s::oid), "
        "pg_relation_size(%s::oid) / current_setting('block_size')::int",
        (info.oid, info.oid)).fetchone()
    assert row is not None
    return Hints(row[0], int(row[1] or 0))


def detect(conn: psycopg.Connection, info: TableInfo, previous: str | None,
           previous_hints: Hints | None = None) -> Change:
    """Compare this snapshot's content hash with ``previous`` (TableState.content)."""
    now = hints(conn, info)
    count, digest = content_hash(conn, info)
    content = f"{count}:{digest}"
    note = None
    if previous_hints is not None:
        if now.filenode != previous_hints.filenode:
            note = "rewritten (TRUNCATE, VACUUM FULL or CLUSTER) since the previous run"
        elif now.pages != previous_hints.pages:
            note = "its size changed since the previous run"
    return Change(content != previous, content, count, now, note)
