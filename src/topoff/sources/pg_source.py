"""A PostgreSQL hot standby (or, when allowed, a primary) as a :class:`topoff.sources.base.Source`.

One exported snapshot is shared by every worker (``pg_export_snapshot`` / ``SET
TRANSACTION SNAPSHOT``, pg_session.py); rows come from ``COPY ... TO STDOUT`` read in blocks
(pg_copy.py); big plain tables are split into ctid page ranges (TID range scans,
PostgreSQL 14+); late rows are found by their xmin (pg_queries.py); the server hashes
windows itself (``rt1``, or ``md5`` before PostgreSQL 11).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from topoff.config import Config
from topoff.dataset.layout import Window
from topoff.dataset.manifest import Snapshot
from topoff.safety import is_connection_lost, is_recovery_conflict, retry_on_recovery_conflict
from topoff.sources import pg_queries as q
from topoff.sources.base import SourceCapabilities, SourceTable
from topoff.sources.catalog import PgTable, introspect, post_data_sql, pre_data_sql
from topoff.sources.pg_changes import lock_unchanged, schema_changes
from topoff.sources.pg_copy import CopyReader
from topoff.sources.pg_errors import server_error
from topoff.sources.pg_session import SnapshotInfo, SnapshotSession

CAPABILITIES = SourceCapabilities(
    engine="postgresql", exported_snapshot=True, page_ranges=True, xmin_change_detection=True,
    hash_algorithms=(q.ROW_TEXT_HASH, q.MD5_HASH), pre_data=True, table_locks=True)


T = TypeVar("T")


def retry_export(run: Callable[[int], T], attempts: int, backoff: float, what: str,
                 cleanup: Callable[[], None] | None = None) -> T:
    """An export run again after a recovery conflict, a lost connection or a migration
    under its snapshot (:func:`topoff.safety.retry_on_recovery_conflict`). Any other
    error the server reports (a view or filter failing on a row, a server out of room for
    a sort, an administrator's cancel) is a SourceError with the server's words."""
    try:
        return retry_on_recovery_conflict(run, attempts, backoff, what, cleanup,
                                          schema_changes=True)
    except psycopg.Error as e:
        error = server_error(e, what)
        if error is None:
            raise
        raise error from e


def _pg(t: SourceTable) -> PgTable:
    assert isinstance(t, PgTable), "a table of another source"
    return t


class PgReader:
    """A connection in the export's snapshot (:class:`topoff.sources.base.SourceReader`)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def rows(self, table: SourceTable, window: Window | None = None, part: Any = None,
             ordered: bool = False) -> CopyReader:
        return CopyReader(self.conn, q.copy_statement(_pg(table), window, part, ordered))

    def count_hash(self, table: SourceTable, window: Window | None,
                   algorithm: str) -> tuple[int, str]:
        row = self.conn.execute(q.hash_query(_pg(table), window, algorithm)).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def count(self, table: SourceTable, window: Window) -> int:
        """count(*) of a window (the cursor index; whether to split its read)."""
        row = self.conn.execute(q.count_query(_pg(table), window)).fetchone()
        assert row is not None
        return int(row[0])

    def changed_since(self, table: SourceTable, window: Window, since: Snapshot,
                      now: Any) -> tuple[int, int] | None:
        t = _pg(table)
        if since.xmin is None or not q.xmin_usable(t, since.xmin, now.xmax):
            return None
        attached = self.conn.execute(q.attached_since_query(t, since.xmin, now.xmax)).fetchone()
        if attached and attached[0]:  # old rows may have come in with it: the hash decides
            return None
        row = self.conn.execute(
            q.changed_since_query(t, window, since.xmin, now.xmax)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


class PostgresSource:
    """:class:`topoff.sources.base.Source` for ``postgresql://`` URLs (and libpq strings)."""

    capabilities = CAPABILITIES
    #: a recovery conflict, a lost connection or a migration under the snapshot: again
    retry = staticmethod(retry_export)

    def __init__(self, url: str, allow_primary: bool,
                 application_name: str = "topoff export") -> None:
        self.url = url
        self.session = SnapshotSession(url, allow_primary, application_name)
        self.info: SnapshotInfo | None = None

    @property
    def conn(self) -> psycopg.Connection:
        """The coordinator's connection (commands that still query it directly)."""
        assert self.session.conn is not None, "the source is not open"
        return self.session.conn

    def open(self) -> SnapshotInfo:
        self.info = self.session.open()
        return self.info

    def tables(self, config: Config) -> list[SourceTable]:
        with schema_changes():
            return list(introspect(self.conn, config))

    def lock(self, tables: list[SourceTable]) -> None:
        """ACCESS SHARE locks, as pg_dump takes: DDL on the primary now conflicts visibly
        (a recovery conflict on a standby) instead of changing a table under the export.
        LOCK TABLE takes tables and views only: a materialized view or foreign table is
        locked by planning a query of it (EXPLAIN runs nothing; the lock is held to the end
        of the transaction)."""
        lock_unchanged(self.conn, [(t.ident, t.relkind, t.oid) for t in map(_pg, tables)])

    def reader(self) -> PgReader:
        return PgReader(self.conn)

    def share(self) -> None:
        _ = self.session.snapshot_id  # exported here, before workers need it

    def worker(self) -> PgReader:
        return PgReader(self.session.worker())

    def parts(self, table: SourceTable, jobs: int, split_bytes: int) -> list[Any]:
        """Split a big plain table into ctid page ranges (TID range scans, PostgreSQL 14+)."""
        t = _pg(table)
        size = t.pages * 8192
        if jobs < 2 or t.relkind != "r" or t.config.filter or size < split_bytes:
            return [None]
        parts = min(jobs * 4, max(2, size // split_bytes))
        step = -(-t.pages // parts)
        bounds = list(range(0, t.pages, step))
        out: list[Any] = []
        for i, lo in enumerate(bounds):
            cond = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({lo},0)"))
            if i + 1 < len(bounds):  # the last range is open: pages added since are read too
                cond = cond + sql.SQL(" AND ctid < {}::tid").format(
                    sql.Literal(f"({bounds[i + 1]},0)"))
            out.append(cond)
        return out

    def hash_algorithm(self) -> str | None:
        assert self.info is not None
        found = q.hash_algorithm(self.info.server_version_num)
        return found if found in self.capabilities.hash_algorithms else None

    def pre_data_sql(self, tables: list[SourceTable]) -> str:
        return pre_data_sql([_pg(t) for t in tables])

    def post_data_sql(self, tables: list[SourceTable]) -> str:
        return post_data_sql([_pg(t) for t in tables])

    def main_error(self, errors: list[BaseException]) -> BaseException:
        # A conflict with recovery or a lost connection (the standby restarted) is the
        # cause; the other workers' errors follow from it (our cancels, a snapshot that
        # vanished with the coordinator's session).
        cause = next((e for e in errors if is_recovery_conflict(e)), None) or next(
            (e for e in errors if is_connection_lost(e)), None)
        return cause or next(
            (e for e in errors if not isinstance(e, psycopg.errors.QueryCanceled)), errors[0])

    def verifier(self) -> Any:
        """What ``topoff verify`` hashes this source's tables with."""
        from topoff.sources.pg_verify import PgVerifier
        return PgVerifier(self.conn)

    def cancel_all(self) -> None:
        self.session.cancel_all()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PostgresSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
