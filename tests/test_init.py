"""A first run without a hand-written config: ``topoff init`` writes one from the source,
``topoff check-config`` checks one against it, and a new user goes from a database URL to
a verified replica with init, export and sync alone."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import timedelta
from pathlib import Path

from support.cli import error_lines, run_cli
from support.dataset import files_under, read_dataset
from support.pg import Database
from topoff.config import load_config
from topoff.config_writer import toml_key, toml_string
from topoff.demo import sample
from topoff.export.windows import yesterday
from topoff.stores import open_store

AWKWARD = r'''
CREATE SCHEMA "My ""Odd"" Schema";
CREATE SCHEMA "a.b";
CREATE TABLE "My ""Odd"" Schema"."Events Log" (
    "ID" bigint PRIMARY KEY,
    "When It Happened" timestamptz NOT NULL,
    "quote""d\back" text,
    "line
break" text,
    "dotted.name" integer,
    "user email" text
);
CREATE INDEX ON "My ""Odd"" Schema"."Events Log" ("When It Happened");
CREATE TABLE "My ""Odd"" Schema".items (
    id integer PRIMARY KEY, "UpdatedAt" timestamp NOT NULL, label text);
CREATE INDEX ON "My ""Odd"" Schema".items ("UpdatedAt");
CREATE TABLE "a.b".items (id integer, note text);
CREATE VIEW "a.b"."a view" AS SELECT 1 AS one;
INSERT INTO "My ""Odd"" Schema"."Events Log"
    SELECT g, now() - g * interval '1 hour', 'q' || g, 'l' || g, g, 'u' || g || '@x'
    FROM generate_series(1, 50) g;
INSERT INTO "My ""Odd"" Schema".items SELECT g, now(), 'x' || g FROM generate_series(1, 7) g;
INSERT INTO "a.b".items SELECT g, 'n' || g FROM generate_series(1, 3) g;
ANALYZE;
'''


def init(db: Database, out: Path, *extra: str):
    return run_cli("init", "--source", db.standby_url, "--output", str(out), *extra)


def test_init_writes_a_reviewed_config_for_datanommer(datanommer, tmp_path):
    out = tmp_path / "nommer.toml"
    result = init(datanommer, out)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}: 5 tables (3 append, 2 snapshot)" in result.stdout
    text = out.read_text()
    assert text.startswith("# ====") and "REVIEW EVERY COLUMN" in text.splitlines()[1]
    config = load_config(out, env={})
    assert config.strict and config.dataset == datanommer.name
    assert config.source_url == datanommer.standby_url
    by_name = {t.name: t for t in config.tables}
    assert sorted(by_name) == ["messages", "packages", "packages_messages", "users",
                               "users_messages"]
    m = by_name["messages"]
    assert (m.method, m.cursor, m.key, m.cursor_timezone) == ("append", "timestamp", ("id",),
                                                              "UTC")
    assert m.private_columns() == {"certificate", "signature", "crypto"}
    assert len(m.columns) == 15
    assert (by_name["users_messages"].method, by_name["users_messages"].cursor) == (
        "append", "msg_timestamp")
    assert by_name["users"].method == "snapshot" and by_name["users"].cursor is None
    assert by_name["users"].key == ("id",)

    # the file is used unchanged: checked, then exported
    check = run_cli("check-config", "--config", str(out))
    assert check.exit_code == 0, check.stderr
    assert check.stdout.startswith(f"{out}: valid against {datanommer.name} (standby)")
    plan = {ln.split()[0]: ln.split() for ln in check.stdout.splitlines()[2:]}
    assert plan["public.messages"][1:4] == ["append", "timestamp", "12/15"]
    assert plan["public.users"][1:4] == ["snapshot", "-", "2/2"]
    assert plan["public.users"][4] == "1,024"
    dest = tmp_path / "out"
    full = run_cli("export", "full", "--config", str(out), "--to", str(dest))
    assert full.exit_code == 0, full.stderr
    assert "published full/" in full.stdout and "5 tables" in full.stdout


def test_init_refuses_to_overwrite_and_a_primary(datanommer, tmp_path):
    out = tmp_path / "x.toml"
    out.write_text("mine\n")
    result = init(datanommer, out)
    assert result.exit_code == 2
    error, hint = error_lines(result)
    assert "already exists" in error and "--force" in hint
    assert out.read_text() == "mine\n"
    assert init(datanommer, out, "--force").exit_code == 0
    assert "REVIEW EVERY COLUMN" in out.read_text()

    other = tmp_path / "p.toml"
    primary = run_cli("init", "--source", datanommer.primary_url, "--output", str(other))
    assert primary.exit_code == 4
    assert "primary" in error_lines(primary)[0] and not other.exists()
    allowed = run_cli("init", "--source", datanommer.primary_url, "--output", str(other),
                      "--allow-primary")
    assert allowed.exit_code == 0, allowed.stderr
    assert "allow_primary = false" in other.read_text()

    missing = run_cli("init", "--source", datanommer.standby_url, "--schema", "pubilc",
                      "--output", str(tmp_path / "m.toml"))
    assert missing.exit_code == 2
    error, hint = error_lines(missing)
    assert "schema 'pubilc' does not exist" in error and "did you mean 'public'" in error
    assert not (tmp_path / "m.toml").exists()
    assert run_cli("init").exit_code == 2
    nowhere = init(datanommer, tmp_path / "no" / "such" / "dir.toml")
    assert nowhere.exit_code == 2 and "cannot write" in error_lines(nowhere)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml", "x.toml"]


def test_init_to_stdout_writes_no_password(datanommer, tmp_path):
    url = datanommer.cluster.primary.url(datanommer.name, password="s3cret-pw")
    url = url.replace(str(datanommer.cluster.primary.port),
                      str(datanommer.cluster.standby.port))  # type: ignore[union-attr]
    result = run_cli("init", "--source", url, "--output", "-", "--dataset", "fedora msgs")
    assert result.exit_code == 0, result.stderr
    assert not list(tmp_path.iterdir())
    assert "s3cret" not in result.stdout and "s3cret" not in result.stderr
    data = tomllib.loads(result.stdout)
    assert "password" not in data["source"]["url"]
    assert data["dataset"] == "fedora msgs"
    assert f"port={datanommer.cluster.standby.port}" in data["source"]["url"]  # type: ignore[union-attr]


def test_awkward_identifiers_round_trip(db, tmp_path):
    db.execute(AWKWARD)
    out = tmp_path / "odd.toml"
    result = init(db, out, "--schema", 'My "Odd" Schema', "--schema", "a.b")
    assert result.exit_code == 0, result.stderr
    assert "3 tables (1 append, 1 upsert, 1 snapshot)" in result.stdout
    text = out.read_text()
    assert '"a.b"."a view" (view)' in text
    config = load_config(out, env={})
    tables = {(t.schema, t.name): t for t in config.tables}
    assert set(tables) == {('My "Odd" Schema', "Events Log"), ('My "Odd" Schema', "items"),
                           ("a.b", "items")}
    events = tables[('My "Odd" Schema', "Events Log")]
    assert list(events.columns) == ["ID", "When It Happened", 'quote"d\\back', "line\nbreak",
                                    "dotted.name", "user email"]
    assert (events.method, events.cursor) == ("append", "When It Happened")
    assert events.private_columns() == {"user email", "line\nbreak"}
    items = tables[('My "Odd" Schema', "items")]
    assert (items.method, items.cursor, items.key) == ("upsert", "UpdatedAt", ("id",))
    assert tables[("a.b", "items")].method == "snapshot"

    # a dataset holds no name with a control character (it would reach terminals and
    # logs): init keeps such a column private, and the export leaves it out
    assert '"line\\nbreak" = "private"' in text
    check = run_cli("check-config", "--config", str(out))
    assert check.exit_code == 0, check.stderr
    dest = tmp_path / "out"
    full = run_cli("export", "full", "--config", str(out), "--to", str(dest))
    assert full.exit_code == 0, full.stderr
    index = json.loads((dest / "index.json").read_text())
    m = json.loads((dest / index["publications"][0]["manifest"]).read_text())
    entry = m["tables"]['My "Odd" Schema.Events Log']
    assert entry["rows"] == 50
    assert [c["name"] for c in entry["columns"]] == [
        "ID", "When It Happened", 'quote"d\\back', "dotted.name"]
    assert m["tables"]["a.b.items"]["rows"] == 3
    replica = str(tmp_path / "odd.duckdb")
    synced = run_cli("sync", str(dest), replica)
    assert synced.exit_code == 0, synced.stderr


def test_toml_strings_hold_any_identifier():
    hostile = ['"', "\\", "a\nb", "\t\x00\x1f\x7f", "é ü 漢字 🐘", "a.b", "[x]", "# c", "'",
               '"""', "\\u0041", "\r\n", "=", " lead"]
    for value in hostile:
        assert tomllib.loads(f"k = {toml_string(value)}")["k"] == value
        assert tomllib.loads(f"[t.{toml_key(value)}]\nv = 1")["t"] == {value: {"v": 1}}
    assert toml_key("plain_name-1") == "plain_name-1"


