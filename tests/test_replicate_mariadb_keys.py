"""``topoff replicate`` from MariaDB with keys of the less common types: the keyset batches
of an inserter/updater refresh page through rows sharing one cursor value by the key, so
the key's values must come back into statements exactly (BIT and FLOAT keys: MariaDB's
text of them is bytes or 6 digits)."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from support.mariadb import MariaDatabase
from support.replicate import config, new_target, query
from topoff.replicate.engine import run_once
from topoff.replicate.maria_read import KeysetRead
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect

KEYS = {
    "bit8": ("BIT(8)", ["b'11111111'", "b'00000001'", "b'10000000'", "b'0'"]),
    "bit64": ("BIT(64)", ["b'" + "1" * 64 + "'", "1", "b'1" + "0" * 63 + "'", "0"]),
    "float": ("FLOAT", ["1.2345678", "-3.4028234e38", "1.1754944e-38", "16777217"]),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_keyset_batches_page_by_every_key_type(maria: MariaDatabase, cluster, tmp_path: Path,
                                               kind: str) -> None:
    """Rows sharing one cursor value, one per batch: each batch ends after the one before
    (a BIT key's end was its raw bytes, a FLOAT key's its 6 digits, and the next batch
    started again at the same row: the refresh never ended)."""
    ktype, values = KEYS[kind]
    rows = ", ".join(f"({v}, '2026-01-01 00:00:00.000001', {i})" for i, v in enumerate(values))
    maria.execute(f"CREATE TABLE k (kk {ktype} NOT NULL PRIMARY KEY, ts DATETIME(6) NOT NULL, "
                  f"n INT); INSERT INTO k VALUES {rows}")
    with connect(maria.replica_url) as conn:
        table = read_table(conn, maria.name, "k")
        read = KeysetRead(conn, table, table.columns, "ts", ("kk",), "TRUE", 1, "m.k")
        ranges = list(islice(read.ranges(), len(values) + 2))
        assert len(ranges) <= len(values) + 1, ranges[-1]
        counts = []
        for cond in ranges:
            cur = conn.cursor()
            cur.execute(f"SELECT n FROM {table.qualified} WHERE {cond}")
            counts += [n for (n,) in cur.fetchall()]
            cur.close()
        assert sorted(counts) == list(range(len(values)))
    for engine in ("duckdb", "postgresql"):
        url = new_target(engine, cluster, tmp_path)
        cfg = config(url, {"m": (maria.replica_url, {"k": {
            "method": "updater", "cursor": "ts", "batch_rows": 1}})})
        [run] = run_once(cfg)
        assert (run.status, run.rows) == ("ok", len(values)), run.error
        assert sorted(n for (n,) in query(url, "SELECT n FROM m.k")) == list(range(len(values)))


def test_a_wide_decimal_cursor_s_lower_bound_is_exact(maria: MariaDatabase, cluster,
                                                      tmp_path: Path) -> None:
    """``watermark - boundary`` of a DECIMAL(38,2) cursor keeps every digit (it was rounded
    to 28: above the watermark itself, and a row committed late inside the boundary was
    never read)."""
    top = "123456789012345678901234567890123.5"
    maria.execute("CREATE TABLE d (id INT PRIMARY KEY, seq DECIMAL(38,2) NOT NULL); "
                  f"INSERT INTO d VALUES (1, {top} - 3), (2, {top})")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"m": (maria.replica_url, {"d": {
        "method": "updater", "cursor": "seq", "boundary": 1}})})
    [run] = run_once(cfg)
    assert (run.status, run.rows) == ("ok", 2), run.error
    maria.execute(f"INSERT INTO d VALUES (3, {top} - 0.5)")  # late, inside the boundary
    [run] = run_once(cfg)
    assert run.status == "ok", run.error
    assert [i for (i,) in query(url, "SELECT id FROM m.d ORDER BY id")] == [1, 2, 3]
