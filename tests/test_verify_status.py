"""``status`` (what a replica has applied, how far behind it is) and ``verify`` (is it what
the source holds, day by day)."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

import pytest

from support.replica import (
    add_messages,
    cli,
    day,
    fill,
    nommer_config,
    publish_day,
    publish_full,
    publish_standard,
    query,
    source_rows,
)
from topoff.errors import NoReplicaError, SafetyError, TargetError
from topoff.status import status
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]


def newest(db, table: str, cursor: str) -> str:
    (value,) = db.standby_query(f'SELECT max("{cursor}") FROM {table}')[0]
    return value.isoformat(sep=" ")


def test_status_follows_the_dataset(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = tmp_path / "published"
    ids = publish_standard(config, str(url))
    sync(str(url), replica)

    [s] = status(replica)
    assert (s.dataset, s.origin, s.base, s.status) == ("datanommer", str(url), ids[0], "ready")
    assert (s.last_sequence, s.last_applied, s.published_sequence) == (3, ids[2], 3)
    assert s.behind == 0 and s.pending == [] and s.origin_error is None and s.since is None
    assert s.last_applied_at is not None
    tables = {t.table: t for t in s.tables}
    assert sorted(tables) == sorted(
        ["public.messages", "public.users_messages", "public.packages_messages",
         "public.users", "public.packages"])
    for name, t in tables.items():
        assert t.rows == source_rows(db, name), name
        assert t.replica_table == name
    assert tables["public.messages"].newest == newest(db, "messages", "timestamp")
    assert tables["public.messages"].method == "append"
    assert tables["public.users_messages"].newest == newest(db, "users_messages",
                                                            "msg_timestamp")
    assert tables["public.users"].newest is None and tables["public.users"].method == "snapshot"

    result = cli("status", replica, "--json")
    assert result.exit_code == 0, result.stderr
    [doc] = json.loads(result.stdout)
    assert (doc["dataset"], doc["base"], doc["last_applied"], doc["behind"]) == (
        "datanommer", ids[0], ids[2], 0)
    assert {t["table"]: t["rows"] for t in doc["tables"]} == {
        name: t.rows for name, t in tables.items()}
    assert {t["table"]: t["newest"] for t in doc["tables"]}["public.messages"] == \
        tables["public.messages"].newest
    text = cli("status", replica)
    assert text.exit_code == 0 and "up to date" in text.stdout
    assert f"dataset datanommer from {url}" in text.stdout

    # a new publication: one behind, and it is the one pending
    add_messages(db, day(1), 30)
    [new] = [p.id for p in publish_day(config, str(url), day(1)).publications]
    [doc] = json.loads(cli("status", replica, "--json").stdout)
    assert (doc["behind"], doc["pending"], doc["published_sequence"]) == (1, [new], 4)
    assert doc["last_sequence"] == 3
    assert f"1 partitions behind (next: {new})" in cli("status", replica).stdout

    # --offline does not read the origin (which is gone now)
    url.rename(tmp_path / "moved")
    [doc] = json.loads(cli("status", replica, "--json", "--offline").stdout)
    assert doc["behind"] is None and doc["origin_error"] is None
    assert doc["published_sequence"] is None and doc["last_applied"] == ids[2]
    [doc] = json.loads(cli("status", replica, "--json").stdout)
    assert doc["behind"] is None and "nothing is published" in doc["origin_error"]
    assert "unknown (nothing is published" in cli("status", replica).stdout

    (tmp_path / "moved").rename(url)
    sync(str(url), replica)
    [s] = status(replica)
    assert (s.behind, s.last_applied, s.last_sequence) == (0, new, 4)
    assert verify(replica, db.standby_url).equal


def test_status_offline_in_text(db, replica, tmp_path):
    fill(db, days=1, per_day=20)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    sync(url, replica)
    result = cli("status", replica, "--offline")
    assert result.exit_code == 0, result.stderr
    assert "not checked (--offline)" in result.stdout
    assert "public.messages" in result.stdout


class Crash(Exception):
    pass


def test_status_of_a_half_built_replica(db, replica, tmp_path):
    """A first sync that stopped after one file of its full export: not "up to date"."""
    fill(db, days=1, per_day=20)
    url = str(tmp_path / "published")
    [full] = [p.id for p in publish_full(nommer_config(db), url).publications]

    loaded: list[object] = []

    def crash(event: str, **info: object) -> None:  # in the second file's transaction
        if event == "file_loaded":
            loaded.append(info)
            if len(loaded) == 2:
                raise Crash(event)

    with pytest.raises(Crash):
        sync(url, replica, SyncOptions(hook=crash))
    [s] = status(replica)
    assert s.status == "loading" and not s.complete
    result = cli("status", replica)
    assert result.exit_code == 0, result.stderr
    assert "up to date" not in result.stdout
    assert f"INCOMPLETE: the first load from {full} has not finished" in result.stdout
    assert "topoff sync" in result.stdout
    [doc] = json.loads(cli("status", replica, "--json").stdout)
    assert doc["complete"] is False and doc["status"] == "loading"

    sync(url, replica)
    [doc] = json.loads(cli("status", replica, "--json").stdout)
    assert doc["complete"] is True and doc["behind"] == 0
    assert "up to date" in cli("status", replica).stdout


def test_status_of_an_empty_target(replica):
    assert status(replica) == []
    result = cli("status", replica)
    assert result.exit_code == 7 and result.stdout == ""
    assert f"error: {replica} holds no topoff replica" in result.stderr
    assert "topoff sync FROM" in result.stderr


def test_verify_finds_what_changed_on_the_source(db, replica, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    sync(url, replica)
    report = verify(replica, db.standby_url)
    assert report.equal
    assert {t.table: (t.days, t.newer_rows) for t in report.tables}["public.messages"] == (3, 0)
    assert report.cutoff is not None and report.cutoff.date() == day(1)

    # rows of an old day deleted, rows of another changed in place, a new day not published
    old = datetime.combine(day(4), time())
    with db.primary() as conn:
        for link in ("users_messages", "packages_messages"):
            conn.execute(f"DELETE FROM {link} WHERE msg_timestamp >= %s AND msg_timestamp < %s",
                         [old, old + timedelta(days=1)])
        conn.execute('DELETE FROM messages WHERE "timestamp" >= %s AND "timestamp" < %s',
                     [old, old + timedelta(days=1)])
        conn.execute("UPDATE messages SET topic = topic || '.changed' WHERE i <= 5 AND "
                     "msg_id LIKE %s", [f"m{day(3).isoformat()}-%"])
    add_messages(db, day(1), 40)

    report = verify(replica, db.standby_url)
    assert not report.equal
    tables = {t.table: t for t in report.tables}
    messages = tables["public.messages"]
    assert [(d.day, d.source_rows, d.replica_rows, d.what) for d in messages.differences] == [
        (day(4).isoformat(), 0, 100, "-100 rows on the source"),
        (day(3).isoformat(), 100, 100, "same count, different content")]
    assert messages.newer_rows == 40  # not published yet: not a difference
    assert [d.day for d in tables["public.users_messages"].differences] == [day(4).isoformat()]
    assert tables["public.users"].equal and tables["public.packages"].equal
    doc = report.to_json()
    assert doc["equal"] is False
    assert doc["tables"][[t["table"] for t in doc["tables"]].index("public.messages")][
        "differences"][1]["same_content"] is True


def test_verify_refuses_what_it_cannot_compare(db, replica, tmp_path):
    with pytest.raises(TargetError, match="holds no topoff replica") as e:
        verify(replica, db.standby_url)
    assert "topoff sync" in (e.value.hint or "")
    fill(db, days=1, per_day=20)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    sync(url, replica)
    with pytest.raises(SafetyError):  # a primary only when asked for
        verify(replica, db.primary_url)
    assert verify(replica, db.primary_url, allow_primary=True).equal
    with pytest.raises(NoReplicaError, match="no replica of other"):  # as of no replica
        verify(replica, db.standby_url, dataset="other")
    assert query(replica, "SELECT count(*) FROM public.messages")[0][0] == 20


def test_verify_whose_source_session_ends(db, replica, tmp_path, monkeypatch):
    """The standby ends verify's session (a restart) while a table is hashed there: a
    source error, exit 3, naming the source; it was "lost the connection to" the replica,
    exit 7, even for a DuckDB file."""
    from topoff.sources.pg_verify import PgVerifier

    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    sync(url, replica)
    real = PgVerifier.hash

    def ended(self, *args, **kw):
        db.standby_query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return real(self, *args, **kw)

    monkeypatch.setattr(PgVerifier, "hash", ended)
    out = cli("verify", replica, "--against", db.standby_url)
    assert out.exit_code == 3, out.stderr
    error, hint = out.stderr.splitlines()[-2:]
    assert error.startswith("error: ") and "lost its connection to the source" in error
    assert replica not in error and "standby is running" in hint


def test_status_and_verify_read_a_duckdb_replica_others_read(db, tmp_path):
    """The README's queries open the replica read-only (`duckdb -readonly`); only a writer
    keeps others out. status, verify and replicate --status only read: they open the file
    read-only too, beside such a reader (they were refused with exit 7, 'locked')."""
    import subprocess
    import sys

    fill(db, days=1, per_day=20)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    replica = str(tmp_path / "replica.duckdb")
    sync(url, replica)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print(c.execute('select count(*) from public.messages').fetchone()[0], "
         "flush=True); time.sleep(60)", replica], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and int(reader.stdout.readline()) == 20
        shown = cli("status", replica, "--offline")
        checked = cli("verify", replica, "--against", db.standby_url)
        synced = cli("sync", url, replica)  # a writer is still kept out
    finally:
        reader.kill()
        reader.wait()
    assert shown.exit_code == 0, shown.stderr
    assert "public.messages" in shown.stdout
    assert checked.exit_code == 0, checked.stderr
    assert synced.exit_code == 7 and "another process" in synced.stderr
