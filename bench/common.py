"""Shared by the benchmarks: a datanommer-shaped database on a primary + streaming standby,
commands timed with their peak memory, and the side-by-side table they print."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
TABLES = ["messages", "users_messages", "packages_messages", "users", "packages"]
CURSOR = {"messages": "timestamp", "users_messages": "msg_timestamp",
          "packages_messages": "msg_timestamp"}

# The benchmark config exports every column (pg_dump has no notion of private columns).
CONFIG = """
dataset = "datanommer"
[export]
jobs = 2
chunk_size = "256MiB"
[tables.messages]
cursor = "timestamp"
[tables.users_messages]
cursor = "msg_timestamp"
[tables.packages_messages]
cursor = "msg_timestamp"
[tables.users]
method = "snapshot"
[tables.packages]
method = "snapshot"
"""


@dataclass
class Run:
    tool: str
    task: str
    seconds: float
    peak_mb: float | None = None
    out_mb: float | None = None
    #: user + system CPU seconds of the command and all its processes (not the server's)
    cpu: float | None = None
    #: CPU seconds of the PostgreSQL servers meanwhile (``median_runs(servers=...)``)
    server: float | None = None


def run(cmd: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a shell command; return (seconds, peak RSS in MB of its largest process)."""
    seconds, peak, _cpu = run_usage(cmd, env)
    return seconds, peak


def run_usage(cmd: str, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run a shell command; return (seconds, peak RSS MB, CPU seconds). The CPU is user +
    system time of the shell and every process it waited for (a pipeline's tools, a
    process's threads): on a shared machine it varies much less than wall time."""
    started = time.monotonic()
    proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd],
                            env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {cmd}")
    # ru_maxrss covers the waited child only: for a pipeline that is bash; the heavy
    # processes report through RUSAGE_CHILDREN, read by the caller when it matters.
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def server_cpu(datadirs: list[Path]) -> float:
    """CPU seconds used so far by the PostgreSQL servers of these data directories: each
    postmaster with the backends it has reaped (cutime) and the live ones."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = set()
    for datadir in datadirs:
        pidfile = datadir / "postmaster.pid"
        if pidfile.exists():
            pids.add(int(pidfile.read_text().split()[0]))
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        pid, ppid = int(entry.name), int(fields[1])
        if pid in pids:  # the postmaster: itself and every backend it has waited for
            total += sum(int(f) for f in fields[11:15])
        elif ppid in pids:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def median_runs(contenders: list[tuple[str, str, str, object]], repeat: int,
                servers: list[Path] | None = None) -> list[Run]:
    """Run each (tool, task, command, prepare) ``repeat`` times, interleaved so that the
    machine's slow moments spread over all tools; report the median time and the largest
    peak memory. ``prepare`` (a callable or None) runs untimed before each attempt.
    ``servers``: data directories of PostgreSQL servers whose CPU each command costs is
    measured too (a backend's work, which the client's CPU leaves out)."""
    times: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    cpus: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    served: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    peaks: dict[int, float] = dict.fromkeys(range(len(contenders)), 0.0)
    for _ in range(repeat):
        for i, (_tool, _task, cmd, prepare) in enumerate(contenders):
            if callable(prepare):
                prepare()
            before = server_cpu(servers) if servers else 0.0
            seconds, peak, cpu = run_usage(cmd)
            if servers:
                time.sleep(0.3)  # the command's backends exit after it does
                served[i].append(server_cpu(servers) - before)
            times[i].append(seconds)
            cpus[i].append(cpu)
            peaks[i] = max(peaks[i], peak)
    out = []
    for i, (tool, task, _cmd, _prepare) in enumerate(contenders):
        ordered, used, srv = sorted(times[i]), sorted(cpus[i]), sorted(served[i])
        out.append(Run(tool, task, ordered[len(ordered) // 2], peaks[i],
                       cpu=used[len(used) // 2], server=srv[len(srv) // 2] if srv else None))
    return out


def topoff(args: str, src: str | None = None) -> str:
    """The topoff command line; ``src``: run the topoff package found there instead (a
    checkout's ``src`` directory, for a before/after comparison in the same run)."""
    env = f"PYTHONPATH={shlex.quote(src)} " if src else ""
    return f"{env}{shlex.quote(sys.executable)} -m topoff {args}"


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def print_table(title: str, runs: list[Run], baseline: dict[str, str]) -> str:
    """The side-by-side table; ``baseline`` maps a task to the run its ratio is against."""
    by = {(r.tool, r.task): r for r in runs}
    with_cpu = all(r.cpu is not None for r in runs)
    cpu_head, cpu_rule = ((" client CPU s (median) | CPU ratio |", "---:|---:|") if with_cpu
                          else ("", ""))
    with_server = all(r.server is not None for r in runs)
    if with_server:
        cpu_head, cpu_rule = cpu_head + " server CPU s (median) |", cpu_rule + "---:|"
    lines = [f"## {title}", "",
             f"| task | tool | seconds (median) | ratio |{cpu_head} peak RSS MB | output MB |",
             f"|---|---|---:|---:|{cpu_rule}---:|---:|"]
    for r in runs:
        base = by.get((baseline.get(r.task, ""), r.task))
        ratio = f"{r.seconds / base.seconds:.2f}x" if base and base is not r else "1.00x"
        tool = r.tool.replace("|", "\\|")
        cpu = ""
        if with_cpu:
            assert r.cpu is not None
            cpu_ratio = (f"{r.cpu / base.cpu:.2f}x" if base and base is not r and base.cpu
                         else "1.00x")
            cpu = f" {r.cpu:.2f} | {cpu_ratio} |"
        if with_server:
            cpu += f" {r.server:.2f} |"
        lines.append(f"| {r.task} | {tool} | {r.seconds:.2f} | {ratio} |{cpu} "
                     f"{'' if r.peak_mb is None else f'{r.peak_mb:.0f}'} | "
                     f"{'' if r.out_mb is None else f'{r.out_mb:.1f}'} |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def start_source(days: int, per_day: int, last_day: date) -> ThrowawayCluster:
    """Primary + standby with the sample database ``datanommer`` ending on ``last_day``."""
    WORK.mkdir(parents=True, exist_ok=True)
    cluster = ThrowawayCluster(primary_conf={"max_wal_size": "4GB", "checkpoint_timeout": "30min",
                                             "shared_buffers": "256MB"},
                               standby_conf={"shared_buffers": "256MB",
                                             "max_standby_streaming_delay": "-1"})
    cluster.start()
    cluster.create_database("datanommer")
    started = time.monotonic()
    with cluster.primary.connect("datanommer") as conn:
        n = sample.fill(conn, days=days, per_day=per_day, last_day=last_day)
        conn.execute("VACUUM ANALYZE")
    cluster.wait_replay(timeout=600)
    print(f"# filled {n:,} messages over {days} days in {time.monotonic() - started:.0f}s",
          flush=True)
    return cluster


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
               "unknown cpu")
    mem = next((int(ln.split()[1]) // 1024 // 1024 for ln in meminfo
                if ln.startswith("MemTotal")), 0)
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {pg}, Python {sys.version.split()[0]}"
