"""A restore whose session on the target ends under pg_restore (the server restarted, an
administrator ended it): exit 7 saying the connection was lost, the hint naming --clean
(the target holds part of the backup now), and that restore then succeeds."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from support.backup import AgeKey, backup_args
from support.cli import error_lines, run_cli
from support.full_disk import no_traceback
from support.pg import Database
from support.replica import fill
from topoff.backup.tables import table_hashes


def _end_the_copy(url: str, ended: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE 'COPY %%'"
                ).fetchall()
            for pid, query in rows:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                ended.append(query)
            if ended:
                return
            time.sleep(0.002)


@pytest.mark.slow
def test_the_target_session_ended_under_a_restore(db: Database, age_key: AgeKey, target: str,
                                                  tmp_path: Path):
    fill(db, days=3, per_day=20000)
    store = tmp_path / "store"
    assert run_cli(*backup_args(db, age_key, store, "dump.a")).exit_code == 0
    args = ["restore", str(store), "--latest", "--identity", str(age_key.identity),
            "--target", target]
    ended: list[str] = []
    killer = threading.Thread(target=_end_the_copy, args=(target, ended))
    killer.start()
    r = run_cli(*args)
    killer.join()
    assert ended, "the restore ended before its COPY was seen"
    assert r.exit_code == 7, r.stderr
    no_traceback(r.stderr)
    error, hint = error_lines(r)
    assert error.startswith("error: pg_restore into ") and "failed" in error, error
    assert ("server closed the connection unexpectedly" in error
            or "terminating connection" in error), error
    assert "lost the connection" in hint and "--clean" in hint, hint
    assert "roles and extensions" not in hint
    r = run_cli(*args, "--clean")
    assert r.exit_code == 0, r.stderr
    with psycopg.connect(target, autocommit=True) as a, \
            psycopg.connect(db.standby_url, autocommit=True) as b:
        assert table_hashes(a) == table_hashes(b)
