"""A MariaDB backup object replaced by a hostile one, validly encrypted to the backup's
recipient (whose public key is in started.json): what the restore host must not give away."""

from __future__ import annotations

import json
from pathlib import Path

import pyrage
import zstandard

from support.backup import AgeKey
from support.cli import error_lines, run_cli
from support.maria_backup import empty_db
from support.mariadb import MariaDatabase


def test_a_hostile_dump_cannot_read_files_of_the_restore_host(
        backed_up: Path, shop: MariaDatabase, age_key: AgeKey) -> None:
    started = json.loads((backed_up / "catalog/dump.a/started.json").read_text())
    recipient = pyrage.x25519.Recipient.from_str(started["recipients"][0])
    sql = (f"CREATE TABLE leak (x LONGTEXT);\n"
           f"LOAD DATA LOCAL INFILE '{age_key.identity}' INTO TABLE leak "
           f"FIELDS TERMINATED BY '\\0';\n").encode()
    (backed_up / "backups/dump.a.sql.zst.age").write_bytes(
        pyrage.encrypt(zstandard.ZstdCompressor().compress(sql), [recipient]))
    target = empty_db(shop.pair, shop.name + "_h")
    try:
        result = run_cli("restore", str(backed_up), "--name", "dump.a", "--identity",
                         str(age_key.identity), "--target", target)
        rows = shop.pair.primary.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = '{shop.name}_h'")
        assert rows == [["leak"]], result.stderr
        assert shop.pair.primary.query(f"SELECT COUNT(*) FROM `{shop.name}_h`.leak") \
            == [["0"]]
        # the client's error, not the statement it echoes before it
        assert result.exit_code == 7, result.stderr
        error, hint = error_lines(result)
        assert "mariadb client failed (exit status 1): ERROR" in error, error
        assert "local infile" in error and "partial restore" in hint
        assert age_key.secret not in result.output
    finally:
        shop.pair.primary.sql(f"DROP DATABASE `{shop.name}_h`")


def test_a_hostile_dump_cannot_touch_files_of_the_drill_host(
        backed_up: Path, age_key: AgeKey, tmp_path: Path) -> None:
    """The drill's throwaway mariadbd reads and writes no file outside its own directory
    (LOAD_FILE, SELECT ... INTO OUTFILE), whatever the dump says."""
    import os
    import shutil
    import tempfile

    started = json.loads((backed_up / "catalog/dump.a/started.json").read_text())
    recipient = pyrage.x25519.Recipient.from_str(started["recipients"][0])
    out = Path(tempfile.mkdtemp(prefix="topoff-drill-files-"))
    os.chmod(out, 0o777)  # the throwaway server's user could write here
    planted = out / "written-by-the-dump"
    sql = (f"CREATE TABLE leak (x LONGTEXT);\n"
           f"INSERT INTO leak VALUES (LOAD_FILE('{age_key.identity}'));\n"
           f"SELECT 'x' INTO OUTFILE '{planted}';\n").encode()
    (backed_up / "backups/dump.a.sql.zst.age").write_bytes(
        pyrage.encrypt(zstandard.ZstdCompressor().compress(sql), [recipient]))
    try:
        result = run_cli("backups", "drill", str(backed_up), "--name", "dump.a",
                         "--identity", str(age_key.identity))
        assert not planted.exists()
        assert result.exit_code in (6, 7), result.stderr
        assert age_key.secret not in result.output
    finally:
        shutil.rmtree(out, ignore_errors=True)