def test_check_config_lists_every_problem(datanommer, tmp_path):
    text = sample.example_config()
    text = text.replace('[tables.users]\nmethod = "snapshot"',
                        '[tables.users]\nmethod = "snapshot"\nfilter = "nope ="')
    text = text.replace("[tables.messages.columns]\n", "[tables.messages.columns]\nmsgid = "
                        '"public"\n').replace('agent_name = "public"\n', "")
    text = text.replace('cursor = "msg_timestamp"', 'cursor = "user_id"', 1)
    text += '\n[tables.mesages]\nmethod = "snapshot"\n'
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run_cli("check-config", "--config", str(path), "--source", datanommer.standby_url)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert any("names column 'msgid'" in e and "did you mean msg_id" in e for e in errors)
    assert any("public.messages: 1 column is not classified" in e and "agent_name" in e
               for e in errors)
    assert any("cursor column user_id of public.users_messages has type integer" in e
               for e in errors)
    assert any("filter of public.users is not valid" in e for e in errors)
    assert any("table public.mesages does not exist" in e and "did you mean public.messages"
               in e for e in errors)
    assert errors[-1] == f"error: {path}: 5 problems against the source"
    hints = [ln for ln in result.stderr.splitlines() if ln.startswith("hint: ")]
    assert len(hints) == len(errors)

    none = run_cli("check-config", "--source", datanommer.standby_url)
    assert none.exit_code == 2 and "topoff init" in error_lines(none)[1]


