"""TOPOFF_PG_BINDIR: the PostgreSQL programs the demo, the tests, backups and drills run."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import error_lines, run_cli
from topoff.backup import libpq
from topoff.errors import ConfigError


def test_a_pg_bindir_without_the_programs_is_exit_2(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory without initdb was passed over for the newest install: a demo, a drill
    or a backup ran other programs than the ones asked for, without a word."""
    result = run_cli("demo", env={"TOPOFF_PG_BINDIR": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert error_lines(result)[0] == f"error: TOPOFF_PG_BINDIR={tmp_path} holds no initdb"
    monkeypatch.setenv("TOPOFF_PG_BINDIR", str(tmp_path))
    with pytest.raises(ConfigError):
        libpq.program("pg_dump")
