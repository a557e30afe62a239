"""Throwaway PostgreSQL clusters: a primary and a streaming hot standby in a temp dir.

Used by ``topoff demo``, the test suite and the benchmarks. Each server is a real
``initdb`` data directory listening on a free loopback port; the standby is made with
``pg_basebackup -R`` and streams from the primary. PostgreSQL refuses to run as root,
so when topoff runs as root the server programs run as the ``postgres`` user through
``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from topoff.errors import ConfigError, TopoffError
from topoff.server_user import give_to

SERVER_USER = "postgres"
HBA = """\
local   all          all                     trust
host    all          postgres   127.0.0.1/32 trust
host    replication  postgres   127.0.0.1/32 trust
host    all          all        127.0.0.1/32 scram-sha-256
"""
BASE_CONF = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
    "fsync": "off",
    "synchronous_commit": "off",
    "wal_writer_delay": "10ms",  # commits reach the standby (and tests) without a 200ms wait
    "shared_buffers": "64MB",
    "max_connections": "60",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
}


def find_bindir() -> Path:
    """Directory holding initdb/pg_ctl: $TOPOFF_PG_BINDIR, else the newest Debian install."""
    env = os.environ.get("TOPOFF_PG_BINDIR")
    if env and not (Path(env) / "initdb").exists():  # a mistake, not a wish for another one
        raise ConfigError(f"TOPOFF_PG_BINDIR={env} holds no initdb",
                          hint="point it at a PostgreSQL bin directory "
                          "(/usr/lib/postgresql/15/bin), or unset it")
    candidates = [env] if env else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for c in candidates:
        if c and (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise TopoffError(
        "PostgreSQL server programs (initdb, pg_ctl) not found",
        hint="install postgresql-15 (./run installs it) or set TOPOFF_PG_BINDIR",
    )


#: the watchdog: waits for its stdin to close (the cluster's owner ended, however: a
#: SIGKILL too), then stops the servers and removes the cluster's directory (again while
#: it is still there: the servers' last processes remove their own files as it is removed)
WATCHDOG = """
import json, os, shutil, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.stdin.buffer.read()
for datadir in sys.argv[3:]:
    subprocess.run([*json.loads(sys.argv[1]), "-D", datadir, "-m", "immediate", "-w",
                    "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100) if sys.argv[2] else ():
    shutil.rmtree(sys.argv[2], ignore_errors=True)
    if not os.path.lexists(sys.argv[2]):
        break
    time.sleep(0.1)
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as_prefix() -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []


@dataclass
class Server:
    """One running PostgreSQL server on 127.0.0.1."""

    name: str
    datadir: Path
    port: int
    bindir: Path
    socket_dir: Path
    conf: dict[str, str] = field(default_factory=dict)

    def url(self, dbname: str = "postgres", user: str = SERVER_USER,
            password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def _tool(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*_run_as_prefix(), str(self.bindir / tool), *args]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if check and res.returncode != 0:
            output = res.stderr.strip() or res.stdout
            raise RuntimeError(f"{tool} failed ({res.returncode}): {output}")
        return res

    def write_conf(self, extra: dict[str, str] | None = None) -> None:
        settings = {**BASE_CONF, **self.conf, **(extra or {})}
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = f"'{self.socket_dir}'"
        lines = [f"{k} = {v}" for k, v in settings.items()]
        # A file of its own, included from postgresql.conf: postgresql.auto.conf belongs to
        # ALTER SYSTEM and to pg_basebackup -R (primary_conninfo).
        (self.datadir / "topoff.conf").write_text(
            "# written by topoff's throwaway cluster\n" + "\n".join(lines) + "\n"
        )
        main = self.datadir / "postgresql.conf"
        include = "include_if_exists = 'topoff.conf'\n"
        if include not in main.read_text():
            with main.open("a") as f:
                f.write(include)

    def start(self) -> None:
        log = self.datadir / "server.log"
        self._tool("pg_ctl", "-D", str(self.datadir), "-l", str(log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._tool("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def reload(self) -> None:
        self._tool("pg_ctl", "-D", str(self.datadir), "reload")

    def set(self, **settings: str) -> None:
        """Change settings in postgresql.auto.conf and reload (for reloadable settings)."""
        self.conf.update({k: str(v) for k, v in settings.items()})
        self.write_conf()
        self.reload()
        time.sleep(0.2)

    def connect(self, dbname: str = "postgres", **kw: object) -> psycopg.Connection:
        return psycopg.connect(self.url(dbname), autocommit=True, **kw)  # type: ignore[arg-type]

    def execute(self, sql: str, dbname: str = "postgres",
                params: Sequence[object] | None = None) -> list[tuple]:
        with self.connect(dbname) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def log_text(self) -> str:
        p = self.datadir / "server.log"
        return p.read_text(errors="replace") if p.exists() else ""


class ThrowawayCluster:
    """A primary and (optionally) a streaming hot standby, removed by :meth:`close`."""

    def __init__(
        self,
        base_dir: Path | None = None,
        standby: bool = True,
        primary_conf: dict[str, str] | None = None,
        standby_conf: dict[str, str] | None = None,
    ) -> None:
        self.bindir = find_bindir()
        self._own_base = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="topoff-pg-"))
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        give_to(self.base, SERVER_USER)
        self.want_standby = standby
        self.primary = self._server("primary", primary_conf)
        self.standby: Server | None = self._server("standby", standby_conf) if standby else None

    def _server(self, name: str, conf: dict[str, str] | None) -> Server:
        return Server(
            name=name,
            datadir=self.base / name,
            port=free_port(),
            bindir=self.bindir,
            socket_dir=self.base,
            conf=dict(conf or {}),
        )

    def _watch(self) -> None:
        """The servers stopped and the directory removed when this process dies without
        :meth:`close` (SIGKILL, the OOM killer): a watchdog process of its own session waits
        for this process's end."""
        pg_ctl = json.dumps([*_run_as_prefix(), str(self.bindir / "pg_ctl")])
        servers = [str(s.datadir) for s in (self.standby, self.primary) if s is not None]
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, pg_ctl, str(self.base) if self._own_base else "",
             *servers], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

    def start(self) -> ThrowawayCluster:
        self._watch()
        p = self.primary
        p._tool(
            "initdb", "-D", str(p.datadir), "-U", SERVER_USER, "-E", "UTF8", "--locale=C.UTF-8",
            "--no-sync", "--auth=trust",
        )
        (p.datadir / "pg_hba.conf").write_text(HBA)
        p.write_conf()
        p.start()
        if self.standby is not None:
            s = self.standby
            p._tool(
                "pg_basebackup", "-D", str(s.datadir), "-R", "-X", "stream", "-c", "fast",
                "-h", "127.0.0.1", "-p", str(p.port), "-U", SERVER_USER, "--no-sync",
            )
            s.write_conf()
            s.start()
            self.wait_streaming()
        return self

    def wait_streaming(self, timeout: float = 30) -> None:
        assert self.standby is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.standby.execute("SELECT status FROM pg_stat_wal_receiver")
            if rows and rows[0][0] == "streaming":
                return
            time.sleep(0.1)
        raise RuntimeError("standby did not start streaming from the primary")

    def wait_replay(self, timeout: float = 30) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        if self.standby is None:
            return
        # The insert position, not the write position: with synchronous_commit = off a
        # commit record may still sit in WAL buffers when the commit returns. A record that
        # is no commit (a lock an open transaction took) would sit there until the next
        # flush, up to 15 s later: one synchronous commit flushes everything before it.
        with self.primary.connect() as conn:
            conn.execute("SET synchronous_commit TO on")
            conn.execute("SELECT pg_current_xact_id()")
            (lsn,) = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone() or ("0/0",)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (done,) = self.standby.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", params=[lsn])[0]
            if done:
                return
            time.sleep(0.05)
        raise RuntimeError(f"standby did not replay up to {lsn} within {timeout}s "
                           f"({self._replay_state()})")

    def _replay_state(self) -> str:
        """What a stalled standby is doing: replay paused, its WAL receiver, the oldest
        transaction open on it (which a conflicting record waits for)."""
        assert self.standby is not None
        try:
            [(paused, replayed, receiver, oldest)] = self.standby.execute(
                "SELECT pg_is_wal_replay_paused(), pg_last_wal_replay_lsn(), "
                "(SELECT status || ' ' || coalesce(flushed_lsn::text, '') FROM "
                "pg_stat_wal_receiver), (SELECT min(xact_start)::text FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND xact_start IS NOT NULL)")
        except Exception as e:  # only a diagnosis for the message
            return f"standby unreachable: {str(e).splitlines()[0] if str(e) else e!r}"
        return (f"replayed {replayed}, replay paused: {paused}, receiver: {receiver or 'none'}, "
                f"oldest open transaction since {oldest or 'none'}")

    def create_database(self, name: str) -> None:
        self.primary.execute(f'CREATE DATABASE "{name}"')
        self.wait_replay()

    def close(self, remove_in_background: bool = False) -> None:
        """Stop the servers and remove the cluster's directory; ``remove_in_background``:
        by a process of its own, not waited for (a directory that held hundreds of
        databases takes seconds to remove)."""
        for s in (self.standby, self.primary):
            if s is not None and s.datadir.exists():
                s.stop("immediate")
        if self._own_base and remove_in_background:
            subprocess.Popen(["rm", "-rf", "--", str(self.base)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        elif self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None:  # nothing left to watch
            watchdog.kill()
            watchdog.wait()

    def __enter__(self) -> ThrowawayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def throwaway_cluster(**kw: object) -> Iterator[ThrowawayCluster]:
    cluster = ThrowawayCluster(**kw)  # type: ignore[arg-type]
    try:
        yield cluster.start()
    finally:
        cluster.close()
