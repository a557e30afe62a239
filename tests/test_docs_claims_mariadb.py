"""Claims of docs/mariadb.md, checked by running what the page shows (a MariaDB
primary and its replica)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.cli import run_cli

pytest_plugins = ["support.replica_fixtures"]

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_mariadb_commands_example_prints_what_the_page_shows(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Commands": the shop example, run as shown (days relative to today)."""
    from datetime import UTC, datetime, timedelta
    today = datetime.now(UTC).date()
    d1, d2 = today - timedelta(days=4), today - timedelta(days=3)
    maria.execute(
        "CREATE TABLE events (id INT PRIMARY KEY, at DATETIME(6), what TEXT);"
        f"INSERT INTO events VALUES (1, '{d1} 10:00:00.000001', 'a'),"
        f"(2, '{d1} 23:59:59.999999', 'b'), (3, '{d2} 00:00:00', 'c'),"
        f"(4, '{d2} 12:00:00.5', 'd'), (5, '{today} 00:00:01', 'e')")
    config = tmp_path / "shop.toml"
    config.write_text(
        f'dataset = "shop"\n\n[source]\nurl = "{maria.replica_url}"\n\n[export]\n'
        f'lookback_days = 1\n\n[tables.events]\nschema = "{maria.name}"\n'
        'method = "append"\ncursor = "at"\n')
    to, replica = str(tmp_path / "shop"), str(tmp_path / "replica.duckdb")
    outs = [run_cli("export", "full", "--config", str(config), "--to", to),
            run_cli("export", "incremental", "--config", str(config), "--to", to,
                    "--date", str(d2)),
            run_cli("sync", to, replica),
            run_cli("verify", replica, "--against", maria.replica_url)]
    maria.execute("DELETE FROM events WHERE id = 4")
    outs.append(run_cli("verify", replica, "--against", maria.replica_url))
    assert [o.exit_code for o in outs] == [0, 0, 0, 0, 1]
    names = {str(tmp_path / "shop"): "/srv/dumps/shop", replica: "replica.duckdb",
             maria.name: "shop", str(d1): "2026-11-26", str(d2): "2026-11-27"}
    got = []
    for o in outs:
        text = "\n".join([ln.split(" ", 1)[1] for ln in o.stderr.splitlines()
                          if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", ln)]
                         + [ln for ln in o.stderr.splitlines() if ln.startswith("hint: ")]
                         + o.stdout.splitlines())
        for real, shown in names.items():
            text = text.replace(real, shown)
        got.append(_open_numbers(text))
    print("\n\n".join(got))
    assert got == _page_outputs("mariadb.md", "$ topoff export full --config shop.toml")


def _open_numbers(text: str) -> str:
    """``text`` with what changes from run to run left open: a full export's time,
    sizes, durations."""
    text = re.sub(r"full/\d{4}-\d\d-\d\dT\d{6}Z", "full/T", text)
    return re.sub(r"\d+\.\ds\b", "0.0s", re.sub(r"\b\d+ bytes", "N bytes", text))


def _page_outputs(page: str, first: str) -> list[str]:
    """The output under each command of the console block of ``page`` starting with
    ``first``."""
    text = (DOCS / page).read_text()
    block = first + text.split(first, 1)[1].split("```", 1)[0]
    parts = re.split(r"^\$ .*\n", block, flags=re.M)[1:]
    return [_open_numbers(p.rstrip("\n")) for p in parts]


def test_the_privileges_the_page_lists_are_enough(maria, tmp_path: Path) -> None:
    """mariadb.md "Privileges the source user needs": a user with exactly SELECT on the
    database, REPLICA MONITOR, BINLOG MONITOR and RELOAD exports with two workers (the
    GTID pinned), verifies and replicates; `init` and `check-config` work for it."""

    from support.cli import write_config

    user = f"pv{maria.name}"
    maria.execute(
        "CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, v TEXT);"
        "INSERT INTO ev SELECT seq, UTC_TIMESTAMP(6) - INTERVAL 2 DAY, 'x' "
        "FROM seq_1_to_50; CREATE TABLE other (id INT PRIMARY KEY); "
        "INSERT INTO other VALUES (1);"
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
        f"GRANT SELECT ON `{maria.name}`.* TO '{user}'@'127.0.0.1';"
        f"GRANT REPLICA MONITOR, BINLOG MONITOR, RELOAD ON *.* TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    url = maria.pair.replica.url(maria.name, user=user, password="p")
    try:
        out = run_cli("init", "--source", url, "--output", str(tmp_path / "init.toml"))
        assert out.exit_code == 0, out.stdout + out.stderr
        text = (f'dataset = "shop"\n[source]\nurl = "{url}"\n'
                f'[tables.ev]\nschema = "{maria.name}"\nmethod = "append"\ncursor = "at"\n'
                f'[tables.other]\nschema = "{maria.name}"\n')
        cfg = write_config(tmp_path / "c.toml", text)
        out = run_cli("check-config", "--config", cfg)
        assert out.exit_code == 0, out.stdout + out.stderr
        out = run_cli("export", "full", "--config", cfg, "--to", str(tmp_path / "d"),
                      "--jobs", "2")
        assert out.exit_code == 0, out.stdout + out.stderr
        assert "one connection" not in out.stderr, out.stderr
        [manifest] = (tmp_path / "d").rglob("manifest.json")
        position = json.loads(manifest.read_text())["snapshot"]["position"]
        assert position["engine"] == "mariadb" and position["gtid"], position
        replica = str(tmp_path / "r.duckdb")
        assert run_cli("sync", str(tmp_path / "d"), replica).exit_code == 0
        out = run_cli("verify", replica, "--against", url)
        assert out.exit_code == 0, out.stdout + out.stderr
        from support.replicate import config
        from topoff.replicate.engine import run_once
        runs = run_once(config(str(tmp_path / "rep.duckdb"), {"m": (url, {
            "ev": {"method": "updater", "cursor": "at"}, "other": {"method": "snapshot"}})}))
        assert [(r.status, r.rows) for r in runs] == [("ok", 50), ("ok", 1)], runs
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


def test_init_without_a_database_reads_every_database_the_user_may_see(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Writing and checking a config": `--schema NAME` picks databases (repeat
    for several); without it and without a database in the URL, every database the user
    may see is read, system ones left out."""
    import tomllib

    other = maria.pair.create_database()
    user = f"in{maria.name}"
    maria.execute(f"CREATE TABLE a1 (id INT PRIMARY KEY); CREATE TABLE `{other}`.b1 "
                  f"(id INT PRIMARY KEY); CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY "
                  f"'p'; GRANT SELECT ON `{maria.name}`.* TO '{user}'@'127.0.0.1';"
                  f"GRANT SELECT ON `{other}`.* TO '{user}'@'127.0.0.1';"
                  f"GRANT SELECT ON mysql.* TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    try:
        url = maria.pair.replica.url("", user=user, password="p")
        made = run_cli("init", "--source", url, "--output", "-", "--dataset", "d")
        assert made.exit_code == 0, made.output
        schemas = {t["schema"] for t in tomllib.loads(made.stdout)["tables"].values()}
        assert schemas == {maria.name, other}, schemas
        picked = run_cli("init", "--source", url, "--output", "-", "--dataset", "d",
                         "--schema", other)
        assert picked.exit_code == 0, picked.output
        assert {t["schema"] for t in tomllib.loads(picked.stdout)["tables"].values()} == \
            {other}
        both = run_cli("init", "--source", url, "--output", "-", "--dataset", "d",
                       "--schema", other, "--schema", maria.name)
        assert {t["schema"] for t in tomllib.loads(both.stdout)["tables"].values()} == \
            {maria.name, other}
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'; DROP DATABASE `{other}`",
                               check=False)


def test_every_session_sets_what_the_page_lists(maria) -> None:
    """mariadb.md "Connecting": time_zone +00:00, sql_mode NO_ENGINE_SUBSTITUTION,
    sql_select_limit at its maximum, net_write_timeout/net_read_timeout 3600,
    max_statement_time 0, utf8mb4."""
    from topoff.sources.mariadb.connect import connect

    with connect(maria.replica_url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT @@session.time_zone, @@session.sql_mode, "
                    "@@session.sql_select_limit, @@session.net_write_timeout, "
                    "@@session.net_read_timeout, @@session.max_statement_time, "
                    "@@session.character_set_client, @@session.character_set_results")
        got = [v.decode() if isinstance(v, bytes | bytearray) else v for v in cur.fetchone()]
        cur.close()
    assert [str(v) for v in got] == ["+00:00", "NO_ENGINE_SUBSTITUTION",
                                     str(2 ** 64 - 1), "3600", "3600", "0.0",
                                     "utf8mb4", "utf8mb4"]


def test_the_float_texts_the_type_table_shows(maria) -> None:
    """mariadb.md "Type mapping": FLOAT 0.1 is written `0.10000000149011612`, DOUBLE 1e15
    `1e15`, a DOUBLE(10,2) -0.01 `-0.010000000000000009`; BIGINT UNSIGNED max
    `18446744073709551615`, TINYINT -128 `-128`, YEAR 0000 `0`, BIT(3) `101`."""
    import csv
    import io

    from topoff.sources.mariadb import rows
    from topoff.sources.mariadb.catalog import read_table
    from topoff.sources.mariadb.connect import connect

    maria.execute("CREATE TABLE f (id INT PRIMARY KEY, f FLOAT, d DOUBLE, dmd DOUBLE(10,2), "
                  "u BIGINT UNSIGNED, t TINYINT, y YEAR, b BIT(3)); INSERT INTO f VALUES "
                  "(1, 0.1, 1e15, -0.01, 18446744073709551615, -128, 0, b'101')")
    with connect(maria.replica_url) as conn:
        out = io.BytesIO()
        rows.write_csv(conn, read_table(conn, maria.name, "f"), out)
    assert list(csv.reader(io.StringIO(out.getvalue().decode()))) == [
        ["1", "0.10000000149011612", "1e15", "-0.010000000000000009",
         "18446744073709551615", "-128", "0", "101"]]


def test_check_config_judges_a_mariadb_key_under_a_collation_as_the_export_does(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Keys under a collation" and "Writing and checking a config": an
    `upsert` table whose key folds case is refused with exit 2 naming the column and its
    collation, by `check-config`, `export full --dry-run` and the export alike; a config
    that names the key (the user's word) passes all three. (check-config and the dry run
    said "citext, a nondeterministic collation", PostgreSQL's words, and refused the
    named key the export takes.)"""
    from support.cli import write_config

    maria.execute("CREATE TABLE acc (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, "
                  "updated_at DATETIME(6) NOT NULL, KEY (updated_at)); INSERT INTO acc "
                  "VALUES ('a', UTC_TIMESTAMP(6) - INTERVAL 2 DAY)")
    text = (f'dataset = "shop"\n[source]\nurl = "{maria.replica_url}"\n[tables.acc]\n'
            f'schema = "{maria.name}"\nmethod = "upsert"\ncursor = "updated_at"\n')
    for named, code in (('key = ["k"]\n', 0), ("", 2)):
        cfg = write_config(tmp_path / f"c{code}.toml", text + named)
        to = str(tmp_path / f"d{code}")
        for args in (("check-config", "--config", cfg),
                     ("export", "full", "--config", cfg, "--to", to, "--dry-run"),
                     ("export", "full", "--config", cfg, "--to", to)):
            out = run_cli(*args)
            assert out.exit_code == code, (args, out.stdout + out.stderr)
            if code:
                error = next(ln for ln in out.stderr.splitlines() if ln.startswith("error: "))
                assert "'k'" in error and "utf8mb4_general_ci" in error, (args, error)
                assert "citext" not in out.stderr, (args, out.stderr)


def test_check_config_says_a_table_is_readable_only_in_part(maria, tmp_path: Path) -> None:
    """mariadb.md "Privileges": a table granted only by column is refused, its other
    columns would be left out; `check-config` and `export --dry-run` say so in one problem
    (they said the cursor column did not exist, that the table had no columns, and that
    the user might not SELECT it: three problems, two of them false)."""
    from support.cli import write_config

    user = f"cp{maria.name}"
    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, "
                  "secret TEXT, v INT);"
                  f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT (id, at, v) ON `{maria.name}`.ev TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    url = maria.pair.replica.url(maria.name, user=user, password="p")
    try:
        cfg = write_config(tmp_path / "c.toml", f'dataset = "shop"\n[source]\nurl = "{url}"\n'
                           f'[tables.ev]\nschema = "{maria.name}"\nmethod = "append"\n'
                           'cursor = "at"\n')
        for args in (("check-config", "--config", cfg),
                     ("export", "full", "--config", cfg, "--to", str(tmp_path / "d"),
                      "--dry-run")):
            out = run_cli(*args)
            assert out.exit_code == 2, (args, out.stdout + out.stderr)
            errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
            assert len(errors) == 2 and "1 problem" in errors[1], (args, errors)
            assert "may read only some columns of" in errors[0], (args, errors)
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


@pytest.mark.parametrize(("column", "native"), [("id", "int(11)"), ("t", "time"),
                                                ("y", "year(4)")])
def test_check_config_names_a_mariadb_cursor_s_own_type(maria, tmp_path: Path, column: str,
                                                       native: str) -> None:
    """mariadb.md "Writing and checking a config": cursors (a DATETIME, TIMESTAMP or DATE)
    are checked; a cursor of another type is named by its MariaDB type, as the export
    names it (check-config said a TIME column "has type interval", a YEAR "smallint", and
    that a cursor must be a "timestamp with time zone")."""
    from support.cli import write_config

    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, t TIME, y YEAR)")
    cfg = write_config(tmp_path / "c.toml", f'dataset = "shop"\n[source]\nurl = '
                       f'"{maria.replica_url}"\n[tables.ev]\nschema = "{maria.name}"\n'
                       f'method = "append"\ncursor = "{column}"\n')
    out = run_cli("check-config", "--config", cfg)
    assert out.exit_code == 2, out.stdout + out.stderr
    lines = out.stderr.splitlines()
    assert f"cursor column {column} of {maria.name}.ev has type {native}" in lines[0], lines
    assert lines[1] == "hint: a cursor must be a DATETIME, TIMESTAMP or DATE column", lines


def test_verify_against_a_mariadb_primary_is_exit_4_unless_allowed(maria, tmp_path: Path
                                                                  ) -> None:
    """mariadb.md "Commands": verify's exit codes, 4 for a primary without
    `--allow-primary`; with it the replica is compared (0)."""
    from topoff.config import Config, TableConfig
    from topoff.export.full import export_full
    from topoff.stores import open_store

    maria.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a')")
    root = str(tmp_path / "pub")
    with open_store(root) as store:
        export_full(Config(dataset="t", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="t", method="snapshot"),)), store)
    replica = str(tmp_path / "r.duckdb")
    assert run_cli("sync", root, replica).exit_code == 0
    out = run_cli("verify", replica, "--against", maria.primary_url)
    assert out.exit_code == 4, out.stdout + out.stderr
    assert "--allow-primary" in out.stderr
    out = run_cli("verify", replica, "--against", maria.primary_url, "--allow-primary")
    assert out.exit_code == 0, out.stdout + out.stderr


