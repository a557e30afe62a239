"""PostgreSQL keys that compare case-insensitively on the source (citext, a
nondeterministic ICU collation) while a replica compares them as text: a key respelled
on the source ('abc' updated to 'ABC') stayed in the replica beside the new row, so
an updater or an upsert export by such a key is refused unless the config names the key
(as for MariaDB's _ci collations, tests/test_mariadb_collation.py)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from support.cli import run_cli
from support.pg import Database, make_config
from support.replicate import config, new_target, query
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.replicate.engine import run_once
from topoff.sources.discover import discover, suggest
from topoff.stores import open_store

TABLES = ("CREATE EXTENSION IF NOT EXISTS citext;"
          "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', "
          "deterministic = false);"
          "CREATE DOMAIN name_ci AS citext;"
          "CREATE TABLE c (k citext PRIMARY KEY, ts timestamptz NOT NULL, v int NOT NULL);"
          "CREATE TABLE d (k name_ci PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TABLE n (k text COLLATE ci PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TABLE ok (k text COLLATE \"C\" PRIMARY KEY, ts timestamptz NOT NULL);"
          "INSERT INTO c VALUES ('abc', '2026-01-01', 1)")


def test_a_case_insensitive_key_is_refused_for_an_updater(db: Database, cluster,
                                                          tmp_path: Path) -> None:
    db.execute(TABLES)
    url = new_target("duckdb", cluster, tmp_path)
    tables = {t: {"method": "updater", "cursor": "ts"} for t in ("c", "d", "n", "ok")}
    runs = {r.table: r for r in run_once(config(url, {"app": (db.standby_url, tables)}))}
    assert runs["public.ok"].status == "ok", runs["public.ok"].error
    for t, what in (("c", "citext"), ("d", "citext"), ("n", "collation ci")):
        run = runs[f"public.{t}"]
        assert (run.status, run.exit_code) == ("failed", 2), run
        assert what in (run.error or ""), run.error
    cfg = config(url, {"app": (db.standby_url, {"c": {"method": "updater", "cursor": "ts",
                                                      "key": ["v"]}})})
    assert run_once(cfg)[0].status == "ok"  # a key that compares exactly is taken
    assert query(url, "SELECT k FROM app.c") == [("abc",)]
    for settings in ({"method": "updater", "cursor": "ts", "key": ["k"]},  # the user's word
                     {"method": "inserter", "cursor": "ts"}):  # rows that never change
        cfg = config(url, {"app": (db.standby_url, {"n": settings})})
        assert run_once(cfg)[0].status == "ok", settings


def test_a_case_insensitive_key_is_refused_for_an_upsert_export(db: Database,
                                                                tmp_path: Path) -> None:
    db.execute(TABLES)
    cfg = make_config(db, 'dataset = "ci"\n[tables.c]\nschema = "public"\n'
                      'method = "upsert"\ncursor = "ts"\n')
    with pytest.raises(ConfigError) as info:
        export_full(cfg, open_store(str(tmp_path / "d")))
    assert "citext" in info.value.message and "never respelled" in (info.value.hint or "")
    named = make_config(db, 'dataset = "ci"\n[tables.c]\nschema = "public"\n'
                        'method = "upsert"\ncursor = "ts"\nkey = ["k"]\n')
    assert export_full(named, open_store(str(tmp_path / "e"))).manifests
    path = tmp_path / "c.toml"  # check-config says so too
    path.write_text('dataset = "ci"\n[tables.c]\nschema = "public"\nmethod = "upsert"\n'
                    'cursor = "ts"\n[tables.c.columns]\nk = "public"\nts = "public"\n'
                    'v = "public"\n')
    check = run_cli("check-config", "--config", str(path), "--source", db.standby_url)
    assert check.exit_code == 2 and "case-insensitively" in check.stderr, check.stderr


def test_an_array_of_citext_key_is_refused(db: Database, cluster, tmp_path: Path) -> None:
    """'{abc}' and '{ABC}' are one citext[] (its elements compare as citext), which a
    replica compares as text: the updater's replica held both rows, exit 0."""
    db.execute("CREATE EXTENSION IF NOT EXISTS citext; CREATE DOMAIN tag_ci AS citext;"
               "CREATE DOMAIN tags_ci AS citext[];"
               "CREATE TABLE a (k citext[] PRIMARY KEY, ts timestamptz NOT NULL);"
               "CREATE TABLE da (k tag_ci[] PRIMARY KEY, ts timestamptz NOT NULL);"
               "CREATE TABLE ad (id int, k tags_ci, ts timestamptz NOT NULL, "
               "PRIMARY KEY (id, k));"
               "INSERT INTO a VALUES ('{abc}', '2026-01-01')")
    assert db.execute("SELECT '{abc}'::citext[] = '{ABC}'::citext[]") == [(True,)]
    url = new_target("duckdb", cluster, tmp_path)
    tables = {t: {"method": "updater", "cursor": "ts"} for t in ("a", "da", "ad")}
    for run in run_once(config(url, {"app": (db.standby_url, tables)})):
        assert (run.status, run.exit_code) == ("failed", 2), run
        assert "citext" in (run.error or "") and "'k'" in (run.error or ""), run.error
    cfg = config(url, {"app": (db.standby_url, {"a": {"method": "updater", "cursor": "ts",
                                                      "key": ["k"]}})})
    assert run_once(cfg)[0].status == "ok"  # the user's word
    export = make_config(db, 'dataset = "ci"\n[tables.a]\nschema = "public"\n'
                         'method = "upsert"\ncursor = "ts"\n')
    with pytest.raises(ConfigError) as info:
        export_full(export, open_store(str(tmp_path / "d")))
    assert "citext" in info.value.message
    with psycopg.connect(db.standby_url) as conn:  # nor suggested as an upsert key
        found = {t.name: t.folding for t in discover(conn, ["public"])}
    assert found["a"] == found["da"] == {"k"} and "k" in found["ad"]


