"""The names a pg_dump directory archive gives pg_restore to read, in archives crafted here:
pg_dump 17 (archive version 1.16) writes its large objects' lists as ``blobs_<n>.toc``,
one per BLOBS entry, where older versions wrote one ``blobs.toc`` (which pg_restore
before 1.16 reads whatever the entry names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.backup import AgeKey
from test_backup_decrypt import encrypt, fetch, plain_object, put
from topoff.backup import restore
from topoff.errors import IntegrityError

OUTSIDE = "../" * 20 + "etc/passwd"


def _int(value: int) -> bytes:
    return (b"\1" if value < 0 else b"\0") + abs(value).to_bytes(4, "little")


def _str(text: str | None) -> bytes:
    if text is None:
        return _int(-1)
    data = text.encode()
    return _int(len(data)) + data


def toc(version: tuple[int, int], entries: list[tuple[str, str]]) -> bytes:
    """A toc.dat as pg_backup_archiver.c writes it: (desc, data file name) per entry."""
    out = b"PGDMP" + bytes([version[0], version[1], 0, 4, 8, 5])  # int size, offset, format
    out += bytes([0]) if version >= (1, 15) else _int(0)  # compression
    out += b"".join(_int(v) for v in (0, 0, 12, 1, 0, 126, 0))  # creation time
    out += _str("db") + _str("17.0") + _str("17.0") + _int(len(entries))
    for n, (desc, name) in enumerate(entries, start=1):
        out += _int(n) + _int(1) + _str("0") + _str("0") + _str(f"entry {n}") + _str(desc)
        out += _int(3)  # section
        out += b"".join(_str(s) for s in ("", "", "", "public", ""))
        if version >= (1, 14):
            out += _str("")  # table access method
        if version >= (1, 16):
            out += _int(0)  # relkind
        out += _str("postgres") + _str("false") + _str(None) + _str(name)
    return out


def _restore_checks(tmp_path: Path, key: AgeKey, files: dict[str, bytes]) -> None:
    """What a restore runs before pg_restore: fetch, then the names check."""
    entry = put(tmp_path / "store", encrypt(key, plain_object(files)))
    restore.check_names(entry, fetch(tmp_path, entry, key))


def test_pg_dump_17_blobs_lists_are_restored(age_key: AgeKey, tmp_path: Path) -> None:
    files = {"toc.dat": toc((1, 16), [("TABLE DATA", "3389.dat"), ("BLOBS", "blobs_7.toc"),
                                      ("BLOBS", "blobs_8.toc")]),
             "3389.dat": b"1\thello\n\\.\n", "blobs_7.toc": b"16400 blob_16400.dat\n",
             "blob_16400.dat": b"large", "blobs_8.toc": b"16401 blob_16401.dat\n",
             "blob_16401.dat": b"object"}
    _restore_checks(tmp_path, age_key, files)
    assert sorted(p.name for p in (tmp_path / "dump").iterdir()) == sorted(files)


def test_a_pg_dump_17_blobs_list_naming_a_file_outside_is_refused(age_key: AgeKey,
                                                                   tmp_path: Path) -> None:
    files = {"toc.dat": toc((1, 16), [("BLOBS", "blobs_7.toc")]),
             "blobs_7.toc": f"16400 {OUTSIDE}\n".encode()}
    with pytest.raises(IntegrityError, match=r"blobs_7\.toc names the large object file"):
        _restore_checks(tmp_path, age_key, files)


@pytest.mark.parametrize(("version", "named", "holding"), [
    ((1, 14), "blobs_9.toc", "blobs.toc"),  # pg_restore before 1.16 reads blobs.toc
    ((1, 15), "3390.dat", "blobs.toc"),
    ((1, 16), "3390.dat", "3390.dat"),  # since 1.16 it reads the file the entry names
])
def test_a_list_of_large_objects_under_another_name_is_checked(
        age_key: AgeKey, tmp_path: Path, version: tuple[int, int], named: str,
        holding: str) -> None:
    files = {"toc.dat": toc(version, [("BLOBS", named)]),
             holding: f"16400 {OUTSIDE}\n".encode()}
    with pytest.raises(IntegrityError, match=f"{holding} names the large object file"):
        _restore_checks(tmp_path, age_key, files)
