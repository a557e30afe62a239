"""Running the ``topoff`` command in-process, with topoff's logger put back afterwards."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner, Result

from support.dataset import topoff_log
from topoff.cli import cli

#: variables that would change what the command does; unset for every run
CLEAN_ENV: dict[str, str | None] = {"TOPOFF_CONFIG": None, "TOPOFF_SOURCE_URL": None,
                                    "TOPOFF_DEBUG": None}


def run_cli(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """``topoff ARGS``; stdout and stderr are kept apart (result.stdout, result.stderr)."""
    with topoff_log():
        return CliRunner().invoke(cli, list(args), env={**CLEAN_ENV, **(env or {})})


def error_lines(result: Result) -> tuple[str, str]:
    """The ``error:`` and ``hint:`` lines a failed command printed on stderr."""
    lines = result.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("error: ")]
    hints = [ln for ln in lines if ln.startswith("hint: ")]
    assert errors and hints, result.stderr
    return errors[-1], hints[-1]


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def after_second_of(snapshot_time: str) -> None:
    """Wait until the clock is past the second of a snapshot (full export ids are named
    by the second their snapshot was taken)."""
    taken = datetime.fromisoformat(snapshot_time).replace(microsecond=0)
    while datetime.now(UTC).replace(microsecond=0) <= taken:
        time.sleep(0.05)

