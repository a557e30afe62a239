"""Restore a backup: download, verify, decrypt, pg_restore; then the configured scrub SQL.

The object streams from the store through sha256, age (a separate process, see
:mod:`topoff.backup.decrypter`) and zstd into a tar reader (:mod:`topoff.backup.untar`) that
writes the dump's files into a private temp directory (peak local disk: the uncompressed
dump). Only tar members that pg_dump's directory format has (``toc.dat``, ``<n>.dat``,
``blobs.toc`` or ``blobs_<n>.toc``, ``blob_<n>.dat``, plain files) are accepted.
pg_restore starts only once the whole object has been read and its size and sha256 match
the catalog.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from topoff.backup import libpq, pgtoc, untar
from topoff.backup.catalog import Entry, latest_finished, read_entry, work_directory
from topoff.backup.crypt import decrypting_reader
from topoff.backup.names import check_name, data_key
from topoff.errors import ConfigError, IntegrityError, SourceError, StoreError, TargetError
from topoff.redact import redact
from topoff.sources.base import engine_of
from topoff.sources.postgres import connect, display_url
from topoff.stores.base import FileMissing, Store

log = logging.getLogger("topoff")

#: what pg_dump's directory format holds (pg_dump 17: one blobs_<n>.toc per BLOBS entry)
MEMBER = re.compile(r"toc\.dat|blobs\.toc|blobs_[0-9]{1,10}\.toc|[0-9]{1,10}\.dat"
                    r"|blob_[0-9]{1,10}\.dat")
MAX_MEMBERS = 1_000_000

_USER_RELATIONS_Q = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""


@dataclass
class RestoreResult:
    entry: Entry
    size: int
    files: int


def choose(store: Store, name: str | None) -> Entry:
    """The named backup (must be finished), or the newest finished one."""
    if name is None:
        entry = latest_finished(store)
        if entry is None:
            raise StoreError(f"no finished backup in {store.url}",
                             hint="check the location with `topoff backups list`")
        return entry
    entry = read_entry(store, check_name(name))
    if entry is None:
        raise StoreError(f"no backup named {name} in {store.url}",
                         hint="see the names with `topoff backups list`")
    if entry.status != "finished":
        raise IntegrityError(f"backup {name} is {entry.status}, not finished",
                             hint="restore a finished backup (topoff backups list)")
    return entry


def fetch(store: Store, entry: Entry, identities: list[Any], dest: Path) -> int:
    """Stream the backup into ``dest`` (an empty directory); return the file count."""
    assert entry.sha256 is not None and entry.size is not None
    key = data_key(entry.name)
    try:
        src = store.open_read(key)
    except FileMissing:
        raise IntegrityError(f"the object {key} of backup {entry.name} is missing",
                             hint="restore another backup (topoff backups list)") from None
    count = 0
    most = min(entry.files, MAX_MEMBERS) if entry.files is not None else MAX_MEMBERS
    with src, decrypting_reader(src, identities, entry) as (plain, hashed):
        try:
            count = untar.extract(plain, dest, lambda name: bool(MEMBER.fullmatch(name)),
                                  most)
        except untar.TooManyMembers:
            raise IntegrityError(f"the backup holds more than the {most} files its catalog "
                                 "entry declares",
                                 hint="the object was not written by topoff backup or was "
                                 "changed; restore another backup") from None
        except untar.UnexpectedEntry as e:
            raise IntegrityError(
                f"the backup holds an unexpected entry {e.name[:80]!r}",
                hint="this object was not written by topoff backup; do not restore it"
                ) from None
        except tarfile.TarError as e:
            raise IntegrityError(f"the backup is not a valid tar stream ({e})",
                                 hint="restore another backup (topoff backups list)") from None
        except FileExistsError as e:
            raise IntegrityError(f"the backup holds {Path(str(e.filename)).name} twice",
                                 hint="this object was not written by topoff backup") from None
        except OSError as e:
            raise TargetError(f"writing the dump's files failed: {e.strerror}",
                              hint="free disk space under --workdir (the restore needs "
                              "room for the uncompressed dump)") from None
    if hashed.size != entry.size or hashed.hexdigest() != entry.sha256:
        raise IntegrityError(
            f"backup {entry.name} does not match its catalog entry (size {hashed.size} vs "
            f"{entry.size}, sha256 {hashed.hexdigest()[:16]}... vs {entry.sha256[:16]}...)",
            hint="the object was changed or truncated; restore another backup")
    if not (dest / "toc.dat").exists():
        raise IntegrityError(f"backup {entry.name} has no toc.dat",
                             hint="restore another backup (topoff backups list)")
    return count


def _check_room(base: Path, entry: Entry) -> None:
    """The dump is written whole under the work directory: a ``plain_size`` (or
    ``--max-plain-size``) beyond its free space cannot be restored there, and would bound
    nothing (anyone who can write to the store can declare one)."""
    free = shutil.disk_usage(base).free
    if entry.plain_limit > free:
        raise TargetError(f"backup {entry.name} decompresses to {entry.plain_limit} bytes, "
                          f"more than the {free} bytes free under {base.parent}",
                          hint="free space under --workdir or give another --workdir (a "
                          "size far beyond the database's means a changed catalog entry)")


def check_names(entry: Entry, dump: Path) -> None:
    """pg_restore reads the files toc.dat and blobs.toc name: the dump's own only."""
    try:
        pgtoc.check(dump)
    except pgtoc.BadToc as e:
        raise IntegrityError(f"backup {entry.name}: {e}",
                             hint="this object was not written by topoff backup; do not "
                             "restore it") from None


