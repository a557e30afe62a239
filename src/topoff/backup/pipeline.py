"""One backup run: snapshot, pg_dump, tar, zstd, age, sha256, store, catalog.

Order of events (what a crash at any point leaves behind):

1. The recipients and the name are checked, the snapshot is taken on the source (the
   export safety rules: a primary is refused unless allowed) and exported.
2. ``catalog/<name>/started.json`` is written (never overwritten: a second backup with
   the same name stops here).
3. Every table is locked ACCESS SHARE in the snapshot, to the end (a table a migration
   changed since the snapshot began stops the backup here: tables.lock_tables). pg_dump
   imports the snapshot; each finished file is streamed into the encrypted
   object ``backups/<name>.tar.zst.age``, which appears only when the stream completes.
4. With the snapshot still held, every table is counted and hashed in it (``--jobs``
   connections that import the snapshot), for the drill.
5. ``finished.json`` (size, sha256, files, tables) is written last. Any error writes
   ``failed.json`` instead; a killed process writes nothing, and the catalog reports it
   failed once the process is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from typing import Any

import psycopg
import zstandard

from topoff import __version__
from topoff.backup import catalog
from topoff.backup.dump import PgDump, tar_adder
from topoff.backup.keys import parse_recipients
from topoff.backup.names import check_name, data_key
from topoff.backup.request import (
    BackupRequest,
    BackupResult,
    preflight,
    record_failure,
    write_started,
)
from topoff.backup.tables import lock_tables, table_hashes
from topoff.errors import SourceError
from topoff.export.session import SnapshotSession
from topoff.safety import conflict_hint, is_connection_lost, is_recovery_conflict
from topoff.sources.base import engine_of
from topoff.sources.postgres import display_url
from topoff.stores.age import EncryptingStore
from topoff.stores.base import ObjectOptions, Store

log = logging.getLogger("topoff")
# the tar stream hands zstd 1 MiB at a time (tarfile's default is 10 KiB: a third more CPU)
_COPY = 1 << 20


class _Counting:
    """The tar stream on its way into zstd: counts its bytes, the ``plain_size`` the
    catalog declares (a restore decompresses no more than that)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.size = inner, 0

    def write(self, data: Any) -> int:
        self.inner.write(data)
        self.size += len(data)
        return len(data)


def run_backup(store: Store, req: BackupRequest) -> BackupResult:
    if engine_of(req.source_url) != "postgresql":  # mariadb-dump (docs/backups.md)
        from topoff.backup import maria_backup

        return maria_backup.run(store, req)
    started_at = time.monotonic()
    name = check_name(req.name)
    parse_recipients(req.recipients)  # refuses a bad or secret key before any work
    recipients = [v.strip() for v in req.recipients]
    key = data_key(name)
    options = preflight(store, name, req)
    with SnapshotSession(req.source_url, req.allow_primary, "topoff backup") as session:
        info = session.open()
        snapshot_id = session.snapshot_id
        assert session.conn is not None
        pin = {"host": str(session.conn.info.host), "port": str(session.conn.info.port)}
        started = {"name": name, "object": key, "started": catalog.now_iso(),
                   "source": display_url(req.source_url), "database": info.database,
                   "server_version": info.server_version,
                   "snapshot": {"time": info.time.isoformat(), "lsn": info.lsn,
                                "in_recovery": info.in_recovery},
                   "jobs": req.jobs, "topoff": __version__,
                   "recipients": recipients, **catalog.process_marker()}
        write_started(store, name, started, options)
        log.info("backup %s of %s started (snapshot %s)", name, display_url(req.source_url),
                 info.lsn)
        try:
            result = _dump(store, req, session, snapshot_id, pin, recipients, key, options)
        except BaseException as e:
            failure = _source_failure(e, name) or _session_failure(e, session, name)
            record_failure(store, name, failure or e, options)
            if failure is not None:
                raise failure from None
            raise
    result.seconds = time.monotonic() - started_at
    finished = {"name": name, "ended": catalog.now_iso(), "object": key,
                "size": result.size, "sha256": result.sha256, "plain_size": result.plain_size,
                "files": result.files,
                "seconds": round(result.seconds, 3), "phases": result.phases,
                "tables": result.tables}
    catalog.write_object(store, name, "finished.json", finished, options)
    return result


