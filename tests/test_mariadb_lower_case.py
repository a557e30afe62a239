"""A MariaDB server with ``lower_case_table_names = 1`` keeps names in lower case and
takes them in any case: a config naming ``Shop.Events`` exports, replicates and backs up
the table ``shop.events``, and tells a table created again under the name from the one
replicated by its InnoDB id."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.backup import AgeKey
from support.cli import run_cli, write_config
from support.mariadb import MariaServer
from support.replicate import config, query
from topoff.backup.mariadbd import give_to_server_user
from topoff.replicate.engine import run_once
from topoff.replicate.maria_read import innodb_id
from topoff.sources.mariadb.catalog import read_table
from topoff.sources.mariadb.connect import connect


@pytest.fixture(scope="module")
def lower() -> Iterator[MariaServer]:
    base = Path(tempfile.mkdtemp(prefix="topoff-lower-"))
    os.chmod(base, 0o755)
    give_to_server_user(base)
    server = MariaServer("lower", base, server_id=7)
    try:
        server.init()
        server.start("--lower-case-table-names=1")
        server.sql("CREATE USER 'topoff'@'127.0.0.1' IDENTIFIED BY 'pw';"
                   "GRANT SELECT, PROCESS, BINLOG MONITOR, SHOW VIEW, TRIGGER, EVENT ON *.* "
                   "TO 'topoff'@'127.0.0.1';"
                   "CREATE DATABASE Shop; CREATE TABLE Shop.Events (Id INT PRIMARY KEY, "
                   "At DATETIME(6) NOT NULL, V INT); INSERT INTO Shop.Events VALUES "
                   "(1, NOW(6) - INTERVAL 2 DAY, 1), (2, NOW(6) - INTERVAL 1 DAY, 2)")
        yield server
    finally:
        if server.proc is not None:
            server.proc.kill()
            server.proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def test_names_in_another_case(lower: MariaServer, tmp_path: Path, age_key: AgeKey) -> None:
    url = lower.url("Shop", password="pw")
    with connect(url) as conn:  # InnoDB names the table shop/events
        assert innodb_id(conn, read_table(conn, "Shop", "Events")) is not None
    cfg = write_config(tmp_path / "c.toml", f'dataset = "shop"\n[source]\nurl = "{url}"\n'
                       '[tables.Events]\nschema = "Shop"\nmethod = "append"\ncursor = "At"\n')
    done = run_cli("export", "full", "--config", cfg, "--to", str(tmp_path / "d"),
                   "--allow-primary")
    assert done.exit_code == 0 and "2 rows" in done.stdout, done.stderr
    target = str(tmp_path / "r.duckdb")
    rcfg = config(target, {"m": (url, {"Events": {"method": "updater", "cursor": "At"}})},
                  allow_primary=True)
    assert [(r.status, r.rows) for r in run_once(rcfg)] == [("ok", 2)]
    lower.sql("DROP TABLE shop.events; CREATE TABLE Shop.Events (Id INT PRIMARY KEY, "
              "At DATETIME(6) NOT NULL, V INT); INSERT INTO shop.events VALUES "
              "(3, '2001-01-01', 3)")  # below the watermark, maybe within the same second
    assert [(r.status, r.rows) for r in run_once(rcfg)] == [("ok", 1)]
    assert query(target, "SELECT Id FROM m.Events") == [(3,)]
    backup = run_cli("backup", "--source", url, "--to", str(tmp_path / "s"), "--name", "b",
                     "--recipient", age_key.public, "--allow-primary")
    assert backup.exit_code == 0 and "1 rows" in backup.stdout, backup.stderr
