"""A local store's writes and deletes act through directory descriptors opened below the
root without following links: a directory swapped for a symbolic link to elsewhere while
they run can make them fail, never write or delete anything outside the root."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from topoff.errors import StoreError
from topoff.stores.local import LocalStore

#: swaps ROOT/sub for a link to OUTSIDE and back, as fast as it can, until STOP exists
SWAPPER = """
import os, shutil, sys
sub, aside, outside, stop = sys.argv[1:5]
open(stop + ".ready", "w").close()
while not os.path.exists(stop):
    try:
        os.rename(sub, aside)
        os.symlink(outside, sub)
    except OSError:
        pass
    if os.path.islink(sub):
        os.unlink(sub)
    if os.path.isdir(aside):
        if os.path.isdir(sub) and not os.path.islink(sub):
            shutil.rmtree(sub, ignore_errors=True)
        try:
            os.rename(aside, sub)
        except OSError:
            pass
"""


def test_a_directory_swapped_for_a_link_leads_nothing_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "store", tmp_path / "outside"
    (root / "sub" / "deeper").mkdir(parents=True)
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep me")
    (outside / "deeper").mkdir()
    (outside / "deeper" / "victim").write_bytes(b"keep me too")
    stop = tmp_path / "stop"
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(root / "sub"),
                                str(root / "aside"), str(outside), str(stop)])
    store = LocalStore(root)
    try:
        while not Path(f"{stop}.ready").exists():
            assert swapper.poll() is None
        for i in range(400):
            # each may fail (a link met on the way); what matters is where it acts
            with contextlib.suppress(StoreError):
                store.write_bytes(f"sub/f{i}", b"data")
            with contextlib.suppress(StoreError):
                store.write_bytes(f"sub/deeper/new{i}/f", b"data")
            with contextlib.suppress(StoreError):
                store.write_bytes("sub/index.json", b"{}", replace=True)
            with contextlib.suppress(StoreError):
                store.delete("sub/victim")
            with contextlib.suppress(StoreError):
                store.delete("sub/deeper/victim")
    finally:
        stop.touch()
        swapper.wait(timeout=30)
    found = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    assert found == ["deeper", "deeper/victim", "victim"]
    assert (outside / "victim").read_bytes() == b"keep me"
