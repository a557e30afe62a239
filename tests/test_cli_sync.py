"""The consumer's commands as people run them: ``topoff sync``, ``status`` and ``verify``
(output lines, exit codes, and ``error:``/``hint:`` for bad input)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, time, timedelta

import pytest

from support.replica import (
    cli,
    day,
    fill,
    ledger,
    nommer_config,
    publish_standard,
    query,
    user_tables,
)

pytest_plugins = ["support.replica_fixtures"]


def error_and_hint(stderr: str) -> tuple[str, str]:
    lines = stderr.strip().splitlines()
    assert len(lines) >= 2, stderr
    error, hint = lines[-2:]
    assert error.startswith("error: "), stderr
    assert hint.startswith("hint: "), stderr
    return error.removeprefix("error: "), hint.removeprefix("hint: ")


def test_sync_verify_and_a_changed_source(db, replica, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    ids = publish_standard(nommer_config(db), url)

    result = cli("sync", url, replica)
    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert re.fullmatch(
        rf"{re.escape(replica)}: built from {ids[0]}, applied 2 partitions \({ids[1]} \.\. "
        rf"{ids[2]}\); [\d,]+ rows held \([\d,]+ written by this run\), 0 bytes "
        rf"downloaded, [\d.]+s \(publication 3\)", line), line
    assert "loading " + ids[0] in result.stderr  # the log, on stderr
    held, written = (int(n.replace(",", "")) for n in re.findall(
        r"([\d,]+) rows held \(([\d,]+) written", line)[0])
    assert held == sum(query(replica, f"SELECT count(*) FROM {t}")[0][0]
                       for t in user_tables(replica))
    assert written >= held
    again = cli("sync", url, replica, "-q")
    assert again.exit_code == 0 and "already up to date" in again.stdout
    assert "(publication 3)" in again.stdout and again.stderr == ""

    result = cli("verify", replica, "--against", db.standby_url)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "public.messages: equal (300 rows over 3 days)" in lines
    assert "public.users: equal (1,024 rows)" in lines
    assert lines[-1] == "replica and source are equal"
    # the source named by the config, as for the other commands (--against was required)
    cfg = tmp_path / "verify.toml"
    cfg.write_text(f'[source]\nurl = "{db.standby_url}"\n')
    assert cli("verify", replica, "--config", str(cfg)).stdout == result.stdout
    bare = cli("verify", replica)
    assert bare.exit_code == 2 and "--against" in bare.stderr, bare.stderr

    # the source loses a day after the sync: verify says where, and exits 1
    old = datetime.combine(day(4), time())
    bounds = [old, old + timedelta(days=1)]
    with db.primary() as conn:
        for link in ("users_messages", "packages_messages"):
            conn.execute(f"DELETE FROM {link} WHERE msg_timestamp >= %s AND msg_timestamp < %s",
                         bounds)
        conn.execute('DELETE FROM messages WHERE "timestamp" >= %s AND "timestamp" < %s', bounds)
    db.sync()
    result = cli("verify", replica, "--against", db.standby_url)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "public.messages: DIFFERS on 1 day(s) (300 rows over 3 days)" in lines
    assert f"  {day(4).isoformat()}: source 0 rows, replica 100 rows (-100 rows on the source)" \
        in lines
    assert "public.users: equal (1,024 rows)" in lines
    assert lines[-1] == "replica and source DIFFER"
    assert result.stderr.splitlines()[-1].startswith("hint: ")  # what to do next
    result = cli("verify", replica, "--against", db.standby_url, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["equal"] is False and doc["dataset"] == "datanommer"

    # verify reads a standby unless told otherwise
    result = cli("verify", replica, "--against", db.primary_url)
    assert result.exit_code == 4
    error, hint = error_and_hint(result.stderr)
    assert "primary" in error and "--allow-primary" in hint
    assert "--against" in hint and "--source" not in hint  # the options verify has


def test_sync_options_build_a_partial_replica(db, replica, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    result = cli("sync", url, replica, "--tables", "messages, users", "--since",
                 day(3).isoformat(), "--schema", "nommer")
    assert result.exit_code == 0, result.stderr
    assert user_tables(replica) == ["nommer.messages", "nommer.users"]
    [(*_, tables, since, schema)] = ledger(replica).values()
    assert (json.loads(tables), since, schema) == (
        ["public.messages", "public.users"], day(3), "nommer")
    result = cli("verify", replica, "--against", db.standby_url)
    assert result.exit_code == 0, result.stdout
    # --tables given twice adds up, as every repeatable option (the last one was kept)
    result = cli("sync", url, replica, "--tables", "users", "--tables", "messages",
                 "--since", day(3).isoformat(), "--schema", "nommer")
    assert result.exit_code == 0, result.stderr

    result = cli("sync", url, replica, "--tables", "messages")
    assert result.exit_code == 2
    error, hint = error_and_hint(result.stderr)
    assert "--tables differs" in error and "--rebase" in hint
    result = cli("sync", url, replica, "--tables", "messages", "--rebase")
    assert result.exit_code == 0, result.stderr
    assert user_tables(replica) == ["public.messages"]
    result = cli("verify", replica, "--against", db.standby_url)
    assert result.exit_code == 0 and result.stdout.splitlines()[0].startswith(
        "public.messages: equal (300 rows over 3 days)")


@pytest.mark.parametrize("args, code, error, hint", [
    (["sync", "{tmp}/nothing-here", "{tmp}/r.duckdb"], 5, "nothing is published at",
     "export full"),
    (["sync", "{tmp}", "mysql://user@host/db"], 2, "unsupported replica location",
     "postgresql://"),
    (["sync", "ftp://host/x", "{tmp}/r.duckdb"], 2, "unsupported store location", "s3://"),
    (["list", "gopher://host/x"], 2, "unsupported store location", "rclone:"),
    (["sync", "{tmp}", "{tmp}/no/such/dir/r.duckdb"], 7, "does not exist", "create it"),
    (["sync", "{tmp}", "{tmp}/r.duckdb", "--since", "2024-02-30"], 2,
     "invalid date '2024-02-30'", "YYYY-MM-DD"),
    (["sync", "{tmp}", "{tmp}/r.duckdb", "--tables", " , "], 2, "--tables is empty",
     "separated by commas"),
    (["sync", "{tmp}", "postgresql://nobody@127.0.0.1:1/nothing"], 7, "127.0.0.1", ""),
    (["status", "mysql://user@host/db"], 2, "unsupported replica location", "iceberg:"),
    (["verify", "{tmp}/r.duckdb", "--against", "postgresql://x@127.0.0.1:1/db"], 7,
     "holds no topoff replica", "topoff sync"),
])
def test_bad_input_is_one_error_and_one_hint(tmp_path, args, code, error, hint):
    result = cli(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    message, advice = error_and_hint(result.stderr)
    assert error in message and hint in advice
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert result.stdout == ""


def test_a_damaged_index_is_an_integrity_error(tmp_path):
    (tmp_path / "index.json").write_text("{not json")
    result = cli("sync", str(tmp_path), str(tmp_path / "r.duckdb"))
    assert result.exit_code == 6
    message, _ = error_and_hint(result.stderr)
    assert "index.json cannot be read" in message


def test_a_replica_on_a_standby_is_refused(db):
    result = cli("sync", str(db.name), db.standby_url)
    assert result.exit_code == 7
    message, advice = error_and_hint(result.stderr)
    assert "read-only standby" in message and "write to" in advice


def test_a_duckdb_file_open_elsewhere(tmp_path):
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        (tmp_path / "pub").mkdir()
        result = cli("sync", str(tmp_path / "pub"), str(path))
        as_json = cli("sync", str(tmp_path / "pub"), str(path), "--log-format", "json")
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 7
    message, advice = error_and_hint(result.stderr)
    assert f"cannot open DuckDB replica {path}" in message
    assert "another process" in advice
    assert json.loads(as_json.stderr.splitlines()[-1])["error"] == "locked"


def test_sync_and_status_reach_s3_through_the_config(db, replica, tmp_path, s3_server,
                                                     monkeypatch):
    """The [store] settings of --config tell sync and status where S3 is (as they tell
    export and prune), without AWS_ENDPOINT_URL in the environment."""
    fill(db, days=1, per_day=30)
    url = f"s3://{s3_server.create_bucket()}/nommer"
    publish_standard(nommer_config(db), url)
    config = tmp_path / "consumer.toml"
    config.write_text(f'[store]\ns3_endpoint_url = "{s3_server.endpoint_url}"\n')
    monkeypatch.delenv("AWS_ENDPOINT_URL")

    result = cli("sync", url, replica, "--config", str(config), "--cache-dir",
                 str(tmp_path / "cache"))
    assert result.exit_code == 0, result.stderr
    assert "(publication 3)" in result.stdout
    result = cli("status", replica, "--json", "--config", str(config))
    [doc] = json.loads(result.stdout)
    assert doc["origin_error"] is None and doc["behind"] == 0
    assert cli("verify", replica, "--against", db.standby_url).exit_code == 0
