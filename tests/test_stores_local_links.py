"""A local directory store reads only regular files below its root, reached through no
symbolic link: a link to a file elsewhere is refused (never read), and a FIFO in a file's
place ends a sync or a restore at once with an error instead of making it wait for ever.
The store's root itself may be a link."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import topoff as topoff_package
from support.backup import AgeKey
from test_backup_decrypt import encrypt, plain_object
from topoff.config import Config
from topoff.errors import StoreError
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.stores.local import LocalStore

#: the topoff these tests import, for the processes they start too
SRC = Path(topoff_package.__file__).resolve().parents[1]


def topoff(*args: str) -> subprocess.CompletedProcess[str]:
    """``topoff ARGS`` in a process of its own; a read that waits for ever fails the test."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("TOPOFF_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "topoff", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_links_below_the_root_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "store"
    (root / "d").mkdir(parents=True)
    (root / "d" / "file").write_bytes(b"mine")
    os.symlink(outside / "secret", root / "d" / "link")
    os.symlink(outside, root / "dirlink")
    store = LocalStore(root)
    for name in ("d/link", "dirlink/secret"):
        with pytest.raises(StoreError, match="is a symbolic link") as err:
            store.open_read(name)
        assert err.value.exit_code == 5 and "root" in (err.value.hint or "")
        with pytest.raises(StoreError, match="is a symbolic link"):
            store.stat(name)
    assert [f.name for f in store.list()] == ["d/file"]
    with pytest.raises(StoreError, match=r"dirlink in .* is a symbolic link"):
        store.write_bytes("dirlink/new", b"x")
    with pytest.raises(StoreError, match=r"dirlink in .* is a symbolic link"):
        store.delete("dirlink/secret")
    assert os.listdir(outside) == ["secret"]
    store.delete("d/link")  # the link itself goes, not what it points to
    assert (outside / "secret").read_bytes() == b"secret"
    assert store.read_bytes("d/file") == b"mine"


def test_the_root_may_be_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root")
    store = LocalStore(tmp_path / "root")
    store.write_bytes("a/b.json", b"{}")
    assert store.read_bytes("a/b.json") == b"{}"
    assert store.stat("a/b.json") is not None
    assert [f.name for f in store.list()] == ["a/b.json"]
    assert store.swap_bytes("a/b.json", b"{}", b"[]")
    store.delete("a/b.json")
    assert store.list() == [] and os.listdir(tmp_path / "real") == []


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    store = LocalStore(tmp_path)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            store.open_read("fifo")
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(20)
    if reader.is_alive():  # let the blocked open go before failing
        with open(tmp_path / "fifo", "wb"):
            pass
        pytest.fail("opening a FIFO in the store waited for a writer")
    assert len(failures) == 1 and isinstance(failures[0], StoreError), failures
    assert "fifo in" in str(failures[0]) and "is a FIFO, not a regular file" in str(failures[0])
    with pytest.raises(StoreError, match="is a FIFO"):
        store.stat("fifo")
    assert store.list() == []


@pytest.fixture
def published(config: Config, tmp_path: Path) -> Path:
    directory = tmp_path / "published"
    with open_store(str(directory)) as store:
        export_full(config, store)
    return directory


def _first(directory: Path, pattern: str) -> Path:
    return next(iter(sorted(directory.rglob(pattern))))


@pytest.mark.parametrize("what", ["index.json", "manifest.json", "*.csv.zst"])
def test_sync_refuses_a_fifo(published: Path, tmp_path: Path, what: str) -> None:
    path = _first(published, what)
    path.unlink()
    os.mkfifo(path)
    done = topoff("sync", str(published), str(tmp_path / "replica.duckdb"))
    assert done.returncode == 5, done.stderr
    assert f"{path.name} in {published} is a FIFO, not a regular file" in done.stderr


@pytest.mark.parametrize("what", ["index.json", "manifest.json", "*.csv.zst"])
def test_sync_refuses_a_link_to_a_file_outside_the_store(published: Path, tmp_path: Path,
                                                         what: str) -> None:
    """The file linked to is the right one (its sha256 matches): only the link is refused."""
    path = _first(published, what)
    outside = tmp_path / "outside" / path.name
    outside.parent.mkdir()
    shutil.move(path, outside)
    os.symlink(outside, path)
    done = topoff("sync", str(published), str(tmp_path / "replica.duckdb"))
    assert done.returncode == 5, done.stderr
    assert "is a symbolic link; topoff follows no link inside a store" in done.stderr


def test_sync_through_a_linked_root(published: Path, tmp_path: Path) -> None:
    os.symlink(published, tmp_path / "link")
    done = topoff("sync", str(tmp_path / "link"), str(tmp_path / "replica.duckdb"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_restore_refuses_an_object_that_is_no_regular_file(
        age_key: AgeKey, tmp_path: Path, target: str, kind: str) -> None:
    data = encrypt(age_key, plain_object({"toc.dat": b"t", "1.dat": b"x"}))
    store = tmp_path / "store"
    (store / "backups").mkdir(parents=True)
    cat = store / "catalog" / "dump.f"
    cat.mkdir(parents=True)
    (cat / "started.json").write_text(json.dumps({"started": "2026-01-01T00:00:00+00:00"}))
    (cat / "finished.json").write_text(json.dumps(
        {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "plain_size": 1 << 20}))
    obj = store / "backups" / "dump.f.tar.zst.age"
    if kind == "fifo":
        os.mkfifo(obj)
    else:
        (tmp_path / "elsewhere").write_bytes(data)
        os.symlink(tmp_path / "elsewhere", obj)
    work = tmp_path / "work"
    work.mkdir()
    done = topoff("restore", str(store), "--name", "dump.f", "--identity",
                  str(age_key.identity), "--target", target, "--workdir", str(work))
    assert done.returncode == 5, done.stderr
    shown = "a FIFO, not a regular file" if kind == "fifo" else "a symbolic link"
    assert f"backups/dump.f.tar.zst.age in {store} is {shown}" in done.stderr
    assert os.listdir(work) == []
