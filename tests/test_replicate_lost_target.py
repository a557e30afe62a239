"""``topoff replicate`` into PostgreSQL whose target session is ended under a refresh
(pg_terminate_backend, as an administrator or a restart does): the failure is the
target's, at once (exit 7), not a lost source retried on a dead connection; the next run
ends as an uninterrupted one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg

from support.cli import run_cli, write_config
from support.full_disk import no_traceback
from support.replicate import config_text, hashes, new_database


def _terminate_copy(url: str, done: threading.Event, ended: list[str]) -> None:
    """End the target's session once it is copying rows in."""
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE 'COPY %%' AND pid <> pg_backend_pid()"
                ).fetchall()
            for pid, query in rows:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                ended.append(query)
                return
            time.sleep(0.005)


def test_the_target_session_ended_under_a_refresh(cluster, tmp_path: Path):
    src = new_database(cluster)
    src.execute("CREATE TABLE ev (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
                "INSERT INTO ev SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
                "repeat('a', 100) FROM generate_series(1, 200000) g")
    target = new_database(cluster, "rt")
    tables = {"ev": {"method": "updater", "cursor": "ts", "batch_rows": 20000}}
    path = write_config(tmp_path / "replica.toml",
                        config_text(target.primary_url, {"app": (src.standby_url, tables)}))
    done, ended = threading.Event(), []
    killer = threading.Thread(target=_terminate_copy, args=(target.primary_url, done, ended))
    killer.start()
    try:
        r = run_cli("replicate", "--config", path, "--once")
    finally:
        done.set()
        killer.join()
    assert ended, "the refresh ended before its COPY was seen"
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    assert "attempt 2 of" not in r.stderr and "connection to the source" not in r.stderr
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("error: app.public.ev: ")]
    assert failed and f"lost the connection to {target.primary_url}" in failed[0], r.stderr
    r = run_cli("replicate", "--config", path, "--once")
    assert r.exit_code == 0, r.stderr
    mine, theirs = hashes(target.primary_url, src.primary_url, "app", "public.ev")
    assert mine == theirs
