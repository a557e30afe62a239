"""Rows from the source to the target with both sides working at once.

The source's ``COPY ... TO STDOUT`` is read in blocks of about :data:`CHUNK` bytes of
whole CSV rows (``CopyReader.read_into``: one tight loop, no Python work per row beyond
appending its bytes) by a reader thread, which hands them to the caller through a queue
of at most :data:`DEPTH` blocks. The caller writes them to the target (``COPY FROM
STDIN``) meanwhile: the source server produces rows, the reader gathers them, and the
target server takes them in, at the same time. Memory: at most DEPTH + 2 blocks.

The reader thread is the only user of the source connection while a stream runs; the
caller must consume the stream to its end (or close it: the reader then stops after its
current block, leaving the COPY unfinished, and the caller closes the connection). An
error on the source is raised in the caller, as the same exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import psycopg
from psycopg import sql

from topoff.export.copy_out import CopyReader
from topoff.readahead import ahead

CHUNK = 1 << 20
DEPTH = 4


#: PostgreSQL's binary COPY file header (signature, flags 0, no extension) and trailer
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
BINARY_TRAILER = b"\xff\xff"


def copy_blocks(conn: psycopg.Connection, statements: Iterable[sql.Composable],
                counter: list[int], binary: bool = False) -> Iterator[bytes]:
    """The rows of each COPY statement in turn, as blocks of whole rows (CSV), or as ONE
    binary COPY stream (``binary``: each statement's header and trailer taken off, one
    of each around the whole); the rows counted into ``counter[0]``. ``statements`` is
    advanced only after the previous COPY ended (it may run queries on ``conn``)."""
    buf = bytearray()
    if binary:
        yield BINARY_HEADER
    hold = len(BINARY_TRAILER) if binary else 0  # never hand over a trailer not yet seen
    for statement in statements:
        reader = CopyReader(conn, statement)
        start, first = len(buf), binary
        while not reader.done:
            counter[0] += reader.read_into(buf, CHUNK)
            if first:
                if bytes(buf[start:start + len(BINARY_HEADER)]) != BINARY_HEADER:
                    raise psycopg.DataError("the source's binary COPY has another header")
                del buf[start:start + len(BINARY_HEADER)]
                first = False
            if len(buf) >= CHUNK and not reader.done:
                yield bytes(buf[:len(buf) - hold])
                del buf[:len(buf) - hold]
        if binary:  # its trailer is one message of its own, counted as a row
            if bytes(buf[-hold:]) != BINARY_TRAILER:
                raise psycopg.DataError("the source's binary COPY has no trailer")
            del buf[-hold:]
            counter[0] -= 1
    if buf:
        yield bytes(buf)
    if binary:
        yield BINARY_TRAILER


def pipelined(blocks: Iterator[bytes], depth: int = DEPTH) -> Iterator[bytes]:
    """``blocks``, produced by a reader thread ahead of the caller (at most ``depth``)."""
    return ahead(blocks, depth, "topoff-replicate-reader")


def copy(conn: psycopg.Connection, statement: sql.Composable | Iterable[sql.Composable],
         counter: list[int], binary: bool = False) -> Iterator[bytes]:
    """One COPY statement (or several in turn), pipelined: see the module's text."""
    statements = [statement] if isinstance(statement, sql.Composable) else statement
    return pipelined(copy_blocks(conn, statements, counter, binary))
