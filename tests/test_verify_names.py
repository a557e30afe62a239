"""verify finds a table in the source by its schema and name, even when a name holds a dot."""

from __future__ import annotations

import pytest

from support.cli import error_lines, run_cli


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


def test_columns_whose_names_differ_only_in_case(db, tmp_path):
    """"A" and "a" are two PostgreSQL columns but one DuckDB name: a DuckDB replica refuses
    the table (exit 7, it was an internal error), an Iceberg replica keeps both and verify
    compares the first, with a note (it compared "A" twice and reported a difference)."""
    from test_iceberg_sync import catalog_file

    db.execute('CREATE TABLE twins (id integer PRIMARY KEY, "A" text, a text, "B" int);'
               "INSERT INTO twins VALUES (1, 'upper', 'lower', 2), (2, NULL, '', NULL)")
    dest = tmp_path / "published"
    full = run_cli("export", "full", "--source", db.standby_url, "--to", str(dest))
    assert full.exit_code == 0, full.stderr
    refused = run_cli("sync", str(dest), str(tmp_path / "r.duckdb"))
    assert refused.exit_code == 7, refused.stderr
    err, hint = error_lines(refused)
    assert "'A' and 'a'" in err and "PostgreSQL or Iceberg" in hint
    assert not (tmp_path / "r.duckdb").exists()
    target = catalog_file(tmp_path)
    assert run_cli("sync", str(dest), target).exit_code == 0
    checked = run_cli("verify", target, "--against", db.standby_url)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    assert "note: public.twins.a: not compared" in checked.stdout


def test_tables_whose_names_differ_only_in_case(db, tmp_path):
    """"T" and t: a DuckDB replica refuses them with exit 7 (an internal error before),
    an Iceberg replica keeps both."""
    from test_iceberg_sync import catalog_file

    db.execute('CREATE TABLE "Twin" (id integer PRIMARY KEY); CREATE TABLE twin (id integer '
               "PRIMARY KEY); INSERT INTO twin VALUES (1)")
    dest = tmp_path / "published"
    assert run_cli("export", "full", "--source", db.standby_url, "--to",
                   str(dest)).exit_code == 0
    refused = run_cli("sync", str(dest), str(tmp_path / "r.duckdb"))
    assert refused.exit_code == 7, refused.stderr
    err, hint = error_lines(refused)
    assert "public.Twin and public.twin" in err and "case" in hint
    target = catalog_file(tmp_path)
    assert run_cli("sync", str(dest), target).exit_code == 0
    assert run_cli("verify", target, "--against", db.standby_url).exit_code == 0
