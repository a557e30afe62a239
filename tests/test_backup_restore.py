"""topoff restore: backup -> restore -> the same rows and hashes; hostile objects refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.backup import AgeKey, backup_args, make_age_key
from support.cli import error_lines, run_cli, write_config
from support.pg import Database
from topoff.backup.tables import table_hashes


@pytest.fixture
def backed_up(datanommer: Database, age_key: AgeKey, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    result = run_cli(*backup_args(datanommer, age_key, store, "dump.a"))
    assert result.exit_code == 0, result.stderr
    return store


def _hashes(url: str) -> dict[str, dict[str, object]]:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        return table_hashes(conn)


def test_round_trip_same_rows_and_hashes(datanommer: Database, backed_up: Path, target: str,
                                         age_key: AgeKey) -> None:
    result = run_cli("restore", str(backed_up), "--latest", "--identity",
                     str(age_key.identity), "--target", target)
    assert result.exit_code == 0, result.stderr
    assert "restored dump.a" in result.stdout and "sha256 verified" in result.stdout
    source = _hashes(datanommer.standby_url)
    assert source and _hashes(target) == source
    # foreign keys, indexes and sequences came along (full fidelity, not just rows)
    with __import__("psycopg").connect(target) as conn:
        (fks,) = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
                              ).fetchone()
    assert fks > 0
    # a second restore over it is refused, --clean replaces it, the scrub runs after
    again = run_cli("restore", str(backed_up), "--name", "dump.a", "--identity",
                    str(age_key.identity), "--target", target)
    assert again.exit_code == 7 and "not empty" in error_lines(again)[0]
    assert "--clean" in error_lines(again)[1]
    cfg = write_config(backed_up.parent / "c.toml",
                       '[backup]\nscrub = ["UPDATE users SET name = \'user-\' || id"]\n')
    cleaned = run_cli("restore", str(backed_up), "--name", "dump.a", "--identity",
                      str(age_key.identity), "--target", target, "--clean", "--config", cfg)
    assert cleaned.exit_code == 0, cleaned.stderr
    with __import__("psycopg").connect(target) as conn:
        (left,) = conn.execute("SELECT count(*) FROM users WHERE name <> 'user-' || id"
                               ).fetchone()
    assert left == 0


def test_wrong_identity(backed_up: Path, target: str, tmp_path: Path) -> None:
    other = make_age_key(tmp_path / "other.txt")
    result = run_cli("restore", str(backed_up), "--latest", "--identity",
                     str(other.identity), "--target", target)
    assert result.exit_code == 6, result.stderr
    assert "cannot be decrypted with this identity" in error_lines(result)[0]
    assert other.secret not in result.stderr
    assert _hashes(target) == {}


def test_a_target_database_that_does_not_exist_is_a_target_error(
        backed_up: Path, target: str, age_key: AgeKey) -> None:
    missing = target.rsplit("/", 1)[0] + "/no_such_database"
    result = run_cli("restore", str(backed_up), "--latest", "--identity",
                     str(age_key.identity), "--target", missing, "--log-format", "json")
    assert result.exit_code == 7, result.stderr  # the target's, as everywhere (it was 3)
    assert '"error": "target"' in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "missing"])
def test_damaged_object_is_refused(backed_up: Path, target: str, age_key: AgeKey,
                                   damage: str) -> None:
    obj = backed_up / "backups" / "dump.a.tar.zst.age"
    os.chmod(obj, 0o600)
    data = obj.read_bytes()
    if damage == "flip":
        mid = len(data) // 2
        obj.write_bytes(data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1:])
    elif damage == "truncate":
        obj.write_bytes(data[: len(data) - 100])
    elif damage == "append":
        obj.write_bytes(data + b"extra")
    else:
        obj.unlink()
    result = run_cli("restore", str(backed_up), "--latest", "--identity",
                     str(age_key.identity), "--target", target)
    assert result.exit_code == 6, result.stderr
    _message, hint = error_lines(result)
    assert "another backup" in hint
    assert _hashes(target) == {}, "nothing may reach the target from a damaged backup"


def test_identity_file_problems(backed_up: Path, target: str, tmp_path: Path,
                                age_key: AgeKey) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("# comment\nAGE-SECRET-KEY-1NOTAKEY\n")
    result = run_cli("restore", str(backed_up), "--latest", "--identity", str(bad),
                     "--target", target)
    assert result.exit_code == 2 and "line 2" in error_lines(result)[0]
    assert "NOTAKEY" not in result.stderr
    missing = run_cli("restore", str(backed_up), "--latest", "--target", target)
    assert missing.exit_code == 2 and "no age identity" in error_lines(missing)[0]
    neither = run_cli("restore", str(backed_up), "--identity", str(age_key.identity),
                      "--target", target)
    assert neither.exit_code == 2
    unknown = run_cli("restore", str(backed_up), "--name", "dump.nope", "--identity",
                      str(age_key.identity), "--target", target)
    assert unknown.exit_code == 5 and "no backup named" in error_lines(unknown)[0]
    endless = run_cli("restore", str(backed_up), "--latest", "--identity", "/dev/zero",
                      "--target", target)  # read to a bound, not until memory runs out
    assert endless.exit_code == 2 and "larger than 1024 KiB" in error_lines(endless)[0]


@pytest.mark.parametrize("member", ["../escape.dat", "/abs.dat", "sub/1.dat", "link"])
def test_hostile_tar_member_is_refused(tmp_path: Path, target: str, age_key: AgeKey,
                                       member: str) -> None:
    """A well-encrypted object whose catalog entry matches, but whose tar is not pg_dump's."""
    import hashlib
    import io
    import json
    import tarfile

    import zstandard

    from topoff.stores.age import EncryptingStore
    from topoff.stores.local import LocalStore

    store = tmp_path / "store"
    obj = store / "backups" / "dump.evil.tar.zst.age"
    encrypting = EncryptingStore(LocalStore(str(store)), [age_key.public])
    with encrypting.write("backups/dump.evil.tar.zst.age") as out:
        plain = zstandard.ZstdCompressor().stream_writer(out, closefd=False)
        with tarfile.open(fileobj=plain, mode="w|") as tar:
            info = tarfile.TarInfo(member)
            if member == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 3
                tar.addfile(info, io.BytesIO(b"bad"))
        plain.flush(zstandard.FLUSH_FRAME)
    data = obj.read_bytes()
    cat = store / "catalog" / "dump.evil"
    cat.mkdir(parents=True)
    (cat / "started.json").write_text(json.dumps({"started": "2026-01-01T00:00:00+00:00"}))
    (cat / "finished.json").write_text(json.dumps(
        {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "plain_size": 1 << 20}))
    result = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                     "--target", target)
    assert result.exit_code == 6, result.stderr
    assert "unexpected entry" in error_lines(result)[0]
    assert not (tmp_path / "escape.dat").exists() and not Path("/abs.dat").exists()


def test_round_trip_through_s3(datanommer: Database, age_key: AgeKey, target: str,
                               s3_server: object) -> None:
    """The same backup, list and restore against moto's S3 over HTTP."""
    bucket = s3_server.create_bucket()  # type: ignore[attr-defined]
    url = f"s3://{bucket}/backups/datanommer"
    result = run_cli("backup", "--source", datanommer.standby_url, "--to", url,
                     "--name", "dump.s3", "--recipient", age_key.public)
    assert result.exit_code == 0, result.stderr
    listed = run_cli("backups", "list", url, "--json")
    assert '"status": "finished"' in listed.stdout
    restored = run_cli("restore", url, "--name", "dump.s3", "--identity",
                       str(age_key.identity), "--target", target)
    assert restored.exit_code == 0, restored.stderr
    assert _hashes(target) == _hashes(datanommer.standby_url)
