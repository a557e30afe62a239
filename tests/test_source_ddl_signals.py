"""An export that starts again in a new snapshot after a migration (sources/retry.py),
stopped with real signals while it waits to retry, killed there, and two of them of the
same day at once: nothing half published, the lock released, a rerun publishes once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support.mariadb import MariaDatabase
from support.pg import Database
from test_source_ddl import DAY, _pg_tables
from topoff.dataset.index import read_index
from topoff.stores import open_store

CONFIG = """dataset = "shop"
[export]
retry_backoff = "{backoff}"
[tables.ea]
cursor = "at"
[tables.eb]
cursor = "at"
"""

# the CLI, each export attempt's snapshot followed by the migration on the primary (replayed
# by the standby before the export locks the tables): the first attempt meets it, retries
DRIVER = textwrap.dedent("""
    import sys, time
    import psycopg
    import topoff.cli.export as cli_export
    from topoff.cli import main

    primary, standby, statement = sys.argv[1:4]
    done = []

    def hook(event, **kw):
        if event == "snapshot" and not done:
            done.append(1)
            with psycopg.connect(primary, autocommit=True) as c:
                c.execute(statement)
                lsn = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            with psycopg.connect(standby, autocommit=True) as s:
                while not s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                    [lsn]).fetchone()[0]:
                    time.sleep(0.02)

    for name in ("export_full", "export_incremental"):
        real = getattr(cli_export, name)
        def wrapped(*a, _real=real, **k):
            k["hook"] = hook
            return _real(*a, **k)
        setattr(cli_export, name, wrapped)
    sys.argv = ["topoff"] + sys.argv[4:]
    main()
