"""verify finds a table in the source by its schema and name, even when a name holds a dot."""

from __future__ import annotations

import pytest

from support.cli import run_cli


@pytest.mark.parametrize("target", ["duckdb", "postgresql"])
def test_verify_a_schema_whose_name_holds_a_dot(db, tmp_path, target):
    db.execute('CREATE SCHEMA "a.b"; CREATE TABLE "a.b"."x.y" (id integer PRIMARY KEY, v text);'
               'INSERT INTO "a.b"."x.y" SELECT g, md5(g::text) FROM generate_series(1, 20) g')
    dest = tmp_path / "published"
    full = run_cli("export", "full", "--source", db.standby_url, "--to", str(dest),
                   "--schema", "a.b")
    assert full.exit_code == 0, full.stderr
    if target == "duckdb":
        replica = str(tmp_path / "r.duckdb")
    else:
        name = f"{db.name}_r"
        db.cluster.create_database(name)
        replica = db.cluster.primary.url(name)
    synced = run_cli("sync", str(dest), replica)
    assert synced.exit_code == 0, synced.stderr
    checked = run_cli("verify", replica, "--against", db.standby_url)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    assert "internal error" not in checked.stderr
