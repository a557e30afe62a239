"""A MariaDB source that stops under an export (mariadbd killed, then started again): one
error line and a hint, exit 3, nothing published, and the same export once the server is
back publishes."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli, write_config
from support.dataset import files_under, read_dataset
from support.full_disk import no_traceback
from support.mariadb import PASSWORD, USER, MariaServer
from topoff.backup.mariadbd import give_to_server_user
from topoff.stores import open_store


@pytest.fixture
def solo() -> Iterator[MariaServer]:
    """A mariadbd of the test's own (the session's pair must stay up)."""
    base = Path(tempfile.mkdtemp(prefix="topoff-maria-"))
    os.chmod(base, 0o755)
    give_to_server_user(base)
    server = MariaServer("solo", base, server_id=7)
    try:
        server.init()
        server.start()
        server.sql(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
                   f"GRANT SELECT, REPLICATION CLIENT ON *.* TO '{USER}'@'127.0.0.1';"
                   "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_the_source_stopped_under_an_export(solo: MariaServer, tmp_path: Path):
    day = date.today() - timedelta(days=1)
    solo.sql(f"""CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6) NOT NULL,
        body TEXT, KEY (at));
        INSERT INTO events SELECT seq, TIMESTAMP'{day} 00:00:00'
          + INTERVAL (seq % 86400) SECOND, REPEAT('b', 300) FROM seq_1_to_300000""", "shop")
    cfg = write_config(tmp_path / "shop.toml", f"""
dataset = "shop"
[source]
url = "{solo.url('shop')}"
allow_primary = true
[export]
chunk_size = "1MB"
retry_attempts = 2
retry_backoff = 0.1
[tables.events]
schema = "shop"
method = "append"
cursor = "at"
""")
    out = tmp_path / "pub"
    started = threading.Event()

    def stop_once_reading() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(out.glob("**/*.csv.zst*")):
            time.sleep(0.01)
        solo.proc.kill()  # type: ignore[union-attr]
        solo.proc.wait()  # type: ignore[union-attr]
        started.set()

    stopper = threading.Thread(target=stop_once_reading)
    stopper.start()
    r = run_cli("export", "full", "--config", cfg, "--to", str(out))
    stopper.join()
    assert started.is_set()
    assert r.exit_code == 3, r.stderr
    no_traceback(r.stderr)
    error, hint = error_lines(r)
    assert "the connection to the source was lost" in error, error
    assert "server is up and reachable" in hint and "run it again" in hint
    assert files_under(out) == []
    port = solo.port
    solo.start(f"--port={port}")
    solo.port = port
    r = run_cli("export", "full", "--config", cfg, "--to", str(out))
    assert r.exit_code == 0, r.stderr
    read_dataset(open_store(str(out)))
