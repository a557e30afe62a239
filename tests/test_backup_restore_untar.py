"""The restore's tar reader (``topoff.backup.untar``): tarfile parses the headers, the data
is copied through one buffer or written from the read-ahead thread's buffers. Exact files
for what tarfile writes (pax headers included), refusals for what pg_dump's directory
format never holds, errors for short streams."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from topoff.backup import untar
from topoff.backup.prefetch import Prefetch
from topoff.backup.restore import MEMBER


def accept(name: str) -> bool:
    return bool(MEMBER.fullmatch(name))


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per call (as a pipe may)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.src, self.step = io.BytesIO(data), step

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self.src.read(min(len(b), self.step))
        b[: len(data)] = data
        return len(data)


def make_tar(members: list[tarfile.TarInfo | tuple[str, bytes]],
             fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w|", format=fmt) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return raw.getvalue()


FILES = {"toc.dat": b"t" * 511, "1.dat": b"", "2.dat": os.urandom((1 << 20) + 513),
         "blobs.toc": b"b" * 512, "blob_7.dat": os.urandom(3 << 20)}


def source(data: bytes, step: int, read_ahead: bool) -> Any:
    """The stream as given, or read ahead by a thread as a restore reads it."""
    return Prefetch(Trickle(data, step)) if read_ahead else Trickle(data, step)


@pytest.mark.parametrize("read_ahead", [False, True])
@pytest.mark.parametrize("step", [1 << 30, 4096, 511])
def test_exact_files(tmp_path: Path, step: int, read_ahead: bool) -> None:
    data = make_tar(list(FILES.items()))
    src = source(data, step, read_ahead)
    assert untar.extract(src, tmp_path, accept) == len(FILES)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == FILES
    if read_ahead:
        src.drain()
        src.close()
        src.join()


def test_pax_extended_headers_are_applied(tmp_path: Path) -> None:
    """A member over 8 GiB has its size in a pax header: extended headers go through
    tarfile, which applies them."""
    info = tarfile.TarInfo("toc.dat")
    info.size = 5
    info.pax_headers = {"comment": "c" * 3000, "size": "5"}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"hello"))
    data = raw.getvalue()
    assert data[156:157] == tarfile.XHDTYPE  # an extended header of several blocks first
    assert untar.extract(Trickle(data, 100), tmp_path, accept) == 1
    assert (tmp_path / "toc.dat").read_bytes() == b"hello"


@pytest.mark.parametrize("kind", ["symlink", "dir", "fifo", "name", "long-gnu-name",
                                  "global-pax", "sparse", "huge-extended"])
def test_refused(tmp_path: Path, kind: str) -> None:
    info = tarfile.TarInfo("1.dat")
    fmt = tarfile.PAX_FORMAT
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "dir":
        info.type = tarfile.DIRTYPE
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    elif kind == "name":
        info.name = "../1.dat"
    elif kind == "long-gnu-name":
        info.name, fmt = "1" * 200 + ".dat", tarfile.GNU_FORMAT
    elif kind == "sparse":
        info.type = tarfile.GNUTYPE_SPARSE
    elif kind == "huge-extended":
        info.pax_headers = {"comment": "c" * (1 << 20)}
    if kind == "global-pax":
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w|", format=fmt,
                          pax_headers={"comment": "g"}) as tar:
            tar.addfile(info)
        data = raw.getvalue()
    else:
        data = make_tar([info], fmt)
    with pytest.raises((untar.UnexpectedEntry, tarfile.ReadError)):
        untar.extract(Trickle(data, 4096), tmp_path, accept)
    assert not list(tmp_path.iterdir()) or kind in ("global-pax",)


@pytest.mark.parametrize("how", ["base-256", "pax"])
def test_negative_size(tmp_path: Path, how: str) -> None:
    """A negative size from a GNU base-256 field or a pax header is refused: newer Pythons'
    tarfile reads it as it is (topoff refuses the member), older ones refuse the header
    (a ReadError); restore reports either as a damaged backup (exit 6)."""
    info = tarfile.TarInfo("1.dat")
    if how == "base-256":
        info.size = -5
        data = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    else:
        info.pax_headers = {"size": "-5"}
        data = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    data += b"abc" * 1000 + bytes(1024)
    with pytest.raises((untar.UnexpectedEntry, tarfile.ReadError)):
        untar.extract(Trickle(data, 4096), tmp_path, accept)
    assert not list(tmp_path.iterdir())


def test_too_many_members(tmp_path: Path) -> None:
    data = make_tar([(f"{i}.dat", b"x") for i in range(5)])
    with pytest.raises(untar.TooManyMembers):
        untar.extract(Trickle(data, 1 << 20), tmp_path, accept, max_members=4)


def test_a_name_twice(tmp_path: Path) -> None:
    data = make_tar([("1.dat", b"a"), ("1.dat", b"b")])
    with pytest.raises(FileExistsError):
        untar.extract(Trickle(data, 1 << 20), tmp_path, accept)


@pytest.mark.parametrize("read_ahead", [False, True])
@pytest.mark.parametrize("cut", [0, 100, 512, 1512, 512 + 3072 + 512 + 5120])
def test_short_stream(tmp_path: Path, cut: int, read_ahead: bool) -> None:
    """Cut anywhere before the end-of-archive block (the last: just that block missing):
    an error, never a quiet success."""
    data = make_tar([("toc.dat", b"t" * 3000), ("1.dat", b"d" * 5000)])
    assert data[9216:] == bytes(len(data) - 9216)
    with pytest.raises(tarfile.ReadError):
        untar.extract(source(data[:cut], 4096, read_ahead), tmp_path, accept)


def test_bad_checksum(tmp_path: Path) -> None:
    data = bytearray(make_tar([("toc.dat", b"t")]))
    data[0:1] = b"x"  # the name changes, the checksum no longer matches
    with pytest.raises(tarfile.ReadError, match=re.compile("checksum|header", re.I)):
        untar.extract(Trickle(bytes(data), 4096), tmp_path, accept)


def test_read_ahead_passes_on_the_source_error(tmp_path: Path) -> None:
    class Failing(Trickle):
        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            if self.src.tell() > 600:
                raise OSError(5, "Input/output error")
            return super().readinto(b)

    src = Prefetch(Failing(make_tar([("1.dat", b"d" * 5000)]), 512))
    with pytest.raises(OSError, match="Input/output"):
        untar.extract(src, tmp_path, accept)
    src.close()
    src.join()
