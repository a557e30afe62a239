"""A MariaDB (or MySQL) replica, or a primary when allowed, as a Source (sources/base.py).

What it can do, as data (:data:`CAPABILITIES`, the class's): one reader until the export
asks for more. With ``[export] jobs`` > 1, :meth:`MariaSource.tables` opens that many
worker connections and proves that they share the coordinator's snapshot (parallel.py);
the instance then declares workers and key ranges (:data:`PARALLEL`), or stays on one
reader with a log line when that cannot be proven. No xmin, so the incremental export
re-checks every recent day by count and content hash; the server hashes windows itself
(``my3``; ``my2``, ``my1`` for hashes published by earlier versions: rowhash.py); no PostgreSQL
DDL (``pre_data`` false: a consumer creates tables from the manifest).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from mysql.connector import errors as my_errors

from topoff.config import Config, TableConfig
from topoff.dataset.logical import Logical, LogicalError, check_agrees
from topoff.dataset.manifest import Column, Snapshot
from topoff.errors import ConfigError, SourceError
from topoff.pgtypes import is_time_cursor
from topoff.sources.base import SourceCapabilities, SourceTable
from topoff.sources.configured import check_names, exported_columns
from topoff.sources.mariadb import parallel
from topoff.sources.mariadb import snapshot as snap
from topoff.sources.mariadb.catalog import MariaTable, key_refusal, read_table
from topoff.sources.mariadb.connect import connect_target, display_url, parse_url
from topoff.sources.mariadb.errors import read_failed
from topoff.sources.mariadb.reader import (
    MARIA_HASH,
    LineStream,
    MariaSourceTable,
    hash_sql,
    select_sql,
)
from topoff.sources.mariadb.rowhash import ALGORITHMS, HASH_PROBE, computed, preferred, summed
from topoff.sources.mariadb.safety import (
    replayed_until,
    replication_state,
    require_replica,
    utc_now,
)
from topoff.sources.retry import retry_schema_changes

T = TypeVar("T")
log = logging.getLogger("topoff")

CAPABILITIES = SourceCapabilities(
    engine="mariadb", exported_snapshot=False, page_ranges=False,
    xmin_change_detection=False, hash_algorithms=ALGORITHMS, pre_data=False,
    table_locks=False)
#: once worker connections share the snapshot: parallel readers, tables split by key ranges
PARALLEL = replace(CAPABILITIES, exported_snapshot=True, page_ranges=True)
#: the smallest table read as key ranges (docs/mariadb.md)
MIN_SPLIT_BYTES = 64 * 1024 * 1024


@dataclass
class MariaSnapshot:
    """The snapshot an export reads (:class:`topoff.sources.base.SourceSnapshot`)."""

    time: datetime
    in_recovery: bool
    database: str
    version: str
    position: snap.SnapshotPosition
    #: seconds the replica's SQL thread is behind its primary (None: unknown or stopped)
    behind: int | None = None
    replication: str = "unknown"  # running | stopped | hidden | none
    engine: str = "mariadb"
    #: when ``behind`` was read (just before the snapshot began)
    measured_at: datetime | None = None

    def to_manifest(self) -> Snapshot:
        position = {k: v for k, v in self.position.as_dict().items() if v is not None}
        position["engine"] = self.engine
        return Snapshot(time=self.time.isoformat(), lsn=None, replay_timestamp=None,
                        xmin=None, xmax=None,
                        isolation="repeatable read, read only (consistent snapshot)",
                        in_recovery=self.in_recovery, position=position)

    def source_json(self, url: str) -> dict[str, Any]:
        return {"engine": self.engine, "url": display_url(url), "database": self.database,
                "server_version": self.version, "in_recovery": self.in_recovery}

    def replayed_until(self) -> datetime | None:
        if not self.in_recovery or self.replication == "none":
            return self.time  # a primary (or a read-only server that replicates nothing)
        return replayed_until(self.behind, self.measured_at or self.time)

    def lag(self) -> tuple[str, str | None]:
        if self.replication == "stopped":
            return " (replication is stopped on the replica)", None
        if self.replication == "hidden":
            return "", ("this user cannot see the replica's replication status: GRANT "
                        "REPLICA MONITOR (or REPLICATION CLIENT); or ")
        return "", None


def _column(c: Any, what: str) -> Column:
    logical = Logical.from_json(c.logical, what)
    check_agrees(logical, c.type, c.enum, what)
    return Column(c.name, c.type, c.nullable, c.enum, logical=logical, native=c.native[:200])


class MariaReader:
    """The export's connection in its snapshot (:class:`topoff.sources.base.SourceReader`)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def rows(self, table: SourceTable, window: Any = None, part: Any = None,
             ordered: bool = False) -> LineStream:
        assert isinstance(table, MariaSourceTable)
        if part is not None:
            assert isinstance(part, parallel.KeyRange) and window is None
            return LineStream(self.conn, table, parallel.part_sql(table, part), [])
        sql, params = select_sql(table, window, ordered)
        return LineStream(self.conn, table, sql, params)

    def count_hash(self, table: SourceTable, window: Any,
                   algorithm: str) -> tuple[int, str | None]:
        assert isinstance(table, MariaSourceTable)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown content hash algorithm {algorithm!r}")
        sql, params = hash_sql(table, window, algorithm)
        cur = None
        try:
            cur = self.conn.cursor()
            cur.execute(sql, params)
            count, total = cur.fetchone()
        except my_errors.Error as e:
            raise read_failed(f"hashing {table.qualified}", e,
                              hint="check the connection to the source") from None
        finally:
            if cur is not None:
                with contextlib.suppress(my_errors.Error):
                    cur.close()
        got = summed(total)  # None: a row's digest was NULL, the sum would skip it
        if got is None:
            log.warning("%s: the server's %s digest of a row was NULL (a hash function "
                        "missing, or a row's text past max_allowed_packet): no content hash, "
                        "exported again at each re-check", table.qualified, algorithm)
            return int(count), None
        return int(count), f"{algorithm}:{got}"

    def changed_since(self, table: SourceTable, window: Any, since: Snapshot,
                      now: Any) -> tuple[int, int] | None:
        return None  # no xmin: the caller hashes the window


