"""rclone: what is specific to it (the conformance suite in test_stores.py covers the rest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.store_fixtures import CRYPT_PASSWORD, rclone_remotes
from topoff.errors import StoreError
from topoff.stores import FileMissing, ObjectOptions, open_store
from topoff.stores.rclone import RcloneStore


@pytest.fixture
def encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "encrypted"
    rclone_remotes(monkeypatch, directory)
    return directory


def test_crypt_remote_keeps_names_and_content_encrypted(encrypted: Path) -> None:
    store = open_store("rclone:topoffcrypt:datasets")
    secret = b"alice,alice@example.org,the secret row\n" * 100
    store.write_bytes("full/2024-01-01/users.csv", secret)
    assert store.read_bytes("full/2024-01-01/users.csv") == secret
    on_disk = [p for p in encrypted.rglob("*") if p.is_file()]
    assert len(on_disk) == 1
    relative = str(on_disk[0].relative_to(encrypted))
    for plain in ("datasets", "full", "2024-01-01", "users", "csv"):
        assert plain not in relative
    content = on_disk[0].read_bytes()
    assert content.startswith(b"RCLONE\x00\x00")  # rclone crypt's file header
    assert b"alice" not in content and b"secret" not in content
    assert len(content) > len(secret)


def test_local_path_without_a_remote(tmp_path: Path) -> None:
    store = open_store(f"rclone:{tmp_path}/plain")
    store.write_bytes("a/b.txt", b"x")
    assert (tmp_path / "plain" / "a" / "b.txt").read_bytes() == b"x"
    assert store.url == f"rclone:{tmp_path}/plain"
    with store.open_read("a/b.txt", offset=1) as f:
        assert f.read() == b""


def test_unknown_remote_is_a_store_error(encrypted: Path) -> None:
    store = open_store("rclone:nosuchremote:path")
    with pytest.raises(StoreError) as err:
        store.write_bytes("a", b"x")
    assert "rclone could not write" in err.value.message
    assert "nosuchremote" in err.value.message
    assert "\n" not in err.value.message
    assert "rclone config" in (err.value.hint or "")
    with pytest.raises(StoreError):
        store.list()


def test_wrong_crypt_password_is_an_error_and_never_shown(
        encrypted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store("rclone:topoffcrypt:d")
    store.write_bytes("a.bin", b"data")
    obscured = os.environ["RCLONE_CONFIG_TOPOFFCRYPT_PASSWORD"]
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFCRYPT_PASSWORD", "not-obscured-at-all")
    with pytest.raises(StoreError) as err:
        store.read_bytes("a.bin")
    text = f"{err.value.message} {err.value.hint}"
    assert CRYPT_PASSWORD not in text and obscured not in text
    assert "not-obscured-at-all" not in text


def test_missing_file_and_missing_program(tmp_path: Path) -> None:
    store = RcloneStore(str(tmp_path))
    with pytest.raises(FileMissing):
        store.open_read("absent.bin")
    assert store.stat("absent.bin") is None
    store.delete("absent/x.bin")  # nothing to delete: fine
    gone = RcloneStore(str(tmp_path), program=str(tmp_path / "no-rclone-here"))
    with pytest.raises(StoreError) as err:
        gone.list()
    assert "rclone is not installed" in err.value.message
    assert "apt-get install rclone" in (err.value.hint or "")


def test_lock_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = RcloneStore(str(tmp_path / "r"))
    with pytest.raises(StoreError) as err, store.write(
            "x.bin", options=ObjectOptions(lock_days=3)) as f:
        f.write(b"x")
    assert "cannot lock" in err.value.message
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("location", ["rclone:", "rclone:-x", "rclone:--config=/etc/x:y",
                                      "rclone:a\nb"])
def test_locations_that_could_be_options_are_refused(location: str) -> None:
    with pytest.raises(StoreError) as err:
        open_store(location)
    assert "invalid rclone location" in err.value.message


# An rclone whose ``moveto --ignore-existing`` checks, waits until the other writer has
# got as far (or gave up), then moves: the check-then-move window of rclone's own
# --ignore-existing, held open so that two processes are sure to be inside it together.
_SLOW_RCLONE = """#!{python}
import os, subprocess, sys, time
args = sys.argv[1:]
barrier = {barrier!r}

