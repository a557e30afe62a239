"""Claims the docs make that a user relies on (README.md, docs/*.md, docs/commands/*.md),
checked by running the commands as the pages show them."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from support.backup import entry
from support.cli import run_cli
from support.http_server import HttpServer
from support.replica import cli, fill, is_postgres, nommer_config, publish_standard, query
from topoff.demo import sample

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytest_plugins = ["support.replica_fixtures"]


def test_sync_primary_keys_option_decides_and_is_kept(db, replica, tmp_path):
    """targets.md: primary key indexes by default on PostgreSQL, not on DuckDB, "the
    `--primary-keys` / `--no-primary-keys` decide"; "the choice is kept by the replica;
    changing it takes `--rebase`"."""
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    want = not is_postgres(replica)  # the other choice than the default
    flag, other = ("--primary-keys", "--no-primary-keys") if want else \
        ("--no-primary-keys", "--primary-keys")
    r = cli("sync", url, replica, flag)
    assert r.exit_code == 0, r.stderr
    insert = "INSERT INTO public.users VALUES (1, 'again')"
    if want:
        with pytest.raises(Exception, match=r"(?i)duplicate|constraint"):
            query(replica, insert)
    else:
        query(replica, insert)  # no index: the duplicate goes in
    r = cli("sync", url, replica, other)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "primary keys" in r.stderr and "--rebase" in r.stderr


def _json_example(page: str, command: str) -> object:
    """The JSON a page shows under ``$ COMMAND``."""
    text = (DOCS / "commands" / page).read_text()
    block = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_backups_list_json_has_the_fields_its_page_shows(tmp_path):
    """backups-list.md: "`--json` prints every field", as its example shows them."""
    store = tmp_path / "store"
    entry(store, "dump.a", 2, drill_ok=True)
    r = cli("backups", "list", str(store), "--json")
    assert r.exit_code == 0, r.stderr
    [real] = json.loads(r.stdout)
    [shown] = _json_example("backups-list.md",  # type: ignore[misc]
                            "topoff backups list /srv/backups/datanommer --json")
    assert list(real) == list(shown)
    assert list(real["drill"]) == list(shown["drill"])


def _json_lines(text: str) -> list[dict[str, object]]:
    """Every line of ``text`` as the JSON object it must be."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line on stderr: {line!r}") from None
    return lines


def test_check_config_problems_are_json_lines_with_log_format_json(datanommer, tmp_path):
    """exit-codes.md: "With `--log-format json` the log lines on stderr are JSON objects,
    and so is the error" (each problem check-config finds is an error and its hint)."""
    text = sample.example_config().replace('cursor = "msg_timestamp"', 'cursor = "user_id"', 1)
    path = tmp_path / "bad.toml"
    path.write_text(text.replace('agent_name = "public"\n', ""))
    for command in (["check-config"], ["export", "full", "--to", str(tmp_path / "d"),
                                       "--dry-run"]):
        r = run_cli(*command, "--config", str(path), "--source", datanommer.standby_url,
                    "--log-format", "json")
        assert r.exit_code == 2, r.stderr
        errors = _json_lines(r.stderr)
        assert [e["error"] for e in errors] == ["config"] * 3, errors
        assert any("cursor column user_id" in str(e["message"]) and e["hint"] for e in errors)
        assert "2 problems" in str(errors[-1]["message"])
    r = run_cli("check-config", "--config", str(path), "--source", datanommer.standby_url)
    assert r.stderr.startswith("error: ") and r.stderr.splitlines()[1].startswith("hint: ")


def test_verify_differences_keep_stderr_json_with_log_format_json(db, tmp_path):
    """exit-codes.md: exit 1 for verify, "a hint on what to do next on stderr", which is a
    JSON object like every line there with `--log-format json`."""
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    replica = str(tmp_path / "r.duckdb")
    assert cli("sync", url, replica).exit_code == 0
    db.execute("DELETE FROM packages_messages WHERE msg_id = "
               "(SELECT min(msg_id) FROM packages_messages)")
    db.sync()
    r = run_cli("verify", replica, "--against", db.standby_url, "--log-format", "json")
    assert r.exit_code == 1, r.stderr
    lines = _json_lines(r.stderr)
    assert "DIFFER" in r.stdout
    assert any("--rebase" in str(x.get("hint")) for x in lines), lines
    r = run_cli("verify", replica, "--against", db.standby_url)
    assert r.exit_code == 1 and "hint: " in r.stderr


def test_backups_prune_warning_is_a_json_line_with_log_format_json(s3_server, tmp_path):
    """backups.md: on a versioned bucket without a lifecycle rule prune prints one line on
    stderr, `warning: ...`; with `--log-format json` that line is a JSON object."""
    url = f"s3://{s3_server.create_bucket(object_lock=True)}/backups"
    r = run_cli("backups", "prune", url, "--keep-days", "30", "--log-format", "json")
    assert r.exit_code == 0, r.stderr
    [line] = _json_lines(r.stderr)
    assert line["level"] == "warning" and "without a lifecycle rule" in str(line["message"])
    r = run_cli("backups", "prune", url, "--keep-days", "30")
    assert r.stderr.startswith(f"warning: {url} is a versioned bucket")


