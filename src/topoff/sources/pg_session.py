"""One consistent snapshot of the source, shared by parallel workers.

The coordinator connects, checks ``pg_is_in_recovery()`` before reading anything, begins
the isolation level the server allows, and exports its snapshot; each worker connects to
the same host and port, begins, and imports it with ``SET TRANSACTION SNAPSHOT``
(supported on standbys since PostgreSQL 10). Every table of an export is read in one
snapshot, so foreign keys between exported tables hold in the dataset.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from topoff import safety
from topoff.dataset.manifest import Snapshot
from topoff.errors import SafetyError
from topoff.sources.postgres import ServerUnavailable, connect, display_url

_SNAPSHOT_Q = """
SELECT now(),
       pg_is_in_recovery(),
       pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END)::text,
       pg_last_xact_replay_timestamp(),
       current_database(),
       current_setting('server_version'),
       current_setting('server_version_num')::int
"""


@dataclass(frozen=True)
class SnapshotInfo:
    time: datetime
    in_recovery: bool
    xmin: int
    xmax: int
    lsn: str
    replay_timestamp: datetime | None
    database: str
    server_version: str
    server_version_num: int
    #: a standby's replay progress, read just before the snapshot
    replay: safety.ReplayState | None = None

    def to_manifest(self) -> Snapshot:
        return Snapshot(
            time=self.time.isoformat(),
            lsn=self.lsn,
            replay_timestamp=self.replay_timestamp.isoformat() if self.replay_timestamp else None,
            xmin=self.xmin,
            xmax=self.xmax,
            isolation=safety.isolation_name(self.in_recovery),
            in_recovery=self.in_recovery,
        )

    def replayed_until(self) -> datetime | None:
        return self.replay.until if self.replay is not None else self.time

    def lag(self) -> tuple[str, str | None]:
        replay, suffix, hint = self.replay, "", None
        if replay is not None and replay.paused:
            suffix = " (WAL replay is paused on the standby)"
        elif replay is not None and replay.receiver == "streaming" and not replay.caught_up:
            suffix = (f" (replayed WAL up to {replay.replay_lsn}, the primary has written up "
                      f"to {replay.primary_end_lsn})")
        if replay is not None and replay.receiver == "hidden":
            hint = ("this role cannot see the standby's WAL receiver, so a quiet primary keeps "
                    "the day open: GRANT pg_read_all_stats TO the export's role; or ")
        return suffix, hint

    def source_json(self, url: str) -> dict[str, object]:
        return {"engine": "postgresql", "url": display_url(url), "database": self.database,
                "server_version": self.server_version,
                "server_version_num": self.server_version_num, "in_recovery": self.in_recovery}


class SnapshotSession:
    """The coordinator's transaction; :meth:`worker` gives more connections in its snapshot."""

    def __init__(self, url: str, allow_primary: bool, application_name: str = "topoff export"):
        self.url = url
        self.allow_primary = allow_primary
        self.application_name = application_name
        self.conn: psycopg.Connection | None = None
        self.info: SnapshotInfo | None = None
        self._snapshot_id: str | None = None
        self._workers: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def open(self) -> SnapshotInfo:
        conn = connect(self.url, self.application_name, autocommit=True)
        self.conn = conn
        in_recovery = safety.check_standby(conn, self.url, self.allow_primary,
                                           self.application_name)
        replay = safety.replay_state(conn) if in_recovery else None
        conn.execute(safety.begin_statement(in_recovery))
        row = conn.execute(_SNAPSHOT_Q).fetchone()
        assert row is not None
        taken, recovery, xmin, xmax, lsn, replayed, database, version, version_num = row
        info = SnapshotInfo(taken, recovery, xmin, xmax, lsn, replayed, database, version,
                            version_num, replay=replay)
        if info.in_recovery != in_recovery:
            raise SafetyError(f"{display_url(self.url)} changed role during the export (promoted?)",
                              hint="run the export again")
        self.info = info
        return info

    @property
    def snapshot_id(self) -> str:
        if self._snapshot_id is None:
            assert self.conn is not None
            (self._snapshot_id,) = self.conn.execute("SELECT pg_export_snapshot()").fetchone()  # type: ignore[misc]
        return self._snapshot_id

    def worker(self) -> psycopg.Connection:
        """A new connection reading the coordinator's snapshot; closed by :meth:`close`."""
        assert self.conn is not None and self.info is not None
        snapshot_id = self.snapshot_id
        # Same server as the coordinator: a multi-host URL must not land a worker elsewhere.
        pin = {"host": self.conn.info.host, "port": str(self.conn.info.port)}
        try:
            conn = connect(self.url, self.application_name + " worker", autocommit=True, **pin)
        except ServerUnavailable as e:  # it was there for the coordinator: it went away
            raise psycopg.OperationalError(f"the connection was lost: {e.message}") from None
        with self._lock:
            self._workers.append(conn)
        safety.check_standby(conn, self.url, self.allow_primary, self.application_name)
        conn.execute(safety.begin_statement(self.info.in_recovery, worker=True))
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                sql.Literal(snapshot_id)))
        except psycopg.errors.InvalidParameterValue as e:
            # The snapshot lives as long as the coordinator's transaction: its session ended
            # (e.g. the standby restarted), which the export retries like a lost connection.
            raise psycopg.OperationalError(
                f"the export's snapshot is gone, the coordinator's connection was lost ({e})"
            ) from e
        return conn

    def cancel_all(self) -> None:
        """Interrupt every worker's running statement (another worker failed)."""
        with self._lock:
            conns = list(self._workers)
        for c in conns:
            with contextlib.suppress(Exception):
                c.cancel_safe()

    def close(self) -> None:
        with self._lock:
            conns, self._workers = self._workers, []
        for c in [*conns, self.conn]:
            if c is not None:
                with contextlib.suppress(Exception):
                    c.close()
        self.conn = None

    def __enter__(self) -> SnapshotSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
