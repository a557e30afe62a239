"""The ``topoff export`` commands as a person or cron runs them: output, logs, exit codes,
and one ``error:`` line plus one ``hint:`` line for every mistake, with nothing published."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli, write_config
from support.dataset import files_under, read_dataset
from support.full_disk import fill_up, tmpfs
from support.http_server import HttpServer
from support.pg import Database
from topoff import __version__
from topoff.demo import sample
from topoff.export.windows import yesterday
from topoff.stores import open_store

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def source(cluster):
    """A small datanommer sample shared by the tests of this module (they only read it)."""
    name = f"cli_{os.getpid()}"
    cluster.create_database(name)
    db = Database(name, cluster)
    with db.primary() as conn:
        sample.fill(conn, days=2, per_day=60)
    db.sync()
    yield db
    cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conf(tmp_path):
    """Write a config file: the example datanommer config, edited by ``change``."""

    def write(change=lambda text: text) -> str:
        return write_config(tmp_path / "topoff.toml", change(sample.example_config()))

    return write


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nothing_published(dest: Path) -> None:
    assert files_under(dest) == [], files_under(dest)


def test_export_commands_publish_and_report(source, conf, tmp_path):
    dest = tmp_path / "out"
    y = yesterday()
    common = ["--config", conf(), "--source", source.standby_url, "--to", str(dest), "-j", "2"]
    first = run_cli("export", "incremental", *common, "--date", str(y - timedelta(days=1)),
                    "--lookback-days", "0")
    assert first.exit_code == 0, first.stderr
    assert f"published incremental/{y - timedelta(days=1)}/r1: 5 tables" in first.stdout
    full = run_cli("export", "full", *common)
    assert full.exit_code == 0, full.stderr
    [line] = [ln for ln in full.stdout.splitlines() if ln.startswith("published full/")]
    assert "5 tables, " in line and " rows, 5 files" in line
    assert f"-> {dest}" in full.stdout
    assert "published full/" in full.stderr  # the log line, on stderr
    # the day before the full export is old (--keep-days 1) and not needed: pruned
    inc = run_cli("export", "incremental", *common, "--keep-days", "1", "--lookback-days", "0")
    assert inc.exit_code == 0, inc.stderr
    assert f"published incremental/{y}/r1" in inc.stdout
    assert f"removed incremental/{y - timedelta(days=1)}/r1" in inc.stdout.splitlines()
    again = run_cli("export", "incremental", *common, "--lookback-days", "0")
    assert again.exit_code == 0, again.stderr
    assert f"unchanged {y}: already published, nothing new" in again.stdout
    assert not [ln for ln in again.stdout.splitlines() if ln.startswith("published")]
    data = read_dataset(open_store(str(dest)))
    # what is left: the full export and the incremental run after it
    assert [p.id for p in data.index.publications][1:] == [f"incremental/{y}/r1"]
    assert data.index.publications[0].kind == "full"


def test_json_logs_and_quiet(source, conf, tmp_path):
    common = ["--config", conf(), "--source", source.standby_url, "-j", "2"]
    result = run_cli("export", "full", *common, "--to", str(tmp_path / "a"),
                     "--log-format", "json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(ln) for ln in result.stderr.splitlines()]  # every line is JSON
    assert records and all({"time", "level", "message"} <= set(r) for r in records)
    assert any(r["level"] == "info" and r["message"].startswith("published full/")
               for r in records)
    quiet = run_cli("export", "incremental", *common, "--to", str(tmp_path / "b"), "--quiet")
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr == ""  # no info lines (and nothing to warn about)
    assert "published incremental/" in quiet.stdout
    loud = run_cli("export", "incremental", *common, "--to", str(tmp_path / "c"))
    assert "published incremental/" in loud.stderr


def drop_line(line: str):
    return lambda text: text.replace(line + "\n", "", 1)


def users_filter(condition: str):
    users = '[tables.users]\nmethod = "snapshot"\n'
    return lambda text: text.replace(users, f'{users}filter = "{condition}"\n')


BAD_CONFIGS = {
    "unknown table": (
        lambda t: t.replace("[tables.messages]", "[tables.mesages]").replace(
            "[tables.messages.columns]", "[tables.mesages.columns]"),
        2, ["public.mesages does not exist", "did you mean public.messages?"]),
    "unknown column": (
        lambda t: t.replace('crypto = "private"', 'crypt = "private"'),
        2, ["names column 'crypt'", "did you mean crypto?"]),
    "unclassified column under strict": (
        drop_line('agent_name = "public"'), 2, ["column agent_name", "not classified"]),
    "invalid filter": (users_filter("no_such_column > 1"), 2,
                       ["filter of public.users is not valid"]),
    "unknown config key": (lambda t: t.replace("jobs = 4", "jbos = 4"), 2,
                           ["unknown key 'jbos' in [export]"]),
    "no tables": (lambda t: t[:t.index("[tables.messages]")], 2, ["no tables are configured"]),
    "cursor not a time": (lambda t: t.replace('cursor = "msg_timestamp"', 'cursor = "msg_id"', 1),
                          2, ["cursor column msg_id", "bigint"]),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration(source, conf, tmp_path, case):
    change, code, words = BAD_CONFIGS[case]
    dest = tmp_path / "out"
    result = run_cli("export", "full", "--config", conf(change), "--source",
                     source.standby_url, "--to", str(dest))
    assert result.exit_code == code, (result.exit_code, result.stderr)
    error, hint = error_lines(result)
    for w in words:
        assert w in error, error
    assert len(hint) > len("hint: ")
    nothing_published(dest)


def bad_arguments(source):
    standby = source.cluster.standby
    return {
        "invalid date": (["incremental", "--date", "2026-13-01"], 2, "invalid date '2026-13-01'",
                         "YYYY-MM-DD"),
        "since without until": (["incremental", "--since", "2026-11-20T06:00"], 2,
                                "--since and --until go together", "--until"),
        "date and since": (["incremental", "--date", "2026-11-20", "--since", "2026-11-20",
                            "--until", "2026-11-21"], 2, "cannot be combined", "--date"),
        "invalid chunk size": (["full", "--chunk-size", "lots"], 2, "invalid size", "256MiB"),
        "closed port": (["full", "--source", f"postgresql://postgres@127.0.0.1:{dead_port()}/x"],
                        3, "connection refused", "port"),
        "wrong password": (["full", "--source", standby.url(source.name, user="reader",
                                                            password="not-the-pw")],
                           3, "password authentication failed", "password"),
        "unknown database": (["full", "--source", standby.url("no_such_db")], 3,
                             "database does not exist", "database name"),
        "primary": (["full", "--source", source.primary_url], 4, "pg_is_in_recovery",
                    "--allow-primary"),
        "today": (["incremental", "--date", str(yesterday() + timedelta(days=1)), "--force"],
                  2, "is in the future", "once it has ended"),
    }


@pytest.mark.parametrize("case", ["invalid date", "since without until", "date and since",
                                  "invalid chunk size", "closed port", "wrong password",
                                  "unknown database", "primary", "today"])
def test_bad_arguments(source, conf, tmp_path, case):
    args, code, error_words, hint_words = bad_arguments(source)[case]
    dest = tmp_path / "out"
    command = ["export", args[0], "--config", conf(), "--to", str(dest)]
    if "--source" not in args:
        command += ["--source", source.standby_url]
    result = run_cli(*command, *args[1:])
    assert result.exit_code == code, (result.exit_code, result.stderr)
    error, hint = error_lines(result)
    assert error_words in error and hint_words in hint, (error, hint)
    assert "not-the-pw" not in result.stderr
    nothing_published(dest)


def test_missing_source_and_config(conf, tmp_path):
    dest = tmp_path / "out"
    no_url = conf(lambda t: t.replace(
        'url = "postgresql://datanommer_ro@db-standby.example.org/datanommer"\n', ""))
    result = run_cli("export", "full", "--config", no_url, "--to", str(dest))
    assert result.exit_code == 2
    error, hint = error_lines(result)
    assert "no source database given" in error and "TOPOFF_SOURCE_URL" in hint
    result = run_cli("export", "full", "--config", str(tmp_path / "missing.toml"),
                     "--to", str(dest))
    assert result.exit_code == 2
    assert "not found" in error_lines(result)[0]
    nothing_published(dest)


def test_a_cursor_without_an_index_is_a_warning(datanommer, conf, tmp_path):
    datanommer.execute("DROP INDEX messages_timestamp_idx")
    dest = tmp_path / "out"
    result = run_cli("export", "incremental", "--config", conf(), "--source",
                     datanommer.standby_url, "--to", str(dest), "--lookback-days", "0")
    assert result.exit_code == 0, result.stderr
    warning = [ln for ln in result.stderr.splitlines() if "no index starts with" in ln]
    assert warning and "warning:" in warning[0] and "timestamp" in warning[0]
    assert 'CREATE INDEX ON "public"."messages" ("timestamp")' in warning[0]
    assert read_dataset(open_store(str(dest))).index.publications


def test_a_full_disk_fails_cleanly(source, conf, tmp_path):
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        fill_up(mnt, 8 * 1024)  # a few KiB: the first data files fit, a later one does not
        dest = mnt / "published"
        result = run_cli("export", "full", "--config", conf(), "--source", source.standby_url,
                         "--to", str(dest), "-j", "2")
        assert result.exit_code == 5, result.stderr
        error, hint = error_lines(result)
        assert "disk full" in error and "free space" in hint
        assert not (dest / "index.json").exists()
        nothing_published(dest)  # temp files and finished data files were removed


def test_a_missing_bucket_fails_with_a_hint(source, conf, s3_server, tmp_path):
    result = run_cli("export", "full", "--config", conf(), "--source", source.standby_url,
                     "--to", "s3://topoff-no-such-bucket/datasets/x")
    assert result.exit_code == 5, result.stderr
    error, hint = error_lines(result)
    assert "bucket topoff-no-such-bucket does not exist" in error and "create it" in hint


def test_an_http_location_is_read_only(source, conf, tmp_path):
    with HttpServer(tmp_path) as http:
        result = run_cli("export", "full", "--config", conf(), "--source", source.standby_url,
                         "--to", http.url + "/dataset")
    assert result.exit_code == 5, result.stderr
    error, hint = error_lines(result)
    assert "read-only" in error and "s3://" in hint
    assert files_under(tmp_path) == ["topoff.toml"]


def test_the_console_script(source, conf, tmp_path):
    """The installed ``topoff`` program: exit codes and stderr as cron sees them."""
    dest = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFF_")}
    res = subprocess.run([str(VENV_BIN / "topoff"), "export", "full", "--config", conf(),
                          "--source", source.primary_url, "--to", str(dest)],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 4
    lines = res.stderr.splitlines()
    assert lines[-2].startswith("error: ") and "is a primary server" in lines[-2]
    assert lines[-1].startswith("hint: ") and "--allow-primary" in lines[-1]
    assert res.stdout == ""
    nothing_published(dest)
    res = subprocess.run([sys.executable, "-m", "topoff", "export", "full", "--config", conf(),
                          "--source", source.primary_url, "--allow-primary", "--to", str(dest),
                          "--quiet"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert "reading the PRIMARY" in res.stderr  # a warning even with --quiet
    assert res.stdout.startswith("published full/")
    version = subprocess.run([str(VENV_BIN / "topoff"), "--version"], capture_output=True,
                             text=True)
    assert __version__ in version.stdout


def test_export_full_without_a_config_exports_everything(source, tmp_path):
    dest = tmp_path / "out"
    result = run_cli("export", "full", "--source", source.standby_url, "--to", str(dest))
    assert result.exit_code == 0, result.stderr
    [warning] = [ln for ln in result.stderr.splitlines() if "warning:" in ln]
    assert "no --config: exporting every column of all 5 tables" in warning
    assert "private data included" in warning and "topoff init" in warning
    data = read_dataset(open_store(str(dest)))
    [m] = data.manifests.values()
    assert data.index.dataset == source.name == m.dataset
    assert sorted(m.tables) == ["public.messages", "public.packages", "public.packages_messages",
                                "public.users", "public.users_messages"]
    messages = m.tables["public.messages"]
    assert len(messages.columns) == 15 and "certificate" in [c.name for c in messages.columns]
    assert (messages.method, messages.cursor, messages.rows) == ("append", "timestamp", 120)
    assert m.tables["public.users"].method == "snapshot"


def test_export_full_without_a_config_and_a_schema(db, tmp_path):
    db.execute("CREATE SCHEMA app; CREATE TABLE app.a (id int PRIMARY KEY, at timestamptz);"
               "CREATE TABLE app.b (x text); CREATE TABLE public.elsewhere (y int);"
               "CREATE VIEW app.v AS SELECT 1 AS one; INSERT INTO app.b VALUES ('q');")
    dest = tmp_path / "out"
    result = run_cli("export", "full", "--source", db.standby_url, "--to", str(dest),
                     "--schema", "app")
    assert result.exit_code == 0, result.stderr
    [m] = read_dataset(open_store(str(dest))).manifests.values()
    assert sorted(m.tables) == ["app.a", "app.b"]
    assert m.tables["app.b"].rows == 1
    empty = run_cli("export", "full", "--source", db.standby_url, "--to", str(tmp_path / "e"),
                    "--schema", "app", "--schema", "nothing_here")
    assert empty.exit_code == 2
    assert "schema 'nothing_here' does not exist" in error_lines(empty)[0]
    nothing_published(tmp_path / "e")


def test_without_a_config_incremental_and_schema_are_refused(source, conf, tmp_path):
    dest = tmp_path / "out"
    inc = run_cli("export", "incremental", "--source", source.standby_url, "--to", str(dest))
    assert inc.exit_code == 2
    error, hint = error_lines(inc)
    assert "export incremental needs a config file" in error and "topoff init" in hint
    both = run_cli("export", "full", "--config", conf(), "--source", source.standby_url,
                   "--to", str(dest), "--schema", "public")
    assert both.exit_code == 2
    assert "--schema is for exports without --config" in error_lines(both)[0]
    strict = run_cli("export", "full", "--source", source.standby_url, "--to", str(dest),
                     "--strict")
    assert strict.exit_code == 2 and "--strict needs a config" in error_lines(strict)[0]
    primary = run_cli("export", "full", "--source", source.primary_url, "--to", str(dest))
    assert primary.exit_code == 4
    nothing_published(dest)


def test_dry_run_checks_and_writes_nothing(source, conf, tmp_path):
    dest = tmp_path / "out"
    full = run_cli("export", "full", "--config", conf(), "--source", source.standby_url,
                   "--to", str(dest), "--dry-run")
    assert full.exit_code == 0, full.stderr
    assert "valid against" in full.stdout and "public.messages" in full.stdout
    assert not dest.exists()
    everything = run_cli("export", "full", "--source", source.standby_url, "--to", str(dest),
                         "--dry-run")
    assert everything.exit_code == 0, everything.stderr
    assert everything.stdout.startswith(f"no --config: valid against {source.name}")
    assert "15/15" in everything.stdout and not dest.exists()
    bad = conf(lambda t: t.replace('cursor = "timestamp"', 'cursor = "timestmp"'))
    inc = run_cli("export", "incremental", "--config", bad, "--source", source.standby_url,
                  "--to", str(dest), "--dry-run")
    assert inc.exit_code == 2
    assert "names column 'timestmp'" in inc.stderr and "1 problem against" in inc.stderr
    nothing_published(dest)


def test_a_retention_shorter_than_the_lookback_names_the_options_of_the_command(tmp_path):
    """Keeping fewer days than exports re-check is refused before anything is read; the
    hint names --lookback-days only where the command has it (export incremental)."""
    conf = write_config(tmp_path / "t.toml", sample.example_config())
    common = ["--config", conf, "--source", "postgresql://reader@127.0.0.1:1/x",
              "--to", str(tmp_path / "out"), "--keep-days", "2"]
    full = run_cli("export", "full", *common)
    assert full.exit_code == 2, full.stderr
    _, hint = error_lines(full)
    assert "keep at least 4 days" in hint and "[export] lookback_days" in hint
    assert "--lookback-days" not in hint
    inc = run_cli("export", "incremental", *common)
    assert inc.exit_code == 2, inc.stderr
    _, hint = error_lines(inc)
    assert "keep at least 4 days" in hint and "--lookback-days" in hint
    assert not (tmp_path / "out").exists()
