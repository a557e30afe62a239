"""CopyReader against a real server: whole rows, a block at a time, and errors as psycopg's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from topoff.export.chunks import ChunkedWriter
from topoff.export.copy_out import BLOCK, KEEP, CopyReader, block_buffer, copy_digest, copy_rows
from topoff.stores.local import LocalStore

# rows of very different widths, with quoted newlines and quotes: only COPY knows row ends
ROWS = sql.SQL("SELECT g, CASE WHEN g % 3 = 0 THEN repeat(E'a\\n\"b\",', g) ELSE 'x' END "
               "FROM generate_series(1, 3000) g")


def _copy(query: sql.Composable) -> sql.Composable:
    return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(query)


def test_blocks_hold_whole_rows_and_nothing_is_lost(db) -> None:
    with psycopg.connect(db.standby_url, autocommit=True) as conn:
        rows = [bytes(r) for r in copy_rows(conn, _copy(ROWS))]
        reader = CopyReader(conn, _copy(ROWS))
        assert bytes(reader.read_row() or b"") == rows[0]  # the header
        buf, got, counts = block_buffer(), [], []
        while not reader.done:
            counts.append(reader.read_into(buf, KEEP + 50_000))
            got.append(bytes(buf[KEEP:]))
            del buf[KEEP:]
        assert reader.read_row() is None and reader.read_into(buf, KEEP + BLOCK) == 0
        # with the connection free again
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert sum(counts) == len(rows) - 1 == 3000
    assert b"".join(got) == b"".join(rows[1:])
    it = iter(rows[1:])
    for block, n in zip(got, counts, strict=True):  # each block: exactly its rows
        assert block == b"".join(next(it) for _ in range(n))
    assert all(len(b) >= 50_000 for b in got[:-1])


def test_the_digest_is_the_sha256_of_the_data_rows(db) -> None:
    with psycopg.connect(db.standby_url, autocommit=True) as conn:
        rows = [bytes(r) for r in copy_rows(conn, _copy(ROWS))]
        assert copy_digest(conn, _copy(ROWS)) == (
            3000, hashlib.sha256(b"".join(rows[1:])).hexdigest())


def test_an_error_in_the_middle_of_a_copy_is_raised_and_no_file_is_left(db, tmp_path: Path):
    failing = _copy(sql.SQL("SELECT g, repeat('y', 500), 1 / (g - 2500) "
                            "FROM generate_series(1, 3000) g"))
    store = LocalStore(tmp_path)
    writer = ChunkedWriter(store, lambda n: (f"t.{n}.csv.zst", f"t.{n}.csv.zst"), 1 << 30)
    with psycopg.connect(db.standby_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            try:
                writer.write_from(CopyReader(conn, failing))
            except BaseException as e:
                writer.abort(e)
                raise
        assert list(tmp_path.rglob("t.*")) == [] and writer.files == []
        with pytest.raises(psycopg.errors.DivisionByZero):
            copy_digest(conn, failing)
        with pytest.raises(psycopg.errors.UndefinedTable):
            CopyReader(conn, _copy(sql.SQL("SELECT * FROM no_such_table")))
        assert conn.execute("SELECT 1").fetchone() == (1,)
