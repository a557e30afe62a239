"""A MariaDB read that fails for a cause the server names (the connection lost, a lock wait
timed out, the statement time limit, a KILL QUERY, SELECT denied on a table or column) is
a SourceError saying so, with that cause's hint: the window hash and zero-date count, the
parallel read's planning queries and the rows themselves. (A deadlock, 1213, has its hint
too; a consistent-snapshot SELECT takes no row lock, so no test provokes it.)"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.mariadb import MariaDatabase
from topoff.config import TableConfig
from topoff.errors import SourceError
from topoff.sources.mariadb import parallel, rows
from topoff.sources.mariadb.catalog import MariaTable, read_table
from topoff.sources.mariadb.connect import connect
from topoff.sources.mariadb.reader import MariaSourceTable
from topoff.sources.mariadb.source import MariaReader

TABLE = ("CREATE TABLE t (id INT PRIMARY KEY, at DATETIME NULL, v VARCHAR(20) NULL);"
         "INSERT INTO t SELECT seq, '2025-01-01' + INTERVAL seq SECOND, 'x' FROM seq_1_to_{n}")


def _source_table(mt: MariaTable) -> MariaSourceTable:
    return MariaSourceTable(config=TableConfig(schema=mt.schema, name=mt.name), columns=[],
                            source_columns=[c.name for c in mt.columns], primary_key=["id"],
                            cursor_type=None, est_rows=10.0, maria=mt)


READS: dict[str, Callable[[Any, MariaTable], Any]] = {
    "window hash": lambda conn, mt: rows.window_hash(conn, mt),
    "zero dates": lambda conn, mt: rows.zero_date_counts(conn, mt),
    "rows": lambda conn, mt: rows.write_csv(conn, mt, io.BytesIO()),
    "table size": lambda conn, mt: parallel.table_bytes(conn, _source_table(mt)),
    "key ranges": lambda conn, mt: parallel.key_ranges(conn, _source_table(mt), 3),
    "export's hash": lambda conn, mt: MariaReader(conn).count_hash(_source_table(mt), None,
                                                                    "my2"),
    "export's rows": lambda conn, mt: MariaReader(conn).rows(_source_table(mt)).read_row(),
}


def _closed(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _failure(read: Callable[[], Any]) -> SourceError:
    with pytest.raises(SourceError) as failed:
        read()
    assert failed.value.exit_code == 3
    assert failed.value.hint is not None
    assert "check the connection to the source" not in failed.value.hint
    return failed.value


@pytest.mark.parametrize("read", list(READS))
def test_a_connection_killed_under_a_read_is_named_lost(maria: MariaDatabase,
                                                        read: str) -> None:
    maria.execute(TABLE.format(n=10))
    conn = connect(maria.replica_url)
    try:
        mt = read_table(conn, maria.name, "t")
        maria.pair.replica.sql(f"KILL CONNECTION {int(conn.connection_id)}")
        e = _failure(lambda: READS[read](conn, mt))
    finally:
        _closed(conn)
    assert "connection to the source was lost" in e.message
    assert "run it again" in (e.hint or "")


def test_the_statement_time_limit_is_named(maria: MariaDatabase) -> None:
    """A limit topoff's session setting does not lift (set here after it)."""
    maria.execute(TABLE.format(n=200000))
    conn = connect(maria.replica_url)
    try:
        mt = read_table(conn, maria.name, "t")
        conn.cursor().execute("SET SESSION max_statement_time = 0.001")
        e = _failure(lambda: rows.window_hash(conn, mt))
    finally:
        _closed(conn)
    assert f"hashing {maria.name}.t failed" in e.message
    assert "statement time limit" in e.message and "max_statement_time" in e.message
    assert "MAX_STATEMENT_TIME" in (e.hint or "")


