"""Sequences in a MariaDB backup's drill: compared by their definition (a restore that
lost one, or gave it another increment or cache, passed the drill: it compared tables
only). Their position is not compared: MariaDB reads a sequence outside any snapshot."""

from __future__ import annotations

import json
from pathlib import Path

from support.backup import AgeKey
from support.cli import run_cli
from support.maria_backup import take_backup
from support.mariadb import MariaDatabase
from topoff.backup.maria_tables import table_hashes
from topoff.sources.mariadb.connect import connect

SEQUENCES = """
CREATE SEQUENCE s1 START WITH 1 INCREMENT BY 1 CACHE 1000;
CREATE SEQUENCE s3 START WITH -1 INCREMENT BY -1 MINVALUE -100 MAXVALUE -1 CYCLE CACHE 10;
SELECT NEXTVAL(s1), NEXTVAL(s3);
"""


def test_the_drill_compares_sequences_by_their_definition(
        shop: MariaDatabase, age_key: AgeKey, tmp_path: Path, env: dict[str, str | None]
        ) -> None:
    shop.execute(SEQUENCES)
    with connect(shop.replica_url) as conn:
        before = table_hashes(conn)
    assert before["s1"]["rows"] == 1 and "s3" in before
    shop.execute("SELECT NEXTVAL(s1) FROM seq_1_to_2000")  # its position: not compared
    with connect(shop.replica_url) as conn:
        assert table_hashes(conn)["s1"] == before["s1"]
    shop.execute("ALTER SEQUENCE s1 CACHE 5")
    with connect(shop.replica_url) as conn:
        assert table_hashes(conn)["s1"] != before["s1"]
    store = tmp_path / "store"
    result = take_backup(shop, age_key, str(store), "dump.q", env)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    finished = json.loads((store / "catalog/dump.q/finished.json").read_text())
    assert {"s1", "s3"} <= set(finished["tables"])
    drill = run_cli("backups", "drill", str(store), "--identity", str(age_key.identity))
    assert drill.exit_code == 0, drill.stdout + drill.stderr
