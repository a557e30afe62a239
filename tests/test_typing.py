"""The library's type hints are checked: mypy, with the settings in pyproject.toml
(every function annotated, no unused ignores), over src/topoff."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_library_type_checks() -> None:
    # mypy's cache (keyed by each file's hash) in the user's cache directory: a run after
    # the first checks what changed only (18 s to a few on two cores)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "topoff-mypy"
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
