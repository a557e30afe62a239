"""The digest a MariaDB backup hashes its tables with: MD5, or SHA-256 on a server without
MD5 (a FIPS build), never a sum over NULL digests (every table's hash was 0 on such a
server, at backup and at drill: the drill compared row counts only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.backup import AgeKey
from support.cli import error_lines, run_cli
from support.maria_backup import take_backup
from support.mariadb import MariaDatabase
from topoff.backup import maria_backup
from topoff.backup.maria_tables import backup_digest, checked_sum
from topoff.errors import SourceError
from topoff.sources.mariadb.connect import connect


def _probe(maria: MariaDatabase, select: str) -> tuple[Any, ...]:
    with connect(maria.replica_url) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT {select}")
        (row,) = cur.fetchall()
    return tuple(row)


def test_the_server_s_functions_decide_the_digest(maria: MariaDatabase) -> None:
    assert backup_digest(_probe(maria, "SHA2('abc', 256), MD5('abc')")) == "md5"
    assert backup_digest(_probe(maria, "SHA2('abc', 256), NULL")) == "sha256"
    with pytest.raises(SourceError) as refused:
        backup_digest(_probe(maria, "NULL, NULL"))
    assert "MD5" in refused.value.message and "SHA2" in refused.value.message
    assert refused.value.hint


def test_a_sum_over_null_digests_is_refused(maria: MariaDatabase) -> None:
    """A row whose digest is NULL (as on a server without the function) is not summed."""
    (count, total) = _probe(maria, "2, COALESCE(SUM(IFNULL(CAST(CONV(SUBSTR(MD5(NULL), 1, "
                                   "15), 16, 10) AS UNSIGNED), 1e40)), 0)")
    with pytest.raises(SourceError, match="NULL"):
        checked_sum("t", total)
    assert checked_sum("t", _probe(maria, "COALESCE(SUM(IFNULL(CAST(CONV(SUBSTR(MD5('a'), "
                                          "1, 15), 16, 10) AS UNSIGNED), 1e40)), 0)")[0]) > 0
    assert count == 2


def test_a_backup_of_a_server_without_md5_is_hashed_and_drilled_with_sha256(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maria_backup, "HASH_PROBE", "SELECT SHA2('abc', 256), NULL")
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.s", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    finished = json.loads((store / "catalog/dump.s/finished.json").read_text())
    assert finished["hash_digest"] == "sha256"
    assert finished["tables"]["items"]["hash"] != "0"
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stdout + drill.stderr
    monkeypatch.setattr(maria_backup, "HASH_PROBE", "SELECT NULL, NULL")
    refused = take_backup(shop, age_key, str(store), "dump.n", env)
    assert refused.exit_code == 3, refused.stderr  # type: ignore[attr-defined]
    assert "MD5" in error_lines(refused)[0]  # type: ignore[arg-type]
