"""``topoff replicate`` reading a MariaDB source whose session ended between two of its
statements (the server restarted or stopped, a ``KILL CONNECTION``): the next statement is
the lost connection (a SourceError, exit 3), never an internal error (the driver refuses
a cursor on a connection it found gone)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.mariadb import MariaDatabase
from support.replicate import config
from topoff.dataset.manifest import Column
from topoff.errors import SourceError
from topoff.replicate import maria_read, maria_reconcile
from topoff.replicate.maria_source import MariaSession
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect

READS: dict[str, Callable[[Any, Any], Any]] = {
    "a query": lambda conn, mt: maria_read.query(conn, "SELECT 1", "reading the bound"),
    "the rows": lambda conn, mt: list(maria_read.lines(
        conn, mt.columns, f"FROM {mt.qualified}", [0], "reading the rows")),
    "rows to repair": lambda conn, mt: list(maria_reconcile.source_rows(
        conn, mt, [Column("v", "text")], ["id"], [("1",)], None)),
}


@pytest.mark.parametrize("read", list(READS))
def test_a_session_ended_between_statements_is_the_lost_connection(
        maria: MariaDatabase, read: str) -> None:
    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));"
                  "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    conn = connect(maria.replica_url)
    try:
        mt = read_table(conn, maria.name, "t")
        maria.pair.replica.sql(f"KILL CONNECTION {int(conn.connection_id)}")
        with pytest.raises(SourceError) as failed:
            READS[read](conn, mt)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    assert failed.value.exit_code == 3
    assert "the connection to the source was lost" in failed.value.message
    assert "run it again" in (failed.value.hint or "")


def test_a_session_ended_after_the_rows_were_read_ends_the_refresh(
        maria: MariaDatabase, tmp_path: Path) -> None:
    """Every row was read in the snapshot when the session ends: ending the snapshot (a
    rollback) has nothing left to do, and the refresh's rows stand."""
    tables: dict[str, dict[str, object]] = {"t": {"method": "snapshot"}}
    cfg = config(str(tmp_path / "r.duckdb"), {"app": (maria.replica_url, tables)})
    session = MariaSession(cfg.sources[0])
    try:
        maria.pair.replica.sql(f"KILL CONNECTION {int(session.conn.connection_id)}")
        session.finish()
    finally:
        session.close()
