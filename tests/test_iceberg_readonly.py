"""Commands that only read an Iceberg catalog (status, verify, expire and compact with
nothing to do) write nothing: no SQLite catalog file, no catalog tables, no namespace
(they made all three, which read-only credentials of a REST catalog refuse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import error_lines, run_cli


@pytest.mark.parametrize("empty_file", [False, True])
def test_reading_commands_make_no_catalog(tmp_path: Path, empty_file: bool) -> None:
    catalog = tmp_path / "cat.db"
    if empty_file:
        catalog.touch()
    path = tmp_path / "c.toml"
    path.write_text(f'uri = "sqlite:///{catalog}"\nwarehouse = "{tmp_path / "wh"}"\n')
    target = f"iceberg:{path}"
    for args in (["status", target], ["verify", target, "--against", "postgresql://u@127.0.0.1:1/x"]):
        result = run_cli(*args)
        assert result.exit_code == 7, result.output
        assert error_lines(result)[0] == f"error: {target} holds no topoff replica"
    for args in (["iceberg", "expire", target, "--older-than", "7d"],
                 ["iceberg", "expire", target, "--older-than", "7d", "--dry-run"],
                 ["iceberg", "compact", target]):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"] + ["cat.db"] * empty_file
    assert not empty_file or catalog.stat().st_size == 0
