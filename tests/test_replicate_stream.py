"""The pipelined copy path: blocks of whole rows from a reader thread, errors raised in
the caller, a stream closed early leaves no thread behind, the queue stays bounded."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors, sql

from topoff.replicate import stream


def _threads() -> int:
    return sum(t.name == "topoff-replicate-reader" for t in threading.enumerate())


def test_blocks_hold_whole_rows_and_every_row_is_counted(db):
    counter = [0]
    with psycopg.connect(db.standby_url) as conn:
        stmt = sql.SQL("COPY (SELECT g, repeat('x', g % 300) FROM generate_series(1, 50000) g) "
                       "TO STDOUT WITH (FORMAT csv)")
        blocks = list(stream.copy(conn, [stmt, stmt], counter))
        # the connection is usable again once the stream ended
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert counter == [100000] and len(blocks) > 2
    assert all(b.endswith(b"\n") for b in blocks)
    assert all(len(b) < stream.CHUNK + 400 for b in blocks)
    lines = b"".join(blocks).splitlines()
    assert len(lines) == 100000 and lines[0] == b"1,x" and lines[-1] == b"50000," + b"x" * 200
    assert _threads() == 0


def test_an_error_on_the_source_is_raised_in_the_caller(db):
    with psycopg.connect(db.standby_url) as conn:
        stmt = sql.SQL("COPY (SELECT repeat('x', 100), 1 / (g - 90000) "
                       "FROM generate_series(1, 100000) g) TO STDOUT WITH (FORMAT csv)")
        got = []
        with pytest.raises(errors.DivisionByZero):
            for block in stream.copy(conn, stmt, [0]):
                got.append(block)
        assert got  # rows came before the error
    assert _threads() == 0


def test_a_stream_closed_early_stops_its_reader(db):
    produced = [0]

    def endless():
        while True:
            produced[0] += 1
            yield b"x" * 1000 + b"\n"

    s = stream.pipelined(endless(), depth=3)
    assert next(s).startswith(b"x")
    s.close()
    assert _threads() == 0
    assert produced[0] <= 3 + 3  # the queue, the one taken, the one in hand, one more


def test_binary_batches_join_into_one_stream_a_target_reads(db):
    db.execute("CREATE TABLE t (id int, v text)")
    batches = [sql.SQL("COPY (SELECT g, 'v' || g FROM generate_series({}, {}) g) "
                       "TO STDOUT WITH (FORMAT binary)").format(lo, hi)
               for lo, hi in ((1, 70000), (70001, 70000), (70001, 70002))]  # one is empty
    counter = [0]
    with psycopg.connect(db.standby_url) as conn:
        blocks = list(stream.copy(conn, batches, counter, binary=True))
    data = b"".join(blocks)
    assert counter == [70002] and len(blocks) > 2
    assert data.startswith(stream.BINARY_HEADER) and data.endswith(stream.BINARY_TRAILER)
    with psycopg.connect(db.primary_url) as conn:
        with conn.cursor().copy("COPY t FROM STDIN WITH (FORMAT binary)") as cp:
            for b in blocks:
                cp.write(b)
        assert conn.execute("SELECT count(*), count(DISTINCT id), max(v) FROM t").fetchone() \
            == (70002, 70002, "v9999")
