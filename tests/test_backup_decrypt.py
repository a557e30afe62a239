"""A restore's decode stage (``restore.fetch``): decryption in a child process, the ``age``
program when it is on PATH, else pyrage in a Python child. Both paths give the same files
and the same errors; the key never shows on a child's command line or in its environment;
no child outlives an error."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import zstandard

from support.backup import AgeKey
from topoff.backup import restore
from topoff.backup.catalog import Entry
from topoff.backup.keys import load_identities
from topoff.errors import IntegrityError, StoreError
from topoff.stores.local import LocalStore

AGE = shutil.which("age") or "age"
NAME = "dump.x"
FILES = {"toc.dat": b"toc" * 1000, "3389.dat": os.urandom(3 << 20) + b"tail",
         "3390.dat": b"", "3391.dat": b"x" * ((1 << 20) + 1)}


@pytest.fixture(params=["age", "pyrage"])
def decrypter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path, age_key: AgeKey) -> str:
    """Which child decrypts: ``age`` (found on PATH) or ``pyrage`` (PATH without age).
    The programs the tests run themselves are found before PATH changes."""
    if request.param == "pyrage":
        empty = tmp_path / "no-age-here"
        empty.mkdir()
        monkeypatch.setenv("PATH", str(empty))
    return str(request.param)


def tar_of(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w|") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def plain_object(files: dict[str, bytes]) -> bytes:
    return zstandard.ZstdCompressor().compress(tar_of(files))


def encrypt(key: AgeKey, plain: bytes) -> bytes:
    """Encrypted by the age program, as `age -r KEY` would for anyone."""
    return subprocess.run([AGE, "-r", key.public], input=plain, capture_output=True,
                          check=True).stdout


def put(store: Path, data: bytes) -> Entry:
    obj = store / "backups" / f"{NAME}.tar.zst.age"
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    # no plain_size, as the tests' objects are made by hand: the operator's bound instead
    return Entry(NAME, "finished", {}, {"size": len(data),
                                        "sha256": hashlib.sha256(data).hexdigest()},
                 max_plain=1 << 30)


@pytest.fixture
def stored(age_key: AgeKey, tmp_path: Path) -> tuple[bytes, Entry]:
    data = encrypt(age_key, plain_object(FILES))
    return data, put(tmp_path / "store", data)


def fetch(tmp_path: Path, entry: Entry, key: AgeKey) -> Path:
    dest = tmp_path / "dump"
    dest.mkdir()
    restore.fetch(LocalStore(str(tmp_path / "store")), entry, load_identities(str(key.identity)),
                  dest)
    return dest


def children() -> set[int]:
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.add(int(entry))
    return found


def test_round_trip_exact(decrypter: str, stored: tuple[bytes, Entry], age_key: AgeKey,
                          tmp_path: Path) -> None:
    before = children()
    dest = fetch(tmp_path, stored[1], age_key)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == FILES
    assert children() <= before, "the decrypting child was not reaped"


def test_wrong_identity(decrypter: str, stored: tuple[bytes, Entry], tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "other.txt").write_text(f"{identity}\n")
    other = AgeKey(tmp_path / "other.txt", str(identity.to_public()), str(identity))
    before = children()
    with pytest.raises(IntegrityError, match="cannot be decrypted with this identity") as e:
        fetch(tmp_path, stored[1], other)
    assert other.secret not in str(e.value) and other.secret not in (e.value.hint or "")
    assert children() <= before


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "header", "empty"])
def test_damaged_object(decrypter: str, stored: tuple[bytes, Entry], age_key: AgeKey,
                        tmp_path: Path, damage: str) -> None:
    data, entry = stored
    if damage == "flip":
        mid = len(data) // 2
        bad = data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1:]
    elif damage == "truncate":
        bad = data[: len(data) - 100]
    elif damage == "append":
        bad = data + b"extra"
    elif damage == "header":
        bad = b"hello \x1b[31m\n" + data[40:]
    else:
        bad = b""
    put(tmp_path / "store", bad)
    before = children()
    with pytest.raises(IntegrityError) as e:
        fetch(tmp_path, entry, age_key)
    assert "another backup" in (e.value.hint or ""), e.value
    assert "\x1b" not in str(e.value)  # the object's bytes are never quoted
    assert children() <= before


def test_a_validly_encrypted_object_that_is_not_zstd(decrypter: str, age_key: AgeKey,
                                                     tmp_path: Path) -> None:
    entry = put(tmp_path / "store", encrypt(age_key, os.urandom(3 << 20)))
    with pytest.raises(IntegrityError, match="does not decompress"):
        fetch(tmp_path, entry, age_key)


class Gated:
    """A store reader that stops after its first chunk until the test opens the gate."""

    def __init__(self, data: bytes, fail: BaseException | None = None) -> None:
        self.src = io.BytesIO(data)
        self.reached, self.gate = threading.Event(), threading.Event()
        self.fail = fail

    def read(self, n: int = -1) -> bytes:
        if self.src.tell() > 0:
            self.reached.set()
            assert self.gate.wait(60)
            if self.fail is not None:
                raise self.fail
        return self.src.read(min(n, 64 * 1024))

    def close(self) -> None:
        pass

    def __enter__(self) -> Gated:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class GatedStore(LocalStore):
    def __init__(self, root: Path, reader: Gated) -> None:
        super().__init__(str(root))
        self.reader = reader

    def open_read(self, name: str, offset: int = 0) -> Any:
        return self.reader


@contextlib.contextmanager
def run_gated(tmp_path: Path, entry: Entry, key: AgeKey, reader: Gated
              ) -> Iterator[tuple[set[int], list[BaseException]]]:
    """Start a fetch in a thread; yield the new child pids once it waits at the gate."""
    dest = tmp_path / "dump"
    dest.mkdir()
    before = children()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            restore.fetch(GatedStore(tmp_path / "store", reader), entry,
                          load_identities(str(key.identity)), dest)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert reader.reached.wait(60)
        yield children() - before, errors
    finally:
        reader.gate.set()
        thread.join(60)
    assert not thread.is_alive()
    assert children() <= before, "the decrypting child was not reaped"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_the_key_is_on_no_command_line_or_environment(decrypter: str,
                                                      stored: tuple[bytes, Entry],
                                                      age_key: AgeKey, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPOFF_SECRET_SETTING", "s3cr3t-value")
    reader = Gated(stored[0])
    with run_gated(tmp_path, stored[1], age_key, reader) as (new, errors):
        assert len(new) == 1, new
        pid = new.pop()
        argv = _cmdline(pid).split(b"\0")
        if decrypter == "age":
            assert argv[0].endswith(b"/age") and b"--decrypt" in argv
        else:
            assert argv[1:3] == [b"-P", b"-c"] and b"pyrage" in argv[3]
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        secret = age_key.secret.encode()
        assert secret not in b"".join(argv) and secret not in environ
        assert b"s3cr3t-value" not in environ, "the child got topoff's whole environment"
        assert os.getpgid(pid) == pid, "the child shares topoff's process group"
        # no file the child has open holds the key: the identity came through a pipe
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:  # the child closes its identity pipe once read: an fd may go while listed
                target = Path(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except FileNotFoundError:
                continue
            if target.is_file():
                assert secret not in target.read_bytes(), target
    assert not errors


def test_child_killed_mid_way(decrypter: str, stored: tuple[bytes, Entry], age_key: AgeKey,
                              tmp_path: Path) -> None:
    reader = Gated(stored[0])
    with run_gated(tmp_path, stored[1], age_key, reader) as (new, errors):
        (pid,) = new
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _state(pid) not in ("Z", "gone"):  # dead (topoff may have reaped it)
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert len(errors) == 1 and isinstance(errors[0], IntegrityError), errors
    assert "killed (SIGKILL)" in str(errors[0])


@pytest.mark.parametrize("fail", [StoreError("reading backups/dump.x failed: boom"),
                                  OSError(errno.EIO, "Input/output error")])
def test_store_failure_mid_way(decrypter: str, stored: tuple[bytes, Entry], age_key: AgeKey,
                               tmp_path: Path, fail: Exception) -> None:
    """The store's reader fails half-way: its error, not a decryption error."""
    reader = Gated(stored[0], fail=fail)
    with run_gated(tmp_path, stored[1], age_key, reader) as (_new, errors):
        pass
    assert len(errors) == 1 and isinstance(errors[0], StoreError), errors
    assert "boom" in str(errors[0]) or "Input/output error" in str(errors[0])


