"""The MariaDB source's connections, safety rules and shared snapshot, against real servers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.mariadb import PASSWORD, MariaDatabase, MariaPair
from topoff.errors import ConfigError, SafetyError, SourceError
from topoff.sources.mariadb import snapshot
from topoff.sources.mariadb.connect import connect, display_url, parse_url
from topoff.sources.mariadb.safety import require_replica


def _scalar(conn, sql: str):
    cur = conn.cursor()
    cur.execute(sql)
    row = cur.fetchone()
    cur.close()
    return row[0]


def test_fixtures_are_a_replicating_pair(maria: MariaDatabase) -> None:
    pair = maria.pair
    assert pair.replica.query("SELECT @@global.read_only") == [["1"]]
    assert pair.primary.query("SELECT @@global.read_only") == [["0"]]
    with connect(pair.replica.root_url()) as conn:
        cur = conn.cursor(dictionary=True)
        cur.execute("SHOW SLAVE STATUS")
        (status,) = cur.fetchall()
    assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes"
    assert status["Using_Gtid"] == "Slave_Pos"
    maria.execute("CREATE TABLE r (id INT PRIMARY KEY); INSERT INTO r VALUES (1), (2), (3)")
    assert pair.replica.query("SELECT COUNT(*) FROM r", maria.name) == [["3"]]


# --- URLs, option files, environment ----------------------------------------------------

def test_url_parts_and_redaction(tmp_path: Path) -> None:
    t = parse_url("mysql://ana:p%40ss@db.example:3307/shop", env={}, home=tmp_path)
    assert (t.user, t.password, t.host, t.port, t.database) == (
        "ana", "p@ss", "db.example", 3307, "shop")
    assert "p@ss" not in repr(t) and "p%40ss" not in repr(t)
    shown = display_url("mariadb://ana:hunter2@db.example/shop")
    assert "hunter2" not in shown and shown == "mariadb://ana@db.example:3306/shop"
    s = parse_url("mariadb://ana@localhost/shop?socket=/run/x.sock", env={}, home=tmp_path)
    assert s.socket == "/run/x.sock"


def test_option_file_and_environment(tmp_path: Path) -> None:
    cnf = tmp_path / "my.cnf"
    cnf.write_text("[mysqld]\nuser = nobody\n[client]\nuser = \"carl\"\npassword = 'o p'\n"
                   "port = 3310\n[mysql]\nhost = h1\n")
    t = parse_url(f"mariadb:///shop?option_file={cnf}", env={"USER": "os"}, home=tmp_path)
    assert (t.user, t.password, t.host, t.port) == ("carl", "o p", "h1", 3310)
    (tmp_path / ".my.cnf").write_text("[client]\npassword=from-home\n")
    env = {"USER": "os", "MYSQL_HOST": "envhost", "MYSQL_TCP_PORT": "3399", "MYSQL_PWD": "e"}
    t = parse_url("mariadb:///shop", env=env, home=tmp_path)
    assert (t.user, t.password, t.host, t.port) == ("os", "from-home", "envhost", 3399)
    (tmp_path / ".my.cnf").unlink()
    assert parse_url("mariadb:///shop", env=env, home=tmp_path).password == "e"


@pytest.mark.parametrize("url", [
    "postgresql://a@h/db", "mariadb://a@h:99999/db", "mariadb://a@h/db?sslmode=x",
    "mariadb://a@h/db/extra", "mariadb://a@h:x/db",
])
def test_bad_urls_are_config_errors(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse_url(url, env={"USER": "u"}, home=tmp_path)
    assert e.value.exit_code == 2


def test_connection_errors_are_source_errors(maria_pair: MariaPair) -> None:
    bad = maria_pair.replica.url(password="wrong-" + PASSWORD)
    with pytest.raises(SourceError) as e:
        connect(bad)
    assert e.value.exit_code == 3 and "access denied" in e.value.message
    assert PASSWORD not in str(e.value) and "wrong" not in str(e.value)
    from topoff.demo.cluster import free_port
    with pytest.raises(SourceError) as e:
        connect(f"mariadb://topoff:{PASSWORD}@127.0.0.1:{free_port()}/x?connect_timeout=3")
    assert "cannot connect" in e.value.message and PASSWORD not in str(e.value)


# --- safety -----------------------------------------------------------------------------

def test_primary_refused_replica_accepted(maria: MariaDatabase) -> None:
    with connect(maria.replica_url) as conn:
        role = require_replica(conn, "replica")
        assert role.read_only and role.replicating
    with connect(maria.primary_url) as conn, pytest.raises(SafetyError) as e:
        require_replica(conn, "the primary")
    assert e.value.exit_code == 4 and "primary" in e.value.message
    with connect(maria.primary_url) as conn:
        assert not require_replica(conn, "primary", allow_primary=True).is_replica


def test_writable_replica_counts_as_replica_by_its_replication(maria: MariaDatabase) -> None:
    replica = maria.pair.replica
    replica.sql("SET GLOBAL read_only = OFF")
    try:
        with connect(maria.replica_url) as conn:
            role = require_replica(conn, "replica")
            assert not role.read_only and role.replicating
    finally:
        replica.sql("SET GLOBAL read_only = ON")


def test_select_only_user_needs_read_only_or_is_refused_with_a_hint(
        maria: MariaDatabase) -> None:
    maria.pair.primary.sql(
        "CREATE USER IF NOT EXISTS 'plain'@'127.0.0.1' IDENTIFIED BY 'pw';"
        "GRANT SELECT ON *.* TO 'plain'@'127.0.0.1'")
    maria.pair.wait_replica()
    replica = maria.pair.replica.url(maria.name, user="plain", password="pw")
    primary = maria.pair.primary.url(maria.name, user="plain", password="pw")
    with connect(replica) as conn:
        role = require_replica(conn, "replica")
        assert role.read_only and role.replicating is None
    with connect(primary) as conn, pytest.raises(SafetyError) as e:
        require_replica(conn, "primary")
    assert "REPLICA MONITOR" in (e.value.hint or "")


# --- one snapshot for every worker ------------------------------------------------------

def test_workers_share_one_snapshot_and_its_position(maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE s (id INT PRIMARY KEY); INSERT INTO s VALUES (1), (2)")
    workers = [connect(maria.replica_url) for _ in range(3)]
    try:
        pos = snapshot.shared_snapshot(workers)
        assert pos.known and pos.binlog_file and pos.binlog_position
        assert pos.gtid and pos.gtid.startswith("0-1-")
        assert pos.as_dict()["engine"] == "mariadb"
        # each worker reports the coordinator's position
        for w in workers:
            status = dict(
                (k, v) for k, v in snapshot._exec(w, "SHOW STATUS LIKE 'binlog_snapshot_%'"))
            assert status["Binlog_snapshot_file"] == pos.binlog_file
            assert int(status["Binlog_snapshot_position"]) == pos.binlog_position
        # commits after the snapshot are invisible to every worker
        maria.execute("INSERT INTO s VALUES (3)")
        assert [_scalar(w, "SELECT COUNT(*) FROM s") for w in workers] == [2, 2, 2]
        snapshot.rollback(workers)
        assert _scalar(workers[1], "SELECT COUNT(*) FROM s") == 3
        # a later snapshot stands later in the binlog
        later = snapshot.shared_snapshot(workers[:2])
        assert (later.binlog_file, later.binlog_position) > (pos.binlog_file,
                                                              pos.binlog_position)
    finally:
        for w in workers:
            w.close()


def test_a_commit_between_two_snapshots_shows_in_their_positions(
        maria: MariaDatabase) -> None:
    """What the workers' check rests on: snapshots on either side of a commit differ."""
    maria.execute("CREATE TABLE m (id INT PRIMARY KEY)")
    a, b = connect(maria.replica_url), connect(maria.replica_url)
    try:
        first = snapshot.begin(a)
        maria.execute("INSERT INTO m VALUES (1)")
        second = snapshot.begin(b)
        assert first.known and second.known and first != second
        assert _scalar(a, "SELECT COUNT(*) FROM m") == 0
        assert _scalar(b, "SELECT COUNT(*) FROM m") == 1
    finally:
        a.close()
        b.close()


