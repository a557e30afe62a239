"""A throwaway ``mariadbd``: a data directory made by ``mariadb-install-db`` in a temp dir,
the server on a free loopback port, everything removed by :meth:`MariaServer.stop`.

Run as root, the server runs as the ``mysql`` user (the Debian package creates it). The
server is a direct child of this process in its own process group (a Ctrl-C at the
terminal reaches topoff only, which stops the server itself) with a parent-death signal,
so even a SIGKILLed topoff leaves no server running. Root connects through the socket
without a password; nothing listens beyond 127.0.0.1.

No Python runs in the forked child (a ``preexec_fn`` can deadlock a program with threads,
as subprocess's documentation warns): subprocess's own ``user``, ``group``,
``extra_groups`` and ``process_group`` do the rest (see :func:`_child`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topoff.demo.cluster import free_port
from topoff.errors import ConfigError, TargetError
from topoff.server_user import give_to

SERVER_USER = "mysql"
#: the largest max_allowed_packet of a MariaDB server and client (1 GiB): the drill's
#: server, the dump and the restore take statements of up to that many bytes
MAX_PACKET = 1073741824
START_TIMEOUT = 120.0  # a loaded machine: mariadbd's recovery and first start take a while


def find_program(name: str) -> str | None:
    for d in (None, "/usr/sbin", "/usr/bin"):
        found = shutil.which(name, path=d)
        if found:
            return found
    return None


def require_program(name: str) -> str:
    found = find_program(name)
    if found is None:
        raise ConfigError(f"{name} is not installed",
                          hint="install the Debian package mariadb-server (the drill starts "
                          "a throwaway mariadbd), or pass --scratch mariadb://...")
    return found


def _child(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The argv and subprocess arguments that run ``args`` as the mysql user (when root,
    with no supplementary group) and kill it when this process dies.

    subprocess has no argument for the parent-death signal (PR_SET_PDEATHSIG), and setting
    it from a preexec_fn means Python in the forked child: so the child is util-linux's
    ``setpriv --pdeathsig KILL``, which sets it and then execs the program. It is set
    after subprocess changed the credentials (a change of credentials clears it), and an
    exec keeps it. The signal comes when the thread that started the child ends, as it
    did from the preexec_fn."""
    setpriv = find_program("setpriv")
    if setpriv is None:
        raise ConfigError("setpriv is not installed",
                          hint="install the Debian package util-linux (the drill's throwaway "
                          "mariadbd dies with topoff through it), or pass --scratch "
                          "mariadb://...")
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        pw = pwd.getpwnam(SERVER_USER)
        kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    return [setpriv, "--pdeathsig", "KILL", "--", *args], kwargs


def give_to_server_user(path: Path) -> None:
    give_to(path, SERVER_USER)


@dataclass
class MariaServer:
    """One mariadbd on 127.0.0.1, its data directory ``base/name``."""

    name: str
    base: Path
    server_id: int = 1
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.base / self.name

    @property
    def socket(self) -> Path:
        return self.base / f"{self.name}.sock"

    @property
    def tmpdir(self) -> Path:
        """The server's own temp dir: two servers bootstrapping at once never share /tmp."""
        return self.base / f"{self.name}.tmp"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.tmpdir)}

    def root_url(self, database: str = "") -> str:
        """Root through the socket (no password)."""
        return f"mariadb://root@localhost/{database}?socket={self.socket}"

    def init(self) -> None:
        self.datadir.mkdir()
        give_to_server_user(self.datadir)
        self.tmpdir.mkdir(exist_ok=True)
        give_to_server_user(self.tmpdir)
        argv, as_server = _child(
            [require_program("mariadb-install-db"), "--no-defaults",
             f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"])
        res = subprocess.run(argv, capture_output=True, text=True, cwd=self.base,
                             stdin=subprocess.DEVNULL, env=self._env(), **as_server)
        if res.returncode != 0:
            why = (res.stderr or res.stdout).strip().splitlines()
            raise TargetError(f"mariadb-install-db failed: {why[-1] if why else 'no message'}",
                              hint="check the MariaDB server installation")

    def start(self, *extra: str, log_bin: bool = True) -> None:
        self.port = free_port()
        binlog = [f"--log-bin={self.name}-bin", "--binlog-format=ROW"] if log_bin else []
        args = [
            require_program("mariadbd"), "--no-defaults", f"--datadir={self.datadir}",
            f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
            f"--tmpdir={self.tmpdir}",
            f"--pid-file={self.base / self.name}.pid",
            f"--log-error={self.base / self.name}.err",
            f"--server-id={self.server_id}", *binlog, "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0", "--innodb-doublewrite=0",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
            "--max-connections=100", "--default-time-zone=+00:00", *extra,
        ]
        argv, as_server = _child(args)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=self.base, process_group=0, env=self._env(),
            **as_server,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetError(f"mariadbd exited at start: {self.log_tail()}",
                                  hint="check the MariaDB server installation")
            if self.socket.exists() and self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise TargetError(f"mariadbd did not start within {START_TIMEOUT:.0f}s",
                          hint=f"its log said: {self.log_tail()}")

    def client_cmd(self, database: str = "") -> list[str]:
        cmd = [require_program("mariadb"), "--no-defaults", f"--socket={self.socket}",
               "-uroot", "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        if database:
            cmd.append(f"--database={database}")
        return cmd

    def sql(self, text: str, database: str = "",
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run SQL as root through the socket with the mariadb client."""
        res = subprocess.run(self.client_cmd(database), input=text, capture_output=True,
                             text=True)
        if check and res.returncode != 0:
            raise TargetError(f"SQL on mariadbd failed: {res.stderr.strip()}",
                              hint="check the MariaDB server installation")
        return res

    def query(self, text: str, database: str = "") -> list[list[str]]:
        out = self.sql(text, database).stdout
        return [line.split("\t") for line in out.splitlines()]

    def log_tail(self) -> str:
        p = self.base / f"{self.name}.err"
        text = p.read_text(errors="replace") if p.exists() else ""
        lines = [ln for ln in text.splitlines() if "ERROR" in ln] or text.splitlines()
        return lines[-1][-300:] if lines else "no log"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def throwaway_mariadb(database: str = "drill") -> Iterator[MariaServer]:
    """A fresh server with an empty ``database``; stopped and removed afterwards, also
    when the caller is interrupted (KeyboardInterrupt, SIGTERM through the CLI)."""
    from topoff.backup.catalog import work_directory

    base = work_directory("topoff-mariadbd-", None)  # one a killed drill left: removed
    server = MariaServer("drill", base)
    try:
        os.chmod(base, 0o755)
        give_to_server_user(base)
        server.init()
        # LOAD_FILE, LOAD DATA INFILE and SELECT ... INTO OUTFILE reach only this empty
        # directory: the dump's SQL runs as root here, whoever wrote it
        files = base / "files"
        files.mkdir(mode=0o700)
        give_to_server_user(files)
        # a dump's statement holds a whole row (a BLOB's hex: twice its length): the most
        # a server takes, as the dump program reads up to that much
        server.start(f"--secure-file-priv={files}", f"--max-allowed-packet={MAX_PACKET}",
                     log_bin=False)
        server.sql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
