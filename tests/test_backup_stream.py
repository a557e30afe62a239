"""Pieces of the backup stream: which of pg_dump's files are finished, and [backup] config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from topoff.backup.dump import _descendants, open_files
from topoff.config import BackupSettings, parse_config
from topoff.errors import ConfigError

HOLD = """
import os, sys, time
f = open(sys.argv[1], "wb")
f.write(b"x")
f.flush()
if os.fork() == 0:          # a child holds another file, like a pg_dump worker
    g = open(sys.argv[2], "wb")
    time.sleep(60)
    sys.exit(0)
time.sleep(60)
"""


@pytest.mark.parametrize("children_file", [True, False], ids=["proc-children", "proc-scan"])
def test_open_files_sees_a_process_and_its_children(tmp_path: Path, children_file: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_dump's workers are found through /proc/<pid>/task/<tid>/children (cheap: the
    poll runs ten times a second) or, where the kernel lacks it, a scan of /proc."""
    from topoff.backup import dump

    if children_file and not dump._HAVE_CHILDREN:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children")
    monkeypatch.setattr(dump, "_HAVE_CHILDREN", children_file)
    a, b, c = tmp_path / "1.dat", tmp_path / "2.dat", tmp_path / "3.dat"
    c.write_bytes(b"done")  # written and closed: finished
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(a), str(b)])
    try:
        deadline = time.monotonic() + 30
        while str(b) not in open_files(proc.pid):
            assert time.monotonic() < deadline, "the child never opened its file"
            time.sleep(0.05)
        held = open_files(proc.pid)
        assert str(a) in held and str(b) in held and str(c) not in held
    finally:
        for pid in reversed(_descendants(proc.pid)):
            os.kill(pid, signal.SIGKILL)
        proc.wait()
    assert str(a) not in open_files(proc.pid)


def _backup(text: str) -> BackupSettings:
    return parse_config(tomllib.loads(text)).backup


def test_backup_config() -> None:
    b = _backup('[backup]\nrecipients = ["age1x"]\nidentity = "/k"\njobs = 4\n'
                'lock_days = 30\nlock_mode = "governance"\nscrub = ["UPDATE t SET a = 1"]\n'
                'checks = ["SELECT true"]\n')
    assert b.recipients == ("age1x",) and b.jobs == 4 and b.lock_days == 30
    assert b.lock_mode == "GOVERNANCE" and b.checks == ("SELECT true",)
    assert _backup("").recipients == ()


@pytest.mark.parametrize("text,words", [
    ('[backup]\nlock_mode = "forever"\n', "lock_mode"),
    ('[backup]\nrecipients = "age1x"\n', "recipients"),
    ("[backup]\njobs = 0\n", "jobs"),
    ("[backup]\ncompression_level = 23\n", "compression_level"),
    ("[backup]\nrecipient = []\n", "unknown key 'recipient'"),
    ("[backup]\nchecks = [1]\n", "checks"),
])
def test_bad_backup_config(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        _backup(text)
