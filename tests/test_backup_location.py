"""A mistyped backup location is an error, not an empty catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.backup import entry
from support.cli import error_lines, run_cli


@pytest.mark.parametrize("command, options", [
    (["backups", "list"], []), (["backups", "prune"], ["--keep-days", "7"]),
    (["backups", "drill"], ["--scratch", "postgresql://u@127.0.0.1:1/x"]),
    (["restore"], ["--latest", "--target", "postgresql://u@127.0.0.1:1/x", "--identity",
                   "/dev/null"])], ids=["list", "prune", "drill", "restore"])
def test_a_directory_that_is_not_there_is_exit_5(tmp_path: Path, command: list[str],
                                                 options: list[str]) -> None:
    """``backups list /srv/backup/typo`` printed "no backups" and exit 0 (prune "removed 0
    backups"): a monitoring job or a script took a wrong path for an empty store."""
    where = tmp_path / "typo"
    result = run_cli(*command, str(where), *options)
    assert result.exit_code == 5, result.output
    assert error_lines(result)[0] == f"error: no such directory: {where}"
    assert not where.exists()


def test_an_empty_directory_is_an_empty_catalog(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    result = run_cli("backups", "list", str(tmp_path / "s"))
    assert (result.exit_code, result.stdout.strip()) == (0, f"no backups in {tmp_path / 's'}")
    entry(tmp_path / "s", "dump.a", 1)
    assert "dump.a" in run_cli("backups", "list", str(tmp_path / "s")).stdout


def test_check_of_a_directory_that_is_not_there_is_critical(tmp_path: Path) -> None:
    result = run_cli("backups", "check", str(tmp_path / "typo"), "--max-age", "1d")
    assert result.exit_code == 2
    assert result.stdout.strip() == ("BACKUP CRITICAL - cannot read the catalog: no such "
                                     f"directory: {tmp_path / 'typo'}")
