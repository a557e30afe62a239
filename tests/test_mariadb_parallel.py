"""Parallel readers of a MariaDB source: workers in one snapshot, tables read by key ranges."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from support.dataset import read_table
from support.export_hooks import late_start
from support.mariadb import MariaDatabase, MariaServer, _chown
from topoff.config import Config, TableConfig
from topoff.errors import SourceError
from topoff.export import full as full_export
from topoff.export.full import export_full
from topoff.sources.mariadb import parallel
from topoff.sources.mariadb import snapshot as snap
from topoff.sources.mariadb import source as maria_source
from topoff.sources.mariadb.source import MariaSource
from topoff.stores import open_store

SPARSE = [1, 2, 10**15, 2**63 - 1]


def _config(url: str, jobs: int, *tables: str) -> Config:
    db = url.rsplit("/", 1)[1]
    return Config(dataset="par", source_url=url, allow_primary=True, tables=tuple(
        TableConfig(schema=db, name=t, method="snapshot") for t in tables
    )).with_export(jobs=jobs, retry_backoff=0.05)


def _export(url: str, jobs: int, root: Path, *tables: str) -> dict[str, list[list[str]]]:
    store = open_store(str(root))
    [m] = export_full(_config(url, jobs, *tables), store).manifests
    db = url.rsplit("/", 1)[1]
    out = {}
    for t in tables:
        entry = m.tables[f"{db}.{t}"]
        data = read_table(store, m, f"{db}.{t}")
        assert entry.rows == len(data.rows)
        out[t] = sorted(data.rows)
        out[t + "#files"] = [[str(len(entry.files))]]
    return out


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split every table, however small (the real threshold is 64 MiB)."""
    monkeypatch.setattr(full_export, "SPLIT_BYTES", 1)
    monkeypatch.setattr(maria_source, "MIN_SPLIT_BYTES", 1)


def test_jobs_2_export_equals_jobs_1(maria: MariaDatabase, tmp_path: Path,
                                     small_parts: None) -> None:
    maria.execute("""
        CREATE TABLE big (id BIGINT UNSIGNED PRIMARY KEY, at DATETIME(6) NOT NULL, body TEXT);
        INSERT INTO big SELECT seq * 7919, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND,
          IF(seq % 5 = 0, NULL, CONCAT('row ', seq, ', "q"')) FROM seq_1_to_3000;
        INSERT INTO big VALUES (18446744073709551615, '2026-02-01', 'max');
        CREATE TABLE pair (a INT, b INT, PRIMARY KEY (a, b));
        INSERT INTO pair SELECT seq % 10, seq FROM seq_1_to_200;
        ANALYZE TABLE big, pair""")
    one = _export(maria.replica_url, 1, tmp_path / "j1", "big", "pair")
    two = _export(maria.replica_url, 2, tmp_path / "j2", "big", "pair")
    assert one["big"] == two["big"] and one["pair"] == two["pair"]
    assert len(two["big"]) == 3001 and ["18446744073709551615", "2026-02-01 00:00:00", "max"] \
        in two["big"]
    assert one["big#files"] == [["1"]]
    assert int(two["big#files"][0][0]) > 1  # read as key ranges, by two workers
    assert two["pair#files"] == [["1"]]  # a two-column key is read whole


def test_sparse_keys_terminate_and_cover_every_row(maria: MariaDatabase, tmp_path: Path,
                                                   small_parts: None) -> None:
    values = ", ".join(f"({k}, 'k{k}')" for k in SPARSE)
    maria.execute(f"CREATE TABLE sparse (id BIGINT PRIMARY KEY, v TEXT); "
                  f"INSERT INTO sparse VALUES {values}; ANALYZE TABLE sparse")
    source = MariaSource(maria.replica_url, allow_primary=False)
    with source:
        source.open()
        [t] = source.tables(_config(maria.replica_url, 2, "sparse"))
        for parts in (2, 3, 4, 8, 50):
            ranges = parallel.key_ranges(source.conn, t, parts)
            assert 2 <= len(ranges) <= parts
            seen = []
            for r in ranges:
                cur = source.conn.cursor()
                cur.execute(f"SELECT id FROM `{maria.name}`.sparse WHERE {r.condition()}")
                seen += [int(x) for (x,) in cur.fetchall()]
                cur.close()
            assert sorted(seen) == SPARSE  # each row in exactly one range
    got = _export(maria.replica_url, 2, tmp_path / "sp", "sparse")
    assert sorted(int(r[0]) for r in got["sparse"]) == SPARSE


