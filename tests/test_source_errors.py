"""An error the PostgreSQL source raises while topoff reads it (here a view dividing by a
zero some row holds) is the source's fault: exit 3 with the server's words, never an
internal error, from `export` and from `verify` alike."""

from __future__ import annotations

from support.cli import error_lines, run_cli, write_config

CONFIG = """
dataset = "views"
[tables.v]
method = "snapshot"
"""


def test_a_view_failing_on_a_row_stops_export_and_verify_with_exit_3(db, tmp_path):
    db.execute("CREATE TABLE t (id int PRIMARY KEY, d int); INSERT INTO t VALUES (1, 1);"
               "CREATE VIEW v AS SELECT id, 10 / d AS q FROM t")
    config = write_config(tmp_path / "views.toml", CONFIG)
    dest, replica = tmp_path / "published", str(tmp_path / "r.duckdb")
    full = run_cli("export", "full", "--config", config, "--source", db.standby_url,
                   "--to", str(dest))
    assert full.exit_code == 0, full.stderr
    assert run_cli("sync", str(dest), replica).exit_code == 0
    db.execute("INSERT INTO t VALUES (2, 0)")
    for result in (run_cli("verify", replica, "--against", db.standby_url),
                   run_cli("export", "full", "--config", config, "--source", db.standby_url,
                           "--to", str(dest))):
        assert result.exit_code == 3, result.stdout + result.stderr
        err, hint = error_lines(result)
        assert "division by zero" in err and "view" in hint
