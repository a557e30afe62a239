"""Real MariaDB servers for tests: a primary and a read-only replica joined by GTID replication.

Each server is a ``mariadbd`` started on a free loopback port in a temp dir
(``mariadb-install-db`` first) by topoff.backup.mariadbd, which the restore drill uses too.
When the tests run as root the servers run as the ``mysql`` user. A server is a direct child
of the test process with a parent-death signal, so a killed pytest (even ``kill -9``) leaves
no server behind. One pair per test session, started lazily
by the first test that asks for the ``maria`` fixture.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from topoff.backup import mariadbd
from topoff.backup.mariadbd import find_program
from topoff.backup.mariadbd import give_to_server_user as _chown

USER = "topoff"  # the tests' account: what a source needs (SELECT, REPLICATION CLIENT)
PASSWORD = "s3cr3t-topoff"


def _find(name: str) -> str:
    found = find_program(name)
    if found is None:
        pytest.skip(f"{name} not installed (./run installs mariadb-server)")
    return found


@dataclass
class MariaServer(mariadbd.MariaServer):
    """One running mariadbd on 127.0.0.1 (topoff.backup.mariadbd's, with test helpers)."""

    def url(self, database: str = "", user: str = USER, password: str | None = PASSWORD,
            scheme: str = "mariadb") -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"{scheme}://{auth}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        _find("mariadb-install-db")
        super().init()

    def start(self, *extra: str, log_bin: bool = True) -> None:
        _find("mariadbd")
        super().start("--gtid-strict-mode=ON", "--log-slave-updates=ON", *extra,
                      log_bin=log_bin)


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
        # the data directory goes next: no clean shutdown to wait for (flushing InnoDB's
        # buffer pool took up to 20 s at the end of a test worker)
        for s in (self.replica, self.primary):
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
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
