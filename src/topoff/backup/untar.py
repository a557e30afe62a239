"""The tar stream of a backup into a directory, in constant memory.

Headers are parsed by :mod:`tarfile` (checksums, pax extended headers: a member over
8 GiB has its size there); the members' data is written from views of the read-ahead
buffers (``chunk``) when the source has them, else copied by ``readinto`` into one 1 MiB
buffer and written from it. tarfile's own stream mode copies every byte three more times
(its read buffer is joined and sliced), which made it the slowest stage of a restore.

Only plain files are accepted, and only names ``accept`` allows; anything else (links,
directories, devices, sparse files, a negative size, global pax headers, an extended
header over 1 MiB) raises :class:`UnexpectedEntry`; a member past ``max_members``,
:class:`TooManyMembers`. A short stream raises :class:`tarfile.ReadError`. A member cut
short by any error is removed.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

BLOCK = tarfile.BLOCKSIZE
COPY = 1 << 20
MAX_EXTENDED = 1 << 20  # bytes of pax / GNU long-name headers before one member
_EXTENSIONS = (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_ZERO = bytes(BLOCK)


class UnexpectedEntry(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class TooManyMembers(Exception):
    """The stream holds more than ``max_members`` members."""


def _read_exact(src: Any, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = src.readinto(view[got:])
        if not n:
            raise tarfile.ReadError("unexpected end of data")
        got += n


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _header(src: Any) -> tarfile.TarInfo | None:
    """The next member's header (with its extended headers applied), None at the end."""
    blocks = bytearray()
    while True:
        block = bytearray(BLOCK)
        _read_exact(src, memoryview(block))
        if not blocks and block == _ZERO:
            return None
        blocks += block
        kind = bytes(block[156:157])
        if kind not in _EXTENSIONS:
            break
        size = tarfile.TarInfo.frombuf(bytes(block), "utf-8", "surrogateescape").size
        if size < 0 or len(blocks) + _padded(size) > MAX_EXTENDED:
            raise UnexpectedEntry("(an extended header over 1 MiB)")
        extra = bytearray(_padded(size))
        _read_exact(src, memoryview(extra))
        blocks += extra
    # tarfile parses the headers (opening reads the first member's) but not the data
    with tarfile.open(fileobj=io.BytesIO(bytes(blocks)), mode="r:") as parsed:
        member = parsed.firstmember  # type: ignore[attr-defined]  # not in the stubs
    if member is None or member.offset_data != len(blocks):
        raise tarfile.ReadError("a header that does not describe one member")
    return member


def extract(src: Any, dest: Path, accept: Callable[[str], bool],
            max_members: int = 1_000_000) -> int:
    """Write the members of the tar stream ``src`` (an object with ``readinto``) into
    ``dest``; return their count. A name present twice raises FileExistsError."""
    buf = memoryview(bytearray(COPY))
    chunk = getattr(src, "chunk", None)  # topoff.backup.prefetch.Prefetch has it
    count = 0
    while (member := _header(src)) is not None:
        count += 1
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.size < 0 \
                or member.sparse is not None or not accept(member.name):
            raise UnexpectedEntry(member.name)
        if count > max_members:
            raise TooManyMembers(max_members)
        left = member.size
        path = dest / member.name
        with open(path, "xb") as out:
            try:
                while left:
                    if chunk is not None:  # a view of the read-ahead buffer: no copy
                        view = chunk(min(left, COPY))
                        if not view:
                            raise tarfile.ReadError("unexpected end of data")
                    else:
                        view = buf[: min(left, COPY)]
                        _read_exact(src, view)
                    out.write(view)
                    left -= len(view)
            except BaseException:
                path.unlink()  # a partial file never stays behind
                raise
        pad = _padded(member.size) - member.size
        if pad:
            _read_exact(src, buf[:pad])
    return count
