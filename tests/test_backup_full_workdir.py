"""A work directory (--workdir) with no room left at all, as restore, drill and backup meet
it (a real tmpfs filled up): one error line and a hint, the documented exit code, no
work directory left behind, and the same command run once there is room succeeds."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import psycopg
import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.full_disk import fill_up, no_traceback
from support.pg import Database
from topoff.backup.tables import table_hashes


def _hashes(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return table_hashes(conn)


def _backed_up(db: Database, key: AgeKey, store: Path) -> Path:
    result = run_cli(*backup_args(db, key, store, "dump.a"))
    assert result.exit_code == 0, result.stderr
    return store


def test_restore_with_no_room_under_the_workdir(datanommer: Database, age_key: AgeKey,
                                                 target: str, tmp_path: Path, disk: Path):
    store = _backed_up(datanommer, age_key, tmp_path / "store")
    filler = fill_up(disk, 0)
    args = ["restore", str(store), "--latest", "--identity", str(age_key.identity),
            "--target", target, "--workdir", str(disk)]
    result = run_cli(*args)
    assert result.exit_code == 7, result.stderr
    no_traceback(result.stderr)
    error, hint = error_lines(result)
    assert str(disk) in error and "No space left on device" in error, error
    assert "free" in hint and "--workdir" in hint
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    assert _hashes(target) == {}
    filler.unlink()
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert _hashes(target) == _hashes(datanommer.standby_url)


def test_drill_with_no_room_under_the_workdir(datanommer: Database, age_key: AgeKey,
                                               tmp_path: Path, disk: Path):
    store = _backed_up(datanommer, age_key, tmp_path / "store")
    filler = fill_up(disk, 0)
    args = ["backups", "drill", str(store), "--identity", str(age_key.identity),
            "--workdir", str(disk)]
    result = run_cli(*args)
    assert result.exit_code == 7, result.stderr
    no_traceback(result.stderr)
    error, hint = error_lines(result)
    assert str(disk) in error and "No space left on device" in error, error
    assert "--workdir" in hint
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    filler.unlink()
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "drill of dump.a passed" in result.stdout


def test_backup_with_no_room_under_the_workdir(datanommer: Database, age_key: AgeKey,
                                              tmp_path: Path, disk: Path):
    store = tmp_path / "store"
    filler = fill_up(disk, 0)
    args = backup_args(datanommer, age_key, store, "dump.w", "--workdir", str(disk))
    result = run_cli(*args)
    assert result.exit_code == 3, result.stderr
    no_traceback(result.stderr)
    error, hint = error_lines(result)
    assert str(disk) in error and "No space left on device" in error, error
    assert "free disk space" in hint
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    failed = json.loads((store / "catalog" / "dump.w" / "failed.json").read_text())
    assert "No space left on device" in failed["error"]
    filler.unlink()
    result = run_cli(*backup_args(datanommer, age_key, store, "dump.x", "--workdir",
                                  str(disk)))
    assert result.exit_code == 0, result.stderr


def test_drill_with_no_room_for_its_throwaway_server(datanommer: Database, age_key: AgeKey,
                                                     tmp_path: Path, shared_disk: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """The drill's throwaway PostgreSQL server is made under TMPDIR: initdb failing there
    (a full disk) is the drill's failure, saying where and what to do."""
    store = _backed_up(datanommer, age_key, tmp_path / "store")
    monkeypatch.setattr(tempfile, "tempdir", str(shared_disk))
    filler = fill_up(shared_disk, 256 * 1024)
    args = ["backups", "drill", str(store), "--identity", str(age_key.identity),
            "--workdir", str(tmp_path)]
    result = run_cli(*args)
    assert result.exit_code == 7, result.stderr
    no_traceback(result.stderr)
    error, hint = error_lines(result)
    assert error.startswith("error: the drill's throwaway PostgreSQL server could not be "
                            f"made under {shared_disk}: initdb failed"), error
    assert "No space left on device" in error
    assert "TMPDIR" in hint and "--scratch" in hint
    assert sorted(p.name for p in shared_disk.iterdir()) == ["filler"]
    filler.unlink()
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "drill of dump.a passed" in result.stdout