def test_the_driver_pin_the_page_names_is_the_project_s() -> None:
    """mariadb.md "Connecting": the mysql-connector-python versions it names are those
    pyproject.toml takes (the page said `<26`, the pin is `<9.7`)."""
    import tomllib

    project = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["project"]
    [pin] = [d for d in project["dependencies"] if d.startswith("mysql-connector-python")]
    upper = re.search(r"<([\d.]+)", pin)
    assert upper is not None
    page = " ".join((DOCS / "mariadb.md").read_text().split())
    assert f"hence `<{upper.group(1)}`" in page, pin


def test_init_names_a_table_it_cannot_read_when_it_lists_none(maria, tmp_path: Path) -> None:
    """mariadb.md "Writing and checking a config": a table whose columns the user may
    read only in part is named as not readable, also when it is the only one (init said
    the database had no table to list, naming none)."""
    user = f"ir{maria.name}"
    maria.execute("CREATE TABLE ev (id INT PRIMARY KEY, secret TEXT);"
                  f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT (id) ON `{maria.name}`.ev TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    try:
        out = run_cli("init", "--source", maria.pair.replica.url(maria.name, user=user,
                                                                 password="p"),
                      "--output", "-")
        assert out.exit_code == 2, out.stdout + out.stderr
        error = next(ln for ln in out.stderr.splitlines() if ln.startswith("error: "))
        assert f"{maria.name}.ev (no SELECT privilege)" in error, error
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)


