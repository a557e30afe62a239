"""The spool files of a DuckDB replica: rows a refresh reads from a source, written as CSV
under ``<replica>.tmp`` until DuckDB loads them; a failure to write one is the replica's."""

from __future__ import annotations

import contextlib
import errno
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from topoff.errors import TargetError


@contextlib.contextmanager
def spool_file(replica: Path, tmp: Path) -> Iterator[IO[bytes]]:
    """A new spool file under ``tmp`` (made if need be), removed when the block ends."""
    try:
        tmp.mkdir(exist_ok=True)
        spool = tempfile.NamedTemporaryFile(dir=tmp, suffix=".csv")  # noqa: SIM115
    except OSError as e:
        raise spool_error(replica, e, tmp) from e
    with spool:
        yield spool


def spool_error(replica: Path, exc: OSError, tmp: Path) -> TargetError:
    """A spool file under ``tmp`` that cannot be written, as the replica's failure."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TargetError(f"the disk of DuckDB replica {replica} is full (writing under "
                           f"{tmp})", hint="free some space or move the replica to a larger "
                           "disk, then run the same command again; what was committed is kept")
    return TargetError(f"cannot write under {tmp}: {exc.strerror or exc}",
                       hint=f"make {tmp.parent} writable by the user running topoff")
