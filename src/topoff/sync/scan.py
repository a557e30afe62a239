"""A cheap pass over a data file before any target sees it: the decompressed CSV must hold
exactly the rows its manifest declares, and no more bytes than it declares (or, for files
of exporters that did not record their size, than a generous cap).

A data file is untrusted: 33 KB of zstd can hold 100 million rows, and 92 KB one line of
3 GB. Targets read the files themselves (DuckDB's read_csv, PostgreSQL's COPY), so the
bound is set here, while decompressing in blocks: the pass stops as soon as a file passes
what its manifest declares. Records are counted as newlines outside double quotes (COPY's
CSV quotes every value holding a newline), with ``bytes.count`` in C, never row by row.
"""

from __future__ import annotations

from itertools import accumulate, islice, repeat
from pathlib import Path

import zstandard

from topoff.dataset.manifest import DataFile
from topoff.errors import IntegrityError

BLOCK = 1 << 20
#: without a declared uncompressed size: at most this many times the compressed size ...
MAX_RATIO = 1000
#: ... but always at least this much
MIN_CAP = 64 << 20


def size_cap(f: DataFile) -> int:
    """How many decompressed bytes the file may hold."""
    if f.uncompressed_bytes is not None:
        return f.uncompressed_bytes
    return max(MIN_CAP, f.bytes * MAX_RATIO)


def scan(path: Path, f: DataFile, name: str) -> tuple[int, int]:
    """(decompressed bytes, rows without the header); IntegrityError when the file holds
    more or fewer rows than declared, or more bytes than :func:`size_cap`."""
    cap = size_cap(f)
    lines_wanted = f.rows + 1 if f.rows is not None else None  # the header is a line too
    total = lines = 0
    quoted = False
    last = b"\n"
    try:
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(
                raw, read_across_frames=True) as reader:
            while block := reader.read(BLOCK):
                total += len(block)
                if total > cap:
                    raise _refused(name, f"decompresses to more than {cap:,} bytes")
                found, quoted = _records(block, quoted)
                lines += found
                if lines_wanted is not None and lines > lines_wanted:
                    raise _refused(name, f"holds more than the {f.rows:,} rows its manifest "
                                   "declares")
                last = block[-1:]
    except zstandard.ZstdError as e:
        raise _refused(name, f"is not a valid zstd file ({e})") from None
    if last != b"\n":
        lines += 1  # a last record without its newline
    if f.uncompressed_bytes is not None and total != f.uncompressed_bytes:
        raise _refused(name, f"decompresses to {total:,} bytes, its manifest says "
                       f"{f.uncompressed_bytes:,}")
    if lines_wanted is not None and lines != lines_wanted:
        raise _refused(name, f"holds {max(lines - 1, 0):,} rows, its manifest says {f.rows:,}")
    return total, max(lines - 1, 0)


def _records(block: bytes, quoted: bool) -> tuple[int, bool]:
    """(newlines of ``block`` outside double quotes, whether it ends inside quotes), given
    whether it starts inside quotes.

    A newline ends a record when the quotes before it are even in number. Every step
    runs in C (split, map of bytes.count, accumulate, map of int.__and__): no Python-level
    loop per row or per quote, which matters for JSON columns full of quotes.
    """
    if b'"' not in block:
        return (0 if quoted else block.count(b"\n")), quoted
    segments = block.split(b"\n")
    quotes = list(accumulate(map(bytes.count, segments, repeat(b'"')), initial=int(quoted)))
    inside = sum(map((1).__and__, islice(quotes, 1, len(quotes) - 1)))
    return len(segments) - 1 - inside, quotes[-1] % 2 == 1


def _refused(name: str, why: str) -> IntegrityError:
    return IntegrityError(f"{name} {why}; nothing was applied from it",
                          hint="the publication is damaged or was not written by topoff; ask "
                          "the publisher to republish it")
