"""A process limit on open files (``ulimit -n``) too low for the run, as an operator's
unit or container may set it: the error names the limit and how to raise it, exit 5,
nothing published or applied, and the same command under a normal limit succeeds."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from support.cli import write_config
from support.dataset import files_under, read_dataset
from support.full_disk import no_traceback
from support.http_server import HttpServer
from support.replica import fill, nommer_config, publish_standard
from topoff.demo import sample
from topoff.stores import open_store

ROOT = Path(__file__).resolve().parent.parent


def topoff(*args: str, open_files: int | None = None,
           cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFF_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    return subprocess.run([sys.executable, "-m", "topoff", *args], env=env, text=True,
                          capture_output=True, preexec_fn=limit, timeout=300)


def test_an_export_over_the_open_files_limit(db, tmp_path: Path):
    fill(db, days=2, per_day=100)
    conf = write_config(tmp_path / "topoff.toml", sample.example_config())
    dest = tmp_path / "out"
    args = ["export", "full", "--config", conf, "--source", db.standby_url, "--to", str(dest),
            "-j", "4"]
    run = topoff(*args, open_files=12)
    assert run.returncode == 5, run.stderr
    no_traceback(run.stderr)
    error, hint = run.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: ") and "Too many open files" in error, error
    assert hint.startswith("hint: ") and "ulimit -n" in hint and "--jobs" in hint, hint
    assert files_under(dest) == []
    run = topoff(*args)
    assert run.returncode == 0, run.stderr
    read_dataset(open_store(str(dest)))


def test_an_export_at_every_low_limit_says_so(db, tmp_path: Path):
    """Whichever descriptor runs out first (a store's file, a worker's socket, the wait for
    its connection), the export stops the same way: exit 5, the limit named (a worker's
    connection was an internal error at some limits)."""
    fill(db, days=2, per_day=100)
    conf = write_config(tmp_path / "topoff.toml", sample.example_config())
    for n in range(6, 14):
        dest = tmp_path / f"out{n}"
        run = topoff("export", "full", "--config", conf, "--source", db.standby_url,
                     "--to", str(dest), "-j", "4", open_files=n)
        assert run.returncode == 5, (n, run.stderr)
        no_traceback(run.stderr)
        error, hint = run.stderr.strip().splitlines()[-2:]
        assert "Too many open files" in error and "ulimit -n" in hint, (n, error, hint)
        # nothing published; the lock the run could not remove (no descriptor left for its
        # directory) is stale at once on this host: the next run takes it over
        left = files_under(dest) if dest.exists() else []
        assert [f for f in left if f != "lock.json"] == [], (n, left)
        if left:
            ok = topoff("export", "full", "--config", conf, "--source", db.standby_url,
                        "--to", str(dest))
            assert ok.returncode == 0, ok.stderr


def test_a_sync_over_the_open_files_limit(db, tmp_path: Path):
    """The download cache's files count against the limit too: the hint names it."""
    fill(db, days=2, per_day=100)
    published = tmp_path / "published"
    publish_standard(nommer_config(db), str(published))
    replica = tmp_path / "r.duckdb"
    with HttpServer(published) as http:
        run = topoff("sync", http.url, str(replica), open_files=10,
                     cache=tmp_path / "cache")
        assert run.returncode == 5, run.stderr
        no_traceback(run.stderr)
        error, hint = run.stderr.strip().splitlines()[-2:]
        assert error.startswith("error: ") and "Too many open files" in error, error
        assert hint.startswith("hint: ") and "ulimit -n" in hint, hint
        run = topoff("sync", http.url, str(replica), cache=tmp_path / "cache")
        assert run.returncode == 0, run.stderr
    run = topoff("verify", str(replica), "--against", db.standby_url)
    assert run.returncode == 0, run.stdout + run.stderr


def test_verify_at_every_low_limit_says_so(db, tmp_path: Path):
    """verify opens the replica and connects to the source: whichever runs out of
    descriptors, the error names the limit (the DuckDB file's said "check the path and
    permissions"), never an internal error."""
    fill(db, days=2, per_day=100)
    published = tmp_path / "published"
    publish_standard(nommer_config(db), str(published))
    replica = str(tmp_path / "r.duckdb")
    assert topoff("sync", str(published), replica).returncode == 0
    failed = set()
    for n in range(6, 10):
        run = topoff("verify", replica, "--against", db.standby_url, open_files=n)
        no_traceback(run.stderr)
        if run.returncode == 0:
            continue
        failed.add(n)
        assert run.returncode in (5, 7), (n, run.stderr)
        error, hint = run.stderr.strip().splitlines()[-2:]
        assert "Too many open files" in error and "ulimit -n" in hint, (n, error, hint)
    assert failed  # the lowest limits are too low for it

