"""A backup run of a MariaDB (or MySQL) source: mariadb-dump -> zstd -> age -> store.

Order of events (what a crash leaves behind is as for PostgreSQL, see
:mod:`topoff.backup.pipeline`):

1. The source is checked (a primary is refused unless allowed: SafetyError, exit 4) and
   topoff starts its own consistent snapshot on it, the one the tables are hashed in.
2. ``catalog/<name>/started.json`` (engine ``mariadb``, topoff's snapshot position).
3. ``mariadb-dump --single-transaction --master-data=2`` starts its own snapshot. Its
   binlog position (written before any table) must equal topoff's: both snapshots then
   saw exactly the same commits (mydumper's rule). If a commit came in between, both
   start again (up to :data:`ATTEMPTS` times) before anything is stored. The dump's SQL
   text then streams through zstd and age into ``backups/<name>.sql.zst.age``.
   System-versioned tables with their history when it can be dumped
   (:mod:`.maria_history`). After its last line, the statements that set its FLOAT
   values exactly again, which it printed with 6 digits (:mod:`.maria_floats`), and the
   rows of the tables no key lets them be set in (dumped without them).
4. The tables are counted and hashed in topoff's snapshot (:mod:`.maria_tables`).
5. ``finished.json`` with the binlog file, position and GTID, and the tables.

The positions prove the same snapshot only when the server's binlog records every commit:
``log_bin`` on and, on a replica, ``log_slave_updates`` on. Otherwise the dump runs
without the comparison, the hashes come from a snapshot begun just before the dump, and
the catalog says so (``same_snapshot: false``): a drill then also reports the rows written
in between (docs/backups.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

import zstandard
from mysql.connector import errors as my_errors

from topoff import __version__
from topoff.backup import catalog
from topoff.backup.keys import parse_recipients
from topoff.backup.maria_client import option_file, program
from topoff.backup.maria_dump import MariaDump
from topoff.backup.maria_floats import row_tables, write_float_fixes
from topoff.backup.maria_history import dump_history
from topoff.backup.maria_tables import HASH_FORM, backup_digest, table_hashes
from topoff.backup.names import check_name, data_key
from topoff.backup.request import (
    BackupRequest,
    BackupResult,
    preflight,
    record_failure,
    write_started,
)
from topoff.errors import ConfigError, SourceError
from topoff.sources.mariadb import snapshot as snap
from topoff.sources.mariadb.connect import connect_target, parse_url
from topoff.sources.mariadb.rowhash import HASH_PROBE
from topoff.sources.mariadb.safety import require_replica
from topoff.stores.age import EncryptingStore
from topoff.stores.base import ObjectOptions, Store

log = logging.getLogger("topoff")
ATTEMPTS = 5
ENGINE = "mariadb"


def _scalar(conn: Any, stmt: str) -> str:
    cur = conn.cursor()
    try:
        cur.execute(stmt)
        row = cur.fetchone()
    finally:
        cur.close()
    v = row[0] if row else None
    return v.decode() if isinstance(v, bytes | bytearray) else str(v)


def _digest(conn: Any) -> str:
    """The digest the tables are hashed with: the functions the server computes."""
    cur = conn.cursor()
    try:
        cur.execute(HASH_PROBE)
        row = tuple(cur.fetchone())
    except my_errors.Error:  # a function refused outright (a FIPS build's MD5)
        row = (None, None)
    finally:
        cur.close()
    return backup_digest(row)


def _on(value: str) -> bool:
    return value.upper() not in ("0", "OFF", "NONE", "")


def run(store: Store, req: BackupRequest) -> BackupResult:
    """:func:`topoff.backup.pipeline.run_backup` for a ``mariadb://`` / ``mysql://`` source."""
    started_at = time.monotonic()
    name = check_name(req.name)
    parse_recipients(req.recipients)
    recipients = [v.strip() for v in req.recipients]
    key = data_key(name, ENGINE)
    target = parse_url(req.source_url)
    if not target.database:
        raise ConfigError("the MariaDB source URL names no database",
                          hint="back up one database: mariadb://user@host:3306/database")
    options = preflight(store, name, req)
    conn = connect_target(target)
    try:
        role = require_replica(conn, target.display(), req.allow_primary, "topoff backup")
        mariadb = "mariadb" in role.version.lower()
        log_bin = _on(_scalar(conn, "SELECT @@global.log_bin"))
        updates = _on(_scalar(conn, "SELECT @@global.log_slave_updates"))
        # a server that replicates nothing binlogs every commit it has; a replica only
        # with log_slave_updates (replication status hidden: assume a replica)
        applies = role.replicating is None or bool(role.replicating)
        provable = mariadb and log_bin and (updates or not applies)
        dump_program = program("mariadb-dump", "mysqldump") if mariadb else \
            program("mysqldump", "mariadb-dump")
        history = mariadb and dump_history(conn, dump_program)
        digest = _digest(conn)
        rows_of = tuple(row_tables(conn)) if provable else ()  # FLOATs: maria_floats.py
        position = snap.begin(conn)
        when = _scalar(conn, "SELECT UTC_TIMESTAMP(6)")
        started = {"name": name, "object": key, "engine": ENGINE,
                   "started": catalog.now_iso(), "source": target.display(),
                   "database": target.database, "server_version": role.version,
                   "snapshot": {"time": when.replace(" ", "T") + "+00:00",
                                "in_recovery": role.is_replica,
                                "binlog_file": position.binlog_file,
                                "binlog_position": position.binlog_position},
                   "jobs": 1, "topoff": __version__, "recipients": recipients,
                   **catalog.process_marker()}
        write_started(store, name, started, options)
        log.info("backup %s of %s started (binlog %s:%s)", name, target.display(),
                 position.binlog_file, position.binlog_position)
        try:
            with option_file(target) as defaults:
                result = _dump(store, conn, position, recipients, key, options,
                               MariaDump(dump_program, defaults, target.database, mariadb,
                                         master_data=log_bin, history=history,
                                         ignore_data=rows_of),
                               provable, req.level, req.jobs, digest)
        except BaseException as e:
            record_failure(store, name, e, options)
            raise
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    size, sha, tables, extra, timing = result
    seconds = time.monotonic() - started_at
    finished = {"name": name, "ended": catalog.now_iso(), "object": key, "engine": ENGINE,
                "size": size, "sha256": sha, "files": 1, "seconds": round(seconds, 3),
                "phases": timing, "tables": tables, **extra}
    catalog.write_object(store, name, "finished.json", finished, options)
    return BackupResult(name, key, size, sha, 1, tables, seconds, timing)