def test_from_a_url_to_a_verified_replica(datanommer, tmp_path):
    """init -> export full -> export incremental -> sync into DuckDB -> verify, with no
    hand-editing (the privacy review kept what init suggested)."""
    conf = tmp_path / "nommer.toml"
    dest = tmp_path / "published"
    replica = str(tmp_path / "replica.duckdb")
    y = yesterday()
    assert init(datanommer, conf).exit_code == 0
    full = run_cli("export", "full", "--config", str(conf), "--to", str(dest))
    assert full.exit_code == 0, full.stderr
    first = run_cli("sync", str(dest), replica)
    assert first.exit_code == 0, first.stderr
    with datanommer.primary() as conn:  # a new day's rows, and late rows for yesterday
        sample.add_messages(conn, y, 40, tag="late", start_offset=timedelta(hours=1))
    datanommer.sync()
    inc = run_cli("export", "incremental", "--config", str(conf), "--to", str(dest))
    assert inc.exit_code == 0, inc.stderr
    assert f"published incremental/{y}/r1" in inc.stdout
    again = run_cli("sync", str(dest), replica)
    assert again.exit_code == 0, again.stderr
    assert re.search(rf"applied \d+ partitions \(.* \.\. incremental/{y}/r1\)", again.stdout)
    verify = run_cli("verify", replica, "--against", datanommer.standby_url)
    assert verify.exit_code == 0, verify.stdout + verify.stderr
    assert "public.messages: equal" in verify.stdout
    assert any(f.endswith(".csv.zst") for f in files_under(dest))


