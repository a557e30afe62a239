"""A table under row-level security read by a role its policies filter: topoff reads a
table whole or not at all (row_security = off in every session, as pg_dump does), so an
export, a replicate refresh or a verify never sees part of a table as if it were all."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import error_lines, run_cli
from support.pg import Database


@pytest.fixture
def filtered(db: Database) -> str:
    """A table whose policy shows the role ``<db>_rls`` 4 rows of 10; its URL."""
    role = f"{db.name}_rls"
    db.execute(f"CREATE TABLE t (id int PRIMARY KEY, v text); "
               f"INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g; "
               f"ALTER TABLE t ENABLE ROW LEVEL SECURITY; "
               f"CREATE POLICY few ON t USING (id < 5); "
               f'CREATE ROLE "{role}" LOGIN PASSWORD \'pw\'; '
               f'GRANT SELECT ON t TO "{role}"')
    db.sync()
    port = db.standby_url.split("@127.0.0.1:")[1].split("/")[0]
    return f"postgresql://{role}:pw@127.0.0.1:{port}/{db.name}"


def test_an_export_by_a_filtered_role_stops_instead_of_publishing_part(
        filtered: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('dataset = "d"\n[tables.t]\nmethod = "snapshot"\n')
    out = tmp_path / "out"
    result = run_cli("export", "full", "--config", str(config), "--source", filtered,
                     "--to", str(out))
    assert result.exit_code == 3, result.stderr
    error, hint = error_lines(result)
    assert "row-level security" in error and "BYPASSRLS" in hint
    assert not (out / "index.json").exists()


@pytest.mark.parametrize("method", ["snapshot", "updater"])
def test_replicate_by_a_filtered_role_moves_nothing(filtered: str, tmp_path: Path,
                                                    method: str) -> None:
    from support.replicate import config_text

    settings: dict[str, object] = {"method": method}
    if method == "updater":
        settings.update(cursor="id", boundary=10, lookback=10)
    target = str(tmp_path / "r.duckdb")
    path = tmp_path / "replica.toml"
    path.write_text(config_text(target, {"app": (filtered, {"t": settings})}))
    result = run_cli("replicate", "--config", str(path), "--once")
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "row-level security" in result.stdout + result.stderr


def test_verify_against_a_filtered_role_says_why(db: Database, filtered: str,
                                                 tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('dataset = "d"\n[tables.t]\nmethod = "snapshot"\n')
    out, replica = tmp_path / "out", str(tmp_path / "r.duckdb")
    assert run_cli("export", "full", "--config", str(config), "--source", db.standby_url,
                   "--to", str(out)).exit_code == 0
    assert run_cli("sync", str(out), replica).exit_code == 0
    result = run_cli("verify", replica, "--against", filtered)
    assert result.exit_code == 3, result.stdout + result.stderr
    error, hint = error_lines(result)
    assert "row-level security" in error and "BYPASSRLS" in hint
