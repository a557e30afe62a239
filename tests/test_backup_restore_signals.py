"""A real ``topoff restore`` process stopped mid-way by a real signal while its decrypting
child (the age program, or the pyrage child when age is not on PATH) runs: exit 130, the
child gone, the work directory removed. After a SIGKILL of topoff (no cleanup possible),
the child still ends by itself: its stdin reaches end of file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.backup import AgeKey
from test_backup_decrypt import encrypt, plain_object
from topoff.backup.dump import _descendants
from topoff.demo.cluster import ThrowawayCluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_target(cluster: ThrowawayCluster) -> Iterator[str]:
    name = f"restore_sig_{uuid.uuid4().hex[:12]}"
    cluster.primary.execute(f'CREATE DATABASE "{name}"')
    yield cluster.primary.url(name)
    cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Trickle(threading.Thread):
    """Writes the object into a FIFO slowly, so that the restore is mid-way for seconds."""

    def __init__(self, fifo: Path, data: bytes) -> None:
        super().__init__(daemon=True)
        self.fifo, self.data = fifo, data
        self.written = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with open(self.fifo, "wb", buffering=0) as out:
                while self.written < len(self.data) and not self.stop.is_set():
                    self.written += out.write(self.data[self.written: self.written + 16384])
                    time.sleep(0.02)
        except BrokenPipeError:
            pass


@pytest.mark.parametrize("decrypter", ["age", "pyrage"])
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "Ctrl-C", "SIGKILL"])
def test_signal_mid_restore_leaves_no_child(empty_target: str, age_key: AgeKey,
                                            tmp_path: Path, decrypter: str, how: str) -> None:
    data = encrypt(age_key, plain_object({"toc.dat": b"t", "1.dat": os.urandom(8 << 20)}))
    store = tmp_path / "store"
    (store / "backups").mkdir(parents=True)
    cat = store / "catalog" / "dump.f"
    cat.mkdir(parents=True)
    (cat / "started.json").write_text(json.dumps({"started": "2026-01-01T00:00:00+00:00"}))
    (cat / "finished.json").write_text(json.dumps(
        {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    fifo = store / "backups" / "dump.f.tar.zst.age"
    os.mkfifo(fifo)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if decrypter == "pyrage":
        (tmp_path / "bin").mkdir()
        env["PATH"] = str(tmp_path / "bin")
    writer = Trickle(fifo, data)
    writer.start()
    proc = subprocess.Popen([sys.executable, "-m", "topoff", "restore", str(store), "--name",
                             "dump.f", "--identity", str(age_key.identity), "--target",
                             empty_target, "--workdir", str(work)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = 0
    try:
        deadline = time.monotonic() + 60
        while not child or writer.written < 256 * 1024:
            assert time.monotonic() < deadline, "the decrypting child did not start"
            assert proc.poll() is None, proc.communicate()
            found = [p for p in _descendants(proc.pid)[1:]
                     if (b"pyrage" if decrypter == "pyrage" else b"age\0--decrypt")
                     in _cmdline(p)]
            child = found[0] if found else 0
            time.sleep(0.02)
        assert (work / os.listdir(work)[0] / "dump").is_dir()
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        elif how == "SIGINT":
            proc.send_signal(signal.SIGINT)
        elif how == "Ctrl-C":  # the terminal's: SIGINT to topoff's whole process group
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
        if how == "SIGKILL":  # no cleanup possible; the child sees EOF and exits
            deadline = time.monotonic() + 20
            while _alive(child):
                assert time.monotonic() < deadline, "the decrypting child outlived topoff"
                time.sleep(0.05)
            return
    finally:
        writer.stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
            pytest.fail("the decrypting child outlived topoff")
        writer.join(10)
    assert proc.returncode == 130, err
    assert "error: interrupted" in err, err
    assert age_key.secret not in err
    assert not _alive(child), "the decrypting child outlived topoff"
    assert os.listdir(work) == [], "the work directory was left behind"
    shutil.rmtree(work)