def test_init_does_not_suggest_an_upsert_by_a_case_insensitive_key(db: Database) -> None:
    """init (and an export without a config) suggested upsert, which the export refuses."""
    db.execute("CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE u (k citext PRIMARY KEY, "
               "updated_at timestamptz NOT NULL); CREATE INDEX ON u (updated_at)")
    with psycopg.connect(db.standby_url) as conn:
        [found] = [t for t in discover(conn, ["public"]) if t.name == "u"]
    assert found.folding == {"k"}
    suggested = suggest(found)
    assert suggested.method == "snapshot" and "case-insensitively" in suggested.reason


NESTED = ("CREATE EXTENSION IF NOT EXISTS citext;"
          "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', "
          "deterministic = false);"
          "CREATE TYPE pair_ci AS (n int, t citext);"
          "CREATE TYPE pair_n AS (n int, t text COLLATE ci);"
          "CREATE TYPE outer_ci AS (p pair_ci[]);"
          "CREATE TYPE range_ci AS RANGE (subtype = citext, multirange_type_name = multi_ci);"
          "CREATE DOMAIN pair_dom AS pair_ci;"
          "CREATE TABLE cp (k pair_ci PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TABLE np (k pair_n PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TABLE op (id int, k outer_ci, ts timestamptz NOT NULL, PRIMARY KEY (id, k));"
          "CREATE TABLE rp (k range_ci PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TABLE mp (k multi_ci PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TABLE dp (k pair_dom[] PRIMARY KEY, ts timestamptz NOT NULL);"
          "CREATE TYPE pair_ok AS (n int, t text COLLATE \"C\");"
          "CREATE TABLE okp (k pair_ok PRIMARY KEY, ts timestamptz NOT NULL);"
          "INSERT INTO cp VALUES ('(1,abc)', '2026-01-01')")


def test_a_key_holding_citext_in_a_composite_or_range_is_refused(db: Database, cluster,
                                                                 tmp_path: Path) -> None:
    """A composite, range or multirange compares its fields or bounds as their type does:
    '(1,abc)' and '(1,ABC)' are one pair_ci, '[abc,abd)' and '[ABC,ABD)' one range of
    citext, so a replica comparing text keeps both rows (an updater's refresh was ok)."""
    if db.primary().info.server_version < 140000:
        pytest.skip("multiranges are PostgreSQL 14's")
    db.execute(NESTED)
    assert db.execute("SELECT '(1,abc)'::pair_ci = '(1,ABC)'::pair_ci, "
                      "'[abc,abd)'::range_ci = '[ABC,ABD)'::range_ci, "
                      "'(1,abc)'::pair_n = '(1,ABC)'::pair_n") == [(True, True, True)]
    url = new_target("duckdb", cluster, tmp_path)
    names = ("cp", "np", "op", "rp", "mp", "dp")
    tables = {t: {"method": "updater", "cursor": "ts"} for t in (*names, "okp")}
    runs = {r.table: r for r in run_once(config(url, {"app": (db.standby_url, tables)}))}
    assert runs.pop("public.okp").status == "ok"
    for run in runs.values():
        assert (run.status, run.exit_code) == ("failed", 2), run
        assert "'k'" in (run.error or ""), run.error
    assert "nondeterministic collation ci" in (runs["public.np"].error or "")
    cfg = config(url, {"app": (db.standby_url, {"cp": {"method": "updater", "cursor": "ts",
                                                       "key": ["k"]}})})
    assert run_once(cfg)[0].status == "ok"  # the user's word
    export = make_config(db, 'dataset = "ci"\n[tables.rp]\nschema = "public"\n'
                         'method = "upsert"\ncursor = "ts"\n')
    with pytest.raises(ConfigError) as info:
        export_full(export, open_store(str(tmp_path / "d")))
    assert "citext" in info.value.message
    with psycopg.connect(db.standby_url) as conn:  # nor suggested as an upsert key
        found = {t.name: t.folding for t in discover(conn, ["public"])}
    assert all("k" in found[t] for t in names) and not found["okp"], found
