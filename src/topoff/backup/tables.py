"""Per-table row counts and content hashes, computed the same way at backup and drill time.

At backup time they run in the dump's own snapshot (the coordinator's transaction, whose
snapshot pg_dump imported, and worker connections that import it too), after pg_dump has
finished: they describe exactly what the dump holds, and do not compete with pg_dump for
the CPU. The hash is :func:`topoff.canonical.pg_row_hash` (md5 of each row's canonical
text, summed); it costs about as much CPU as pg_dump itself, so tables are hashed
``jobs`` at a time, largest first, each on its own connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from topoff.canonical import pg_row_hash
from topoff.dataset.manifest import Column
from topoff.sources.pg_changes import check_unchanged, schema_changes
from topoff.workers import carried

_TABLES_Q = """
SELECT n.nspname, c.relname, c.oid
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY pg_relation_size(c.oid) DESC, 1, 2
"""
_COLUMNS_Q = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

Table = tuple[str, str, int]


def list_tables(conn: psycopg.Connection) -> list[Table]:
    """Every user table (schema, name, oid), largest first."""
    return [(str(s), str(n), int(o)) for s, n, o in conn.execute(_TABLES_Q).fetchall()]


def lock_tables(conn: psycopg.Connection) -> None:
    """ACCESS SHARE on every user table, in the snapshot pg_dump is to import, before it
    starts (it locks them only once it has imported the snapshot): a migration replayed
    from now on waits for the backup or cancels it (a recovery conflict), and one replayed
    since the snapshot began, which pg_dump and the hashes would read with no row (a table
    rewritten or truncated) or fail on (renamed, dropped, a column dropped), is a
    SourceError naming the table (topoff.sources.pg_changes)."""
    tables = list_tables(conn)
    if not tables:
        return
    with schema_changes(job="backup"):
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
            sql.SQL(", ").join(sql.Identifier(s, n) for s, n, _ in tables)))
    check_unchanged(conn, [oid for _, _, oid in tables], "backup")


def table_hash(conn: psycopg.Connection, table: Table) -> dict[str, Any]:
    schema, name, oid = table
    cols = [Column(n, t, nullable) for n, t, nullable in
            conn.execute(_COLUMNS_Q, [oid]).fetchall()]
    ident = sql.Identifier(schema, name)
    if cols:
        q = sql.SQL("SELECT {} FROM {}").format(pg_row_hash(cols, "exact"), ident)
    else:
        q = sql.SQL("SELECT count(*), '0' FROM {}").format(ident)
    rows, digest = conn.execute(q).fetchone()  # type: ignore[misc]
    return {"rows": int(rows), "hash": str(digest)}


def table_hashes(conn: psycopg.Connection,
                 more: Callable[[], psycopg.Connection] | None = None,
                 jobs: int = 1) -> dict[str, dict[str, Any]]:
    """``{"schema.table": {"rows": n, "hash": "..."}}`` for every user table.

    With ``jobs`` > 1, ``more()`` opens each further connection (one per thread, reading
    the same data as ``conn``: the same snapshot or a database nobody writes to); the
    caller closes them. The result is the same whatever ``jobs`` is."""
    tables = list_tables(conn)
    if jobs <= 1 or more is None or len(tables) <= 1:
        return dict(sorted((f"{t[0]}.{t[1]}", table_hash(conn, t)) for t in tables))
    local = threading.local()
    spare = [conn]  # the caller's own connection serves one of the threads
    lock = threading.Lock()

    def work(table: Table) -> dict[str, Any]:
        c = getattr(local, "conn", None)
        if c is None:
            with lock:
                c = spare.pop() if spare else None
            local.conn = c = c if c is not None else more()
        return table_hash(c, table)

    pool = ThreadPoolExecutor(max_workers=min(jobs, len(tables)),
                              thread_name_prefix="topoff-hash")
    try:
        futures = [pool.submit(carried(work), t) for t in tables]
        out = {f"{t[0]}.{t[1]}": f.result() for t, f in zip(tables, futures, strict=True)}
    except BaseException:
        # the first error (or an interrupt) stops the rest; the caller cancels the
        # statements still running on its connections
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return dict(sorted(out.items()))
