"""Backups of a MariaDB replica: mariadb-dump -> zstd -> age -> store, restore into MariaDB,
and the drill in a throwaway mariadbd; on real servers (a primary and a binlog replica)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from support.backup import AgeKey
from support.cli import error_lines, run_cli, write_config
from support.mariadb import MariaDatabase, MariaPair
from support.s3_server import S3Server
from topoff.backup.maria_client import option_text
from topoff.backup.mariadbd import MariaServer, give_to_server_user
from topoff.sources.mariadb.connect import MariaTarget

BACKUP_USER = "bk"
#: quotes, a backslash, a hash and spaces: the option file must carry them intact
BACKUP_PASSWORD = "p'w\"d \\ #x9-secret"
HOSTILE = "we`ird ta'ble \"x\" ü中 %s"  # identifiers: the BMP only
SRC = Path(__file__).resolve().parents[1] / "src"


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


def _url(maria: MariaDatabase, primary: bool = False) -> str:
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


def _rows(server: object, database: str) -> list[list[list[str]]]:
    out = [server.query(f"SELECT {COLUMNS} FROM items ORDER BY id", database)]  # type: ignore[attr-defined]
    q = HOSTILE.replace("`", "``")
    out.append(server.query(f"SELECT * FROM `{q}` ORDER BY n", database))  # type: ignore[attr-defined]
    return out


def _backup(shop: MariaDatabase, key: AgeKey, store: str, name: str,
            env: dict[str, str | None], *extra: str) -> object:
    return run_cli("backup", "--source", _url(shop), "--to", store, "--name", name,
                   "--recipient", key.public, *extra, env=env)


def _empty_db(pair: MariaPair, name: str) -> str:
    pair.primary.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    pair.wait_replica()
    return pair.primary.root_url(name)


def test_backup_restore_drill_and_check(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path,
                                        env: dict[str, str | None]) -> None:
    store = tmp_path / "store"
    result = _backup(shop, age_key, str(store), "dump.shop", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert BACKUP_PASSWORD not in result.stdout + result.stderr  # type: ignore[attr-defined]
    assert (store / "backups" / "dump.shop.sql.zst.age").exists()
    started = json.loads((store / "catalog/dump.shop/started.json").read_text())
    finished = json.loads((store / "catalog/dump.shop/finished.json").read_text())
    assert started["engine"] == finished["engine"] == "mariadb"
    assert finished["same_snapshot"] is True
    pos = finished["position"]
    assert pos["binlog_file"] and pos["binlog_position"] > 0 and pos["gtid"]
    assert pos["binlog_file"] == started["snapshot"]["binlog_file"]
    assert finished["tables"]["items"]["rows"] == 3
    assert finished["tables"][HOSTILE]["rows"] == 3
    assert finished["tables"]["empty_one"] == {"rows": 0, "hash": "0"}
    assert "item_ids" not in finished["tables"]  # a view holds no data of its own
    assert BACKUP_PASSWORD not in json.dumps([started, finished])

    # restore into an empty database: the values survive, byte for byte
    pair = shop.pair
    target = _empty_db(pair, shop.name + "_copy")
    result = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                     "--target", target)
    assert result.exit_code == 0, result.stderr
    assert _rows(pair.primary, shop.name + "_copy") == _rows(pair.primary, shop.name)
    assert pair.primary.query("CALL count_items()", shop.name + "_copy") == [["3"]]
    assert pair.primary.query("SELECT COUNT(*) FROM item_ids", shop.name + "_copy") == [["3"]]
    # the target is no longer empty: refused, unless --clean
    again = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                    "--target", target)
    assert again.exit_code == 7
    assert "is not empty" in error_lines(again)[0]
    clean = run_cli("restore", str(store), "--name", "dump.shop", "--identity",
                    str(age_key.identity), "--target", target, "--clean")
    assert clean.exit_code == 0, clean.stderr
    assert _rows(pair.primary, shop.name + "_copy") == _rows(pair.primary, shop.name)
    pair.primary.sql(f"DROP DATABASE `{shop.name}_copy`")

    # the drill, in a throwaway mariadbd, with a configured check
    cfg = write_config(tmp_path / "c.toml",
                       '[backup]\nchecks = ["SELECT COUNT(*) = 3 FROM items"]\n'
                       f'identity = "{age_key.identity}"\n')
    drill = run_cli("backups", "drill", str(store), "--config", cfg)
    assert drill.exit_code == 0, drill.stderr
    assert "drill of dump.shop passed: 3 tables match, 1 checks passed" in drill.stdout
    (d,) = [json.loads(p.read_text()) for p in (store / "catalog/dump.shop").glob("drill-*")]
    assert d["ok"] is True and d["mismatches"] == [] and d["tables"] == 3
    listed = json.loads(run_cli("backups", "list", str(store), "--json").stdout)
    assert listed[0]["engine"] == "mariadb" and listed[0]["drill"]["ok"] is True

    # freshness checks read MariaDB entries as they read PostgreSQL ones
    check = run_cli("backups", "check", str(store), "--max-age", "1h")
    assert check.exit_code == 0, check.stdout
    assert check.stdout.startswith("BACKUP OK - dump.shop finished")


def test_backup_to_s3_and_drill(shop: MariaDatabase, age_key: AgeKey, s3_server: S3Server,
                                env: dict[str, str | None]) -> None:
    url = f"s3://{s3_server.create_bucket()}/maria"
    assert _backup(shop, age_key, url, "dump.s3", env).exit_code == 0  # type: ignore[attr-defined]
    drill = run_cli("backups", "drill", url, "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr
    assert "drill of dump.s3 passed: 3 tables match" in drill.stdout


@pytest.fixture
def backed_up(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path,
              env: dict[str, str | None]) -> Path:
    store = tmp_path / "store"
    result = _backup(shop, age_key, str(store), "dump.a", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    return store


def test_tampered_object_is_refused(backed_up: Path, shop: MariaDatabase,
                                    age_key: AgeKey) -> None:
    obj = backed_up / "backups" / "dump.a.sql.zst.age"
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    target = _empty_db(shop.pair, shop.name + "_t")
    try:
        result = run_cli("restore", str(backed_up), "--latest", "--identity",
                         str(age_key.identity), "--target", target)
        assert result.exit_code == 6, result.stderr
        assert "cannot be decrypted" in error_lines(result)[0]
    finally:
        shop.pair.primary.sql(f"DROP DATABASE `{shop.name}_t`")
    drill = run_cli("backups", "drill", str(backed_up), "--identity", str(age_key.identity))
    assert drill.exit_code == 6
    (d,) = [json.loads(p.read_text()) for p in (backed_up / "catalog/dump.a").glob("drill-*")]
    assert d["ok"] is False and "cannot be decrypted" in d["error"]


def test_drill_fails_when_the_restored_data_differs(backed_up: Path, age_key: AgeKey) -> None:
    # catalog objects are never overwritten: a second entry, same object, one hash changed
    src, dst = backed_up / "catalog" / "dump.a", backed_up / "catalog" / "dump.b"
    dst.mkdir()
    started = json.loads((src / "started.json").read_text())
    started["started"] = started["started"].replace("+00:00", "1+00:00")  # sorts after a
    (dst / "started.json").write_text(json.dumps(started))
    finished = json.loads((src / "finished.json").read_text())
    finished["tables"][HOSTILE]["hash"] = "12345"
    (dst / "finished.json").write_text(json.dumps(finished))
    shutil.copy(backed_up / "backups" / "dump.a.sql.zst.age",
                backed_up / "backups" / "dump.b.sql.zst.age")
    result = run_cli("backups", "drill", str(backed_up), "--identity", str(age_key.identity))
    assert result.exit_code == 6, result.stderr
    assert "content hash differs" in error_lines(result)[0]
    assert HOSTILE in error_lines(result)[0]


def test_primary_refused_unless_allowed(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path,
                                        env: dict[str, str | None]) -> None:
    store = tmp_path / "store"
    args = ("backup", "--source", _url(shop, primary=True), "--to", str(store),
            "--recipient", age_key.public)
    refused = run_cli(*args, "--name", "dump.p", env=env)
    assert refused.exit_code == 4, refused.stderr
    assert "is a primary" in error_lines(refused)[0]
    assert not (store / "catalog" / "dump.p").exists()
    allowed = run_cli(*args, "--name", "dump.q", "--allow-primary", env=env)
    assert allowed.exit_code == 0, allowed.stderr


def test_password_never_on_argv(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path) -> None:
    """The real mariadb-dump child, seen through a wrapper: its /proc/<pid>/cmdline and
    environment hold no password; the option file it reads is 0600 and gone afterwards."""
    shim = tmp_path / "bin"
    shim.mkdir()
    seen = tmp_path / "seen"
    real = shutil.which("mariadb-dump")
    assert real
    (shim / "mariadb-dump").write_text(
        "#!/bin/sh\n"
        f"tr '\\0' '\\n' < /proc/$$/cmdline > {seen}.argv\n"
        f"tr '\\0' '\\n' < /proc/$$/environ > {seen}.env\n"
        f"for a in \"$@\"; do case $a in --defaults-extra-file=*) "
        f"f=${{a#--defaults-extra-file=}}; stat -c %a \"$f\" > {seen}.mode; "
        f"echo \"$f\" > {seen}.file; stat -c %a \"$(dirname \"$f\")\" > {seen}.dirmode;; "
        f"esac; done\n"
        f"exec {real} \"$@\"\n")
    (shim / "mariadb-dump").chmod(0o755)
    url = shop.pair.replica.url(shop.name, user=BACKUP_USER,
                                password=quote(BACKUP_PASSWORD, safe=""))
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "PATH": f"{shim}:{os.environ['PATH']}"}
    env["MYSQL_PWD"] = BACKUP_PASSWORD  # given this way too: still not the child's
    proc = subprocess.run(
        [sys.executable, "-m", "topoff", "backup", "--source", url, "--to",
         str(tmp_path / "store"), "--name", "dump.x", "--recipient", age_key.public],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    argv = Path(f"{seen}.argv").read_text()
    assert "mariadb-dump" in argv and "--defaults-extra-file=" in argv
    assert BACKUP_PASSWORD not in argv and "secret" not in argv
    assert "secret" not in Path(f"{seen}.env").read_text()
    assert Path(f"{seen}.mode").read_text().strip() == "600"
    assert Path(f"{seen}.dirmode").read_text().strip() == "700"
    assert not Path(Path(f"{seen}.file").read_text().strip()).exists()
    assert "secret" not in proc.stdout + proc.stderr


def test_option_file_escapes_values() -> None:
    text = option_text(MariaTarget(user="u", host="h", port=1, password='a"b\\c\nd'))
    assert 'password="a\\"b\\\\c\\nd"' in text
    assert "protocol=TCP" in text


def _children(pid: int) -> list[tuple[int, str]]:
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


@pytest.fixture
def slow_restore(tmp_path: Path) -> Iterator[Path]:
    """A mariadb client that waits before reading: the drill's server is up meanwhile."""
    shim = tmp_path / "slowbin"
    shim.mkdir()
    real = shutil.which("mariadb")
    assert real
    (shim / "mariadb").write_text(f"#!/bin/sh\nsleep 30\nexec {real} \"$@\"\n")
    (shim / "mariadb").chmod(0o755)
    yield shim


