"""MariaDB backup tests' shared parts: the backup account, a database with hostile names
and values, a backup of it, and helpers to run topoff and look at its children."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.backup import AgeKey
from support.cli import run_cli
from support.mariadb import MariaDatabase, MariaPair

BACKUP_USER = "bk"
#: quotes, a backslash, a hash and spaces: the option file must carry them intact
BACKUP_PASSWORD = "p'w\"d \\ #x9-secret"
HOSTILE = "we`ird ta'ble \"x\" ü中 %s"  # identifiers: the BMP only
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="session")
def backup_user(maria_pair: MariaPair) -> str:
    """The account a backup needs (docs/backups.md), created on the primary (replicated)."""
    pw = BACKUP_PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    maria_pair.primary.sql(
        f"CREATE USER '{BACKUP_USER}'@'127.0.0.1' IDENTIFIED BY '{pw}';"
        f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, BINLOG MONITOR, REPLICA MONITOR "
        f"ON *.* TO '{BACKUP_USER}'@'127.0.0.1';")
    maria_pair.wait_replica()
    return BACKUP_USER


def source_url(maria: MariaDatabase, primary: bool = False) -> str:
    server = maria.pair.primary if primary else maria.pair.replica
    return server.url(maria.name, user=BACKUP_USER, password=None)


@pytest.fixture
def env() -> dict[str, str | None]:
    """The backup user's password reaches topoff through MYSQL_PWD, as the client's does."""
    return {"MYSQL_PWD": BACKUP_PASSWORD, "HOME": "/nonexistent"}


SHOP = f"""
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
CREATE TABLE items (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  at DATETIME(6), d DATE, ts TIMESTAMP(6) NULL,
  body TEXT, raw BLOB, price DECIMAL(20,6), ratio DOUBLE, flags BIT(5),
  kind ENUM('a','b,c'), doc JSON, gen INT AS (id MOD 7) VIRTUAL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO items (id, at, d, ts, body, raw, price, ratio, flags, kind, doc) VALUES
  (18446744073709551615, '0000-00-00 00:00:00', '0000-00-00', NULL, 'ä😀 "q" \\\\ ''s''',
   UNHEX('00FF0A0D5C2722'), 12345678901234.123456, 0.1, b'10101', 'b,c', '{{"k": [1, 2]}}'),
  (2, '2024-02-29 23:59:59.999999', '2024-00-10', '2024-03-01 00:00:00.000001', '',
   '', -0.000001, -1.5e300, b'0', 'a', NULL),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE `{HOSTILE.replace('`', '``')}` (`col ``x`` é` VARCHAR(20) PRIMARY KEY, n INT);
INSERT INTO `{HOSTILE.replace('`', '``')}` VALUES ('a', 1), ('😀', 2), ('%s', 3);
CREATE TABLE empty_one (id INT PRIMARY KEY);
CREATE VIEW item_ids AS SELECT id FROM items;
CREATE TRIGGER items_bi BEFORE INSERT ON items FOR EACH ROW SET NEW.body = NEW.body;
CREATE PROCEDURE count_items() SELECT COUNT(*) FROM items;
"""
COLUMNS = ("id, HEX(CAST(at AS BINARY)), HEX(CAST(d AS BINARY)), ts, HEX(body), HEX(raw), "
           "price, ratio, BIN(flags), kind, doc, gen")


@pytest.fixture
def shop(maria: MariaDatabase, backup_user: str) -> MariaDatabase:
    maria.execute(SHOP)
    return maria


def table_rows(server: object, database: str) -> list[list[list[str]]]:
    out = [server.query(f"SELECT {COLUMNS} FROM items ORDER BY id", database)]  # type: ignore[attr-defined]
    q = HOSTILE.replace("`", "``")
    out.append(server.query(f"SELECT * FROM `{q}` ORDER BY n", database))  # type: ignore[attr-defined]
    return out


def take_backup(shop: MariaDatabase, key: AgeKey, store: str, name: str,
            env: dict[str, str | None], *extra: str) -> object:
    return run_cli("backup", "--source", source_url(shop), "--to", store, "--name", name,
                   "--recipient", key.public, *extra, env=env)


def empty_db(pair: MariaPair, name: str) -> str:
    pair.primary.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    pair.wait_replica()
    return pair.primary.root_url(name)


@pytest.fixture
def backed_up(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path,
              env: dict[str, str | None]) -> Path:
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.a", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    return store


def children(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(entry), cmd))
    return out


