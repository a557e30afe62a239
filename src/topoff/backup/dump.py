"""pg_dump in directory format, its files streamed into a tar as soon as each is finished.

``pg_dump -Fd --jobs N --snapshot ID`` writes one file per table (and ``toc.dat`` at the
very end) into a work directory. A file is finished when no pg_dump process (the leader
or one of its workers) holds it open any more: the directory is listed first, then the
open files of every pg_dump process are read from ``/proc/<pid>/fd``, so a file listed
but open nowhere was closed for good (pg_dump never reopens a data file). Each finished
file is appended to the tar and deleted at once; ``toc.dat`` and anything left go last,
after pg_dump has exited successfully. Peak local disk is therefore about the tables
being dumped at that moment (at most --jobs files, uncompressed), not the whole dump.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from topoff.backup import libpq
from topoff.errors import SourceError
from topoff.redact import redact

POLL = 0.1
LOW_DISK = 1 << 20  # a failed pg_dump with less free space than this ran out of disk


def _children_file(pid: int) -> bool:
    return Path(f"/proc/{pid}/task/{pid}/children").exists()


#: Linux lists each thread's children in /proc (CONFIG_PROC_CHILDREN, on in Debian's and
#: most kernels); reading them is far cheaper than scanning every process of the machine
_HAVE_CHILDREN = _children_file(os.getpid())


def _children(pid: int) -> list[int]:
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []  # gone
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def _descendants(root: int) -> list[int]:
    if _HAVE_CHILDREN:
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(_children(pid))
        return out
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def open_files(root: int) -> set[str]:
    """Paths held open by a process and all its descendants."""
    held = set()
    for pid in _descendants(root):
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                held.add(os.readlink(f"{fd_dir}/{fd}"))
    return held


class PgDump:
    """One pg_dump -Fd run into ``workdir`` (which must not exist yet)."""

    def __init__(self, url: str, snapshot_id: str, jobs: int, workdir: Path,
                 pin: dict[str, str]) -> None:
        conninfo, env = libpq.split(url, **pin)
        self.workdir = workdir
        self.cmd = [libpq.program("pg_dump"), "--format=directory", f"--jobs={jobs}",
                    "--compress=0", f"--snapshot={snapshot_id}", f"--file={workdir}",
                    "--no-password", f"--dbname={conninfo}"]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.exited_at: float | None = None  # time.monotonic() when pg_dump was seen done
        self.stderr: deque[str] = deque(maxlen=20)
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        # its own process group: pg_dump's parallel workers are in it too, and they go on
        # (holding their snapshot on the source) when the leader dies
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     process_group=0)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(redact(line.decode(errors="replace").rstrip()))

    def _kill_group(self) -> None:
        """SIGKILL pg_dump and every worker it forked (nothing left when all exited)."""
        if self.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def kill(self) -> None:
        if self.proc is not None:
            self._kill_group()
            self.proc.wait()

    def failure(self) -> SourceError:
        assert self.proc is not None
        self._kill_group()  # the workers of a failed leader: they hold its stderr open too
        if self._reader is not None:
            self._reader.join(timeout=5)
        lines = [ln.removeprefix("pg_dump: ") for ln in self.stderr if ln.strip()]
        # the first error is the cause; later ones ("a worker process died") follow from it
        errors = [ln for ln in lines if ln.startswith("error:")]
        why = (errors or lines or ["no message"])[0]
        hint = "check the pg_dump message; the backup was not published"
        try:
            free = shutil.disk_usage(self.workdir.parent).free
        except OSError:
            free = None
        if free is not None and free < LOW_DISK and "No space left" not in why:
            # a worker's own message may be lost when the leader notices its exit first
            why += f" (the work directory {self.workdir.parent} is full: {free} bytes free)"
        if "No space left" in why or (free is not None and free < LOW_DISK):
            hint = "free disk space under the work directory (--workdir), or lower --jobs"
        return SourceError(f"pg_dump failed (exit status {self.proc.returncode}): {why}",
                           hint=hint)

    def stream(self, add: Callable[[Path], None]) -> list[str]:
        """Hand each finished file to ``add`` (then delete it) until pg_dump exits."""
        assert self.proc is not None
        done: list[str] = []
        while True:
            exited = self.proc.poll() is not None
            if exited and self.exited_at is None:
                self.exited_at = time.monotonic()
            if exited and self.proc.returncode != 0:
                raise self.failure()
            try:
                listed = sorted(os.listdir(self.workdir))
            except FileNotFoundError:
                listed = []
            if exited:
                ready = [n for n in listed if n != "toc.dat"] + \
                    (["toc.dat"] if "toc.dat" in listed else [])
            else:
                held = open_files(self.proc.pid)
                ready = [n for n in listed
                         if n != "toc.dat" and str(self.workdir / n) not in held]
            for n in ready:
                path = self.workdir / n
                add(path)
                path.unlink()
                done.append(n)
            if exited:
                if "toc.dat" not in done:
                    raise SourceError("pg_dump wrote no toc.dat", hint="check pg_dump's version")
                return done
            time.sleep(POLL)


def tar_adder(tar: tarfile.TarFile) -> Callable[[Path], None]:
    def add(path: Path) -> None:
        info = tarfile.TarInfo(path.name)
        with path.open("rb") as f:
            info.size = os.fstat(f.fileno()).st_size
            info.mode = 0o600
            info.mtime = int(time.time())
            tar.addfile(info, f)
    return add
