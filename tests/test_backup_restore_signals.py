"""A real ``topoff restore`` process stopped mid-way by a real signal while its decrypting
child (the age program, or the pyrage child when age is not on PATH) runs: exit 130, the
child gone, the work directory removed. After a SIGKILL of topoff (no cleanup possible),
the child still ends by itself: its stdin reaches end of file. The backup is read from S3
through a slow link, so that the restore is mid-way for seconds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.backup import AgeKey
from support.s3_server import DUMMY_ENV, UNSET_ENV, CuttingProxy, S3Server
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


@pytest.mark.parametrize("decrypter", ["age", "pyrage"])
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "Ctrl-C", "SIGKILL"])
def test_signal_mid_restore_leaves_no_child(empty_target: str, age_key: AgeKey,
                                            tmp_path: Path, s3_server: S3Server,
                                            decrypter: str, how: str) -> None:
    data = encrypt(age_key, plain_object({"toc.dat": b"t", "1.dat": os.urandom(8 << 20)}))
    bucket = s3_server.create_bucket()
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="p/catalog/dump.f/started.json",
                  Body=json.dumps({"started": "2026-01-01T00:00:00+00:00"}).encode())
    s3.put_object(Bucket=bucket, Key="p/catalog/dump.f/finished.json", Body=json.dumps(
        {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
         "plain_size": 16 << 20}).encode())
    s3.put_object(Bucket=bucket, Key="p/backups/dump.f.tar.zst.age", Body=data)
    proxy = CuttingProxy(s3_server.endpoint_url)
    proxy.pace = 0.02
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV}
    env.update(DUMMY_ENV, PYTHONPATH=str(ROOT / "src"), AWS_ENDPOINT_URL=proxy.url)
    if decrypter == "pyrage":
        (tmp_path / "bin").mkdir()
        env["PATH"] = str(tmp_path / "bin")
    proc = subprocess.Popen([sys.executable, "-m", "topoff", "restore", f"s3://{bucket}/p",
                             "--name",
                             "dump.f", "--identity", str(age_key.identity), "--target",
                             empty_target, "--workdir", str(work)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = 0
    try:
        deadline = time.monotonic() + 60
        while not child or proxy.sent < 256 * 1024:
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
        proxy.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
            pytest.fail("the decrypting child outlived topoff")
    assert proc.returncode == 130, err
    assert "error: interrupted" in err, err
    assert age_key.secret not in err
    assert not _alive(child), "the decrypting child outlived topoff"
    assert os.listdir(work) == [], "the work directory was left behind"
    shutil.rmtree(work)
