"""No password in any output: every command is run as a real process with a password in
every URL it takes (source, replica, HTTP store), in text and JSON logs, on success and on
errors (bad URLs, unreachable hosts, click's usage errors), and everything it printed and
every file it wrote is searched for the password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import topoff
from support.http_server import HttpServer
from support.pg import Database
from support.replica import Replicas, day, query
from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster

PW = "Pw-s3cret-9876"
SRC = str(Path(topoff.__file__).resolve().parents[1])


def with_password(url: str) -> str:
    """postgresql://postgres@host/db -> postgresql://postgres:PW@host/db (trusted user:
    the server ignores the password, so the commands work)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PW}@{host}"


class Runner:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.outputs: list[tuple[list[str], int, str]] = []

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPOFF_", "PG"))}
        env["PYTHONPATH"] = SRC
        env["XDG_CACHE_HOME"] = str(self.cwd / "xdg-cache")
        res = subprocess.run([sys.executable, "-m", "topoff", *args], cwd=self.cwd, env=env,
                             capture_output=True, text=True, timeout=300)
        self.outputs.append((list(args), res.returncode, res.stdout + res.stderr))
        if ok:
            assert res.returncode == 0, res.stdout + res.stderr
        else:
            assert res.returncode not in (0, 70), res.stdout + res.stderr
        return res

    def leaks(self) -> list[str]:
        return [f"topoff {' '.join(a)} (exit {rc}):\n{out}" for a, rc, out in self.outputs
                if PW in out]


def files_holding(directory: Path, needle: str) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.is_file() and
            needle.encode() in p.read_bytes()]


@pytest.fixture
def pg_target(cluster: ThrowawayCluster, tmp_path: Path):
    r = Replicas("postgresql", tmp_path, cluster)
    try:
        yield with_password(r.new())
    finally:
        r.close()


def test_no_command_prints_or_writes_a_password(datanommer: Database, tmp_path: Path,
                                                pg_target: str):
    run = Runner(tmp_path)
    source = with_password(datanommer.standby_url)
    config = tmp_path / "topoff.toml"
    config.write_text(sample.example_config().replace(
        'url = "postgresql://datanommer_ro@db-standby.example.org/datanommer"',
        f'url = "{source}"') + '\n')
    assert source in config.read_text()
    dest = tmp_path / "published"
    cfg = ["--config", str(config)]

    run("export", "full", *cfg, "--to", str(dest))
    run("export", "incremental", *cfg, "--date", day(1).isoformat(), "--to", str(dest),
        "--log-format", "json")
    run("list", str(dest))
    duck = str(tmp_path / "replica.duckdb")
    run("sync", str(dest), pg_target)
    run("sync", str(dest), pg_target, "--log-format", "json", "-v")
    run("status", pg_target)
    run("status", pg_target, "--json")
    run("verify", pg_target, "--against", source)
    with HttpServer(dest) as http:
        store = http.url.replace("http://", f"http://reader:{PW}@")
        run("list", store)
        run("sync", store, duck, "-v")
        run("status", duck, "--json")
        run("sync", store, pg_target, "--rebase", "--log-format", "json")
    run("sync", str(dest), pg_target, "--schema", "other", ok=False)  # a rebase hint
    run("prune", *cfg, "--to", str(dest), "--keep-days", "15", "--dry-run")

    leaks = run.leaks()
    assert leaks == [], "\n\n".join(leaks)
    assert files_holding(tmp_path, PW) == [str(config)]
    assert PW not in str(query(pg_target, "SELECT * FROM topoff.replicas"))


def test_no_error_prints_or_writes_a_password(datanommer: Database, tmp_path: Path,
                                             pg_target: str):
    """Unreachable servers, URLs libpq cannot parse, click's usage errors."""
    run = Runner(tmp_path)
    source = with_password(datanommer.standby_url)
    dest = tmp_path / "published"
    run("export", "full", "--source", source, "--to", str(dest))
    duck = str(tmp_path / "replica.duckdb")
    run("sync", str(dest), duck)
    unreachable = f"postgresql://postgres:{PW}@127.0.0.1:1/nowhere"
    bad_port = f"postgresql://postgres:{PW}@127.0.0.1:notaport/db"
    bad_key = f"host=127.0.0.1 password={PW} nonsense=1"
    for target in (unreachable, bad_port, bad_key):
        if target != bad_key:  # a TARGET that is not a postgresql:// URL is a DuckDB file
            run("sync", str(dest), target, ok=False)
            run("status", target, ok=False)
        run("verify", duck, "--against", target, ok=False)
        run("export", "full", "--source", target, "--to", str(tmp_path / "never"), ok=False)
    quick = tmp_path / "quick.toml"  # one retry (its log line is checked too), not 15 s
    quick.write_text('[store]\nretries = 1\nretry_backoff = "10ms"\n')
    run("sync", f"http://reader:{PW}@127.0.0.1:1/data", duck, "--config", str(quick), "-v",
        ok=False)
    run("sync", f"http://reader:{PW}@127.0.0.1:1/data", duck, "--log-format", "json",
        "--config", str(quick), ok=False)
    run("status", pg_target, unreachable, ok=False)  # an extra argument
    run("sync", "--config", unreachable, str(dest), duck, ok=False)  # no such file
    run("sync", str(dest), duck, "--cache-dir", unreachable, "--since", "x", ok=False)

    leaks = run.leaks()
    assert leaks == [], "\n\n".join(leaks)
    assert files_holding(tmp_path, PW) == []