def test_caller_stops_reading(decrypter: str, stored: tuple[bytes, Entry], age_key: AgeKey,
                              tmp_path: Path) -> None:
    """A hostile member found early: the child is stopped and reaped, the caller's error
    stands."""
    files = {"1.dat": os.urandom(1 << 20), "../evil": b"x", "2.dat": os.urandom(4 << 20)}
    entry = put(tmp_path / "store", encrypt(age_key, plain_object(files)))
    before = children()
    with pytest.raises(IntegrityError, match=r"unexpected entry '\.\./evil'"):
        fetch(tmp_path, entry, age_key)
    assert children() <= before
    assert not (tmp_path / "evil").exists()


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_ssh_identity_decrypts_in_a_thread(tmp_path: Path) -> None:
    """pyrage keeps an ssh key inside: it cannot be handed to a child, the restore
    decrypts it in a thread, with the same result and the same checks."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "id")], check=True)
    public = (tmp_path / "id.pub").read_text().strip()
    key = AgeKey(tmp_path / "id", public, (tmp_path / "id").read_text())
    data = encrypt(key, plain_object(FILES))
    entry = put(tmp_path / "store", data)
    before = children()
    dest = fetch(tmp_path, entry, key)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == FILES
    assert children() <= before
    mid = len(data) // 2
    put(tmp_path / "store", data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1:])
    shutil.rmtree(dest)
    with pytest.raises(IntegrityError, match="corrupted or truncated"):
        fetch(tmp_path, entry, key)
