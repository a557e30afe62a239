"""Real MariaDB servers for tests: a primary and a read-only replica joined by GTID replication.

Each server is a ``mariadbd`` started by the fixture on a free loopback port in a temp dir
(``mariadb-install-db`` first). When the tests run as root the servers run as the ``mysql``
user. A server is a direct child of the test process with a parent-death signal, so a killed
pytest (even ``kill -9``) leaves no server behind. One pair per test session, started lazily
by the first test that asks for the ``maria`` fixture.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from topoff.demo.cluster import free_port

SERVER_USER = "mysql"
USER = "topoff"  # the tests' account: what a source needs (SELECT, REPLICATION CLIENT)
PASSWORD = "s3cr3t-topoff"
_PR_SET_PDEATHSIG = 1


def _find(name: str) -> str:
    for d in (None, "/usr/sbin", "/usr/bin"):
        found = shutil.which(name, path=d)
        if found:
            return found
    pytest.skip(f"{name} not installed (./run installs mariadb-server)")
    raise AssertionError  # unreachable


def _as_server_user() -> Callable[[], None]:
    """A preexec_fn: become the mysql user (when root), then die with the parent."""
    pw = pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None
    libc = ctypes.CDLL(None, use_errno=True)

    def prepare() -> None:
        if pw is not None:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        # after setuid: a change of credentials clears the parent-death signal
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return prepare


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(SERVER_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class MariaServer:
    """One running mariadbd on 127.0.0.1."""

    name: str
    base: Path
    server_id: int
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.base / self.name

    @property
    def socket(self) -> Path:
        return self.base / f"{self.name}.sock"

    def url(self, database: str = "", user: str = USER, password: str | None = PASSWORD,
            scheme: str = "mariadb") -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"{scheme}://{auth}@127.0.0.1:{self.port}/{database}"

    def root_url(self, database: str = "") -> str:
        """Root through the socket (no password): for what needs more than SELECT."""
        return f"mariadb://root@localhost/{database}?socket={self.socket}"

    def init(self) -> None:
        self.datadir.mkdir()
        _chown(self.datadir)
        res = subprocess.run(
            [_find("mariadb-install-db"), "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve"],
            capture_output=True, text=True, preexec_fn=_as_server_user(), cwd=self.base,
        )
        if res.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {res.stderr or res.stdout}")

    def start(self, *extra: str) -> None:
        self.port = free_port()
        args = [
            _find("mariadbd"), "--no-defaults", f"--datadir={self.datadir}",
            f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
            f"--pid-file={self.base / self.name}.pid", f"--log-error={self.base / self.name}.err",
            f"--server-id={self.server_id}", f"--log-bin={self.name}-bin", "--binlog-format=ROW",
            "--gtid-strict-mode=ON", "--log-slave-updates=ON", "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0", "--innodb-doublewrite=0",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
            "--max-connections=100", "--default-time-zone=+00:00", *extra,
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_as_server_user(), cwd=self.base,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd {self.name} exited: {self.log_text()[-2000:]}")
            if self.socket.exists() and self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd {self.name} did not start: {self.log_text()[-2000:]}")

    def sql(self, text: str, database: str = "",
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run SQL as root through the socket with the mariadb client (tab-separated output)."""
        cmd = [_find("mariadb"), "--no-defaults", f"--socket={self.socket}", "-uroot",
               "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        if database:
            cmd.append(f"--database={database}")
        res = subprocess.run(cmd, input=text, capture_output=True, text=True)
        if check and res.returncode != 0:
            raise RuntimeError(f"SQL on {self.name} failed: {res.stderr.strip()}")
        return res

    def query(self, text: str, database: str = "") -> list[list[str]]:
        out = self.sql(text, database).stdout
        return [line.split("\t") for line in out.splitlines()]

    def log_text(self) -> str:
        p = self.base / f"{self.name}.err"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class MariaPair:
    """A primary and a read-only replica (GTID replication), removed by :meth:`close`."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="topoff-maria-"))
        os.chmod(self.base, 0o755)
        _chown(self.base)
        self.primary = MariaServer("primary", self.base, server_id=1)
        self.replica = MariaServer("replica", self.base, server_id=2)
        self._names = 0

    def start(self) -> MariaPair:
        p, r = self.primary, self.replica
        p.init()
        r.init()
        p.start()
        # replicated to the replica from the primary's first GTID on
        p.sql(
            "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';"
            "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
            f"GRANT SELECT, REPLICATION CLIENT ON *.* TO '{USER}'@'127.0.0.1';"
        )
        # MariaDB 10.5.9+ shows the replication status to REPLICA MONITOR only
        p.sql(f"GRANT REPLICA MONITOR ON *.* TO '{USER}'@'127.0.0.1'", check=False)
        r.start("--read-only=ON")
        r.sql(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={p.port}, "
            "MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, "
            "MASTER_CONNECT_RETRY=1; START SLAVE;"
        )
        self.wait_replica()
        return self

    def wait_replica(self, timeout: float = 30) -> None:
        """Wait until the replica has applied everything the primary has binlogged so far."""
        ((pos,),) = self.primary.query("SELECT @@gtid_binlog_pos")
        if not pos:
            return
        ((done,),) = self.replica.query(f"SELECT MASTER_GTID_WAIT('{pos}', {timeout})")
        if done != "0":
            status = self.replica.sql("SHOW SLAVE STATUS\\G", check=False).stdout
            raise RuntimeError(f"replica did not reach {pos} within {timeout}s: {status[-1500:]}")

    def create_database(self) -> str:
        self._names += 1
        name = f"t{os.getpid()}_{self._names}"
        self.primary.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        self.wait_replica()
        return name

    def execute(self, text: str, database: str) -> None:
        """Run SQL on the primary and wait until the replica has applied it."""
        self.primary.sql(text, database)
        self.wait_replica()

    def close(self) -> None:
        for s in (self.replica, self.primary):
            s.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class MariaDatabase:
    """A test's database on the session's MariaDB primary, replicated to its replica."""

    name: str
    pair: MariaPair

    @property
    def replica_url(self) -> str:
        return self.pair.replica.url(self.name)

    @property
    def primary_url(self) -> str:
        return self.pair.primary.url(self.name)

    def execute(self, text: str) -> None:
        self.pair.execute(text, self.name)


@pytest.fixture(scope="session")
def maria_pair() -> Iterator[MariaPair]:
    pair = MariaPair()
    try:
        pair.start()
        yield pair
    finally:
        pair.close()


@pytest.fixture
def maria(maria_pair: MariaPair) -> Iterator[MariaDatabase]:
    name = maria_pair.create_database()
    yield MariaDatabase(name, maria_pair)
    maria_pair.primary.sql(f"DROP DATABASE IF EXISTS `{name}`", check=False)
