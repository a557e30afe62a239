"""A PostgreSQL backup object and catalog entry written by someone who can write to the
store (the recipients' public keys are in started.json): pg_restore must not be told to
read files of the restoring host."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import psycopg
import pyrage
import pytest
import zstandard

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.pg import Database
from test_backup_decrypt import plain_object


def _members(obj: bytes, key: AgeKey) -> dict[str, bytes]:
    plain = pyrage.decrypt(obj, [pyrage.x25519.Identity.from_str(key.secret)])
    tar = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(plain),
                                                     read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]


def _pg_str(text: str) -> bytes:  # a string in toc.dat: sign byte, 4-byte length, bytes
    return b"\0" + len(text).to_bytes(4, "little") + text.encode()


@pytest.mark.parametrize("where", ["toc.dat", "blobs.toc", "blobs.toc unnamed"])
def test_a_dump_naming_files_outside_its_directory_is_refused(
        db: Database, age_key: AgeKey, tmp_path: Path, target: str, where: str) -> None:
    with db.primary() as conn:
        conn.execute("CREATE TABLE notes (line text); INSERT INTO notes VALUES ('hello');"
                     "SELECT lo_from_bytea(0, 'large')")
    db.sync()
    store = tmp_path / "store"
    assert run_cli(*backup_args(db, age_key, store, "dump.a")).exit_code == 0
    members = _members((store / "backups/dump.a.tar.zst.age").read_bytes(), age_key)
    outside = "../" * 40 + str(age_key.identity).lstrip("/")
    if where == "toc.dat":
        (notes,) = [n for n, d in members.items() if d.startswith(b"hello\n")]
        assert members["toc.dat"].count(_pg_str(notes)) == 1
        members["toc.dat"] = members["toc.dat"].replace(_pg_str(notes), _pg_str(outside))
    else:
        oid, _ = members["blobs.toc"].decode().split()
        members["blobs.toc"] = f"{oid} {outside}\n".encode()
    if where == "blobs.toc unnamed":  # pg_restore 15 reads blobs.toc whatever toc.dat says
        assert members["toc.dat"].count(_pg_str("blobs.toc")) == 1
        members["toc.dat"] = members["toc.dat"].replace(_pg_str("blobs.toc"),
                                                        _pg_str("blobs_9.toc"))
    forged = pyrage.encrypt(plain_object(members),
                            [pyrage.x25519.Recipient.from_str(age_key.public)])
    (store / "backups/dump.b.tar.zst.age").write_bytes(forged)
    (store / "catalog/dump.b").mkdir()
    started = json.loads((store / "catalog/dump.a/started.json").read_text())
    (store / "catalog/dump.b/started.json").write_text(json.dumps(started))
    finished = json.loads((store / "catalog/dump.a/finished.json").read_text())
    finished.update(size=len(forged), sha256=hashlib.sha256(forged).hexdigest())
    (store / "catalog/dump.b/finished.json").write_text(json.dumps(finished))

    result = run_cli("restore", str(store), "--name", "dump.b", "--identity",
                     str(age_key.identity), "--target", target)
    with psycopg.connect(target) as conn:
        restored = conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'notes'"
                                ).fetchone()
        blobs = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    assert restored == (0,) and blobs == (0,), result.stderr  # pg_restore never started
    assert result.exit_code == 6, result.stderr
    error, hint = error_lines(result)
    assert f"{where.split()[0]} names" in error and "not written by topoff backup" in hint
    assert age_key.secret not in result.output
