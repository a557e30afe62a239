"""Has a snapshot-method table changed since the previous run?

Two ways to tell, both exact, neither using statistics counters:

* **The xmin rule** (:func:`by_xmin`, a table with its own storage and no ``where``): the
  table is unchanged iff its storage is the same (:func:`signature`: the cluster, its
  timeline, and the oid and file node of the table and of every inheritance child or
  partition), its row count is the same, and no row it shows has an ``xmin`` at or after
  the previous run's snapshot xmin. One scan reading each row's header, no hashing.
  docs/replicate.md argues why a false "unchanged" cannot happen.
* **The content hash** (:func:`detect`), for everything else: views, a ``where`` (it may
  depend on the time), the previous xmin too old to compare, a rewritten table.

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

import hashlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from topoff.canonical import pg_row_hash
from topoff.replicate.describe import TableInfo
from topoff.replicate.fastcopy import select_list
from topoff.replicate.state import TableState
from topoff.replicate.watermark import committed_since, xmin_comparable

#: the table, its inheritance children and partitions (any depth), with their kinds and
#: file nodes; a relation of another kind (foreign, view) makes the xmin rule unusable
_TREE_Q = """
WITH RECURSIVE tree(oid) AS (
    SELECT %s::oid UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT c.oid::bigint, c.relkind::text, pg_relation_filenode(c.oid)
FROM tree JOIN pg_class c ON c.oid = tree.oid ORDER BY c.oid
"""
_CLUSTER_Q = """
SELECT (SELECT system_identifier FROM pg_control_system()),
       (SELECT timeline_id FROM pg_control_checkpoint())
"""


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


def copy_all(info: TableInfo, fmt: str = "csv") -> sql.Composable:
    """The COPY of a changed snapshot table: every replicated column of every row (under
    the operator's where), as CSV (or ``fmt`` "binary"), in key order when there is a key."""
    where = info.table.where  # checked by describe.check_where
    order = sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(map(sql.Identifier, info.key))) \
        if info.key else sql.SQL("")
    return sql.SQL("COPY (SELECT {cols} FROM {t}{w}{order}) TO STDOUT WITH (FORMAT {f})").format(
        f=sql.SQL("binary" if fmt == "binary" else "csv"),
        cols=select_list(info.columns, fmt == "binary"), t=info.ident,
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


def signature(conn: psycopg.Connection, info: TableInfo) -> str | None:
    """The storage the xmin rule compares, or None when it cannot apply to this table
    (a view, a foreign table or child, a ``where``)."""
    if info.table.where is not None or info.relkind not in ("r", "m", "p"):
        return None
    parts = []
    for oid, kind, node in conn.execute(_TREE_Q, (info.oid,)).fetchall():
        if kind not in ("r", "m", "p") or (node is None and kind != "p"):
            return None
        parts.append(f"{oid}:{node if node is not None else '-'}")
    row = conn.execute(_CLUSTER_Q).fetchone()
    assert row is not None
    text = f"{row[0]}/{row[1]}/" + ",".join(parts)
    return text if len(text) <= 200 else hashlib.sha256(text.encode()).hexdigest()


def stored_count(content: str | None) -> int | None:
    """The row count in a stored ``count:hash`` (None if absent or malformed)."""
    head = (content or "").partition(":")[0]
    return int(head) if head.isdigit() and len(head) < 19 else None


def has_hash(content: str | None) -> bool:
    return stored_count(content) is not None and bool(content.partition(":")[2])  # type: ignore[union-attr]


@dataclass(frozen=True)
class Verdict:
    changed: bool
    rows: int  # the table's row count in this snapshot


def by_xmin(conn: psycopg.Connection, info: TableInfo, state: TableState,
            sig: str | None, xmax: int) -> Verdict | None:
    """The xmin rule against the previous run's ``state``, or None when it cannot decide
    (no signature or another one, no previous count, the previous xmin too old)."""
    before = stored_count(state.content)
    if sig is None or sig != state.relation or before is None \
            or not xmin_comparable(state.xmin, xmax):
        return None
    row = conn.execute(sql.SQL(
        "SELECT count(*), coalesce(bool_or({since}), false) FROM {t}").format(
            since=committed_since(state.xmin, xmax), t=info.ident)).fetchone()
    assert row is not None
    count, fresh = int(row[0]), bool(row[1])
    return Verdict(fresh or count != before, count)