def arrive(why):
    open(os.path.join(barrier, why + "." + str(os.getpid())), "w").close()
    deadline = time.monotonic() + 20
    while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

if "moveto" in args and "--ignore-existing" in args:
    src, dst = args[-2], args[-1]
    taken = subprocess.run(["rclone", "lsjson", "--stat", dst], capture_output=True)
    arrive("moveto")
    if taken.returncode == 0:
        sys.exit(0)  # like --ignore-existing: skipped, the source stays
    sys.exit(subprocess.run(["rclone", "moveto", src, dst]).returncode)
if "deletefile" in args and ".tmp-" in args[-1]:
    arrive("gaveup")
sys.exit(subprocess.run(["rclone", *args]).returncode)
"""

_WRITER = """
import sys
from topoff.stores.base import FileExists
from topoff.stores.rclone import RcloneStore
store = RcloneStore(sys.argv[1], program=sys.argv[2])
try:
    store.write_bytes("catalog/dump.x/started.json", sys.argv[3].encode())
    print("won")
except FileExists:
    print("lost")
"""


def test_two_processes_never_both_create_one_name(tmp_path: Path) -> None:
    """Two processes publish the same new name through rclone at the same moment: at
    most one succeeds (the other gets FileExists), the name holds the winner's bytes, and
    no claim or temp file is left behind."""
    import subprocess
    import sys

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    program = tmp_path / "slow-rclone"
    program.write_text(_SLOW_RCLONE.format(python=sys.executable, barrier=str(barrier)))
    program.chmod(0o755)
    root = str(tmp_path / "remote")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, root, str(program), who],
                              env=env, stdout=subprocess.PIPE, text=True)
             for who in ("first", "second")]
    outcomes = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), outcomes
    assert outcomes.count("won") <= 1, outcomes
    store = RcloneStore(root)
    if "won" in outcomes:
        winner = ("first", "second")[outcomes.index("won")]
        assert store.read_bytes("catalog/dump.x/started.json") == winner.encode()
        assert [f.name for f in store.list_all()] == ["catalog/dump.x/started.json"]
    else:  # both saw the other's claim and gave up: nothing is published
        assert store.list_all() == []


def test_a_live_claim_blocks_a_stale_one_does_not(tmp_path: Path) -> None:
    """Another writer's claim on a name stops a create-only write (FileExists, nothing
    published, its own claim and temp removed); a claim a killed writer left more than
    CLAIM_TTL ago does not."""
    import time

    from topoff.stores.base import FileExists
    from topoff.stores.rclone import CLAIM_TTL

    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    claim = root / "d" / ".x.bin.claim-0123456789ab"
    claim.touch()
    store = RcloneStore(str(root))
    with pytest.raises(FileExists):
        store.write_bytes("d/x.bin", b"new")
    assert sorted(p.name for p in (root / "d").iterdir()) == [claim.name]
    old = time.time() - CLAIM_TTL - 60
    os.utime(claim, (old, old))
    store.write_bytes("d/x.bin", b"new")
    assert (root / "d" / "x.bin").read_bytes() == b"new"
    assert [f.name for f in store.list()] == ["d/x.bin"]


def test_names_differing_only_in_case_on_a_case_insensitive_remote(
        encrypted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote that does not tell names apart by case (rclone's local backend told so, as
    on macOS or Windows) would keep dump.A and dump.a as one object: the second name is
    refused. A remote that tells them apart keeps both."""
    directory = encrypted.parent / "folded"
    store = open_store(f"rclone:topofflocal:{directory}")
    store.write_bytes("backups/dump.A", b"first")
    store.write_bytes("backups/dump.a", b"second")  # case-sensitive: two objects
    assert [f.name for f in store.list()] == ["backups/dump.A", "backups/dump.a"]
    store.delete("backups/dump.a")
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFLOCAL_CASE_INSENSITIVE", "true")
    store = open_store(f"rclone:topofflocal:{directory}")
    with pytest.raises(StoreError) as err:
        store.write_bytes("backups/dump.a", b"second")
    assert err.value.exit_code == 5
    assert err.value.message == (f"backups/dump.a differs only in case from backups/dump.A in "
                                 f"rclone:topofflocal:{directory}, which does not tell names "
                                 "apart by case: both would be one object")
    assert err.value.hint
    assert [f.name for f in store.list()] == ["backups/dump.A"]
    assert store.read_bytes("backups/dump.A") == b"first"
