"""One ``mariadb-dump`` run, its SQL text streamed from its stdout.

``mariadb-dump --single-transaction --quick --routines --events --triggers --hex-blob
--master-data=2`` of one database (no ``CREATE DATABASE`` / ``USE``: a restore goes into
any database). Credentials come from an option file (:mod:`topoff.backup.maria_client`),
never argv. With ``--master-data=2`` MariaDB's dump reads its binlog position from its
own snapshot (status ``Binlog_snapshot_file`` / ``_position``, no global lock) and writes
it as a comment before any table: :meth:`MariaDump.header` reads up to that comment, so
the caller can compare it with its own snapshot's before anything is stored. The GTID
position comes as a comment near the end (:attr:`MariaDump.gtid`).

MySQL's ``mysqldump`` takes ``--source-data=2`` instead (and a short global read lock).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import IO

from topoff.backup.maria_client import child_env
from topoff.backup.mariadbd import MAX_PACKET
from topoff.errors import SourceError
from topoff.redact import redact
from topoff.sources.mariadb.errors import (
    NO_SUCH_TABLE,
    SCHEMA_CHANGED_HINT,
    TABLE_DEF_CHANGED,
)

CHUNK = 1 << 20
MAX_HEADER = 1 << 16  # the position comment comes within the first few KiB
_POSITION = re.compile(rb"^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE="
                       rb"'([^'\n]{1,255})', (?:MASTER|SOURCE)_LOG_POS=([0-9]{1,20});", re.M)
_GTID = re.compile(rb"^-- SET GLOBAL gtid_slave_pos='([0-9,\- ]{0,4000})';", re.M)
_COMPLETED = re.compile(rb"^-- Dump completed", re.M)
#: "Error 1412: Table definition has changed..." / "Error 1146: Table ... doesn't exist"
_SCHEMA_CHANGE = re.compile(rf"\bError ({TABLE_DEF_CHANGED}|{NO_SUCH_TABLE})\b")


class MariaDump:
    """``mariadb-dump`` of ``database`` with credentials from ``defaults``."""

    def __init__(self, program: str, defaults: Path, database: str, mariadb: bool = True,
                 master_data: bool = True, history: bool = False,
                 ignore_data: tuple[str, ...] = ()) -> None:
        self.master_data = master_data
        self.history = history  # system-versioned tables with every version
        self.ignore_data = ignore_data  # tables dumped without their rows (topoff's own)
        position = []
        if master_data:
            position = ["--master-data=2"] if mariadb else ["--source-data=2"]
        self.cmd = [program, f"--defaults-extra-file={defaults}", "--single-transaction",
                    "--quick", "--routines", "--events", "--triggers", "--hex-blob",
                    "--default-character-set=utf8mb4", f"--max-allowed-packet={MAX_PACKET}",
                    *position,
                    *(["--dump-history"] if history else []),
                    *(f"--ignore-table-data={database}.{t}" for t in ignore_data),
                    "--", database]
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr: deque[str] = deque(maxlen=20)
        self.position: tuple[str, int] | None = None
        self.gtid: str | None = None
        self._tail = b""
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, process_group=0, env=child_env())
        self._reader = threading.Thread(target=self._read_stderr, daemon=True,
                                        name="mariadb-dump-stderr")
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(redact(line.decode(errors="replace").rstrip()))

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    def header(self) -> bytes:
        """The dump's first bytes, up to its binlog position comment (parsed into
        :attr:`position`); without ``--master-data``, nothing."""
        if not self.master_data:
            return b""
        head = b""
        while len(head) < MAX_HEADER:
            data = self.stdout.read1(4096)  # type: ignore[attr-defined]
            if not data:
                break
            head += data
            m = _POSITION.search(head)
            if m and head.find(b"\n", m.end()) >= 0:
                self.position = (m.group(1).decode(), int(m.group(2)))
                self._tail = head[-8192:]  # a small dump may have ended in these reads
                return head
        raise self.failure() if self.wait_failed() else SourceError(
            "mariadb-dump wrote no binlog position", hint="check the dump program's version "
            "(MariaDB 10.3+ mariadb-dump, or MySQL 8 mysqldump)")

    def chunks(self) -> bytes:
        """The next piece of the dump (b'' at its end); keeps the tail for the GTID."""
        data = self.stdout.read1(CHUNK)  # type: ignore[attr-defined]
        if data:
            self._tail = (self._tail + data)[-8192:]
        return data

    def wait_failed(self) -> bool:
        assert self.proc is not None
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return self.proc.returncode != 0

    def finish(self) -> None:
        """After the stream's end: the dump must have exited 0 and written its last line."""
        assert self.proc is not None
        self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.returncode != 0:
            raise self.failure()
        if not _COMPLETED.search(self._tail):
            raise SourceError("mariadb-dump ended without its 'Dump completed' line",
                              hint="check the dump program; the backup was not published")
        m = _GTID.search(self._tail)
        self.gtid = m.group(1).decode() if m else None

    def failure(self) -> SourceError:
        assert self.proc is not None
        if self._reader is not None:
            self._reader.join(timeout=5)
        lines = [ln for ln in self.stderr if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        why = (errors or lines or ["no message"])[0]
        hint = "check the message; the backup was not published"
        if self.proc.returncode == -signal.SIGSEGV and self.master_data:
            # its --master-data reads BINLOG_GTID_POS(), which is NULL when an event of the
            # current binlog file is longer than max_allowed_packet, and crashes on it
            why = ("it crashed (SIGSEGV), as mariadb-dump --master-data does when the server "
                   "cannot give the GTID of its binlog position (BINLOG_GTID_POS is NULL: an "
                   "event in the current binlog file longer than max_allowed_packet)")
            hint = ("run FLUSH BINARY LOGS on the server backed up (a new binlog file), or "
                    "raise its max_allowed_packet, then back up again; nothing was published")
        if "access denied" in why.lower() or "1227" in why or "1044" in why:
            hint = ("the backup user needs SELECT, SHOW VIEW, TRIGGER, EVENT and (for the "
                    "binlog position) BINLOG MONITOR; see docs/backups.md")
        why = why[:300]
        change = _SCHEMA_CHANGE.search(why)
        if change:  # a migration rebuilt (1412) or dropped (1146) a table under the dump
            hint = SCHEMA_CHANGED_HINT
            what = "changed" if int(change.group(1)) == TABLE_DEF_CHANGED else "gone"
            why += f" (a table {what} on the source after the dump's snapshot began)"
        return SourceError(f"mariadb-dump failed (exit status {self.proc.returncode}): "
                           f"{why}", hint=hint)

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):  # its own group: a wrapper's children too
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        with contextlib.suppress(OSError):
            self.stdout.close()