@pytest.fixture
def locked(maria: MariaDatabase) -> Iterator[Any]:
    """A session of the primary holding ``LOCK TABLES t WRITE`` (released at the end)."""
    user = f"lk{maria.name}"
    maria.execute(TABLE.format(n=10) + f";CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY "
                  f"'p'; GRANT ALL ON `{maria.name}`.* TO '{user}'@'127.0.0.1'")
    holder = connect(maria.pair.primary.url(maria.name, user=user, password="p"))
    reader = connect(maria.primary_url)
    try:
        mt = read_table(reader, maria.name, "t")
        holder.cursor().execute("LOCK TABLES t WRITE")
        yield reader, mt
    finally:
        _closed(holder)
        _closed(reader)
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


def test_a_lock_wait_timeout_is_named(locked: Any) -> None:
    reader, mt = locked
    reader.cursor().execute("SET SESSION lock_wait_timeout = 1")
    e = _failure(lambda: rows.window_hash(reader, mt))
    assert "lock wait timed out" in e.message
    assert "lock_wait_timeout" in (e.hint or "") and "LOCK TABLES" in (e.hint or "")


def test_a_killed_query_is_named_interrupted(maria: MariaDatabase, locked: Any) -> None:
    """The read waits for the table's lock until a KILL QUERY stops it."""
    reader, mt = locked
    conn_id = int(reader.connection_id)
    failed: list[BaseException] = []

    def hash_it() -> None:
        try:
            rows.window_hash(reader, mt)
        except BaseException as e:  # handed to the test
            failed.append(e)
    worker = threading.Thread(target=hash_it)
    worker.start()
    for _ in range(300):
        state = maria.pair.primary.sql(
            f"SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = {conn_id}").stdout
        if "metadata lock" in state:
            break
        time.sleep(0.05)
    maria.pair.primary.sql(f"KILL QUERY {conn_id}")
    worker.join(30)
    assert len(failed) == 1 and isinstance(failed[0], SourceError), failed
    e = failed[0]
    assert e.exit_code == 3 and "interrupted on the source" in e.message
    assert "KILL" in (e.hint or "") and "run it again" in (e.hint or "")


@pytest.mark.parametrize(("grant", "revoke", "errno_text"), [
    ("SELECT", "SELECT", "SELECT command denied"),
    ("SELECT (id, at, v)", "SELECT (v)", "denied"),
])
def test_select_revoked_under_a_read_is_named(maria: MariaDatabase, grant: str, revoke: str,
                                              errno_text: str) -> None:
    user = f"rd{maria.name}"
    maria.execute(TABLE.format(n=10) + f";CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY "
                  f"'p'; GRANT {grant} ON `{maria.name}`.t TO '{user}'@'127.0.0.1'")
    conn = connect(maria.pair.replica.url(maria.name, user=user, password="p"))
    try:
        mt = read_table(conn, maria.name, "t")
        maria.execute(f"REVOKE {revoke} ON `{maria.name}`.t FROM '{user}'@'127.0.0.1'")
        e = _failure(lambda: rows.window_hash(conn, mt))
    finally:
        _closed(conn)
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)
    assert "may not SELECT" in e.message and errno_text in e.message
    assert "grant SELECT" in (e.hint or "")


def test_a_connection_killed_in_the_middle_of_the_rows_is_named_lost(
        maria: MariaDatabase) -> None:
    """The rows are read a batch at a time: the connection ended
    after the first batch, with most rows still to come, is the same lost connection."""
    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200) NOT NULL);"
                  "INSERT INTO t SELECT seq, REPEAT('x', 200) FROM seq_1_to_200000")
    conn = connect(maria.replica_url)
    try:
        stream = MariaReader(conn).rows(_source_table(read_table(conn, maria.name, "t")))
        assert stream.read_row() == b"id,v\n" and stream.read_row() is not None
        maria.pair.replica.sql(f"KILL CONNECTION {int(conn.connection_id)}")
        e = _failure(lambda: [None for _ in iter(stream.read_row, None)])
    finally:
        _closed(conn)
    assert "connection to the source was lost" in e.message
    assert f"reading {maria.name}.t" in e.message

