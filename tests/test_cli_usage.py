"""A command line click cannot use (an unknown option, a value out of range, a missing
argument) is reported as every failure is (docs/exit-codes.md): one ``error:`` line and
one ``hint:`` line, or one JSON object with ``--log-format json``; exit status 2, kind
``config``."""

from __future__ import annotations

import json

import pytest

from support.cli import error_lines, run_cli


@pytest.mark.parametrize("args, words, command", [
    (["export", "full", "--jobs", "0", "--to", "x"], "0 is not in the range", "export full"),
    (["sync", "--bogus", "a", "b"], "No such option '--bogus'", "sync"),
    (["list"], "Missing argument 'LOCATION'", "list"),
    (["export", "bogus"], "No such command 'bogus'", "export"),
    (["--bogus"], "No such option '--bogus'", "topoff"),
    (["status", "a", "--log-format", "xml"], "'xml' is not one of", "status"),
])
def test_usage_errors_are_an_error_and_a_hint(args: list[str], words: str, command: str):
    result = run_cli(*args)
    assert result.exit_code == 2, result.stderr
    error, hint = error_lines(result)
    assert words in error
    assert hint == f"hint: see `{'topoff ' if command != 'topoff' else ''}{command} --help`"
    assert "Usage:" not in result.stderr


@pytest.mark.parametrize("args", [
    ["sync", "--log-format", "json", "--bogus", "a", "b"],
    ["export", "full", "--log-format=json", "--jobs", "0", "--to", "x"],
    ["prune", "--to", "x", "--keep-days", "0", "--log-format", "json"],
])
def test_usage_errors_in_json(args: list[str]):
    result = run_cli(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert error["level"] == "error" and error["error"] == "config"
    assert error["exit_code"] == 2 and error["hint"].startswith("see `topoff ")


def test_a_group_without_a_command_shows_its_help():
    result = run_cli("export")
    assert result.exit_code == 2
    assert "export [OPTIONS] COMMAND" in result.stderr


def test_a_usage_error_does_not_echo_a_password():
    result = run_cli("export", "full", "--to", "x", "--jobs", "postgresql://u:Pw-9z7@h/db")
    assert result.exit_code == 2
    assert "Pw-9z7" not in result.stderr + result.stdout
    assert "postgresql://u:***@h/db" in error_lines(result)[0]


@pytest.mark.parametrize("args", [
    ["init", "--source", "postgresql://u:secret@127.0.0.1:1/db", "--log-format", "json"],
    ["systemd", "--print", "nothing", "--log-format", "json"],
])
def test_init_and_systemd_take_the_logging_options(args: list[str]):
    """Every command takes --log-format (init and systemd have no --config)."""
    result = run_cli(*args)
    assert result.exit_code in (2, 3), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["level"] == "error", result.stderr
    assert "secret" not in result.stderr