def test_a_commit_before_the_workers_start_gives_one_later_snapshot(
        maria: MariaDatabase) -> None:
    maria.execute("CREATE TABLE s (id INT PRIMARY KEY); INSERT INTO s VALUES (1)")
    source = MariaSource(maria.replica_url, allow_primary=False)
    with source:
        info = source.open()
        before = info.position
        maria.execute("INSERT INTO s VALUES (2)")  # applied by the replica meanwhile
        source.tables(_config(maria.replica_url, 3, "s"))
        assert source.capabilities.exported_snapshot
        after = info.position
        assert (after.binlog_file, after.binlog_position) > (before.binlog_file,
                                                             before.binlog_position)
        readers = [source.reader()] + [source.worker() for _ in range(3)]
        maria.execute("INSERT INTO s VALUES (3)")  # after the snapshot: seen by nobody
        counts = []
        for r in readers:
            cur = r.conn.cursor()
            cur.execute(f"SELECT COUNT(*) FROM `{maria.name}`.s")
            counts.append(cur.fetchone()[0])
            cur.close()
            status = dict(snap._exec(r.conn, "SHOW STATUS LIKE 'binlog_snapshot_%'"))
            assert int(status["Binlog_snapshot_position"]) == after.binlog_position
        assert counts == [2, 2, 2, 2]
        with pytest.raises(AssertionError):
            source.worker()  # one connection per job, no more


def test_a_replica_applying_writes_during_the_start_exports_one_snapshot(
        maria: MariaDatabase, tmp_path: Path, small_parts: None) -> None:
    """Each primary transaction writes the same id to two tables; read by different
    workers, the two must hold the same ids whatever the replica applied meanwhile."""
    maria.execute("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY);"
                  "INSERT INTO a SELECT seq FROM seq_1_to_500;"
                  "INSERT INTO b SELECT seq FROM seq_1_to_500; ANALYZE TABLE a, b")
    stop = threading.Event()
    primary = maria.pair.primary

    def write() -> None:
        n = 500
        while not stop.is_set() and n < 3000:
            batch = ";".join(f"BEGIN; INSERT INTO a VALUES ({i}); INSERT INTO b VALUES ({i}); "
                             "COMMIT" for i in range(n + 1, n + 21))
            primary.sql(batch, maria.name)
            n += 20

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for k in range(3):
            got = _export(maria.replica_url, 2, tmp_path / f"w{k}", "a", "b")
            assert got["a"] == got["b"] and len(got["a"]) >= 500
    finally:
        stop.set()
        writer.join()


def test_without_a_binlog_the_export_falls_back_to_one_reader(
        tmp_path: Path, small_parts: None, caplog: pytest.LogCaptureFixture) -> None:
    """No binlog to compare and no RELOAD: one reader, said in the log, same rows."""
    base = Path(tempfile.mkdtemp(prefix="topoff-maria-"))  # the server user reaches it
    base.chmod(0o755)
    _chown(base)
    server = MariaServer("nobinlog", base, server_id=9)
    try:
        server.init()
        server.start("--skip-log-bin")
        server.sql("CREATE DATABASE d; CREATE USER 'u'@'127.0.0.1' IDENTIFIED BY 'pw';"
                   "GRANT SELECT ON *.* TO 'u'@'127.0.0.1'")
        server.sql("CREATE TABLE t (id INT PRIMARY KEY, v TEXT);"
                   "INSERT INTO t SELECT seq, seq FROM seq_1_to_300; ANALYZE TABLE t", "d")
        url = server.url("d", user="u", password="pw")
        with caplog.at_level(logging.WARNING, logger="topoff"):
            two = _export(url, 2, tmp_path / "two", "t")
        assert "reading with one connection" in caplog.text
        assert "no binlog" in caplog.text
        assert two["t#files"] == [["1"]]
        assert two["t"] == _export(url, 1, tmp_path / "one", "t")["t"]
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_failing_worker_stops_the_others_and_its_error_is_reported(
        maria: MariaDatabase, tmp_path: Path) -> None:
    """One worker's query fails after half a second, while the other's (a second per 100
    rows) runs: that one is killed, and the error reported is the cause."""
    maria.execute("CREATE TABLE slow (id INT PRIMARY KEY); INSERT INTO slow SELECT seq FROM "
                  "seq_1_to_3000; CREATE TABLE bad (id INT PRIMARY KEY);"
                  "INSERT INTO bad VALUES (1)")
    db = maria.name
    config = Config(dataset="par", source_url=maria.replica_url, tables=(
        TableConfig(schema=db, name="bad", method="snapshot",
                    filter="SLEEP(0.5) = 0 AND (SELECT s.seq FROM seq_1_to_3 s "
                           "WHERE s.seq > bad.id) > 0"),
        TableConfig(schema=db, name="slow", method="snapshot", filter="SLEEP(0.01) = 0"),
    )).with_export(jobs=2, retry_backoff=0.05)
    kills = maria.pair.replica.query("SHOW GLOBAL STATUS LIKE 'Com_kill'")[0][1]
    with pytest.raises(SourceError) as e:
        export_full(config, open_store(str(tmp_path / "pub")))
    assert int(maria.pair.replica.query("SHOW GLOBAL STATUS LIKE 'Com_kill'")[0][1]) > \
        int(kills)
    assert "more than 1 row" in e.value.message
    assert "interrupted" not in e.value.message
    running = maria.pair.replica.query(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(0.01)%' "
        "AND ID <> CONNECTION_ID()")
    assert running == [["0"]]


