"""A restore's disk is bounded by what the catalog declares: reading stops as soon as the
object is larger than its ``size``, or its tar stream larger than its ``plain_size`` (or
than ``--max-plain-size``, without which an entry that predates that field is refused),
and the partial file is removed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pyrage
import pytest
import zstandard

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.pg import Database
from test_backup_decrypt import (  # noqa: F401
    FILES,
    children,
    decrypter,
    encrypt,
    fetch,
    put,
    tar_of,
)
from topoff.backup.catalog import Entry
from topoff.errors import IntegrityError


def _declared(entry: Entry, **fields: int) -> Entry:
    assert entry.finished is not None
    return replace(entry, finished={**entry.finished, **fields})


def _held(dest: Path) -> int:
    return sum(p.stat().st_size for p in dest.iterdir())


def test_an_object_larger_than_declared_stops_at_the_declared_size(
        decrypter: str, age_key: AgeKey, tmp_path: Path) -> None:  # noqa: F811
    data = encrypt(age_key, zstandard.ZstdCompressor().compress(tar_of(FILES)))
    declared = len(data) // 4
    entry = _declared(put(tmp_path / "store", data), size=declared)
    before = children()
    with pytest.raises(IntegrityError, match=f"more than the {declared} bytes") as e:
        fetch(tmp_path, entry, age_key)
    assert "another backup" in (e.value.hint or "")
    assert _held(tmp_path / "dump") <= declared  # the partial member was removed
    assert children() <= before


@pytest.mark.parametrize("declared", [True, False])
def test_a_small_object_that_decompresses_hugely_is_stopped(
        decrypter: str, age_key: AgeKey, tmp_path: Path, declared: bool) -> None:  # noqa: F811
    """A few KiB that decompress to 64 MiB: refused once past ``plain_size`` or, without
    it, past the operator's --max-plain-size."""
    plain = tar_of({"toc.dat": b"toc", "1.dat": bytes(64 << 20)})
    data = encrypt(age_key, zstandard.ZstdCompressor().compress(plain))
    entry = put(tmp_path / "store", data)
    limit = 1 << 20
    entry = _declared(entry, plain_size=limit) if declared else replace(entry, max_plain=limit)
    with pytest.raises(IntegrityError, match=f"more than {limit} bytes") as e:
        fetch(tmp_path, entry, age_key)
    assert "another backup" in (e.value.hint or "")
    assert _held(tmp_path / "dump") <= limit


def test_an_entry_without_plain_size_is_refused_before_reading(
        decrypter: str, age_key: AgeKey, tmp_path: Path) -> None:  # noqa: F811
    """1000 times the object's size was the bound of an entry without ``plain_size``: a
    zstd bomb under a forged old-style entry still filled 1000 times its size. Such an
    entry is refused unless the operator names a bound."""
    plain = tar_of({"toc.dat": b"toc", "1.dat": bytes(64 << 20)})
    entry = replace(put(tmp_path / "store", encrypt(
        age_key, zstandard.ZstdCompressor().compress(plain))), max_plain=None)
    before = children()
    with pytest.raises(IntegrityError, match="declares no plain_size") as e:
        fetch(tmp_path, entry, age_key)
    assert "--max-plain-size" in (e.value.hint or "")
    assert not os.listdir(tmp_path / "dump")
    assert children() <= before


def test_the_declared_sizes_exactly_pass(decrypter: str, age_key: AgeKey,  # noqa: F811
                                         tmp_path: Path) -> None:
    plain = tar_of(FILES)
    entry = _declared(put(tmp_path / "store", encrypt(
        age_key, zstandard.ZstdCompressor().compress(plain))), plain_size=len(plain))
    dest = fetch(tmp_path, entry, age_key)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == FILES


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_the_bounds_hold_for_an_ssh_identity(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "id")], check=True)
    key = AgeKey(tmp_path / "id", (tmp_path / "id.pub").read_text().strip(), "")
    data = encrypt(key, zstandard.ZstdCompressor().compress(tar_of(FILES)))
    entry = _declared(put(tmp_path / "store", data), size=len(data) // 4)
    with pytest.raises(IntegrityError, match=f"more than the {len(data) // 4} bytes"):
        fetch(tmp_path, entry, key)
    shutil.rmtree(tmp_path / "dump")
    entry = _declared(put(tmp_path / "store", data), plain_size=1 << 20)
    with pytest.raises(IntegrityError, match=f"more than {1 << 20} bytes"):
        fetch(tmp_path, entry, key)


def test_restore_of_a_forged_bomb_exits_6_and_leaves_nothing(
        db: Database, age_key: AgeKey, tmp_path: Path, target: str) -> None:
    """A catalog entry written by anyone who can write to the store: its plain_size is
    what the restore's disk may hold, the real backup records the true one."""
    with db.primary() as conn:
        conn.execute("CREATE TABLE notes (line text); INSERT INTO notes VALUES ('hello')")
    db.sync()
    store = tmp_path / "store"
    assert run_cli(*backup_args(db, age_key, store, "dump.a")).exit_code == 0
    obj = (store / "backups/dump.a.tar.zst.age").read_bytes()
    plain = pyrage.decrypt(obj, [pyrage.x25519.Identity.from_str(age_key.secret)])
    tar = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(plain),
                                                     read_across_frames=True).read()
    finished = json.loads((store / "catalog/dump.a/finished.json").read_text())
    assert finished["plain_size"] == len(tar)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        members = {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]
    members["9999.dat"] = bytes(32 << 20)
    forged = pyrage.encrypt(zstandard.ZstdCompressor().compress(tar_of(members)),
                            [pyrage.x25519.Recipient.from_str(age_key.public)])
    (store / "backups/dump.b.tar.zst.age").write_bytes(forged)
    (store / "catalog/dump.b").mkdir()
    shutil.copy(store / "catalog/dump.a/started.json", store / "catalog/dump.b/started.json")
    finished.update(size=len(forged), sha256=hashlib.sha256(forged).hexdigest())
    (store / "catalog/dump.b/finished.json").write_text(json.dumps(finished))
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("restore", str(store), "--name", "dump.b", "--identity",
                     str(age_key.identity), "--target", target, "--workdir", str(work))
    assert result.exit_code == 6, result.stderr
    error, hint = error_lines(result)
    assert f"more than {len(tar)} bytes" in error and "another backup" in hint
    assert not os.listdir(work)
    import psycopg
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'notes'"
                            ).fetchone() == (0,)