def test_drill_interrupted_leaves_nothing_running(backed_up: Path, age_key: AgeKey,
                                                  slow_restore: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "PATH": f"{slow_restore}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "backups", "drill", str(backed_up), "--identity",
         str(age_key.identity)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        server = None
        deadline = time.monotonic() + 120
        while server is None and time.monotonic() < deadline and proc.poll() is None:
            kids = _children(proc.pid)
            server = next(((p, c) for p, c in kids if "mariadbd" in c), None)
            client = any("sleep" in c or "slowbin" in c for p, c in kids)
            if server is not None and not client:
                server = None
            time.sleep(0.1)
        assert server is not None, proc.stderr.read() if proc.poll() is not None else ""
        datadir = next(a.split("=", 1)[1] for a in server[1].split()
                       if a.startswith("--datadir="))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.returncode == 130, proc.stderr.read()
        assert not Path(f"/proc/{server[0]}").exists() or \
            "zombie" in Path(f"/proc/{server[0]}/status").read_text()
        assert not Path(datadir).parent.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _committing_dump(tmp_path: Path, shop: MariaDatabase, every_time: bool) -> Path:
    """A mariadb-dump that first commits a row on the primary and waits for the replica to
    apply it: the dump's snapshot then sees a commit that topoff's did not."""
    shim = tmp_path / "commitbin"
    shim.mkdir()
    real, client = shutil.which("mariadb-dump"), shutil.which("mariadb")
    p, r = shop.pair.primary.socket, shop.pair.replica.socket
    marker = tmp_path / "committed"
    once = "" if every_time else f"[ -e {marker} ] || "
    count = f"{client} --no-defaults --socket={r} -uroot -N -e " \
        f"'SELECT COUNT(*) FROM `{shop.name}`.empty_one'"
    (shim / "mariadb-dump").write_text(
        "#!/bin/sh\n"
        f"{once}{{ n=$(( $({count}) + 1 )); "
        f"{client} --no-defaults --socket={p} -uroot -e "
        f"\"INSERT INTO \\`{shop.name}\\`.empty_one VALUES ($n)\"; "
        f"until [ \"$({count})\" = \"$n\" ]; do sleep 0.05; done; touch {marker}; }}\n"
        f"exec {real} \"$@\"\n")
    (shim / "mariadb-dump").chmod(0o755)
    return shim


def test_a_commit_between_the_snapshots_starts_both_again(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{_committing_dump(tmp_path, shop, False)}:{os.environ['PATH']}")
    store = tmp_path / "store"
    result = _backup(shop, age_key, str(store), "dump.c", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert "starting both again" in result.stderr  # type: ignore[attr-defined]
    finished = json.loads((store / "catalog/dump.c/finished.json").read_text())
    # the row committed before the dump's first attempt is in the hashes and in the dump
    assert finished["tables"]["empty_one"]["rows"] == 1 and finished["same_snapshot"]
    monkeypatch.undo()
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr


def test_snapshots_that_never_agree_fail_the_backup(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{_committing_dump(tmp_path, shop, True)}:{os.environ['PATH']}")
    store = tmp_path / "store"
    result = _backup(shop, age_key, str(store), "dump.n", env)
    assert result.exit_code == 3, result.stderr  # type: ignore[attr-defined]
    assert "differed 5 times" in error_lines(result)[0]  # type: ignore[arg-type]
    assert (store / "catalog/dump.n/failed.json").exists()
    assert not (store / "backups/dump.n.sql.zst.age").exists()


def test_engines_do_not_mix(backed_up: Path, age_key: AgeKey) -> None:
    result = run_cli("restore", str(backed_up), "--latest", "--identity",
                     str(age_key.identity), "--target", "postgresql://localhost/x")
    assert result.exit_code == 2
    assert "is a mariadb backup" in error_lines(result)[0]


@pytest.fixture
def solo_server(request: pytest.FixtureRequest) -> Iterator[MariaServer]:
    """A standalone server (replicating nothing), with or without a binlog."""
    base = Path(tempfile.mkdtemp(prefix="topoff-solo-"))
    os.chmod(base, 0o755)
    give_to_server_user(base)
    server = MariaServer("solo", base)
    try:
        server.init()
        server.start(log_bin=request.param)  # log_slave_updates stays off (the default)
        server.sql("CREATE DATABASE solo; CREATE TABLE solo.t (id INT PRIMARY KEY, v TEXT); "
                   "INSERT INTO solo.t VALUES (1, 'x'), (2, NULL);")
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("solo_server", [True, False], ids=["binlog", "no-binlog"],
                         indirect=True)
def test_a_standalone_server_with_and_without_a_binlog(solo_server: MariaServer,
                                                       age_key: AgeKey, tmp_path: Path) -> None:
    """With a binlog, a server that replicates nothing proves the snapshot by the position
    (log_slave_updates is irrelevant there). Without one, the dump runs without
    --master-data, the catalog says same_snapshot false and a warning says why; the backup
    still restores and drills."""
    binlog = solo_server.proc is not None and "--log-bin=solo-bin" in solo_server.proc.args
    store = tmp_path / "store"
    result = run_cli("backup", "--source", solo_server.root_url("solo"), "--to", str(store),
                     "--name", "dump.solo", "--recipient", age_key.public, "--allow-primary")
    assert result.exit_code == 0, result.stderr
    assert ("not provably the dump's own" in result.stderr) is not binlog
    finished = json.loads((store / "catalog/dump.solo/finished.json").read_text())
    assert finished["same_snapshot"] is binlog
    if binlog:
        assert finished["position"]["binlog_file"] == "solo-bin.000001"
    else:
        assert finished["position"] == {"binlog_file": None, "binlog_position": None,
                                        "gtid": None}
    assert finished["tables"]["t"]["rows"] == 2
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr


def test_an_object_swapped_for_another_backup_is_refused(
        backed_up: Path, shop: MariaDatabase, age_key: AgeKey,
        env: dict[str, str | None]) -> None:
    """A whole, validly encrypted object of another backup: age accepts it, the catalog's
    size and SHA-256 do not (exit 6, and the message says the target holds what came in)."""
    shop.execute("INSERT INTO empty_one VALUES (1)")
    assert _backup(shop, age_key, str(backed_up), "dump.other", env).exit_code == 0  # type: ignore[attr-defined]
    shutil.copy(backed_up / "backups" / "dump.other.sql.zst.age",
                backed_up / "backups" / "dump.a.sql.zst.age")
    target = _empty_db(shop.pair, shop.name + "_s")
    try:
        result = run_cli("restore", str(backed_up), "--name", "dump.a", "--identity",
                         str(age_key.identity), "--target", target)
        assert result.exit_code == 6, result.stderr
        error, hint = error_lines(result)
        assert "does not match its catalog entry" in error and "drop what was restored" in hint
    finally:
        shop.pair.primary.sql(f"DROP DATABASE `{shop.name}_s`")


def test_backup_interrupted_records_failure_and_leaves_nothing(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path) -> None:
    shim = tmp_path / "slowdump"
    shim.mkdir()
    real = shutil.which("mariadb-dump")
    (shim / "mariadb-dump").write_text(f"#!/bin/sh\nsleep 30\nexec {real} \"$@\"\n")
    (shim / "mariadb-dump").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "PATH": f"{shim}:{os.environ['PATH']}", "MYSQL_PWD": BACKUP_PASSWORD}
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "backup", "--source", _url(shop), "--to", str(store),
         "--name", "dump.i", "--recipient", age_key.public],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        dump = None
        deadline = time.monotonic() + 60
        while dump is None and time.monotonic() < deadline and proc.poll() is None:
            dump = next(((p, c) for p, c in _children(proc.pid) if "slowdump" in c), None)
            time.sleep(0.05)
        assert dump is not None, proc.stderr.read() if proc.poll() is not None else ""
        defaults = next(a.split("=", 1)[1] for a in dump[1].split()
                        if a.startswith("--defaults-extra-file="))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert proc.returncode == 130, proc.stderr.read()
        assert not Path(f"/proc/{dump[0]}").exists()
        assert not Path(defaults).parent.exists()
        failed = json.loads((store / "catalog/dump.i/failed.json").read_text())
        assert failed["error"] == "interrupted"
        assert not (store / "backups/dump.i.sql.zst.age").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
