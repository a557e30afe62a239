"""Rows an inserter or updater table's watermark says were read, but never were: those of
a partition or inheritance child attached since the previous run (PostgreSQL sources).

A table's rows are its own, its partitions' and its inheritance children's (any depth).
A member attached since the previous run (``ATTACH PARTITION``, ``INHERIT``) may bring rows
committed before that run, at or below its watermark: the run could not see them (they
were not in the table then), and the commit rule does not find them (their ``xmin`` is
old). The link itself tells when it was made: the ``pg_inherits`` row's ``xmin`` is the
attaching transaction's, at or after the previous run's snapshot xmin when it was made
since (or was running then). Each refresh stores which relations the table's rows are in
(TableInfo.members, in the state's ``relation``); when they differ, a member attached since
that holds such a row makes the refresh build the table again, as at its first load
(apply.py). A member created since (``CREATE TABLE ... PARTITION OF``) holds only rows
written since: nothing to do.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from topoff.replicate.describe import TableInfo
from topoff.replicate.read import snapshot_marks
from topoff.replicate.state import TableState
from topoff.replicate.watermark import committed_since, xmin_comparable

#: the members of the table's tree (any depth) whose link to their parent was made by a
#: transaction the condition ``{since}`` calls recent, with their names
_LINKED_Q = """
WITH RECURSIVE tree(oid) AS (
    SELECT {root}::oid
    UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid IN (SELECT inhrelid FROM pg_inherits
                WHERE inhparent IN (SELECT oid FROM tree) AND {since})
ORDER BY n.nspname, c.relname
"""


def attached_unread(conn: psycopg.Connection, info: TableInfo, state: TableState) -> str | None:
    """The first member (``schema.name``) attached to the table since the run ``state``
    was written that holds a row that run could not read; None when there is none (or the
    commit rule cannot tell: no previous run, its xmin too old or from elsewhere)."""
    t = info.table
    if info.engine != "postgresql" or info.members is None or not t.cursor \
            or state.cursor is None or state.relation == info.members:
        return None  # the same relations as at the previous run: nothing attached
    xmax = snapshot_marks(conn).xmax
    if not xmin_comparable(state.xmin, xmax):
        return None
    since = committed_since(state.xmin, xmax)
    linked = conn.execute(sql.SQL(_LINKED_Q).format(root=sql.Literal(info.oid),
                                                    since=since)).fetchall()
    for schema, name in linked:
        # the stored watermark is the cursor's own text: compared as a value of its type
        cond = [sql.SQL("{} <= {}").format(sql.Identifier(t.cursor), sql.Literal(state.cursor)),
                sql.SQL("NOT {}").format(since)]
        if t.where:
            cond.append(sql.SQL("({})").format(sql.SQL(t.where)))  # checked by describe
        row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(
            sql.Identifier(schema, name), sql.SQL(" AND ").join(cond))).fetchone()
        if row and row[0]:
            return f"{schema}.{name}"
    return None