def test_a_read_that_starts_after_the_failure_is_stopped_too(
        maria: MariaDatabase, tmp_path: Path) -> None:
    """A worker whose query reaches the server only after another worker failed (its
    unit had begun: the interruption came before its query did, and did nothing) is
    interrupted all the same: its table is never read to the end."""
    maria.execute("CREATE TABLE slow2 (id INT PRIMARY KEY); INSERT INTO slow2 SELECT seq "
                  "FROM seq_1_to_3000; CREATE TABLE bad2 (id INT PRIMARY KEY);"
                  "INSERT INTO bad2 VALUES (1)")
    db = maria.name
    config = Config(dataset="par", source_url=maria.replica_url, tables=(
        TableConfig(schema=db, name="bad2", method="snapshot",
                    filter="(SELECT s.seq FROM seq_1_to_3 s WHERE s.seq > bad2.id) > 0"),
        TableConfig(schema=db, name="slow2", method="snapshot", filter="SLEEP(0.01) = 0"),
    )).with_export(jobs=2, retry_attempts=1)
    hook, done = late_start(f"{db}.slow2")
    with pytest.raises(SourceError) as e:
        export_full(config, open_store(str(tmp_path / "pub")), hook=hook)
    assert "more than 1 row" in e.value.message
    assert f"{db}.slow2" not in done


def test_a_replica_without_log_slave_updates_is_read_by_one_connection(
        tmp_path: Path, small_parts: None, caplog: pytest.LogCaptureFixture) -> None:
    """A replica that applies its primary's commits without writing them to its binlog
    keeps its binlog position while what a snapshot sees changes: equal positions prove
    nothing there, so without RELOAD the export reads with one connection (it trusted the
    positions and read with workers that could see different commits)."""
    base = Path(tempfile.mkdtemp(prefix="topoff-maria-"))  # the server user reaches it
    base.chmod(0o755)
    _chown(base)
    server = MariaServer("nologupdates", base, server_id=10)
    try:
        server.init()
        server.start("--log-slave-updates=OFF")
        server.sql("CREATE DATABASE d; CREATE USER 'u'@'127.0.0.1' IDENTIFIED BY 'pw';"
                   "GRANT SELECT, REPLICATION CLIENT ON *.* TO 'u'@'127.0.0.1'")
        server.sql("GRANT REPLICA MONITOR ON *.* TO 'u'@'127.0.0.1'", check=False)
        server.sql("CREATE TABLE t (id INT PRIMARY KEY, v TEXT);"
                   "INSERT INTO t SELECT seq, seq FROM seq_1_to_300; ANALYZE TABLE t", "d")
        url = server.url("d", user="u", password="pw")
        with caplog.at_level(logging.WARNING, logger="topoff"):
            alone = _export(url, 2, tmp_path / "alone", "t")
        assert "reading with one connection" not in caplog.text  # replicating nothing
        assert alone["t#files"] != [["1"]]
        # now a replica (of a primary it never reaches: its replication stopped)
        server.sql("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=1, "
                   "MASTER_USER='repl', MASTER_PASSWORD='repl'")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="topoff"):
            two = _export(url, 2, tmp_path / "two", "t")
        assert "reading with one connection" in caplog.text
        assert "log_slave_updates" in caplog.text
        assert two["t#files"] == [["1"]] and two["t"] == alone["t"]
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