def test_without_binlog_monitor_the_position_is_recorded_without_its_gtid(
        maria, tmp_path: Path) -> None:
    """mariadb.md "Privileges": without `BINLOG MONITOR` the snapshot's GTID cannot be
    pinned but the binlog file and position are still recorded; the position leaves `gtid`
    out (the page said it was null, which a manifest's position never holds)."""
    from support.cli import write_config

    user = f"nb{maria.name}"
    maria.execute("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);"
                  f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'p';"
                  f"GRANT SELECT ON `{maria.name}`.* TO '{user}'@'127.0.0.1';"
                  f"GRANT REPLICA MONITOR ON *.* TO '{user}'@'127.0.0.1'")
    maria.pair.wait_replica()
    url = maria.pair.replica.url(maria.name, user=user, password="p")
    try:
        cfg = write_config(tmp_path / "c.toml", f'dataset = "s"\n[source]\nurl = "{url}"\n'
                           f'[tables.t]\nschema = "{maria.name}"\n')
        out = run_cli("export", "full", "--config", cfg, "--to", str(tmp_path / "d"))
        assert out.exit_code == 0, out.stdout + out.stderr
        [manifest] = (tmp_path / "d").rglob("manifest.json")
        data = json.loads(manifest.read_text())
        position = data["snapshot"]["position"]
        # "The manifest carries source.engine ...; lsn, xmin and xmax are null"
        assert data["source"]["engine"] == "mariadb", data["source"]
        assert [data["snapshot"].get(k, "absent") for k in ("lsn", "xmin", "xmax")] == [
            None, None, None], data["snapshot"]
        assert "gtid" not in position and position["binlog_file"], position
        assert int(position["binlog_position"]) > 0, position
        page = " ".join((DOCS / "mariadb.md").read_text().split())
        assert "otherwise null" not in page and "otherwise left out" in page
    finally:
        maria.pair.primary.sql(f"DROP USER '{user}'@'127.0.0.1'", check=False)
