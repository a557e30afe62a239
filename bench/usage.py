"""Measuring a command: wall seconds, peak memory, CPU seconds of the command's own
processes (client) and of the PostgreSQL server's processes (server) while it ran.

The server's share matters for backups and restores: pg_dump's COPY, pg_restore's
inserts and index builds, and the drill's hashes all run in server processes, which a
command's own rusage does not see. The server CPU is read from /proc: the postmaster's
own and reaped children's time (cutime, cstime) plus every live child's, before and
after; the machine is shared, so CPU seconds say more than wall seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on


def server_cpu(datadir: Path) -> float:
    """CPU seconds used so far by the server whose data directory is ``datadir``."""
    pid = int((datadir / "postmaster.pid").read_text().split()[0])
    own = _stat(pid)
    if own is None:
        return 0.0
    # fields (0-based after the name): 11 utime, 12 stime, 13 cutime, 14 cstime; 1 ppid
    total = sum(int(x) for x in own[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            st = _stat(int(entry))
            if st is not None and int(st[1]) == pid:
                total += int(st[11]) + int(st[12])
    return total / TICK


@dataclass
class Usage:
    seconds: float
    peak_mb: float
    client_cpu: float
    server_cpu: float

    @property
    def cpu(self) -> float:
        return self.client_cpu + self.server_cpu


def measure(cmd: str, servers: list[Path]) -> Usage:
    """Run a shell command (pipefail); its wall time, peak RSS of its largest process,
    CPU of its processes and of the given servers' processes."""
    before = sum(server_cpu(d) for d in servers)
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    after = sum(server_cpu(d) for d in servers)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {cmd}")
    return Usage(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
                 after - before)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