def _source_failure(e: BaseException, name: str) -> SourceError | None:
    """What a failure of the source's sessions (the coordinator holding the snapshot, the
    connections that count and hash the tables) means: the standby restarted or ended them,
    or replay cancelled a query; None for any other failure."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if is_recovery_conflict(e):
        return SourceError(f"backup {name} was cancelled by a conflict with recovery on the "
                           f"standby ({first})", hint=conflict_hint(e))
    if is_connection_lost(e):
        return SourceError(f"backup {name} lost the connection to the source ({first})",
                           hint="check that the standby is running and accepts connections "
                           "(its log says why it stopped), then run the backup again")
    return None


def _session_failure(e: BaseException, session: SnapshotSession,
                     name: str) -> SourceError | None:
    """Why pg_dump failed when the cause is the backup's own session, which holds the
    snapshot pg_dump imports and the tables' locks: replay cancelled it (a migration on
    the primary) or the standby ended it, and pg_dump could only report the snapshot or
    its lock gone. None when the session is well."""
    if not (isinstance(e, SourceError) and e.message.startswith("pg_dump failed")):
        return None
    if session.conn is None or session.conn.closed:
        return None
    try:
        session.conn.execute("SELECT 1")
    except psycopg.Error as lost:
        return _source_failure(lost, name)
    return None


def _dump(store: Store, req: BackupRequest, session: SnapshotSession, snapshot_id: str,
          pin: dict[str, str], recipients: list[str], key: str,
          options: ObjectOptions | None) -> BackupResult:
    import tarfile

    base = catalog.work_directory("topoff-backup-", req.workdir, SourceError)
    dump = PgDump(req.source_url, snapshot_id, req.jobs, base / "dump", pin)
    try:
        began = time.monotonic()
        assert session.conn is not None
        lock_tables(session.conn)  # held to the end: for pg_dump's start and the hashes
        # age encrypts in the store layer; its writer hashes the ciphertext on its way in
        encrypting = EncryptingStore(store, recipients)
        with encrypting.write(key, options=options) as enc:
            # --jobs zstd threads: the largest table is compressed only once pg_dump has
            # closed its file, when pg_dump no longer needs the cores
            threads = max(1, min(req.jobs, os.cpu_count() or 1))
            plain = _Counting(zstandard.ZstdCompressor(
                level=req.level, threads=threads).stream_writer(enc, closefd=False))
            with tarfile.open(fileobj=plain, mode="w|", bufsize=_COPY,  # type: ignore[call-overload]
                              copybufsize=_COPY) as tar:  # a TarFile argument the stubs lack
                dump.start()
                files = dump.stream(tar_adder(tar))
            plain.inner.flush(zstandard.FLUSH_FRAME)
        stored = enc.stored  # type: ignore[attr-defined]  # size and sha256 as stored
        dumped = time.monotonic()
        # the snapshot is still held (the coordinator's transaction): the counts and
        # hashes describe what pg_dump read, and no longer compete with it for the CPU
        hashes = table_hashes(session.conn, session.worker, req.jobs)
        timing = {"pg_dump": round((dump.exited_at or dumped) - began, 3),
                  "dump": round(dumped - began, 3),
                  "hash": round(time.monotonic() - dumped, 3)}
        log.info("dumped in %.1fs (pg_dump %.1fs), tables counted and hashed in %.1fs",
                 timing["dump"], timing["pg_dump"], timing["hash"])
        return BackupResult(req.name, key, stored.size, stored.hexdigest(), len(files),
                            hashes, 0.0, timing, plain.size)
    except BaseException:
        session.cancel_all()
        if session.conn is not None:
            with contextlib.suppress(Exception):
                session.conn.cancel_safe()
        raise
    finally:
        dump.kill()
        shutil.rmtree(base, ignore_errors=True)