def _dump(store: Store, conn: Any, position: snap.SnapshotPosition, recipients: list[str],
          key: str, options: ObjectOptions | None, dump: MariaDump, provable: bool,
          level: int, jobs: int, digest: str = "md5"
          ) -> tuple[int, str, dict[str, Any], dict[str, Any], dict[str, float]]:
    began = time.monotonic()
    try:
        for attempt in range(ATTEMPTS):
            dump.start()
            head = dump.header()
            if not provable or dump.position == (position.binlog_file,
                                                 position.binlog_position):
                break
            log.info("the dump's snapshot (%s) is not topoff's (%s:%s): starting both again",
                     dump.position, position.binlog_file, position.binlog_position)
            dump.kill()
            snap.rollback([conn])
            time.sleep(0.05 * (attempt + 1))
            position = snap.begin(conn)
        else:
            raise SourceError(
                f"the dump's snapshot and topoff's differed {ATTEMPTS} times (the source "
                "commits too often to start both together)",
                hint="run the backup when the replica applies fewer changes, or pause "
                "replication on it for the first seconds of the backup")
        encrypting = EncryptingStore(store, recipients)
        with encrypting.write(key, options=options) as enc:
            threads = max(1, min(jobs, os.cpu_count() or 1))
            plain = zstandard.ZstdCompressor(level=level, threads=threads).stream_writer(
                enc, closefd=False)
            plain.write(head)
            plain_size = len(head)  # the catalog's bound on what a restore decompresses
            while data := dump.chunks():
                plain.write(data)
                plain_size += len(data)
            dump.finish()
            plain_size += write_float_fixes(conn, plain.write, provable, dump.ignore_data,
                                            dump.history)
            plain.flush(zstandard.FLUSH_FRAME)
        stored = enc.stored  # type: ignore[attr-defined]
        dumped = time.monotonic()
        tables = table_hashes(conn, history=dump.history, digest=digest)  # topoff's snapshot
        snap.rollback([conn])
    except BaseException:
        dump.kill()
        with contextlib.suppress(Exception):
            snap.rollback([conn])
        raise
    timing = {"dump": round(dumped - began, 3), "hash": round(time.monotonic() - dumped, 3)}
    extra = {"plain_size": plain_size, "same_snapshot": provable, "hash_form": HASH_FORM,
             "hash_digest": digest,
             "history": dump.history,
             "position": {"binlog_file": dump.position[0] if dump.position else None,
                          "binlog_position": dump.position[1] if dump.position else None,
                          "gtid": dump.gtid}}
    if not provable:
        log.warning("the table hashes come from a snapshot begun just before the dump, not "
                    "provably the dump's own (enable log_bin and log_slave_updates)")
    log.info("dumped in %.1fs, tables counted and hashed in %.1fs", timing["dump"],
             timing["hash"])
    return stored.size, stored.hexdigest(), tables, extra, timing
