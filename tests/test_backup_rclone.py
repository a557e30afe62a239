"""Backups to an rclone crypt remote (configured only through RCLONE_CONFIG_* variables):
backup -> backups list -> restore gives the same rows, and the remote holds nothing plain."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import psycopg
import pytest

from support.backup import AgeKey, backup_args
from support.cli import run_cli
from support.pg import Database
from support.store_fixtures import rclone_remotes
from topoff.backup.tables import table_hashes


def _hashes(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return table_hashes(conn)


def test_backup_list_restore_through_an_rclone_crypt_remote(
        datanommer: Database, age_key: AgeKey, target: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    encrypted = tmp_path / "encrypted"
    rclone_remotes(monkeypatch, encrypted)
    url = "rclone:topoffcrypt:backups/datanommer"
    made = run_cli(*backup_args(datanommer, age_key, url, "dump.r"))  # type: ignore[arg-type]
    assert made.exit_code == 0, made.stderr

    listed = run_cli("backups", "list", url, "--json")
    assert listed.exit_code == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "dump.r" and entry["status"] == "finished"
    # the catalog's size and sha256 are those of the stored age object, as rclone returns it
    stored = subprocess.run(["rclone", "cat", "topoffcrypt:backups/datanommer/backups/"
                             "dump.r.tar.zst.age"], check=True, capture_output=True).stdout
    assert stored.startswith(b"age-encryption.org/v1")
    assert entry["size"] == len(stored)
    assert entry["sha256"] == hashlib.sha256(stored).hexdigest()

    # on the remote's disk: rclone crypt files, no plain name, no plain age header
    files = [p for p in encrypted.rglob("*") if p.is_file()]
    assert len(files) >= 3
    for p in files:
        assert "dump.r" not in str(p.relative_to(encrypted))
        assert p.read_bytes().startswith(b"RCLONE\x00\x00")

    restored = run_cli("restore", url, "--latest", "--identity", str(age_key.identity),
                       "--target", target)
    assert restored.exit_code == 0, restored.stderr
    assert "restored dump.r" in restored.stdout and "sha256 verified" in restored.stdout
    source = _hashes(datanommer.standby_url)
    assert source and _hashes(target) == source
