"""Restore a MariaDB backup: the store's object through sha256, age and zstd into the
``mariadb`` client, streamed (nothing lands on local disk).

The target is one database (the URL's), empty unless ``clean`` (the dump drops and
recreates each of its tables, ``DROP TABLE IF EXISTS``; other objects there are left).
age authenticates every 64 KiB chunk before releasing its plaintext and refuses a
truncated stream, so the client is only ever fed bytes that the backup's recipients'
key holder wrote; the object's size and sha256 are compared with the catalog at the end.
A restore that fails part-way leaves a partly restored database behind, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections import deque
from typing import Any

from mysql.connector import errors as my_errors

from topoff.backup.catalog import Entry
from topoff.backup.crypt import decrypting_reader
from topoff.backup.maria_client import child_env, option_file, program
from topoff.backup.mariadbd import MAX_PACKET
from topoff.backup.names import data_key
from topoff.errors import ConfigError, IntegrityError, TargetError
from topoff.redact import redact
from topoff.sources.mariadb.connect import MariaTarget, connect_target, parse_url
from topoff.stores.base import FileMissing, Store

log = logging.getLogger("topoff")
CHUNK = 1 << 20
#: bytes kept of a line the client writes on stderr
LINE = 4096
_OBJECTS_Q = (
    "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE())"
    " + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE())"
    " + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE())")


def target_of(url: str) -> MariaTarget:
    target = parse_url(url)
    if not target.database:
        raise ConfigError("the MariaDB target URL names no database",
                          hint="restore into one database: mariadb://user@host:3306/database")
    return target


def target_is_empty(target: MariaTarget) -> bool:
    conn = connect_target(target)
    try:
        cur = conn.cursor()
        cur.execute(_OBJECTS_Q)
        (n,) = cur.fetchone()
        cur.close()
    except my_errors.Error as e:
        raise TargetError(f"cannot read the target's tables: {e.msg}",
                          hint="check the target URL and the user's grants") from None
    finally:
        conn.close()
    return int(n) == 0


class _Client:
    r"""The ``mariadb`` client reading SQL from its stdin into ``database``.

    The SQL is applied before the object's SHA-256 can be checked, and anyone who can
    write to the store can encrypt for the recipients (their public keys are in
    started.json), so the client may read what it is given, nothing else: no
    ``LOAD DATA LOCAL INFILE`` (it would copy a file of this host, the age identity
    included, into the target) and, with ``--binary-mode``, no client commands (``\!``,
    ``source``, ``tee``)."""

    def __init__(self, defaults: Any, database: str) -> None:
        cmd = [program("mariadb", "mysql"), f"--defaults-extra-file={defaults}",
               "--local-infile=0", "--binary-mode", "--batch",
               f"--max-allowed-packet={MAX_PACKET}",
               "--default-character-set=utf8mb4", f"--database={database}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, process_group=0, env=child_env())
        self.stderr: deque[str] = deque(maxlen=5)
        self.error: str | None = None  # the client's last ERROR line
        self._reader = threading.Thread(target=self._read, daemon=True, name="mariadb-stderr")
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        cut = False  # the rest of a line longer than LINE: never read whole (the client
        # echoes a failing statement, a row of the dump of up to 1 GiB)
        while piece := self.proc.stderr.readline(LINE):
            if not cut:
                text = redact(piece.decode(errors="replace").rstrip())
                self.stderr.append(text)
                if text.startswith("ERROR"):  # the statement's echo may follow it
                    self.error = text
            cut = not piece.endswith(b"\n")

    def feed(self, plain: Any) -> None:
        assert self.proc.stdin is not None
        try:
            while data := plain.read(CHUNK):
                self.proc.stdin.write(data)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped: its exit status says why
        self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.returncode != 0:
            # the client echoes the failing statement (the dump's data) before its error
            lines = [ln for ln in self.stderr if ln.strip() and set(ln.strip()) != {"-"}]
            why = self.error or (lines[-1] if lines else "no message")
            hint = "the target database holds a partial restore: drop and recreate it"
            if any(f"ERROR {n} " in why for n in (1153, 2006, 2013)):
                # a statement past the server's max_allowed_packet ends the connection
                hint += (", raise the target server's max_allowed_packet above twice the "
                         "longest BLOB or text of a row (SET GLOBAL max_allowed_packet = "
                         "1073741824)")
            raise TargetError(f"the mariadb client failed (exit status "
                              f"{self.proc.returncode}): {why[:300]}",
                              hint=f"{hint}, then restore again")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):  # its own group: a wrapper's children too
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        with contextlib.suppress(OSError, BrokenPipeError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()


def restore(store: Store, entry: Entry, identities: list[Any], target_url: str,
            clean: bool = False, scrub_sql: tuple[str, ...] = ()) -> int:
    """Restore ``entry`` into the database of ``target_url``; the object's size."""
    assert entry.sha256 is not None and entry.size is not None
    target = target_of(target_url)
    if not clean and not target_is_empty(target):
        raise TargetError(f"{target.display()} is not empty",
                          hint="restore into an empty database, or pass --clean to replace "
                          "the backup's tables there")
    key = data_key(entry.name, "mariadb")
    try:
        src = store.open_read(key)
    except FileMissing:
        raise IntegrityError(f"the object {key} of backup {entry.name} is missing",
                             hint="restore another backup (topoff backups list)") from None
    with option_file(target) as defaults:
        client: _Client | None = None
        try:
            with src, decrypting_reader(src, identities, entry) as (plain, hashed):
                client = _Client(defaults, target.database)
                client.feed(plain)
        except BaseException as e:
            if client is not None:
                client.kill()
            if isinstance(e, IntegrityError):
                raise IntegrityError(f"{e.message}; {target.display()} holds a partial "
                                     "restore", hint=f"drop what was restored into "
                                     f"{target.display()}; {e.hint}") from None
            raise
    if hashed.size != entry.size or hashed.hexdigest() != entry.sha256:
        raise IntegrityError(
            f"backup {entry.name} does not match its catalog entry (size {hashed.size} vs "
            f"{entry.size}, sha256 {hashed.hexdigest()[:16]}... vs {entry.sha256[:16]}...)",
            hint=f"the object was changed; drop what was restored into {target.display()} "
            "and restore another backup")
    scrub(target, scrub_sql)
    return hashed.size


def scrub(target: MariaTarget, statements: tuple[str, ...]) -> None:
    """Run the configured scrub SQL (from the config file, never from the backup)."""
    if not statements:
        return
    conn = connect_target(target)
    try:
        conn.autocommit = False
        cur = conn.cursor()
        for stmt in statements:
            cur.execute(stmt)
        conn.commit()
    except my_errors.Error as e:
        raise TargetError(f"scrub SQL failed: {redact(str(e.msg).splitlines()[0])}",
                          hint="check [backup] scrub in the config") from None
    finally:
        conn.close()
    log.info("ran %d scrub statements", len(statements))