class MariaSource:
    """:class:`topoff.sources.base.Source` for ``mariadb://`` and ``mysql://`` URLs."""

    capabilities = CAPABILITIES
    #: which hash functions the server computes (rowhash.computed)
    HASH_PROBE = HASH_PROBE

    def __init__(self, url: str, allow_primary: bool,
                 application_name: str = "topoff export") -> None:
        self.url = url
        self.allow_primary = allow_primary
        self.command = application_name  # whose options a refusal's hint names
        self.target = parse_url(url)
        self.conn: Any = None
        self.info: MariaSnapshot | None = None
        self.capabilities = CAPABILITIES
        self._workers: list[Any] = []  # connections in the snapshot, not yet handed out
        self._busy: list[Any] = []  # handed out to the export's threads
        self._ids: list[int] = []  # the workers' connection ids (to stop their queries)
        self._lock = threading.Lock()
        self.hashes: tuple[str, ...] = ALGORITHMS  # those the server computes (open)

    retry = staticmethod(retry_schema_changes)  # a migration under the snapshot: again

    def open(self) -> MariaSnapshot:
        self.conn = conn = connect_target(self.target)
        where = self.target.display()
        role = require_replica(conn, where, self.allow_primary, self.command)
        measured_at = utc_now(conn)
        replication, behind = replication_state(conn) if role.is_replica else ("none", None)
        position = snap.shared_snapshot([conn])
        cur = conn.cursor()
        try:
            cur.execute("SELECT UTC_TIMESTAMP(6), DATABASE()")
            now, database = cur.fetchone()
            self.hashes = self._probe_hashes(cur)
        finally:
            cur.close()
        engine = "mariadb" if "mariadb" in role.version.lower() else "mysql"
        self.info = MariaSnapshot(
            time=now.replace(tzinfo=UTC), in_recovery=role.is_replica,
            database=str(database or self.target.database), version=role.version,
            position=position, behind=behind, replication=replication, engine=engine,
            measured_at=measured_at)
        return self.info

    def tables(self, config: Config) -> list[SourceTable]:
        if not config.tables:
            raise ConfigError("no tables are configured",
                              hint="list the tables to export under [tables.<name>] in the "
                                   "config file (see docs/configuration.md)")
        if config.export.jobs > 1 and not self._workers and not self._busy:
            self._start_workers(config.export.jobs)
        tables = [self._table(tc, config.strict) for tc in config.tables]
        if self.capabilities.page_ranges:  # big tables start first
            for t in tables:
                t.size = parallel.table_bytes(self.conn, t)
        return list(tables)

    def _start_workers(self, jobs: int) -> None:
        """``jobs`` connections in the snapshot (parallel.open_workers), before any read."""
        assert self.conn is not None and self.info is not None, "the source is not open"
        workers, position = parallel.open_workers(self.target, self.conn, jobs,
                                                  self.info.position)
        self.info.position = position
        if workers:
            self._workers = workers
            self._ids = parallel.connection_ids(workers)
            self.capabilities = PARALLEL

    def _table(self, tc: TableConfig, strict: bool) -> MariaSourceTable:
        try:
            mt = read_table(self.conn, tc.schema, tc.name)
        except SourceError as e:
            if "not found" not in e.message:
                raise
            raise ConfigError(f"table {tc.qualified} does not exist on the source, or the "
                              "user may not SELECT it (a MariaDB table is named "
                              "database.table)",
                              hint=f"fix [tables.{tc.name}] in the config, or check --source"
                              ) from None
        names = [c.name for c in mt.columns]
        where = f"[tables.{tc.name}]"
        exported = set(exported_columns(tc, names, strict))
        kept = [c for c in mt.columns if c.name in exported]
        check_names(tc, [c.name for c in kept])
        try:
            columns = [_column(c, f"{tc.qualified} column {c.name!r}") for c in kept]
        except LogicalError as e:  # the mapping is ours: a bug, not the user's input
            raise RuntimeError(f"MariaDB type mapping: {e}") from None
        cursor_type = None
        if tc.cursor:
            cursor_type = mt.column(tc.cursor).type
            if not is_time_cursor(cursor_type):
                raise ConfigError(f"{where} cursor {tc.cursor} is {mt.column(tc.cursor).native}"
                                  ", not a date or timestamp",
                                  hint="a cursor must be a DATETIME, TIMESTAMP or DATE column")
        key = list(tc.key) if tc.key else list(mt.primary_key)
        # a key the config names is the user's word that its values are never respelled
        refused = (key_refusal(mt, key, "every replica") if tc.method == "upsert"
                   and not tc.key else None)
        if refused:  # a replica's upsert compares bytes: both spellings would stay
            raise ConfigError(f"{where} {tc.qualified}: {refused[0]}", hint=refused[1])
        published = MariaTable(schema=mt.schema, name=mt.name, columns=kept,
                               primary_key=mt.primary_key, estimated_rows=mt.estimated_rows,
                               engine=mt.engine)
        return MariaSourceTable(
            config=tc, columns=columns, source_columns=names, primary_key=key,
            cursor_type=cursor_type, est_rows=float(mt.estimated_rows), maria=published)

    def lock(self, tables: list[SourceTable]) -> None:
        return None  # no table locks: the consistent snapshot alone (table_locks false)

    def reader(self) -> MariaReader:
        assert self.conn is not None, "the source is not open"
        return MariaReader(self.conn)

    def share(self) -> None:
        return None

    def worker(self) -> MariaReader:
        """One of the worker connections (one per export thread), in the snapshot."""
        with self._lock:
            if not self._workers:
                raise AssertionError("no worker connection left (more threads than jobs)")
            conn = self._workers.pop()
            self._busy.append(conn)
        return MariaReader(conn)

    def parts(self, table: SourceTable, jobs: int, split_bytes: int) -> list[Any]:
        """Key ranges of a big table with a one-column integer key (parallel.key_ranges)."""
        assert isinstance(table, MariaSourceTable)
        # each range's bound is found by an index walk (OFFSET n): fewer, larger ranges
        split_bytes = max(split_bytes, MIN_SPLIT_BYTES)
        if not self.capabilities.page_ranges or jobs < 2 or table.size < split_bytes:
            return [None]
        ranges = parallel.key_ranges(self.conn, table,
                                     min(jobs * 4, max(2, table.size // split_bytes)))
        return list(ranges) or [None]

    def _probe_hashes(self, cur: Any) -> tuple[str, ...]:
        """The content hashes whose functions the server computes; a missing one logged."""
        try:
            cur.execute(self.HASH_PROBE)
            usable = computed(cur.fetchone())
        except my_errors.Error as e:  # a function refused outright (a FIPS build's MD5)
            log.warning("%s: the server's hash functions failed (%s)", self.target.display(),
                        e.msg)
            usable = ()
        if MARIA_HASH not in usable:
            chosen = preferred(usable)
            log.warning("%s: the server does not compute the %s content hash (SHA2() is NULL "
                        "on a server built without TLS); %s", self.target.display(),
                        MARIA_HASH, f"hashing with {chosen}" if chosen else
                        "tables with a key are hashed by the rows read (cs1), the others "
                        "not at all")
        return usable

    def hash_algorithm(self) -> str | None:
        if MARIA_HASH in self.hashes:
            return MARIA_HASH  # (a test may set another)
        return preferred(self.hashes)

    def pre_data_sql(self, tables: list[SourceTable]) -> str:
        return ""

    def post_data_sql(self, tables: list[SourceTable]) -> str:
        return ""

    def verifier(self) -> Any:
        """What ``topoff verify`` hashes this source's tables with."""
        from topoff.sources.mariadb.verify import MariaVerifier
        assert self.conn is not None, "the source is not open"
        return MariaVerifier(self.conn)

    def main_error(self, errors: list[BaseException]) -> BaseException:
        """The first error that is not another worker's interrupted query."""
        for e in errors:
            if "interrupted" not in str(e).lower():
                return e
        return errors[0]

    def cancel_all(self) -> None:
        parallel.kill_queries(self.target, self._ids)

    def close(self) -> None:
        with self._lock:
            others, self._workers, self._busy = self._workers + self._busy, [], []
            self._ids = []
        snap.rollback(others)
        parallel.close_all(others)
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    def __enter__(self) -> MariaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

