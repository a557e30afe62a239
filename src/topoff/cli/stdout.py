"""Standard output that says when it cannot be written.

A command's output (``topoff status``, ``list``, ``verify``...) may go to a pipe whose
reader has gone (``topoff list | head -1``) or to a file on a full disk. Writing it then
fails with an ``OSError`` that would look like any other: :func:`watch` makes every write
to file descriptor 1 raise :class:`OutputFailed` instead, which the CLI answers as a shell
tool does (a closed pipe: silence and exit status 141, as if killed by SIGPIPE; another
failure: one error line and exit status 74), never as an internal error.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from typing import Any

#: the exit status of a command whose output pipe was closed (128 + SIGPIPE, as a shell
#: reports a program killed by it)
CLOSED_PIPE = 141


class OutputFailed(Exception):
    """Standard output refused a write; ``error`` is the OSError it raised."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error

    @property
    def closed_pipe(self) -> bool:
        return self.error.errno == errno.EPIPE


class _Stdout(io.FileIO):
    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except BlockingIOError:
            raise
        except OSError as e:
            raise OutputFailed(e) from None


def watch() -> None:
    """Make ``sys.stdout`` raise :class:`OutputFailed` when file descriptor 1 refuses a
    write (its encoding and buffering are kept)."""
    old = sys.stdout
    try:
        if old is None or old.fileno() != 1:
            return
    except (OSError, ValueError, AttributeError):
        return
    old.flush()
    raw = _Stdout(1, "w", closefd=False)
    buffered: Any = raw if isinstance(old.buffer, io.FileIO) else io.BufferedWriter(raw)
    text: Any = old
    sys.stdout = io.TextIOWrapper(buffered, encoding=text.encoding, errors=text.errors,
                                  line_buffering=bool(text.line_buffering),
                                  write_through=bool(text.write_through))


def discard() -> None:
    """Send what is still buffered for standard output, and anything written later, to
    /dev/null (so the interpreter's last flush does not fail again)."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