def test_init_skips_what_it_cannot_list_and_flags_odd_types(db, tmp_path):
    role = f"reader_{db.name}"
    db.execute(f"""
        CREATE TABLE contacts (email text, phone text);
        CREATE TABLE hidden (id int PRIMARY KEY);
        CREATE TABLE log (id bigint, at timestamptz NOT NULL, msg text) PARTITION BY RANGE (at);
        CREATE TABLE log_2026 PARTITION OF log FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE INDEX ON log (at);
        CREATE SCHEMA "odd-s";
        CREATE TYPE "odd-s".pair AS (a int, b int);
        CREATE TABLE shapes (id int PRIMARY KEY, p "odd-s".pair, label text);
        INSERT INTO log SELECT g, '2026-06-01'::timestamptz + g * interval '1 min', 'm'
            FROM generate_series(1, 30) g;
        INSERT INTO shapes VALUES (1, ROW(1, 2), 'x');
        ANALYZE;
        CREATE ROLE {role} LOGIN PASSWORD 'pw-Init-1';
        GRANT SELECT ON contacts, log, log_2026, shapes TO {role};
        GRANT USAGE ON SCHEMA "odd-s" TO {role};
    """)
    try:
        url = db.cluster.standby.url(db.name, user=role)  # type: ignore[union-attr]
        pw = {"PGPASSWORD": "pw-Init-1"}
        out = tmp_path / "c.toml"
        result = run_cli("init", "--source", url, "--output", str(out), "--schema", "public",
                         env=pw)
        assert result.exit_code == 0, result.stderr
        assert "2 tables (1 append, 1 snapshot)" in result.stdout
        text = out.read_text()
        assert "#   public.contacts (every column looks sensitive)" in text
        assert "#   public.hidden (no SELECT privilege)" in text
        assert "# public.log: partitioned table, ~30 rows" in text
        assert "log_2026" not in text
        # a composite type is a plain type name: consumers load it as text
        assert "consumers refuse this type name" not in text
        config = load_config(out, env={})
        assert [t.name for t in config.tables] == ["log", "shapes"]
        assert config.table("public.log").cursor == "at"

        check = run_cli("check-config", "--config", str(out), env=pw)
        assert check.exit_code == 0, check.stderr
        fixed = out.read_text().replace('p = "public"', 'p = "private"')
        out.write_text(fixed)
        check = run_cli("check-config", "--config", str(out), env=pw)
        assert check.exit_code == 0, check.stderr
        assert "public.shapes" in check.stdout and "2/3" in check.stdout
        full = run_cli("export", "full", "--config", str(out), "--to", str(tmp_path / "o"),
                       env=pw)
        assert full.exit_code == 0, full.stderr
        everything = run_cli("export", "full", "--source", url, "--to", str(tmp_path / "all"),
                             "--schema", "public", env=pw)
        assert everything.exit_code == 0, everything.stderr
        assert "skipping 1 tables this role may not SELECT: public.hidden" in everything.stderr
        assert "consumers refuse" not in everything.stderr  # a composite loads as text
        [m] = read_dataset(open_store(str(tmp_path / "all"))).manifests.values()
        assert sorted(m.tables) == ["public.contacts", "public.log", "public.shapes"]
    finally:
        db.execute(f"DROP OWNED BY {role}")
        db.cluster.primary.execute(f"DROP ROLE {role}")


def test_init_on_an_empty_database_writes_nothing(db, tmp_path):
    out = tmp_path / "e.toml"
    result = init(db, out)
    assert result.exit_code == 2
    error, hint = error_lines(result)
    assert f"{db.name} has no table to list" in error and "--schema" in hint
    assert not out.exists()


def test_a_table_without_columns_is_said_to_have_none(db, tmp_path):
    """``CREATE TABLE t ()`` is legal PostgreSQL: named in a config, check-config and the
    export say it has no columns (they said "every column ... is private"); found by
    discovery (no config), it is left out."""
    db.execute("CREATE TABLE empty (); INSERT INTO empty DEFAULT VALUES; "
               "CREATE TABLE kept (id integer PRIMARY KEY); INSERT INTO kept VALUES (1)")
    path = tmp_path / "t.toml"
    path.write_text('dataset = "t"\n[tables.empty]\nmethod = "snapshot"\n')
    check = run_cli("check-config", "--config", str(path), "--source", db.standby_url)
    assert check.exit_code == 2
    assert "error: public.empty has no columns; nothing to export" in check.stderr
    export = run_cli("export", "full", "--config", str(path), "--source", db.standby_url,
                     "--to", str(tmp_path / "out"))
    assert export.exit_code == 2
    assert error_lines(export) == ("error: public.empty has no columns; nothing to export",
                                   "hint: remove [tables.empty] from the config")
    found = run_cli("export", "full", "--source", db.standby_url, "--to", str(tmp_path / "all"))
    assert found.exit_code == 0, found.stderr
    assert re.search(r": 1 tables?, ", found.stdout), found.stdout  # kept, not empty
