"""Functions and operators another user of the database created in a schema on the
default search_path (public) never run in topoff's sessions: they outrank the built-ins
topoff calls for some argument types (an exact match beats a conversion), so every session
of a source and a PostgreSQL replica runs with search_path = pg_catalog, as pg_dump does
(CVE-2018-1058)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support.backup import AgeKey, backup_args
from support.cli import run_cli
from support.pg import Database

RAN = "code of another user ran"

#: functions and operators that win over the built-ins for the columns of ``t``: concat
#: and num_nulls take VARIADIC "any" (an inet is an exact match here), and = on a domain
#: or an enum is an exact match where the built-ins take its base type or anyenum
_TRAPS = f"""
CREATE FUNCTION public.trap() RETURNS bool LANGUAGE plpgsql AS
  $$BEGIN RAISE EXCEPTION '{RAN}'; END$$;
CREATE FUNCTION public.concat(inet) RETURNS text LANGUAGE sql AS $$SELECT 'x' WHERE public.trap()$$;
CREATE FUNCTION public.num_nulls(inet) RETURNS int LANGUAGE sql AS $$SELECT 0 WHERE public.trap()$$;
CREATE FUNCTION public.eq_trap(public.key_id, public.key_id) RETURNS bool LANGUAGE sql
  AS $$SELECT public.trap()$$;
CREATE OPERATOR public.= (LEFTARG = public.key_id, RIGHTARG = public.key_id,
                          FUNCTION = public.eq_trap);
CREATE FUNCTION public.lt_trap(public.key_id, public.key_id) RETURNS bool LANGUAGE sql
  AS $$SELECT public.trap()$$;
CREATE OPERATOR public.< (LEFTARG = public.key_id, RIGHTARG = public.key_id,
                          FUNCTION = public.lt_trap);
CREATE OPERATOR public.> (LEFTARG = public.key_id, RIGHTARG = public.key_id,
                          FUNCTION = public.lt_trap);
CREATE OPERATOR public.<= (LEFTARG = public.key_id, RIGHTARG = public.key_id,
                           FUNCTION = public.lt_trap);
CREATE OPERATOR public.>= (LEFTARG = public.key_id, RIGHTARG = public.key_id,
                           FUNCTION = public.lt_trap);
CREATE FUNCTION public.eq_mood(public.mood, public.mood) RETURNS bool LANGUAGE sql
  AS $$SELECT public.trap()$$;
CREATE OPERATOR public.= (LEFTARG = public.mood, RIGHTARG = public.mood,
                          FUNCTION = public.eq_mood);