def test_snapshot_under_a_short_global_lock(maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE l (id INT PRIMARY KEY); INSERT INTO l VALUES (1)")
    root = maria.pair.replica.root_url(maria.name)
    lock, workers = connect(root), [connect(maria.replica_url) for _ in range(2)]
    try:
        pos = snapshot.shared_snapshot(workers, lock_conn=lock)
        assert pos.known and pos.gtid
        # the lock is gone: the replica applies new commits
        maria.execute("INSERT INTO l VALUES (2)")
        assert [_scalar(w, "SELECT COUNT(*) FROM l") for w in workers] == [1, 1]
    finally:
        for c in (lock, *workers):
            c.close()


def test_global_lock_without_reload_is_a_clear_error(maria: MariaDatabase) -> None:
    lock, worker = connect(maria.replica_url), connect(maria.replica_url)
    try:
        with pytest.raises(SourceError) as e:
            snapshot.shared_snapshot([worker], lock_conn=lock)
        assert "RELOAD" in (e.value.hint or "")
    finally:
        lock.close()
        worker.close()


def test_servers_die_with_a_killed_test_process(tmp_path: Path) -> None:
    """A pytest killed with SIGKILL leaves no mariadbd behind (parent-death signal)."""
    tests = Path(__file__).resolve().parent
    prog = (
        f"import sys, time; sys.path[:0] = [{str(tests)!r}]\n"
        "import tempfile, os\n"
        "from pathlib import Path\n"
        "from support.mariadb import MariaServer, _chown\n"
        "base = Path(tempfile.mkdtemp(prefix='topoff-maria-orphan-'))\n"
        "os.chmod(base, 0o755); _chown(base)\n"
        "s = MariaServer('orphan', base, server_id=9); s.init(); s.start()\n"
        "print(s.proc.pid, base, flush=True); time.sleep(300)\n")
    child = subprocess.Popen([sys.executable, "-c", prog], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    base = ""
    try:
        pid_text, base = child.stdout.readline().split()
        server = int(pid_text)
        os.kill(server, 0)  # running
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                break
            # reaped by init once it exits; until then it may linger as a zombie
            state = Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                break
            time.sleep(0.1)
        else:
            pytest.fail("mariadbd outlived its killed parent")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if base:
            shutil.rmtree(base, ignore_errors=True)