def _connect(url: str, autocommit: bool) -> psycopg.Connection:
    """The database restored into: failing to reach it is the target's error (exit 7)."""
    try:
        return connect(url, "topoff restore", autocommit=autocommit)
    except SourceError as e:
        raise TargetError(e.message, hint=e.hint) from None


def target_is_empty(url: str) -> bool:
    with _connect(url, autocommit=True) as conn:
        (n,) = conn.execute(_USER_RELATIONS_Q).fetchone()  # type: ignore[misc]
    return int(n) == 0


#: what libpq and the server say of a session that ended under pg_restore
_LOST = ("server closed the connection unexpectedly", "terminating connection",
         "connection to server", "no connection to the server", "could not receive data",
         "could not send data", "SSL SYSCALL error", "the database system is shutting down")


def pg_restore(url: str, dump_dir: Path, jobs: int, clean: bool, no_owner: bool) -> None:
    conninfo, env = libpq.split(url)
    cmd = [libpq.program("pg_restore"), f"--dbname={conninfo}", f"--jobs={jobs}",
           "--exit-on-error", "--no-password"]
    if clean:
        cmd += ["--clean", "--if-exists"]
    if no_owner:
        cmd += ["--no-owner", "--no-privileges"]
    proc = subprocess.run([*cmd, str(dump_dir)], env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        # the first error says why (with --jobs, the last one is "a worker process died")
        first = next((ln for ln in lines if ln.startswith("pg_restore: error:")), None)
        why = (redact((first or lines[-1]).removeprefix("pg_restore: ")) if lines
               else "no message")
        hint = ("pg_restore lost the connection to the target: check that its server is "
                "running and reachable, then restore again with --clean (the target holds "
                "part of the backup now)") if any(s in why for s in _LOST) else \
            ("check the target's roles and extensions (--no-owner helps when the source's "
             "roles do not exist there)")
        raise TargetError(f"pg_restore into {display_url(url)} failed: {why}", hint=hint)


def scrub(url: str, statements: tuple[str, ...]) -> None:
    """Run the configured scrub SQL (from the config file, never from the backup)."""
    if not statements:
        return
    with _connect(url, autocommit=False) as conn:
        try:
            # operator-written whole statements: the database's own search_path, as in psql
            conn.execute("RESET search_path")
            for stmt in statements:
                conn.execute(sql.SQL(stmt))  # operator-written
            conn.commit()
        except psycopg.Error as e:
            raise TargetError(f"scrub SQL failed: {redact(str(e).splitlines()[0])}",
                              hint="check [backup] scrub in the config") from None
    log.info("ran %d scrub statements", len(statements))


def check_engines(entry: Entry, target_url: str) -> None:
    """A PostgreSQL backup restores into PostgreSQL, a MariaDB one into MariaDB."""
    target = "mariadb" if engine_of(target_url) in ("mariadb", "mysql") else "postgresql"
    if target != entry.engine:
        raise ConfigError(f"backup {entry.name} is a {entry.engine} backup; the target is "
                          f"a {target} URL", hint=f"restore it into a {entry.engine} database")


def restore(store: Store, entry: Entry, identities: list[Any], target_url: str, jobs: int = 2,
            clean: bool = False, no_owner: bool = False, scrub_sql: tuple[str, ...] = (),
            workdir: str | None = None, max_plain_size: int | None = None) -> RestoreResult:
    """Restore ``entry`` into ``target_url``. ``max_plain_size`` bounds what an entry
    that declares no ``plain_size`` may decompress to; without it such an entry is
    refused before anything is read or changed."""
    check_engines(entry, target_url)
    if max_plain_size is not None:
        entry = replace(entry, max_plain=max_plain_size)
    entry.plain_limit  # noqa: B018 - refused here, before the target is touched
    if entry.engine == "mariadb":  # streamed into the mariadb client (no owners to skip)
        from topoff.backup import maria_restore

        size = maria_restore.restore(store, entry, identities, target_url, clean, scrub_sql)
        return RestoreResult(entry, size, 1)
    if not clean and not target_is_empty(target_url):
        raise TargetError(f"{display_url(target_url)} is not empty",
                          hint="restore into an empty database, or pass --clean to drop "
                          "and recreate the backup's objects there")
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    base = work_directory("topoff-restore-", workdir)
    try:
        _check_room(base, entry)
        (base / "dump").mkdir(mode=0o700)
        files = fetch(store, entry, identities, base / "dump")
        check_names(entry, base / "dump")
        log.info("backup %s verified (sha256 %s...), %d files; restoring", entry.name,
                 entry.sha256[:16] if entry.sha256 else "", files)
        pg_restore(target_url, base / "dump", jobs, clean, no_owner)
        scrub(target_url, scrub_sql)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return RestoreResult(entry, entry.size or 0, files)