"""


def plant(db: Database, database: str | None = None) -> None:
    """As a role with nothing but CREATE on public: the traps, in ``database``."""
    role = f"{db.name}_other"
    with db.cluster.primary.connect(database or db.name) as conn:
        conn.execute(f'DO $$BEGIN CREATE ROLE "{role}"; EXCEPTION WHEN duplicate_object '
                     f'THEN NULL; END$$')
        conn.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
        conn.execute(f'SET ROLE "{role}"')
        conn.execute(_TRAPS)
        conn.execute("RESET ROLE")
    db.sync()


@pytest.fixture
def source(db: Database) -> Database:
    db.execute("CREATE DOMAIN public.key_id AS int; "
               "CREATE TYPE public.mood AS ENUM ('sad', 'ok'); "
               "CREATE TABLE t (id public.key_id PRIMARY KEY, addr inet, m public.mood, "
               "v varchar(20), at timestamptz NOT NULL); "
               "INSERT INTO t SELECT g, '10.0.0.1', 'ok', 'v' || g, "
               "now() - interval '1 day' * g FROM generate_series(1, 20) g")
    return db


CONFIG = 'dataset = "d"\n[tables.t]\nmethod = "snapshot"\n'


def test_export_and_verify_run_no_function_of_another_user(
        source: Database, tmp_path: Path) -> None:
    plant(source)
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    out, replica = tmp_path / "out", str(tmp_path / "r.duckdb")
    result = run_cli("export", "full", "--config", str(config), "--source", source.standby_url,
                     "--to", str(out))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert run_cli("sync", str(out), replica).exit_code == 0
    result = run_cli("verify", replica, "--against", source.standby_url)
    assert result.exit_code == 0, result.stdout + result.stderr


def test_backup_runs_no_function_of_another_user(
        source: Database, age_key: AgeKey, tmp_path: Path) -> None:
    plant(source)
    store = tmp_path / "store"
    result = run_cli(*backup_args(source, age_key, store, "b1"))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert RAN not in result.stdout + result.stderr
    # the drill's hashes too; its checks are the operator's, with the database's search_path
    config = tmp_path / "c.toml"
    config.write_text('[backup]\nchecks = ["SELECT count(*) = 20 FROM t"]\n'
                      f'identity = "{age_key.identity}"\n')
    result = run_cli("backups", "drill", str(store), "--config", str(config))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "drill of b1 passed" in result.stdout


@pytest.mark.parametrize("method", ["snapshot", "updater"])
def test_replicate_runs_no_function_of_another_user(
        source: Database, tmp_path: Path, method: str) -> None:
    from support.replicate import config_text, stored
    plant(source)
    settings: dict[str, object] = {"method": method}
    if method == "updater":
        settings.update(cursor="at", boundary="10m", lookback="10m")
    target = str(tmp_path / "r.duckdb")
    path = tmp_path / "replica.toml"
    path.write_text(config_text(target, {"app": (source.standby_url, {"t": settings})}))
    for _ in range(2):
        result = run_cli("replicate", "--config", str(path), "--once")
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "is now" not in result.stdout + result.stderr
    # the types' names as the database's search_path prints them, as replicas were built
    types = {c.name: c.type for c in stored(target, "app", "public.t").columns}
    assert types == {"id": "integer", "addr": "inet", "m": "mood",
                     "v": "character varying(20)", "at": "timestamp with time zone"}


def plant_target(db: Database, database: str) -> None:
    """As a role with nothing but CREATE on the replica's public: concat and num_nulls
    for inet, and = and < for every enum type topoff made."""
    with db.cluster.primary.connect(database) as conn:
        enums = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n "
            "ON n.oid = t.typnamespace WHERE t.typtype = 'e'").fetchall()]
    traps = _TRAPS.split("CREATE FUNCTION public.eq_trap")[0]
    for i, e in enumerate(enums):
        traps += (f"CREATE FUNCTION public.eq{i}({e}, {e}) RETURNS bool LANGUAGE sql "
                  f"AS $$SELECT public.trap()$$; CREATE OPERATOR public.= (LEFTARG = {e}, "
                  f"RIGHTARG = {e}, FUNCTION = public.eq{i}); "
                  f"CREATE OPERATOR public.< (LEFTARG = {e}, "
                  f"RIGHTARG = {e}, FUNCTION = public.eq{i}); ")
    role = f"{database}_other"
    with db.cluster.primary.connect(database) as conn:
        conn.execute(f'CREATE ROLE "{role}"')
        conn.execute(f'GRANT CREATE ON SCHEMA public TO "{role}"')
        for (schema,) in conn.execute(  # a reader of the replica's tables
                "SELECT quote_ident(nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg%' "
                "AND nspname <> 'information_schema'").fetchall():
            conn.execute(f'GRANT USAGE ON SCHEMA {schema} TO "{role}"')
        conn.execute(f'SET ROLE "{role}"')
        conn.execute(traps)
        conn.execute("RESET ROLE")


def test_a_postgresql_replica_runs_no_function_of_another_user(
        source: Database, tmp_path: Path) -> None:
    from support.replicate import new_database
    replica = new_database(source.cluster, "sp")
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    assert run_cli("export", "full", "--config", str(config), "--source", source.standby_url,
                   "--to", str(out)).exit_code == 0
    assert run_cli("sync", str(out), replica.primary_url).exit_code == 0
    plant_target(source, replica.name)
    source.execute("INSERT INTO t VALUES (21, '10.0.0.2', 'sad', 'w', now())")
    for _ in range(3):  # full exports are named to the second: the first may hold its name
        result = run_cli("export", "full", "--config", str(config), "--source",
                         source.standby_url, "--to", str(out))
        if "already published" not in result.stderr:
            break
        time.sleep(0.5)
    assert result.exit_code == 0, result.stdout + result.stderr
    for args in (("sync", str(out), replica.primary_url, "--rebase"),
                 ("status", replica.primary_url),
                 ("verify", replica.primary_url, "--against", source.standby_url)):
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result.stdout + result.stderr)


@pytest.mark.parametrize("method", ["snapshot", "updater"])
def test_replicate_into_postgresql_runs_no_function_of_another_user(
        source: Database, tmp_path: Path, method: str) -> None:
    from support.replicate import config_text, new_database
    replica = new_database(source.cluster, "sp")
    plant(source)
    settings: dict[str, object] = {"method": method}
    if method == "updater":
        settings.update(cursor="at", boundary="10m", lookback="10m")
    path = tmp_path / "replica.toml"
    path.write_text(config_text(replica.primary_url,
                                {"app": (source.standby_url, {"t": settings})}))
    assert run_cli("replicate", "--config", str(path), "--once").exit_code == 0
    plant_target(source, replica.name)
    source.execute("UPDATE t SET at = now(), m = 'sad' WHERE id < 5")
    for args in (("replicate", "--config", str(path), "--once"),
                 ("replicate", "--config", str(path), "--reconcile", "app.public.t"),
                 ("replicate", "--config", str(path), "--resync", "app.public.t"),
                 ("replicate", "--config", str(path), "--status")):
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result.stdout + result.stderr)



def test_a_filter_names_what_is_not_built_in_with_its_schema(
        source: Database, tmp_path: Path) -> None:
    from support.cli import error_lines
    from support.replicate import config_text
    source.execute("CREATE FUNCTION public.lowest() RETURNS int LANGUAGE sql "
                   "IMMUTABLE AS 'SELECT 10'")
    config, out = tmp_path / "c.toml", tmp_path / "out"
    config.write_text(CONFIG + 'filter = "id > lowest()"\n')
    result = run_cli("export", "full", "--config", str(config), "--source", source.standby_url,
                     "--to", str(out))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "with their schema" in error_lines(result)[1]
    config.write_text(CONFIG + 'filter = "id > public.lowest()"\n')
    result = run_cli("export", "full", "--config", str(config), "--source", source.standby_url,
                     "--to", str(out))
    assert result.exit_code == 0, result.stdout + result.stderr
    path = tmp_path / "replica.toml"
    for where, code in (("id > lowest()", 2), ("id > public.lowest()", 0)):
        path.write_text(config_text(str(tmp_path / "r.duckdb"), {"app": (source.standby_url, {
            "t": {"method": "snapshot", "where": where}})}))
        result = run_cli("replicate", "--config", str(path), "--once")
        assert result.exit_code == code, result.stdout + result.stderr
        assert ("with their schema" in result.stdout + result.stderr) == (code == 2)
