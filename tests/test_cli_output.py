"""Standard output that cannot be written, with real pipes and files: a closed pipe
(``topoff ... | head -0``) ends the command quietly with status 141, as SIGPIPE ends a
shell tool; a full disk (/dev/full) is one error line and status 74; a stderr that cannot
be written loses the error's lines, not its exit status. Never "internal error" (70)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from topoff.cli import _kind
from topoff.errors import OutputError

SRC = str(Path(__file__).resolve().parents[1] / "src")
UNIT = ["systemd", "--print", "backup"]  # a command that writes stdout and needs no server


def topoff(args: list[str], stdout: int, stderr: int = subprocess.PIPE,
           unbuffered: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([sys.executable, "-m", "topoff", *args], stdout=stdout,
                          stderr=stderr, env=env, timeout=60)


@pytest.mark.parametrize("unbuffered", [True, False])
@pytest.mark.parametrize("args", [UNIT, [*UNIT, "--help"], ["--help"], ["--version"]])
def test_closed_pipe_ends_quietly_with_141(args: list[str], unbuffered: bool) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone, as `| head -0`
    try:
        proc = topoff(args, stdout=write, unbuffered=unbuffered)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, b"")


@pytest.mark.parametrize("args", [UNIT, ["--help"], ["--version"]])
def test_full_disk_on_stdout_is_an_output_error(args: list[str]) -> None:
    """(topoff's own --help and --version were a traceback and exit status 1)"""
    with open("/dev/full", "wb") as full:
        proc = topoff(args, stdout=full.fileno())
    err = proc.stderr.decode()
    assert proc.returncode == 74, err
    assert "internal" not in err and "Traceback" not in err and "Exception" not in err
    assert err.splitlines()[0] == "error: cannot write the output: No space left on device"
    assert _kind(OutputError("x")) == "output"  # in JSON error lines


def test_an_error_keeps_its_exit_status_when_stderr_is_full(tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = topoff(["list", str(tmp_path)], stdout=subprocess.PIPE, stderr=full.fileno())
    assert proc.returncode == 5  # not_published, as when stderr can be written
