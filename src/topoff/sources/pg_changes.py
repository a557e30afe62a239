"""Tables changed on a PostgreSQL source between the export's snapshot and its locks.

The export takes its snapshot, reads the catalog in it and only then locks the tables
(ACCESS SHARE, as pg_dump does). A migration replayed in between is not held back by the
locks: a table rewritten or truncated then would be read empty in the older snapshot (its
new file holds no row that snapshot sees); a column dropped or renamed, or a table renamed
or dropped, fails the read (its statement names what the snapshot's catalog shows). The
same goes for each of a table's partitions and inheritance children, whose rows a read of
the table holds, and for one detached since (a read of the table as it is now leaves its
rows out). Once the locks are held, the catalog as it is now (what
``pg_relation_filenode``, ``has_column_privilege`` and ``pg_identify_object_as_address``
look up, and the children LOCK TABLE locked: those the table has now, in ``pg_locks``) is
compared with the snapshot's, and any difference, or a failure of the catalog's reading
that a concurrent change causes, is a SourceError naming the change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import sql

from topoff.errors import SchemaChanged

HINT = ("run it again: a migration on the primary (ALTER TABLE, TRUNCATE, DROP...) reached "
        "the source as the export began, and the next run reads the tables as they are now")
#: the same for the other jobs that read a snapshot
HINTS = {"export": HINT,
         "refresh": ("run it again: a migration on the primary (ALTER TABLE, TRUNCATE, "
                     "DROP...) reached the source as the refresh began; the replica and its "
                     "state are unchanged, and the next refresh reads the table as it is now"),
         "backup": ("run it again: a migration on the primary (ALTER TABLE, TRUNCATE, "
                    "DROP...) reached the source as the backup began, and the next backup "
                    "reads the tables as they are now"),
         "verify": ("run it again: a migration on the primary (ALTER TABLE, TRUNCATE, "
                    "DROP...) reached the source as verify began, and the next verify "
                    "reads the tables as they are now")}

#: undefined_table, undefined_column
_CHANGED_STATES = frozenset({"42P01", "42703"})

#: the tables, with their partitions and inheritance children (any depth: a read of a
#: table holds their rows, and LOCK TABLE locks them), as the snapshot has them
_CHANGED_SQL = """
WITH RECURSIVE tree(root, oid) AS (
    SELECT o, o FROM unnest(%s::oid[]) AS o
  UNION
    SELECT t.root, i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
SELECT DISTINCT t.root::regclass::text, c.oid::regclass::text FROM tree t
JOIN pg_class c ON c.oid = t.oid
WHERE (c.relkind IN ('r', 'm') AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid))
  -- detached since: LOCK TABLE locked the table's partitions and children as they are now
  OR (t.root <> t.oid AND NOT t.oid = ANY(coalesce((
        SELECT array_agg(l.relation) FROM pg_locks l WHERE l.locktype = 'relation'
        AND l.pid = pg_backend_pid() AND l.relation IS NOT NULL), '{}')))
  OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
             AND NOT a.attisdropped
             AND (has_column_privilege(c.oid, a.attnum, 'SELECT') IS NULL
                  -- renamed: the read names the snapshot's columns (a child's own, unread)
                  OR (t.root = t.oid AND (pg_identify_object_as_address(
                        'pg_class'::regclass, c.oid, a.attnum)).object_names[3]
                      IS DISTINCT FROM a.attname)))
ORDER BY 1, 2
"""


def _changed(e: BaseException) -> bool:
    state = getattr(e, "sqlstate", None)
    return state in _CHANGED_STATES or (state == "XX000" and "cache lookup failed" in str(e))


@contextlib.contextmanager
def schema_changes(table: str | None = None, job: str = "export") -> Iterator[None]:
    """A catalog read or lock that fails because a table changed under the snapshot (gone,
    renamed, a column dropped) as the SourceError it is; ``table``: the one read, if one."""
    try:
        yield
    except psycopg.Error as e:
        if not _changed(e):
            raise
        first = str(e).strip().splitlines()[0]
        what = table if table is not None else f"a table of the {job}"
        raise SchemaChanged(f"{what} changed on the source after the {job}'s snapshot "
                          f"began ({first})", hint=HINTS[job]) from None


def check_unchanged(conn: psycopg.Connection, oids: Sequence[int],
                    job: str = "export") -> None:
    """SourceError naming the tables rewritten, truncated or with a column dropped or
    renamed since the transaction's snapshot, or with a partition or inheritance child
    that was, or was detached (call once they are locked); one catalog query whatever
    their number."""
    found = conn.execute(_CHANGED_SQL, (list(oids),)).fetchall()
    if found:
        named = {rel for root, rel in found if root == rel}  # itself one of the tables
        changed = [str(root) if root == rel else f"{root} (its partition or child {rel})"
                   for root, rel in found if root == rel or rel not in named]
        raise SchemaChanged(f"{', '.join(changed)} changed on the source after the {job}'s "
                          "snapshot began (rewritten, truncated, detached, a column dropped or "
                          "a column renamed): read in the snapshot, its rows would be "
                          "missing or unreadable",
                          hint=HINTS[job])


#: the relation kinds LOCK TABLE takes (tables, partitioned tables, views)
LOCKABLE = ("r", "p", "v")


def lock_unchanged(conn: psycopg.Connection, rels: Sequence[tuple[sql.Composable, str, int]],
                   job: str = "export", table: str | None = None) -> None:
    """ACCESS SHARE on each relation ``(identifier, relkind, oid)``, as pg_dump takes it,
    held to the end of the transaction: a migration replayed from now on waits for the
    read or cancels it (a recovery conflict on a standby); then :func:`check_unchanged` for
    one replayed since the snapshot began. LOCK TABLE takes tables and views only: another
    relation (a materialized view, a foreign table) is locked by planning a query of it
    (EXPLAIN runs nothing)."""
    lockable = [ident for ident, kind, _oid in rels if kind in LOCKABLE]
    with schema_changes(table, job):
        if lockable:
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                sql.SQL(", ").join(lockable)))
        for ident, kind, _oid in rels:
            if kind not in LOCKABLE:
                conn.execute(sql.SQL("EXPLAIN SELECT 1 FROM {}").format(ident))
    check_unchanged(conn, [oid for _ident, _kind, oid in rels], job)
