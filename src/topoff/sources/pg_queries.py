"""The statements an export runs against a PostgreSQL source: SELECTs and COPY ... TO STDOUT
only.

Names are composed with ``sql.Identifier``. Window bounds are literals cast to the cursor's
own type, so the comparison can use an index on the cursor column.
"""

from __future__ import annotations

from psycopg import sql

from topoff.canonical import pg_hash_sum
from topoff.dataset.bounds import cursor_bounds
from topoff.dataset.layout import Window
from topoff.sources.base import STREAM_HASH, algorithm_of, comparable_algorithm, stream_hashable
from topoff.sources.catalog import PgTable

__all__ = ["MD5_HASH", "OLD_RECORD_HASH", "ROW_TEXT_HASH", "STREAM_HASH", "algorithm_of",
           "attached_since_query", "changed_since_query", "copy_statement", "count_query",
           "hash_algorithm", "hash_query",
           "recheck_algorithm", "stream_hashable", "where_clause", "window_condition",
           "xmin_usable"]

XID_WRAP = 1 << 32
#: the xmin test is trusted only while the reference xid is this close to the current one
XMIN_HORIZON = 1 << 30


def window_condition(t: PgTable, window: Window) -> sql.Composable:
    assert t.config.cursor and t.cursor_type
    b = cursor_bounds(t.cursor_type, t.config.cursor_timezone, window, t.qualified)
    lo, hi = b.literals()
    return sql.SQL("{c} >= {lo}::{cast} AND {c} < {hi}::{cast}").format(
        c=sql.Identifier(t.config.cursor), lo=sql.Literal(lo), hi=sql.Literal(hi),
        cast=sql.SQL(b.kind))


def where_clause(t: PgTable, window: Window | None = None,
                 extra: sql.Composable | None = None) -> sql.Composable:
    parts: list[sql.Composable] = []
    if t.config.filter:
        parts.append(sql.SQL("({})").format(sql.SQL(t.config.filter)))
    if window is not None:
        parts.append(window_condition(t, window))
    if extra is not None:
        parts.append(extra)
    if not parts:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts)


def column_list(t: PgTable) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in t.columns)


def copy_statement(t: PgTable, window: Window | None = None,
                   extra: sql.Composable | None = None, ordered: bool = False) -> sql.Composable:
    """COPY of the exported columns as CSV with a header line."""
    order: sql.Composable = sql.SQL("")
    if ordered:
        keys = [k for k in ([t.config.cursor] if t.config.cursor else []) + t.primary_key if k]
        keys = list(dict.fromkeys(keys))
        if keys:  # (cursor, key) order: the same rows always give the same files
            order = sql.SQL(" ORDER BY ") + sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    return sql.SQL("COPY (SELECT {cols} FROM {table}{where}{order}) TO STDOUT "
                   "WITH (FORMAT csv, HEADER true)").format(
        cols=column_list(t), table=t.ident, where=where_clause(t, window, extra), order=order)


#: content_hash algorithms. ``rt1`` (PostgreSQL 11+): the sum of ``hashtextextended`` of
#: each row's text, ``ROW(c1, ...)::text``, built from every exported column's output text:
#: it changes whenever any value's exported text changes, even between values a type's
#: equality calls equal (float8 -0 and 0, numeric 0.1 and 0.10, interval 1 mon and 30 days,
#: arrays with other bounds). ``md5`` (older servers): the canonical md5 sum (canonical.py).
#: ``rh1`` (hash_record_extended, which follows each type's equality) was written by older
#: versions: it is never computed again, so a published ``rh1`` hash compares as "changed".
#: ``cs1``: the sha256 of the day's CSV data rows as exported, in (cursor, key) order,
#: taken while the files are written (no extra pass); for cursor tables with a key.
ROW_TEXT_HASH, MD5_HASH, OLD_RECORD_HASH = "rt1", "md5", "rh1"


