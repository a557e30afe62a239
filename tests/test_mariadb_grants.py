"""A MariaDB source user who may SELECT only some tables or columns: information_schema
shows it nothing else, so a table or column it may not read looks absent. topoff says so
instead of exporting or replicating a table without the columns it cannot see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli, write_config
from support.mariadb import MariaDatabase
from support.replicate import config
from topoff.replicate.engine import run_once


@pytest.fixture
def narrow(maria: MariaDatabase) -> Iterator[str]:
    """The replica URL of a user granted three of the four columns of ``ev`` only."""
    user = f"col{maria.name}"
    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, "
                  "secret TEXT, v INT); CREATE TABLE hidden (id INT PRIMARY KEY);"
                  "INSERT INTO ev VALUES (1, UTC_TIMESTAMP(6) - INTERVAL 2 DAY, 's', 1);"
                  f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT (id, at, v) ON `{maria.name}`.ev TO '{user}'@'127.0.0.1'")
    yield maria.pair.replica.url(maria.name, user=user, password="p")
    maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


def test_columns_the_user_may_not_read_are_refused(narrow: str, maria: MariaDatabase,
                                                   tmp_path: Path) -> None:
    """The export published ev without its column secret, and replicate made the replica
    without it, exit 0; a table the user may not read was said not to exist."""
    text = (f'dataset = "shop"\n[source]\nurl = "{narrow}"\n'
            f'[tables.ev]\nschema = "{maria.name}"\nmethod = "append"\ncursor = "at"\n')
    done = run_cli("export", "full", "--config", write_config(tmp_path / "c.toml", text),
                   "--to", str(tmp_path / "d"))
    assert done.exit_code == 3, done.stdout
    assert "may read only some columns" in error_lines(done)[0]
    assert not list((tmp_path / "d").rglob("manifest.json"))
    cfg = config(str(tmp_path / "r.duckdb"), {"m": (narrow, {"ev": {
        "method": "updater", "cursor": "at"}})})
    [run] = run_once(cfg)
    assert (run.status, run.exit_code) == ("failed", 3), run
    assert "may read only some columns" in (run.error or "")
    text = (f'dataset = "shop"\n[source]\nurl = "{narrow}"\n'
            f'[tables.hidden]\nschema = "{maria.name}"\n')
    done = run_cli("export", "full", "--config", write_config(tmp_path / "h.toml", text),
                   "--to", str(tmp_path / "h"))
    assert done.exit_code == 2
    assert "or the user may not SELECT it" in error_lines(done)[0]
