"""rclone: what is specific to it (the conformance suite in test_stores.py covers the rest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.store_fixtures import CRYPT_PASSWORD, rclone_remotes
from topoff.errors import StoreError
from topoff.stores import FileMissing, ObjectOptions, open_store
from topoff.stores.rclone import RcloneStore


@pytest.fixture
def encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "encrypted"
    rclone_remotes(monkeypatch, directory)
    return directory


def test_crypt_remote_keeps_names_and_content_encrypted(encrypted: Path) -> None:
    store = open_store("rclone:topoffcrypt:datasets")
    secret = b"alice,alice@example.org,the secret row\n" * 100
    store.write_bytes("full/2024-01-01/users.csv", secret)
    assert store.read_bytes("full/2024-01-01/users.csv") == secret
    on_disk = [p for p in encrypted.rglob("*") if p.is_file()]
    assert len(on_disk) == 1
    relative = str(on_disk[0].relative_to(encrypted))
    for plain in ("datasets", "full", "2024-01-01", "users", "csv"):
        assert plain not in relative
    content = on_disk[0].read_bytes()
    assert content.startswith(b"RCLONE\x00\x00")  # rclone crypt's file header
    assert b"alice" not in content and b"secret" not in content
    assert len(content) > len(secret)


def test_local_path_without_a_remote(tmp_path: Path) -> None:
    store = open_store(f"rclone:{tmp_path}/plain")
    store.write_bytes("a/b.txt", b"x")
    assert (tmp_path / "plain" / "a" / "b.txt").read_bytes() == b"x"
    assert store.url == f"rclone:{tmp_path}/plain"
    with store.open_read("a/b.txt", offset=1) as f:
        assert f.read() == b""


def test_unknown_remote_is_a_store_error(encrypted: Path) -> None:
    store = open_store("rclone:nosuchremote:path")
    with pytest.raises(StoreError) as err:
        store.write_bytes("a", b"x")
    assert "rclone could not write" in err.value.message
    assert "nosuchremote" in err.value.message
    assert "\n" not in err.value.message
    assert "rclone config" in (err.value.hint or "")
    with pytest.raises(StoreError):
        store.list()


def test_wrong_crypt_password_is_an_error_and_never_shown(
        encrypted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("rclone:topoffcrypt:d")
    store.write_bytes("a.bin", b"data")
    obscured = os.environ["RCLONE_CONFIG_TOPOFFCRYPT_PASSWORD"]
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFCRYPT_PASSWORD", "not-obscured-at-all")
    with pytest.raises(StoreError) as err:
        store.read_bytes("a.bin")
    text = f"{err.value.message} {err.value.hint}"
    assert CRYPT_PASSWORD not in text and obscured not in text
    assert "not-obscured-at-all" not in text


def test_missing_file_and_missing_program(tmp_path: Path) -> None:
    store = RcloneStore(str(tmp_path))
    with pytest.raises(FileMissing):
        store.open_read("absent.bin")
    assert store.stat("absent.bin") is None
    store.delete("absent/x.bin")  # nothing to delete: fine
    gone = RcloneStore(str(tmp_path), program=str(tmp_path / "no-rclone-here"))
    with pytest.raises(StoreError) as err:
        gone.list()
    assert "rclone is not installed" in err.value.message
    assert "apt-get install rclone" in (err.value.hint or "")


def test_lock_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = RcloneStore(str(tmp_path / "r"))
    with pytest.raises(StoreError) as err, store.write(
            "x.bin", options=ObjectOptions(lock_days=3)) as f:
        f.write(b"x")
    assert "cannot lock" in err.value.message
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("location", ["rclone:", "rclone:-x", "rclone:--config=/etc/x:y",
                                      "rclone:a\nb"])
def test_locations_that_could_be_options_are_refused(location: str) -> None:
    with pytest.raises(StoreError) as err:
        open_store(location)
    assert "invalid rclone location" in err.value.message
