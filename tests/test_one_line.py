"""Every error and log line is one line of plain characters: a name holding a newline or a
terminal escape (a config path, a table name, a dataset's field) is written escaped, and a
NUL in a config is refused where it is read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli
from topoff.log import TextFormatter, one_line


def test_a_name_with_a_newline_and_an_escape_stays_on_its_line(tmp_path: Path) -> None:
    odd = tmp_path / "a\nerror: forged\x1b[2J.toml"
    result = run_cli("check-config", "--config", str(odd))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: config file "), lines
    assert "a\\nerror: forged\\x1b[2J.toml" in lines[0] and "\x1b" not in result.stderr


def test_log_lines_escape_control_characters() -> None:
    record = logging.LogRecord("topoff", logging.WARNING, __file__, 1,
                               "table %s\u2028x\x9b", ("t\r\nwarning: forged",), None)
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x9b" not in line
    assert line.endswith("warning: table t\\r\\nwarning: forged\\u2028x\\x9b")
    assert one_line("é ü 日本 \t") == "é ü 日本 \\t"


@pytest.mark.parametrize("text, where", [
    ('dataset = "d"\n[tables.t]\nschema = "a\\u0000"\n', "tables.t.schema"),
    ('dataset = "d"\n[tables."t\\u0000"]\nmethod = "snapshot"\n', "tables.t\\x00"),
    ('[replicate]\ntarget = "r.duckdb"\n[replicate.sources.a]\nurl = "postgresql://u@h/d"\n'
     '[replicate.sources.a.tables.t]\nmethod = "snapshot"\nname = "t\\u0000"\n',
     "replicate.sources.a.tables.t.name")])
def test_a_nul_in_a_config_is_a_config_error(tmp_path: Path, text: str, where: str) -> None:
    """A NUL in a table's name reached the driver deep in a run: an internal error (70)."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    command = "replicate" if text.startswith("[replicate]") else "check-config"
    result = run_cli(command, "--config", str(path), *(["--once"] * (command == "replicate")))
    assert result.exit_code == 2, result.stderr
    error, hint = error_lines(result)
    assert error == f"error: '{where}' holds a NUL character (\\u0000)"
    assert hint == "hint: no name or value can hold one: remove it"
