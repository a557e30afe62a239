"""``topoff sync`` into an Iceberg replica stopped by a real signal sent to its whole
process group (Ctrl-C in a terminal, ``systemctl stop``) while it loads: exit 130 with the
two lines of an interruption, the process ends (it hung after them, or aborted with
"terminate called ..." while pyarrow read a file in the read-ahead thread), and the next
sync ends where an uninterrupted one does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.replica import fill, nommer_config, publish_standard
from topoff.verify import verify

ROOT = Path(__file__).resolve().parent.parent


def _catalog(tmp_path: Path) -> str:
    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                    'warehouse = "warehouse"\nnamespace = "replica"\n')
    return f"iceberg:{path}"


def _reading(pid: int) -> bool:
    """The process has a data file of the dataset open: the load reads it."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).endswith(".csv.zst") for fd in fds.iterdir())
    except OSError:  # a descriptor closed while looked at
        return False


@pytest.mark.parametrize(("sig", "moments"), [
    (signal.SIGINT, (0.0,)),
    pytest.param(signal.SIGINT, (0.0, 0.3, 0.6), marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, (0.0, 0.3, 0.6), marks=pytest.mark.slow)],
    ids=["INT", "INT-three-moments", "TERM-three-moments"])
def test_a_signal_while_the_load_reads_ahead(db, tmp_path: Path, sig: int,
                                             moments: tuple[float, ...]) -> None:
    fill(db, days=3, per_day=3000)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=64 * 1024), url)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for n, after in enumerate(moments):  # moments into the reading
        where = tmp_path / f"r{n}"
        where.mkdir()
        target = _catalog(where)
        command = [sys.executable, "-m", "topoff", "sync", url, target]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 120
        while not _reading(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(after)
        os.killpg(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=45)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode in (0, 130), err
        lines = [ln for ln in err.splitlines() if not ln[:4].isdigit()]  # (log lines)
        assert proc.returncode == 0 or (lines[0] == "error: interrupted" and len(lines) == 2), err
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert verify(target, db.standby_url).equal