def _old_style_backup(db: Database, age_key: AgeKey, store: Path) -> None:
    """A real backup whose finished.json lacks plain_size, as topoff wrote them before."""
    with db.primary() as conn:
        conn.execute("CREATE TABLE notes (line text); INSERT INTO notes VALUES ('hello')")
    db.sync()
    assert run_cli(*backup_args(db, age_key, store, "dump.old")).exit_code == 0
    finished = store / "catalog/dump.old/finished.json"
    body = json.loads(finished.read_text())
    del body["plain_size"]
    finished.write_text(json.dumps(body))


def test_restore_of_an_entry_without_plain_size_needs_a_bound(
        db: Database, age_key: AgeKey, tmp_path: Path, target: str) -> None:
    store, work = tmp_path / "store", tmp_path / "work"
    _old_style_backup(db, age_key, store)
    work.mkdir()
    args = ["restore", str(store), "--name", "dump.old", "--identity", str(age_key.identity),
            "--target", target, "--workdir", str(work)]
    result = run_cli(*args)
    assert result.exit_code == 6, result.stderr
    error, hint = error_lines(result)
    assert "dump.old" in error and "declares no plain_size" in error
    assert "--max-plain-size" in hint
    assert not os.listdir(work)
    small = run_cli(*args, "--max-plain-size", "1kB")
    assert small.exit_code == 6, small.stderr
    assert "more than 1000 bytes" in error_lines(small)[0]
    assert not os.listdir(work)
    result = run_cli(*args, "--max-plain-size", "100MB")
    assert result.exit_code == 0, result.stderr
    import psycopg
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT line FROM notes").fetchall() == [("hello",)]


def test_drill_of_an_entry_without_plain_size_needs_a_bound(
        db: Database, age_key: AgeKey, tmp_path: Path, target: str) -> None:
    store = tmp_path / "store"
    _old_style_backup(db, age_key, store)
    args = ["backups", "drill", str(store), "--identity", str(age_key.identity),
            "--scratch", target]
    result = run_cli(*args)
    assert result.exit_code == 6, result.stderr
    assert "--max-plain-size" in error_lines(result)[1]
    assert not list((store / "catalog/dump.old").glob("drill-*"))  # nothing was drilled
    result = run_cli(*args, "--max-plain-size", "100MB")
    assert result.exit_code == 0, result.stderr


def test_a_plain_size_beyond_the_work_directorys_free_space_is_refused_before_reading(
        db: Database, age_key: AgeKey, tmp_path: Path, target: str) -> None:
    """plain_size is written by anyone who can write to the store: one declaring more
    than the work directory holds bounds nothing there, and the dump could not be
    restored from it anyway."""
    store, work = tmp_path / "store", tmp_path / "work"
    _old_style_backup(db, age_key, store)
    work.mkdir()
    finished = store / "catalog/dump.old/finished.json"
    huge = shutil.disk_usage(work).free + (1 << 30)
    finished.write_text(json.dumps({**json.loads(finished.read_text()), "plain_size": huge}))
    result = run_cli("restore", str(store), "--name", "dump.old", "--identity",
                     str(age_key.identity), "--target", target, "--workdir", str(work))
    assert result.exit_code == 7, result.stderr
    error, hint = error_lines(result)
    assert f"{huge} bytes" in error and "free" in error and "--workdir" in hint
    assert not os.listdir(work)


def test_more_files_than_declared_are_refused(decrypter: str, age_key: AgeKey,  # noqa: F811
                                              tmp_path: Path) -> None:
    """The catalog's ``files`` bounds how many files a restore creates (empty members cost
    a few bytes compressed, and an inode each)."""
    files = {"toc.dat": b"toc", **{f"{n}.dat": b"" for n in range(1, 200)}}
    data = encrypt(age_key, zstandard.ZstdCompressor().compress(tar_of(files)))
    entry = _declared(put(tmp_path / "store", data), files=5)
    with pytest.raises(IntegrityError, match="more than the 5 files") as e:
        fetch(tmp_path, entry, age_key)
    assert "another backup" in (e.value.hint or "")
    assert len(os.listdir(tmp_path / "dump")) <= 5
    entry = _declared(entry, files=len(files))
    shutil.rmtree(tmp_path / "dump")
    assert len(os.listdir(fetch(tmp_path, entry, age_key))) == len(files)
