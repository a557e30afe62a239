"""Which process a backup or a work directory belongs to, and whether it may still run.

started.json and a work directory's ``owner.json`` carry :func:`process_marker`: host,
pid, boot and the process's start time, so that a pid reused after a reboot or by
another program never passes for the one that wrote them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from topoff.errors import TargetError, TopoffError

log = logging.getLogger("topoff")

#: a backup with only started.json on another host counts as ongoing this long
MAX_ONGOING = timedelta(hours=48)
#: the file in a work directory that names the process it belongs to
OWNER = "owner.json"


def parse_time(value: Any) -> datetime | None:
    """A catalog time: ISO 8601 with a zone; None for anything else."""
    try:
        t = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return t if t is not None and t.tzinfo is not None else None


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_marker() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "boot_id": _boot_id(),
            "proc_start": _proc_start(pid)}


def work_directory(prefix: str, parent: str | None,
                   error: type[TopoffError] = TargetError) -> Path:
    """A new work directory under ``parent`` ($TMPDIR), marked with this process. Those a
    killed topoff left there (pg_dump's files, a decrypted dump), whose owner is gone from
    this host, are removed first; a directory without the mark is left alone. One that
    cannot be made (a full disk) is ``error``, nothing left behind."""
    root = Path(parent or tempfile.gettempdir())
    for old in root.glob(f"{prefix}*"):
        try:
            owner = json.loads((old / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(owner, dict) and owner.get("host") == socket.gethostname() \
                and not alive(owner):
            log.info("removing %s, left by a topoff that was killed", old)
            shutil.rmtree(old, ignore_errors=True)
    base: Path | None = None
    try:
        base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        (base / OWNER).write_text(json.dumps(process_marker()))
    except OSError as e:
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
        raise error(f"cannot make a work directory under {root}: {e.strerror or e}",
                    hint="free disk space under the work directory (--workdir) or give "
                    "another --workdir") from None
    return base


def alive(started: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether the process that wrote started.json may still be running."""
    pid = started.get("pid")
    same_host = started.get("host") == socket.gethostname()
    if same_host and started.get("boot_id") == _boot_id() and isinstance(pid, int) \
            and not isinstance(pid, bool) and pid > 0:
        return _proc_start(pid) == started.get("proc_start")
    if same_host:
        return False  # rebooted since, or a marker we cannot check
    begun = parse_time(started.get("started"))
    if begun is None:
        return False
    return (now or datetime.now(UTC)) - begun < MAX_ONGOING
