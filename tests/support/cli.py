"""Running the ``topoff`` command in-process, with topoff's logger put back afterwards."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def loaded_modules(args: list[str], prefixes: tuple[str, ...]
                   ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``topoff ARGS`` in a process of its own, and the modules starting with ``prefixes``
    it had loaded when it exited (start-up is part of every run's time)."""
    code = ("import atexit, sys\n"
            f"heavy = {prefixes!r}\n"
            "atexit.register(lambda: print('loaded:', sorted(m for m in sys.modules "
            "if m.startswith(heavy))))\n"
            "from topoff.cli import main\n"
            "main()\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env=env, timeout=120)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if not last.startswith("loaded: "):
        return proc, ["?"]
    return proc, ast.literal_eval(last[len("loaded: "):])


def terminate_when(proc: subprocess.Popen[str], ready: Callable[[], bool],
                   timeout: float = 60) -> tuple[str, str]:
    """SIGTERM to ``proc`` once ``ready()`` holds (it must while the process still runs);
    its stdout and stderr."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=timeout)


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


def topoff_under(tz: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``topoff ARGS`` in a process of its own whose TZ is ``tz`` (and no PGTZ)."""
    env = {**os.environ, "TZ": tz, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    for name in (*CLEAN_ENV, "PGTZ"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "topoff", *args], capture_output=True,
                          text=True, env=env, timeout=300)
