"""age encryption as a wrapper store, checked against the real ``age`` program."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from support.s3_server import S3Server
from topoff.errors import IntegrityError, StoreError
from topoff.stores import open_store
from topoff.stores.age import EncryptingStore, load_identities
from topoff.stores.local import LocalStore
from topoff.stores.s3 import S3Store

MiB = 1024 * 1024


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


class Key:
    def __init__(self, directory: Path, name: str = "key.txt") -> None:
        self.path = directory / name
        subprocess.run(["age-keygen", "-o", str(self.path)], check=True, capture_output=True)
        self.public = subprocess.run(["age-keygen", "-y", str(self.path)], check=True,
                                     capture_output=True, text=True).stdout.strip()
        self.secret = next(line for line in self.path.read_text().splitlines()
                           if line.startswith("AGE-SECRET-KEY-"))


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return Key(tmp_path)


def encrypting(root: Path, key: Key) -> EncryptingStore:
    return EncryptingStore(LocalStore(root), recipients=[key.public],
                           identities=load_identities(key.path))


def test_round_trip_and_the_age_program_decrypts(tmp_path: Path, key: Key) -> None:
    store = encrypting(tmp_path / "s", key)
    data = payload(3 * MiB + 17)
    with store.write("backups/db.dump") as f:
        view = memoryview(data)
        for start in range(0, len(data), 100_000):
            f.write(view[start : start + 100_000])
    stored = (tmp_path / "s" / "backups" / "db.dump").read_bytes()
    # the size and SHA-256 of the stored (encrypted) object, known from the same pass
    assert f.stored.size == len(stored)  # type: ignore[attr-defined]
    assert f.stored.hexdigest() == hashlib.sha256(stored).hexdigest()  # type: ignore[attr-defined]
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert data[:1000] not in stored
    assert store.read_bytes("backups/db.dump") == data
    plain = subprocess.run(["age", "-d", "-i", str(key.path), str(tmp_path / "s/backups/db.dump")],
                           check=True, capture_output=True).stdout
    assert hashlib.sha256(plain).digest() == hashlib.sha256(data).digest()
    # listings show the stored (encrypted) objects
    [info] = store.list()
    assert info.name == "backups/db.dump" and info.size == len(stored)
    for offset in (0, 1, 65_536, len(data) - 1, len(data), len(data) + 10):
        with store.open_read("backups/db.dump", offset=offset) as f:
            assert f.read() == data[offset:], offset


def test_reads_what_the_age_program_encrypted(tmp_path: Path, key: Key) -> None:
    (tmp_path / "s").mkdir()
    plain = tmp_path / "plain.bin"
    plain.write_bytes(payload(1 * MiB + 3, seed=5))
    subprocess.run(["age", "-r", key.public, "-o", str(tmp_path / "s" / "f.age"), str(plain)],
                   check=True)
    store = encrypting(tmp_path / "s", key)
    assert store.read_bytes("f.age") == plain.read_bytes()


def test_empty_object(tmp_path: Path, key: Key) -> None:
    store = encrypting(tmp_path, key)
    store.write_bytes("empty", b"")
    assert store.read_bytes("empty") == b""
    out = subprocess.run(["age", "-d", "-i", str(key.path), str(tmp_path / "empty")],
                         check=True, capture_output=True).stdout
    assert out == b""


def test_several_recipients_each_can_decrypt(tmp_path: Path, key: Key) -> None:
    other = Key(tmp_path, "other.txt")
    store = EncryptingStore(LocalStore(tmp_path / "s"), recipients=[key.public, other.public])
    store.write_bytes("x", b"for both")
    for k in (key, other):
        reader = EncryptingStore(LocalStore(tmp_path / "s"), identities=load_identities(k.path))
        assert reader.read_bytes("x") == b"for both"


def test_wrong_identity_is_a_clear_error(tmp_path: Path, key: Key) -> None:
    encrypting(tmp_path / "s", key).write_bytes("x", payload(1000))
    other = Key(tmp_path, "other.txt")
    reader = EncryptingStore(LocalStore(tmp_path / "s"), identities=load_identities(other.path))
    with pytest.raises(StoreError) as err:
        reader.open_read("x")
    assert "the identity does not match any recipient" in err.value.message
    assert other.secret not in str(err.value) and key.secret not in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-age", "header-only"])
def test_damaged_objects_are_integrity_errors(tmp_path: Path, key: Key, damage: str) -> None:
    store = encrypting(tmp_path, key)
    store.write_bytes("x", payload(300_000))
    path = tmp_path / "x"
    stored = bytearray(path.read_bytes())
    if damage == "truncated":
        stored = stored[:-1000]
    elif damage == "flipped":
        stored[200_000] ^= 0x40
    elif damage == "not-age":
        stored = bytearray(b"id,name\n1,alice\n" * 100)
    else:
        stored = stored[: stored.index(b"\n---") + 50]
    path.write_bytes(bytes(stored))
    with pytest.raises(IntegrityError) as err:
        store.read_bytes("x")
    assert err.value.hint
    assert key.secret not in str(err.value)


def test_failed_write_leaves_nothing(tmp_path: Path, key: Key) -> None:
    store = encrypting(tmp_path / "s", key)
    with pytest.raises(RuntimeError, match="dump failed"), store.write("a/b") as f:
        f.write(payload(2 * MiB))
        raise RuntimeError("dump failed")
    assert store.list_all() == []


def test_bad_keys_are_refused_without_showing_them(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as err:
        EncryptingStore(LocalStore(tmp_path), recipients=["age1notakeyatallxxxxxxxxxxxxxxxx"])
    assert "age1notakeya" in err.value.message and "xxxxxxxx" not in err.value.message
    bad = tmp_path / "bad.txt"
    bad.write_text("# created: today\nAGE-SECRET-KEY-1NOTVALIDNOTVALIDNOTVALID\n")
    with pytest.raises(StoreError) as err:
        load_identities(bad)
    assert "NOTVALID" not in str(err.value)
    with pytest.raises(StoreError):
        load_identities(tmp_path / "missing.txt")
    store = EncryptingStore(LocalStore(tmp_path))
    with pytest.raises(StoreError, match="no age recipients"), store.write("x") as f:
        f.write(b"x")
    with pytest.raises(StoreError, match="no age identity"):
        store.open_read("x")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_ssh_ed25519_keys(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")],
                   check=True)
    public = (tmp_path / "id.pub").read_text().strip()
    store = EncryptingStore(LocalStore(tmp_path / "s"), recipients=[public],
                            identities=load_identities(tmp_path / "id"))
    store.write_bytes("x", b"ssh")
    assert store.read_bytes("x") == b"ssh"
    out = subprocess.run(["age", "-d", "-i", str(tmp_path / "id"), str(tmp_path / "s" / "x")],
                         check=True, capture_output=True).stdout
    assert out == b"ssh"


def test_over_s3_with_multipart(s3_server: S3Server, tmp_path: Path, key: Key) -> None:
    bucket = s3_server.create_bucket()
    data = payload(10 * MiB + 1)
    with S3Store(bucket, "enc") as inner:
        store = EncryptingStore(inner, [key.public], load_identities(key.path))
        with store.write("db.dump.age") as f:
            f.write(data)
        assert store.read_bytes("db.dump.age") == data
    body = s3_server.client().get_object(Bucket=bucket, Key="enc/db.dump.age")["Body"].read()
    (tmp_path / "o.age").write_bytes(body)
    plain = subprocess.run(["age", "-d", "-i", str(key.path), str(tmp_path / "o.age")],
                           check=True, capture_output=True).stdout
    assert plain == data
    assert open_store(f"s3://{bucket}/enc").stat("db.dump.age").size == len(body)


def test_swap_bytes_compares_plain_bytes(tmp_path: Path, key: Key) -> None:
    store = encrypting(tmp_path, key)
    assert store.swap_bytes("lock.json", b"a", b"b") is False
    store.write_bytes("lock.json", b"a")
    assert store.swap_bytes("lock.json", b"other", b"b") is False
    assert store.swap_bytes("lock.json", b"a", b"b") is True
    assert store.read_bytes("lock.json") == b"b"
    assert (tmp_path / "lock.json").read_bytes().startswith(b"age-encryption.org/v1")
    assert store.swap_bytes("lock.json", b"b", None) is True
    assert store.stat("lock.json") is None


def test_locked_and_typed_on_s3(s3_server: S3Server, key: Key) -> None:
    from topoff.stores import ObjectOptions

    bucket = s3_server.create_bucket(object_lock=True)
    with S3Store(bucket, "") as inner:
        store = EncryptingStore(inner, [key.public], load_identities(key.path))
        opts = ObjectOptions(lock_days=2, content_type="application/sql")
        store.write_bytes("x.sql", b"select 1")  # no options: still typed as ciphertext
        with store.write("y.sql", options=opts) as f:
            f.write(b"select 2")
        for name in ("x.sql", "y.sql"):
            head = s3_server.client().head_object(Bucket=bucket, Key=name)
            assert head["ContentType"] == "application/octet-stream"
        assert "ObjectLockRetainUntilDate" in s3_server.client().head_object(
            Bucket=bucket, Key="y.sql")
        assert store.read_bytes("y.sql") == b"select 2"


def test_one_key_parser_the_caller_chooses_the_error_kind(tmp_path: Path) -> None:
    """Backups and the encrypting store share one parser: a store's own key is a
    StoreError (exit 5), a key the user passed on the command line a ConfigError (exit 2);
    the message is the same and never shows the key."""
    from topoff.errors import ConfigError
    from topoff.stores.age import parse_recipients

    bad = tmp_path / "bad.txt"
    bad.write_text("# created: today\n\nAGE-SECRET-KEY-1NOTVALIDNOTVALID\n")
    for kind, code in ((StoreError, 5), (ConfigError, 2)):
        with pytest.raises(kind) as err:
            load_identities(bad, kind)
        assert err.value.exit_code == code
        assert "line 3" in err.value.message and "NOTVALID" not in str(err.value)
        with pytest.raises(kind) as err:
            load_identities(tmp_path / "missing.txt", kind)
        assert "cannot read" in err.value.message
        secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
        with pytest.raises(kind) as err:
            parse_recipients([secret], kind)
        assert "secret key" in err.value.message and "QQQQ" not in str(err.value)
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not text"):
        load_identities(tmp_path / "binary", ConfigError)
