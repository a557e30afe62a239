"""The files a pg_dump directory-format archive tells pg_restore to read.

pg_restore opens each entry's data file as ``<dir>/<name>``, the name taken from
``toc.dat`` as it stands (``../../etc/x`` included), and each large object as
``<dir>/<name>`` from the lines of a BLOBS entry's file (``blobs.toc`` before archive
version 1.16, whatever the entry names; ``blobs_<n>.toc`` since). A backup object can be
written by anyone who can write to the store (the recipients' public keys are in
started.json), so before pg_restore starts, :func:`read_names` reads those names from
``toc.dat`` (the archive header and table of contents as pg_backup_archiver.c writes
them, archive versions 1.12 to 1.16: pg_dump 9.x to 17) and :func:`check` refuses any
that is not a file of the dump's own directory.
"""

from __future__ import annotations

import re
from pathlib import Path

MAGIC = b"PGDMP"
VERSIONS = ((1, 12), (1, 16))  # the archive versions read here
DATA_NAME = re.compile(r"[0-9]{1,10}\.dat|blobs\.toc|blobs_[0-9]{1,10}\.toc")
BLOBS_TOC = re.compile(r"blobs\.toc|blobs_[0-9]{1,10}\.toc")
BLOB_LINE = re.compile(r"[0-9]{1,10} blob_[0-9]{1,10}\.dat")


class BadToc(Exception):
    """toc.dat cannot be read, or names a file outside the dump's directory."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.int_size = data, 0, 4

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BadToc("toc.dat ends early")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.bytes(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.bytes(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        n = self.int()
        return None if n < 0 else self.bytes(n).decode("utf-8", "surrogateescape")


def read_names(data: bytes) -> list[tuple[str, str]]:
    """(desc, data file name) of every entry of ``toc.dat`` with a data file."""
    r = _Reader(data)
    if r.bytes(5) != MAGIC:
        raise BadToc("toc.dat is not a pg_dump archive")
    version = (r.byte(), r.byte())
    r.byte()  # revision
    if not VERSIONS[0] <= version <= VERSIONS[1]:
        raise BadToc(f"toc.dat has archive version {version[0]}.{version[1]}, "
                     "which topoff does not read")
    r.int_size = r.byte()
    if not 1 <= r.int_size <= 8:
        raise BadToc("toc.dat has an invalid integer size")
    r.byte()  # offset size
    r.byte()  # format (pg_restore refuses one that is not the directory's)
    r.byte() if version >= (1, 15) else r.int()  # compression
    for _ in range(7):  # the archive's creation time
        r.int()
    for _ in range(3):  # database name, server version, pg_dump version
        r.str()
    count = r.int()
    if count < 0 or count > len(data):
        raise BadToc("toc.dat has an invalid entry count")
    names = []
    for _ in range(count):
        r.int()  # dump id
        r.int()  # had dumper
        for _ in range(3):  # table oid, oid, tag
            r.str()
        desc = r.str() or ""
        r.int()  # section
        for _ in range(6 if version >= (1, 14) else 5):  # defn, drop, copy, namespace,
            r.str()  # tablespace, table access method
        if version >= (1, 16):
            r.int()  # relkind
        r.str()  # owner
        r.str()  # with oids
        while r.str() is not None:  # dependencies, up to a NULL
            pass
        name = r.str()
        if name:
            names.append((desc, name))
    return names


def check(dump_dir: Path) -> None:
    """Refuse (:class:`BadToc`) a dump whose ``toc.dat`` or a list of large objects names
    a file that is not one of the dump's own data files.

    pg_restore reads the file of each BLOBS entry as a list of large object files; before
    archive version 1.16 it reads ``blobs.toc`` whatever the entry names. So every file a
    BLOBS entry names, and every ``blobs.toc`` or ``blobs_<n>.toc`` of the dump, is
    checked as such a list."""
    lists = {p.name for p in dump_dir.iterdir() if BLOBS_TOC.fullmatch(p.name)}
    for desc, name in read_names((dump_dir / "toc.dat").read_bytes()):
        if not DATA_NAME.fullmatch(name):
            raise BadToc(f"toc.dat names the data file {name[:80]!r}")
        if desc == "BLOBS":
            lists.add(name)
    for name in sorted(lists):
        if not (dump_dir / name).is_file():
            continue
        for line in (dump_dir / name).read_text("utf-8", "replace").splitlines():
            if line and not BLOB_LINE.fullmatch(line):
                raise BadToc(f"{name} names the large object file {line[:80]!r}")
