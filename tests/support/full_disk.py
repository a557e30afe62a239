"""A disk of a test's own that fills up: a small tmpfs mounted for the test (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's notation: 64k, 4m) mounted on the directory ``mnt``
    (made if missing) for the ``with`` block; the test is skipped where it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt.mkdir(exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of the test's own."""
    with tmpfs(tmp_path / "disk", "4m") as mnt:
        yield mnt


@pytest.fixture
def shared_disk() -> Iterator[Path]:
    """A 96 MB tmpfs (room for a throwaway server) in a directory other users may reach
    (the postgres user, whom topoff's throwaway servers run as)."""
    mnt = Path(tempfile.mkdtemp(prefix="topoff-disk-"))
    mnt.chmod(0o755)
    try:
        with tmpfs(mnt, "96m"):
            yield mnt
    finally:
        mnt.rmdir()


def fill_up(mnt: Path, leave: int) -> Path:
    """A file taking all but ``leave`` bytes of the disk; remove it to make room."""
    st = os.statvfs(mnt)
    filler = mnt / "filler"
    filler.write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))
    return filler


def no_traceback(stderr: str) -> None:
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
