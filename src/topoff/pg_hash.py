"""Count and canonical hash of a PostgreSQL table, whole or per UTC day of its cursor.

One piece of SQL for both sides of ``topoff verify``: a PostgreSQL replica is hashed with
it, and so is a PostgreSQL source (topoff.sources.pg_verify), so equal rows give equal
hashes. The row hash itself is :func:`topoff.canonical.pg_row_hash`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from topoff.canonical import pg_row_hash
from topoff.dataset.bounds import Bounds
from topoff.pgtypes import family

if TYPE_CHECKING:
    from topoff.targets.base import TableDef


def bound_sql(table: TableDef, value: datetime | date) -> sql.Composable:
    """A cursor value as a literal of the cursor's type."""
    kind = family(table.cursor_type or "").kind
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    cast = {"timestamptz": "timestamptz", "timestamp": "timestamp"}.get(kind, "date")
    return sql.SQL("{}::{}").format(sql.Literal(text), sql.SQL(cast))


def window_sql(table: TableDef, b: Bounds) -> sql.Composable:
    assert table.cursor
    c = sql.Identifier(table.cursor)
    return sql.SQL("{c} >= {lo} AND {c} < {hi}").format(
        c=c, lo=bound_sql(table, b.lo), hi=bound_sql(table, b.hi))


def day_sql(table: TableDef) -> sql.Composable | None:
    """The UTC day of a row's window, or None when it needs per-window queries."""
    assert table.cursor and table.cursor_type
    c = sql.Identifier(table.cursor)
    kind = family(table.cursor_type).kind
    if kind == "timestamptz":
        return sql.SQL("({} AT TIME ZONE 'UTC')::date").format(c)
    if kind == "date" or (kind == "timestamp" and table.cursor_timezone == "UTC"):
        return sql.SQL("{}::date").format(c)
    return None


def hash_table(conn: psycopg.Connection, table: TableDef, by_day: bool,
               since: datetime | date | None, window: Bounds | None,
               profile: str) -> dict[str | None, tuple[int, str]]:
    """count and canonical hash of a PostgreSQL table, whole or per UTC day of its cursor.

    Used for replicas and for sources alike (``verify`` compares the two).
    """
    where: list[sql.Composable] = []
    if since is not None and table.cursor:
        where.append(sql.SQL("{} >= {}").format(sql.Identifier(table.cursor),
                                                 bound_sql(table, since)))
    if window is not None:
        where.append(window_sql(table, window))
    cond = (sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)) if where else sql.SQL("")
    h = pg_row_hash(table.columns, profile)
    relation = sql.Identifier(table.target.schema, table.target.name)
    if by_day:
        day = day_sql(table)
        assert day is not None
        rows = conn.execute(sql.SQL("SELECT ({})::text, {} FROM {}{} GROUP BY 1").format(
            day, h, relation, cond)).fetchall()
        return {r[0]: (int(r[1]), str(r[2])) for r in rows}
    r = conn.execute(sql.SQL("SELECT {} FROM {}{}").format(h, relation, cond)).fetchone()
    assert r is not None
    return {None: (int(r[0]), str(r[1]))}
