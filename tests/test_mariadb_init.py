"""``topoff init``, ``topoff check-config``, ``export full --dry-run`` and ``export full``
without ``--config`` on a MariaDB source (sources/mariadb/discover.py, check_maria.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from support.cli import error_lines, run_cli, write_config
from support.dataset import TableData, check_publication, read_dataset
from support.mariadb import PASSWORD, MariaDatabase
from topoff.stores import open_store

SCHEMA = """
CREATE TABLE events (id BIGINT NOT NULL PRIMARY KEY, created_at DATETIME(6) NOT NULL,
                     body TEXT, email VARCHAR(100), KEY (created_at));
CREATE TABLE accounts (id INT NOT NULL PRIMARY KEY, updated_at TIMESTAMP(6) NOT NULL,
                       name VARCHAR(20), KEY (updated_at));
CREATE TABLE tags (name VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY,
                   updated_at DATETIME NOT NULL, KEY (updated_at));
CREATE TABLE plain (a INT, b DATE);
CREATE TABLE `odd name` (`the ``key``` INT NOT NULL PRIMARY KEY, `x.y` TEXT);
CREATE TABLE history (id INT NOT NULL PRIMARY KEY, v INT) WITH SYSTEM VERSIONING;
CREATE VIEW recent AS SELECT id, created_at FROM events;
CREATE SEQUENCE counter;
INSERT INTO events VALUES (1, '2026-01-01 00:00:00.000001', 'a', 'x@example.org'),
                          (2, '2026-01-02 12:00:00', NULL, NULL);
