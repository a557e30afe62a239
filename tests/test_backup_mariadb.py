"""Backups of a MariaDB replica: mariadb-dump -> zstd -> age -> store, restore into MariaDB,
and the drill in a throwaway mariadbd; on real servers (a primary and a binlog replica)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyrage
import pytest
import zstandard

from support.backup import AgeKey
from support.cli import error_lines, run_cli, write_config
from support.maria_backup import (
    BACKUP_PASSWORD,
    HOSTILE,
    empty_db,
    source_url,
    table_rows,
    take_backup,
)
from support.mariadb import MariaDatabase
from support.s3_server import S3Server
from topoff.backup.maria_dump import MariaDump
from topoff.backup.mariadbd import MariaServer, give_to_server_user


def test_backup_restore_drill_and_check(shop: MariaDatabase, age_key: AgeKey, tmp_path: Path,
                                        env: dict[str, str | None]) -> None:
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.shop", env)
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
    obj = (store / "backups" / "dump.shop.sql.zst.age").read_bytes()
    sql_text = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(pyrage.decrypt(
        obj, [pyrage.x25519.Identity.from_str(age_key.secret)])), read_across_frames=True).read()
    assert finished["plain_size"] == len(sql_text)  # the most a restore decompresses

    # restore into an empty database: the values survive, byte for byte
    pair = shop.pair
    target = empty_db(pair, shop.name + "_copy")
    result = run_cli("restore", str(store), "--latest", "--identity", str(age_key.identity),
                     "--target", target)
    assert result.exit_code == 0, result.stderr
    assert table_rows(pair.primary, shop.name + "_copy") == table_rows(pair.primary, shop.name)
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
    assert table_rows(pair.primary, shop.name + "_copy") == table_rows(pair.primary, shop.name)
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
    assert take_backup(shop, age_key, url, "dump.s3", env).exit_code == 0  # type: ignore[attr-defined]
    drill = run_cli("backups", "drill", url, "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stderr
    assert "drill of dump.s3 passed: 3 tables match" in drill.stdout


def test_tampered_object_is_refused(backed_up: Path, shop: MariaDatabase,
                                    age_key: AgeKey) -> None:
    obj = backed_up / "backups" / "dump.a.sql.zst.age"
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    target = empty_db(shop.pair, shop.name + "_t")
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
    started["started"] = (datetime.fromisoformat(started["started"])  # just after a's
                          + timedelta(microseconds=1)).isoformat()
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
    args = ("backup", "--source", source_url(shop, primary=True), "--to", str(store),
            "--recipient", age_key.public)
    refused = run_cli(*args, "--name", "dump.p", env=env)
    assert refused.exit_code == 4, refused.stderr
    assert "is a primary" in error_lines(refused)[0]
    assert not (store / "catalog" / "dump.p").exists()
    allowed = run_cli(*args, "--name", "dump.q", "--allow-primary", env=env)
    assert allowed.exit_code == 0, allowed.stderr


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


@pytest.mark.parametrize("solo_server", [True], ids=["binlog"], indirect=True)
def test_a_dump_read_whole_with_its_header_still_ends_completed(solo_server: MariaServer,
                                                                tmp_path: Path) -> None:
    """A small dump that has already ended when its header is read comes whole in the
    header's reads: its 'Dump completed' line is found there (it was looked for only in
    the later reads, and such a backup failed now and then)."""
    defaults = tmp_path / "my.cnf"
    defaults.write_text(f"[client]\nuser=root\nsocket={solo_server.socket}\n")
    dump = MariaDump(shutil.which("mariadb-dump") or "mariadb-dump", defaults, "solo")
    dump.start()
    assert dump.proc is not None
    dump.proc.wait()  # all of it waits in the pipe now
    head = dump.header()
    assert b"-- Dump completed" in head and dump.position is not None
    assert dump.chunks() == b""
    dump.finish()


def test_an_object_swapped_for_another_backup_is_refused(
        backed_up: Path, shop: MariaDatabase, age_key: AgeKey,
        env: dict[str, str | None]) -> None:
    """A whole, validly encrypted object of another backup: age accepts it, the catalog's
    plain_size (it holds a row more), size and SHA-256 do not (exit 6, and the message
    says the target holds what came in)."""
    shop.execute("INSERT INTO empty_one VALUES (1)")
    assert take_backup(shop, age_key, str(backed_up), "dump.other", env).exit_code == 0  # type: ignore[attr-defined]
    shutil.copy(backed_up / "backups" / "dump.other.sql.zst.age",
                backed_up / "backups" / "dump.a.sql.zst.age")
    target = empty_db(shop.pair, shop.name + "_s")
    try:
        result = run_cli("restore", str(backed_up), "--name", "dump.a", "--identity",
                         str(age_key.identity), "--target", target)
        assert result.exit_code == 6, result.stderr
        error, hint = error_lines(result)
        # larger in bytes and in SQL: whichever bound the read passes first stops it
        assert "more than" in error and "its catalog entry declares" in error
        assert "holds a partial restore" in error
        assert "drop what was restored" in hint
    finally:
        shop.pair.primary.sql(f"DROP DATABASE `{shop.name}_s`")


