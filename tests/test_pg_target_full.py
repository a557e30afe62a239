"""A PostgreSQL target whose disk fills under a run (its database in a tablespace on a
small tmpfs of the test's own, on a server of the module's own: a standby replaying the
tablespace's creation would need the same directory): exit 7 saying the target is out of
disk space, and the same command once there is room ends as an uninterrupted run."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import run_cli, write_config
from support.full_disk import fill_up, no_traceback
from support.replica import cli, fill, nommer_config, publish_standard
from support.replicate import config_text, hashes, new_database
from topoff.demo.cluster import SERVER_USER, ThrowawayCluster


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayCluster]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    cluster = ThrowawayCluster(standby=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close(remove_in_background=True)


@pytest.fixture
def full_target(server: ThrowawayCluster) -> Iterator[tuple[str, Path]]:
    """A database whose files are on a 32 MB tmpfs; its URL and the mount."""
    mnt = Path(tempfile.mkdtemp(prefix="topoff-space-"))
    mnt.chmod(0o755)
    uid = pwd.getpwnam(SERVER_USER).pw_uid if os.geteuid() == 0 else os.getuid()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=32m,mode=0700,uid={uid}", "tmpfs",
                    str(mnt)], check=True)
    space, name = f"space{os.getpid()}", f"full{os.getpid()}"
    try:
        server.primary.execute(f"CREATE TABLESPACE {space} LOCATION '{mnt}'")
        server.primary.execute(f"CREATE DATABASE {name} TABLESPACE {space}")
        yield server.primary.url(name), mnt
    finally:
        server.primary.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        server.primary.execute(f"DROP TABLESPACE IF EXISTS {space}")
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


def test_sync_into_a_postgresql_target_out_of_disk(db, tmp_path: Path, full_target):
    url, mnt = full_target
    fill(db, days=3, per_day=3000)
    published = tmp_path / "published"
    publish_standard(nommer_config(db), str(published))
    filler = fill_up(mnt, 300 * 1024)
    r = cli("sync", str(published), url)
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    assert f"error: the PostgreSQL replica {url} is out of disk space" in r.stderr
    filler.unlink()
    assert cli("sync", str(published), url).exit_code == 0
    r = cli("verify", url, "--against", db.standby_url)
    assert r.exit_code == 0, r.stdout + r.stderr


def test_replicate_into_a_postgresql_target_out_of_disk(cluster, tmp_path: Path, full_target):
    url, mnt = full_target
    src = new_database(cluster)
    src.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
                "INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
                "repeat('a', 100) FROM generate_series(1, 50000) g")
    tables = {"ev": {"method": "updater", "cursor": "ts", "batch_rows": 20000}}
    path = write_config(tmp_path / "replica.toml",
                        config_text(url, {"app": (src.standby_url, tables)}))
    filler = fill_up(mnt, 300 * 1024)
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("error: app.public.ev: ")]
    assert failed, r.stderr
    assert failed[0].startswith("error: app.public.ev: the PostgreSQL target is out of disk "
                                "space (could not extend file"), failed[0]
    filler.unlink()
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    mine, theirs = hashes(url, src.primary_url, "app", "public.ev")
    assert mine == theirs