INSERT INTO accounts VALUES (1, '2026-01-01 00:00:00', 'n');
INSERT INTO tags VALUES ('Abc', '2026-01-01');
INSERT INTO plain VALUES (1, '2026-01-01'), (NULL, NULL);
INSERT INTO `odd name` VALUES (7, 'q"uote');
INSERT INTO history VALUES (1, 1);
UPDATE history SET v = 2
"""


def _setup(maria: MariaDatabase) -> None:
    maria.execute(SCHEMA)


def _full(out: Path) -> dict[str, TableData]:
    """Every table of the one full export published under ``out`` (files checked)."""
    store = open_store(str(out))
    data = read_dataset(store)
    [manifest] = data.manifests.values()
    return check_publication(store, manifest)


def test_init_writes_a_config_that_checks_and_exports(maria: MariaDatabase,
                                                       tmp_path: Path) -> None:
    _setup(maria)
    path = tmp_path / "shop.toml"
    made = run_cli("init", "--source", maria.replica_url, "--output", str(path),
                   "--dataset", "shop")
    assert made.exit_code == 0, made.output
    assert "6 tables" in made.stdout, made.stdout
    text = path.read_text()
    assert PASSWORD not in text + made.output
    assert "MYSQL_PWD" in text and "PGPASSWORD" not in text
    assert f"{maria.name}.recent (view)" in text and "counter" not in text
    conf = tomllib.loads(text)
    assert "@" in conf["source"]["url"] and PASSWORD not in conf["source"]["url"]
    tables = {t.get("name", k): t for k, t in conf["tables"].items()}
    assert set(tables) == {"events", "accounts", "tags", "plain", "odd name", "history"}
    assert {n: t["method"] for n, t in tables.items()} == {
        "events": "append", "accounts": "upsert", "tags": "snapshot", "plain": "snapshot",
        "odd name": "snapshot", "history": "snapshot"}
    assert tables["events"]["cursor"] == "created_at"
    assert tables["accounts"]["cursor"] == "updated_at"
    assert tables["events"]["columns"]["email"] == "private"
    assert tables["odd name"]["columns"] == {"the `key`": "public", "x.y": "public"}

    env = {"MYSQL_PWD": PASSWORD}  # the config names no password
    checked = run_cli("check-config", "--config", str(path), env=env)
    assert checked.exit_code == 0, checked.output
    assert f"valid against {maria.name} (standby)" in checked.stdout
    plan = {ln.split()[0]: ln.split()[1:] for ln in checked.stdout.splitlines()[2:]}
    assert plan[f"{maria.name}.events"][:3] == ["append", "created_at", "3/4"]
    dry = run_cli("export", "full", "--config", str(path), "--to", str(tmp_path / "no"),
                  "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    assert not (tmp_path / "no").exists()
    out = tmp_path / "pub"
    full = run_cli("export", "full", "--config", str(path), "--to", str(out), env=env)
    assert full.exit_code == 0, full.output
    data = _full(out)
    assert len(data[f"{maria.name}.events"].rows) == 2
    assert data[f"{maria.name}.history"].rows == [["1", "2"]]  # the current rows only
    assert data[f"{maria.name}.events"].header == ["id", "created_at", "body"]


def test_export_full_without_a_config_publishes_every_table(maria: MariaDatabase,
                                                            tmp_path: Path) -> None:
    _setup(maria)
    out = tmp_path / "pub"
    dry = run_cli("export", "full", "--source", maria.replica_url, "--to", str(out),
                  "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "an export would read 6 tables" in dry.stdout
    full = run_cli("export", "full", "--source", maria.replica_url, "--to", str(out))
    assert full.exit_code == 0, full.output
    assert "exporting every column of all 6 tables" in full.stderr
    data = _full(out)
    assert sorted(data[f"{maria.name}.plain"].rows) == [["", ""], ["1", "2026-01-01"]]
    assert data[f"{maria.name}.odd name"].rows == [["7", 'q"uote']]
    assert "email" in data[f"{maria.name}.events"].header  # no config: every column
    assert PASSWORD not in dry.output + full.output
    synced = run_cli("sync", str(out), str(tmp_path / "r.duckdb"))
    assert synced.exit_code == 0, synced.output
    checked = run_cli("verify", str(tmp_path / "r.duckdb"), "--against", maria.replica_url)
    assert checked.exit_code == 0, checked.output


def test_a_primary_and_an_unknown_database_are_refused(maria: MariaDatabase,
                                                       tmp_path: Path) -> None:
    _setup(maria)
    primary = run_cli("init", "--source", maria.primary_url, "--output", "-")
    assert primary.exit_code == 4, primary.output
    assert "--allow-primary" in error_lines(primary)[1]
    allowed = run_cli("init", "--source", maria.primary_url, "--output", "-",
                      "--allow-primary")
    assert allowed.exit_code == 0, allowed.output
    assert "[tables.events]" in allowed.stdout
    unknown = run_cli("init", "--source", maria.replica_url, "--schema", maria.name + "x",
                      "--output", "-")
    assert unknown.exit_code == 2, unknown.output
    err, hint = error_lines(unknown)
    assert "does not exist" in err and maria.name in err + hint
    assert not list(tmp_path.iterdir())


def test_check_config_names_every_problem(maria: MariaDatabase, tmp_path: Path) -> None:
    _setup(maria)
    cfg = write_config(tmp_path / "c.toml", f"""
dataset = "shop"
[source]
url = "{maria.replica_url}"
[tables.events]
schema = "{maria.name}"
method = "append"
cursor = "body"
[tables.nope]
schema = "{maria.name}"
[tables.plain]
schema = "{maria.name}"
filter = "no_such_column > 1"
[tables.accounts]
schema = "{maria.name}"
columns = {{ nmae = "private" }}
""")
    r = run_cli("check-config", "--config", cfg)
    assert r.exit_code == 2, r.output
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert any("cursor column body" in e for e in errors), errors
    assert any("nope does not exist" in e for e in errors), errors
    assert any("filter of" in e and "no_such_column" in e for e in errors), errors
    assert any("'nmae'" in e and "did you mean name" in e for e in errors), errors
    assert "4 problems" in errors[-1]
    assert PASSWORD not in r.output