""")


def start(db: Database, tmp_path: Path, kind: str, backoff: str = "20s",
          statement: str = "ALTER TABLE eb ALTER body TYPE varchar(300)",
          extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    config = tmp_path / f"shop-{backoff}.toml"
    config.write_text(CONFIG.format(backoff=backoff))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    args = ["export", kind, "--config", str(config), "--source", db.standby_url,
            "--to", str(tmp_path / "pub"), "--log-format", "json", *extra]
    if kind == "incremental":
        args += ["--date", DAY.isoformat()]
    return subprocess.Popen([sys.executable, str(driver), db.primary_url, db.standby_url,
                             statement, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def until_retry(proc: subprocess.Popen[str]) -> list[dict]:
    """The log lines up to the warning that a new snapshot is coming."""
    assert proc.stderr is not None
    lines: list[dict] = []
    for raw in proc.stderr:
        lines.append(json.loads(raw) if raw.startswith("{") else {"message": raw})
        if "new snapshot" in lines[-1]["message"]:
            return lines
    raise AssertionError(lines)


def data_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "pub"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != "lock.json") if root.exists() else []


def assert_once(tmp_path: Path) -> None:
    """One publication of each window (the day and those before it the export looks back
    on), or one full export: nothing published twice."""
    ids = published(tmp_path)
    assert ids and len(set(ids)) == len(ids), ids
    assert all(i.startswith("full/") or i.endswith("/r1") for i in ids), ids
    assert len([i for i in ids if i.startswith("full/")]) <= 1, ids


def published(tmp_path: Path) -> list[str]:
    index = read_index(open_store(str(tmp_path / "pub")))
    return [p.id for p in index.publications] if index else []


@pytest.mark.parametrize(("kind", "sig"), [
    ("incremental", signal.SIGTERM),
    *(pytest.param(k, s, marks=pytest.mark.slow) for k, s in
      (("full", signal.SIGINT), ("full", signal.SIGTERM), ("incremental", signal.SIGINT)))])
def test_a_signal_while_waiting_to_retry(db: Database, tmp_path: Path, kind: str,
                                         sig: int) -> None:
    """Stopped while it waits to retry: exit 130, nothing of the attempt left, the lock
    released (a rerun at once publishes, once)."""
    _pg_tables(db)
    proc = start(db, tmp_path, kind)
    until_retry(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "internal error" not in err
    assert published(tmp_path) == [] and data_files(tmp_path) == [], data_files(tmp_path)
    assert not (tmp_path / "pub" / "lock.json").exists()
    again = start(db, tmp_path, kind, statement="SELECT 1")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert_once(tmp_path)


@pytest.mark.slow
def test_two_signals_while_retrying_then_a_kill(db: Database, tmp_path: Path) -> None:
    """A second SIGTERM does not cut the cleanup short; a SIGKILL mid-retry leaves a lock
    whose process is gone: the rerun takes it over and publishes once."""
    _pg_tables(db)
    proc = start(db, tmp_path, "incremental")
    until_retry(proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert published(tmp_path) == [] and data_files(tmp_path) == []

    proc = start(db, tmp_path, "incremental", statement="TRUNCATE eb")
    until_retry(proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert published(tmp_path) == []
    again = start(db, tmp_path, "incremental", statement="SELECT 1")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert_once(tmp_path)


def test_two_exports_of_one_day_while_one_retries(db: Database, tmp_path: Path) -> None:
    """The second export of the day, started while the first waits to retry, stops with
    exit 5 (the dataset's lock is held) before writing; the first publishes once."""
    _pg_tables(db)
    first = start(db, tmp_path, "incremental", backoff="3s")
    until_retry(first)
    second = start(db, tmp_path, "incremental", statement="SELECT 1")
    _, err2 = second.communicate(timeout=120)
    _, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 5, err2
    assert "lock" in err2 and "internal error" not in err2
    assert_once(tmp_path)


# the same for a MariaDB source: the migration runs on the primary (as root, through its
# socket) once the first attempt's snapshot began, and the replica has applied it before
# the export reads the catalog
MARIA_DRIVER = textwrap.dedent("""
    import sys, time
    from topoff.cli import main
    from topoff.sources.mariadb.connect import connect
    from topoff.sources.mariadb.source import MariaSource

    primary, replica, database = sys.argv[1:4]
    tables = MariaSource.tables
    done = []

    def migrated(self, config):
        if not done:
            done.append(1)
            with connect(primary) as c:
                c.cursor().execute("ALTER TABLE eb MODIFY body VARCHAR(300)")
            with connect(replica) as c:
                cur = c.cursor()
                while True:
                    cur.execute("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE "
                                "TABLE_SCHEMA = %s AND TABLE_NAME = 'eb' AND "
                                "COLUMN_NAME = 'body'", (database,))
                    if cur.fetchone()[0] == "varchar(300)":
                        break
                    time.sleep(0.02)
        return tables(self, config)

    MariaSource.tables = migrated
    sys.argv = ["topoff"] + sys.argv[4:]
    main()
""")


@pytest.mark.parametrize("sig", [
    signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=["TERM", "INT"])
def test_a_mariadb_export_stopped_while_waiting_to_retry(maria: MariaDatabase, tmp_path: Path,
                                                         sig: int) -> None:
    from test_source_ddl import _fill

    _fill(maria)
    config = tmp_path / "shop.toml"
    config.write_text(f'dataset = "shop"\n[export]\nretry_backoff = "20s"\njobs = 1\n'
                      f'[tables.eb]\nschema = "{maria.name}"\ncursor = "at"\n')
    driver = tmp_path / "driver.py"
    driver.write_text(MARIA_DRIVER)
    root = maria.pair.primary.root_url(maria.name)  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        [sys.executable, str(driver), root, maria.replica_url, maria.name, "export",
         "incremental", "--config", str(config), "--source", maria.replica_url, "--to",
         str(tmp_path / "pub"), "--date", DAY.isoformat(), "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    until_retry(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert published(tmp_path) == [] and data_files(tmp_path) == [], data_files(tmp_path)
    assert not (tmp_path / "pub" / "lock.json").exists()