@pytest.mark.parametrize("served", ["local", "http"])
@pytest.mark.parametrize("missing", ["data", "manifest"])
def test_a_file_missing_from_a_listed_publication_is_a_damaged_dataset(db, tmp_path, served,
                                                                       missing):
    """exit-codes.md: "A file missing from a publication that is still listed is a damaged
    dataset (exit 6)", whichever store serves it (stores.md: every store gives the same
    guarantees), a data file or the publication's manifest."""
    fill(db)
    directory = tmp_path / "published"
    ids = publish_standard(nommer_config(db), str(directory))
    gone = directory / ids[-1] / "manifest.json"
    if missing == "data":
        gone = next((directory / ids[-1] / "data").iterdir())
    gone.unlink()
    with contextlib.ExitStack() as stack:
        origin = str(directory)
        if served == "http":
            origin = stack.enter_context(HttpServer(directory)).url
        # a cache of its own: another sync's copy of the same bytes would stand in for it
        r = run_cli("sync", origin, str(tmp_path / "r.duckdb"), "--log-format", "json",
                    "--cache-dir", str(tmp_path / "cache"))
    [error] = [x for x in _json_lines(r.stderr) if x["level"] == "error"]
    assert (r.exit_code, error["error"]) == (6, "integrity"), r.stderr
    assert gone.name in str(error["message"])


@pytest.mark.parametrize("content", [b"", b"hello\n"])
@pytest.mark.parametrize("command", ["status", "verify"])
def test_a_file_that_is_no_duckdb_database_holds_no_replica(tmp_path, content, command):
    """exit-codes.md: exit 7, kind `no_replica`, for "`status` of a path or database that
    holds no topoff replica" (a file that is no DuckDB database holds none)."""
    path = tmp_path / "notes.duckdb"
    path.write_bytes(content)
    extra = ["--against", "postgresql://nobody@127.0.0.1:1/none"] if command == "verify" else []
    r = run_cli(command, str(path), *extra, "--log-format", "json")
    [error] = _json_lines(r.stderr)
    assert (r.exit_code, error["error"]) == (7, "no_replica"), r.stderr
    assert "holds no topoff replica" in str(error["message"])
    assert path.read_bytes() == content  # left as it was


def test_systemd_refuses_a_uid_systemd_would_not_take():
    """systemd.md: "a `--user` that is no user name or UID systemd takes, is refused with
    exit 2": a UID is 0 to 4294967294, neither 65535 nor (uid_t) -1 (systemd's
    uid_is_valid), written without a leading zero."""
    for user in ("4294967295", "65535", "99999999999", "007"):
        r = run_cli("systemd", "--print", "backup", "--user", user)
        assert r.exit_code == 2, (user, r.stdout)
        assert "is no user name systemd takes" in r.stderr
    for user in ("0", "1001", "65534", "4294967294", "topoff"):
        r = run_cli("systemd", "--print", "backup", "--user", user)
        assert r.exit_code == 0 and f"User={user}\n" in r.stdout, (user, r.stderr)


@pytest.mark.parametrize("command", ["status", "verify"])
def test_a_duckdb_file_without_a_replica_is_no_replica_to_every_command(tmp_path, command):
    """exit-codes.md: "The same failure has the same code in every command"; a path that
    holds no topoff replica is `no_replica` (exit 7) to status and verify alike, and the
    hint names the path."""
    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).close()  # a DuckDB database, without a replica
    extra = ["--against", "postgresql://nobody@127.0.0.1:1/none"] if command == "verify" else []
    r = run_cli(command, str(path), *extra, "--log-format", "json")
    [error] = _json_lines(r.stderr)
    assert (r.exit_code, error["error"]) == (7, "no_replica"), r.stderr
    assert f"topoff sync FROM {path}" in str(error["hint"])


def test_check_config_refuses_a_retention_every_export_refuses(datanommer, tmp_path):
    """configuration.md: `[retention] keep_days` "must be more than lookback_days", and
    check-config "exits 2" on a problem (an export with this file would refuse it, exit 2,
    as `export ... --dry-run` does), rather than calling the file valid."""
    path = tmp_path / "short.toml"
    text = re.sub(r"(?m)^keep_days = \d+", "keep_days = 2", sample.example_config())
    assert "keep_days = 2" in text
    path.write_text(text)
    dry = run_cli("export", "full", "--config", str(path), "--source", datanommer.standby_url,
                  "--to", str(tmp_path / "d"), "--dry-run")
    assert dry.exit_code == 2 and "lookback_days is 3" in dry.stderr, dry.stderr
    r = run_cli("check-config", "--config", str(path), "--source", datanommer.standby_url)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "lookback_days is 3" in r.stderr and "keep at least 4 days" in r.stderr


def test_a_backup_that_ended_a_moment_ahead_is_0_seconds_old(tmp_path):
    """backups.md: a finished backup ending less than 5 minutes in the future (clocks a
    little apart) counts as the newest; its age, printed and in
    `topoff_backup_age_seconds`, is then 0, not negative."""
    store, prom = tmp_path / "s", tmp_path / "b.prom"
    # started 3 minutes ago, "ended" 2 minutes from now (now: the suite may have run for
    # more than 2 minutes before this test)
    entry(store, "dump.a", 0.05, now=datetime.now(UTC))
    r = run_cli("backups", "check", str(store), "--prometheus", str(prom))
    assert r.exit_code == 0, r.stdout
    assert r.stdout.startswith("BACKUP OK - dump.a finished 0s ago"), r.stdout
    assert 'topoff_backup_age_seconds{store="' + str(store) + '"} 0.0\n' in prom.read_text()