def hash_algorithm(server_version_num: int) -> str:
    return ROW_TEXT_HASH if server_version_num >= 110000 else MD5_HASH


def recheck_algorithm(content_hash: str | None, t: PgTable,
                      server_version_num: int) -> str | None:
    """How to hash a window now to compare it with a published ``content_hash``; None when
    this version cannot compute a comparable hash (no hash, or an ``rh1`` one)."""
    return comparable_algorithm(content_hash, t, hash_algorithm(server_version_num))


def hash_query(t: PgTable, window: Window | None = None,
               algorithm: str = ROW_TEXT_HASH) -> sql.Composed:
    """count(*) and the content hash (``<algorithm>:<sum>``) of the exported columns.

    The producer compares these between its own runs; topoff verify uses the canonical
    md5 form, which DuckDB can compute too.
    """
    if algorithm == MD5_HASH:
        return sql.SQL("SELECT count(*), 'md5:' || {h} FROM {table}{where}").format(
            h=pg_hash_sum(t.columns), table=t.ident, where=where_clause(t, window))
    if algorithm != ROW_TEXT_HASH:
        raise ValueError(f"unknown content hash algorithm {algorithm!r}")
    # ROW(...)::text is record_out over each column's output function: the text COPY writes,
    # quoted so that different column texts always give different row texts.
    return sql.SQL("SELECT count(*), 'rt1:' || coalesce(sum(hashtextextended(ROW({cols})::text, "
                   "0)), 0)::text FROM {table}{where}").format(
        cols=column_list(t), table=t.ident, where=where_clause(t, window))


def count_query(t: PgTable, window: Window) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {table}{where}").format(
        table=t.ident, where=where_clause(t, window))


def xmin_usable(t: PgTable, reference: int, now_xmax: int) -> bool:
    return t.relkind in ("r", "p", "m") and 0 <= now_xmax - reference < XMIN_HORIZON


def changed_since_query(t: PgTable, window: Window, reference: int,
                        now_xmax: int) -> sql.Composed:
    """count(*), and how many visible rows were written by a transaction at or after
    ``reference`` (a 64-bit xid), within the window.

    A row's 32-bit xmin is widened to 64 bits against the current snapshot's xmax, which
    every visible row's xmin precedes; xids 0-2 (frozen, bootstrap) are old.
    """
    return sql.SQL("SELECT count(*), count(*) FILTER (WHERE {w} >= {ref}) FROM {table}{where}"
                   ).format(w=_widened(now_xmax), ref=sql.Literal(reference), table=t.ident,
                            where=where_clause(t, window))


def _widened(now_xmax: int) -> sql.Composable:
    """The row's 32-bit ``xmin`` as a 64-bit xid, against the snapshot's xmax."""
    epoch_base = (now_xmax >> 32) << 32
    x32 = sql.SQL("xmin::text::bigint")
    return sql.SQL(
        "CASE WHEN {x} < 3 THEN 0 WHEN {b} + {x} >= {n} THEN {b} + {x} - {w} ELSE {b} + {x} END"
    ).format(x=x32, b=sql.Literal(epoch_base), n=sql.Literal(now_xmax), w=sql.Literal(XID_WRAP))


def attached_since_query(t: PgTable, reference: int, now_xmax: int) -> sql.Composed:
    """Whether a partition or inheritance child (any depth) was attached to the table by a
    transaction at or after ``reference``: it may bring rows with an older ``xmin`` (written
    before, elsewhere), which the xmin rule would take for rows the table always had."""
    return sql.SQL(
        "WITH RECURSIVE tree(oid) AS (SELECT {oid}::oid UNION SELECT i.inhrelid FROM "
        "pg_inherits i JOIN tree ON i.inhparent = tree.oid) "
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent IN (SELECT oid FROM tree) "
        "AND {w} >= {ref})").format(oid=sql.Literal(t.oid), w=_widened(now_xmax),
                                   ref=sql.Literal(reference))
