"""``export incremental``: a day's rows, late rows, re-runs, open days and daylight saving."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from conftest import PER_DAY
from support.dataset import (
    checked_bytes,
    decompress,
    files_under,
    read_dataset,
    read_table,
    topoff_log,
)
from support.pg import make_config
from topoff.config import parse_size
from topoff.dataset import layout
from topoff.dataset.index import read_index
from topoff.dataset.layout import Window
from topoff.demo import sample
from topoff.errors import ConfigError
from topoff.export.incremental import export_incremental
from topoff.export.queries import hash_algorithm, recheck_algorithm
from topoff.export.windows import choose_window, yesterday
from topoff.sources.catalog import introspect
from topoff.stores import open_store

CURSOR_TABLES = {"public.messages": "timestamp", "public.users_messages": "msg_timestamp",
                 "public.packages_messages": "msg_timestamp"}


def day_count(db, table: str, d: date) -> int:
    col = CURSOR_TABLES[table]
    return db.standby_query(
        f'SELECT count(*) FROM {table} WHERE "{col}" >= %s AND "{col}" < %s',
        (d, d + timedelta(days=1)))[0][0]


def day_ids(db, d: date) -> list[str]:
    return [str(r[0]) for r in db.standby_query(
        'SELECT id FROM messages WHERE "timestamp" >= %s AND "timestamp" < %s ORDER BY id',
        (d, d + timedelta(days=1)))]


def rev(d: date, n: int) -> str:
    return layout.incremental_id(Window.day(d), n)


def run(config, store, d: date, **kw):
    return export_incremental(config, store, Window.day(d), **kw)


def test_late_rows_publish_a_new_revision_of_their_day(datanommer, config, dest, caplog):
    store = open_store(str(dest))
    y = yesterday()
    d = y - timedelta(days=2)
    first = run(config, store, d)
    # the day and the lookback days before it, each a first revision
    assert [p.id for p in first.publications] == [
        rev(d - timedelta(days=n), 1) for n in (3, 2, 1, 0)]
    second = run(config, store, y)
    assert [p.id for p in second.publications] == [rev(y - timedelta(days=1), 1), rev(y, 1)]
    assert second.unchanged == [(y - timedelta(days=3)).isoformat(), d.isoformat()]
    target = second.manifests[-1]
    how = {(r["window"], r["table"]): r["result"] for r in target.rechecked}
    for table in CURSOR_TABLES:
        assert how[(d.isoformat(), table)] == "unchanged-xmin"
        assert how[((y - timedelta(days=3)).isoformat(), table)] == "unchanged-xmin"
        assert how[((y - timedelta(days=1)).isoformat(), table)] == "new"
    # snapshot tables travel with the target day only when they changed
    assert target.tables["public.users"].unchanged_since == rev(d, 1)
    assert target.tables["public.users"].files == []
    index_before = (dest / layout.INDEX).read_bytes()

    with datanommer.primary() as conn:
        sample.add_messages(conn, d, 7, tag="late")  # committed now, timestamps inside d
    datanommer.sync()
    with topoff_log(), caplog.at_level(logging.INFO, logger="topoff"):
        third = run(config, store, y)
    assert [p.id for p in third.publications] == [rev(d, 2)]
    assert y.isoformat() in third.unchanged
    assert (y - timedelta(days=1)).isoformat() in third.unchanged
    [m] = third.manifests
    assert (m.window, m.revision, m.previous_revision) == (Window.day(d), 2, rev(d, 1))
    readme = (dest / rev(d, 2) / layout.README).read_text()
    assert f"rows of {d}, revision 2" in readme
    assert f"| public.messages | append | {PER_DAY + 7} |" in readme
    messages = read_table(store, m, "public.messages")
    assert sorted(messages.column("id"), key=int) == day_ids(datanommer, d)
    assert len(messages.rows) == PER_DAY + 7
    assert sum(x.startswith("late-") for x in messages.column("msg_id")) == 7
    for table in CURSOR_TABLES:
        assert m.tables[table].unchanged_since is None
        assert len(read_table(store, m, table).rows) == day_count(datanommer, table, d)
    lines = caplog.text.splitlines()
    assert any(d.isoformat() in ln and "changed" in ln and "r2" in ln for ln in lines), lines
    assert any((y - timedelta(days=1)).isoformat() in ln and "unchanged" in ln and "xmin" in ln
               for ln in lines), lines
    data = read_dataset(store)  # everything still checks out, the index grew by one
    assert data.ids()[:-1] == [p["id"] for p in json.loads(index_before)["publications"]]
    assert data.index.latest_revision(Window.day(d)).id == rev(d, 2)


@pytest.mark.parametrize("change, republished, how", [
    ("UPDATE messages SET topic = topic || '.edited' WHERE id = {first}", True, "changed-hash"),
    ("UPDATE messages SET topic = topic WHERE {in_day}", False, "unchanged-hash"),
    ("UPDATE messages SET certificate = 'changed' WHERE {in_day}", False, "unchanged-hash"),
    ("DELETE FROM users_messages WHERE msg_id = {first};"
     "DELETE FROM packages_messages WHERE msg_id = {first};"
     "DELETE FROM messages WHERE id = {first}", True, "changed-count"),
], ids=["update", "no-op-update", "private-column-update", "delete"])
def test_changed_rows_of_a_published_day(datanommer, dest, change, republished, how):
    config = make_config(datanommer, lookback_days=1)
    store = open_store(str(dest))
    d = yesterday() - timedelta(days=1)
    run(config.with_export(lookback_days=0), store, d)
    in_day = f"\"timestamp\" >= '{d}' AND \"timestamp\" < '{d + timedelta(days=1)}'"
    first = datanommer.standby_query(f"SELECT min(id) FROM messages WHERE {in_day}")[0][0]
    datanommer.execute(change.format(first=first, in_day=in_day))
    result = run(config, store, d + timedelta(days=1))
    target = result.manifests[-1]
    assert target.window == Window.day(d + timedelta(days=1))
    [recheck] = [r for r in target.rechecked if r["table"] == "public.messages"]
    assert (recheck["window"], recheck["result"]) == (d.isoformat(), how)
    ids = [p.id for p in result.publications]
    if not republished:
        assert ids == [rev(d + timedelta(days=1), 1)]
        assert d.isoformat() in result.unchanged
        return
    assert ids == [rev(d, 2), rev(d + timedelta(days=1), 1)]
    m = result.manifests[0]
    assert m.previous_revision == rev(d, 1)
    messages = read_table(store, m, "public.messages")
    assert sorted(messages.column("id"), key=int) == day_ids(datanommer, d)
    row = messages.rows[messages.column("id").index(str(first))] if how != "changed-count" \
        else None
    if how == "changed-hash":
        assert row[messages.header.index("topic")].endswith(".edited")
        # only the changed table is written again; the others point at the first revision
        assert m.tables["public.users_messages"].unchanged_since == rev(d, 1)
        assert m.tables["public.users_messages"].files == []
    else:
        assert str(first) not in messages.column("id")
        assert len(messages.rows) == PER_DAY - 1


def test_without_lookback_late_rows_are_not_seen(datanommer, dest):
    """The limit of lookback_days: a day older than it is never re-checked."""
    config = make_config(datanommer, lookback_days=0)
    store = open_store(str(dest))
    y = yesterday()
    d = y - timedelta(days=2)
    run(config, store, d)
    with datanommer.primary() as conn:
        sample.add_messages(conn, d, 5, tag="late")
    datanommer.sync()
    result = run(config, store, y)
    assert [p.id for p in result.publications] == [rev(y, 1)]
    assert result.manifests[0].rechecked == []
    # with a lookback that reaches the day, the next run finds them
    result = run(config.with_export(lookback_days=2), store, y)
    # (the day between was never published: it gets its first revision now)
    assert [p.id for p in result.publications] == [rev(d, 2), rev(y - timedelta(days=1), 1)]
    assert result.manifests[0].tables["public.messages"].rows == PER_DAY + 5


def test_running_a_day_again_publishes_nothing_until_it_changes(datanommer, config, dest):
    store = open_store(str(dest))
    y = yesterday()
    first = run(config, store, y)
    assert rev(y, 1) in [p.id for p in first.publications]
    before = (dest / layout.INDEX).read_bytes()
    files_before = files_under(dest)
    again = run(config, store, y)
    assert again.publications == [] and again.manifests == []
    assert again.unchanged == [(y - timedelta(days=n)).isoformat() for n in (3, 2, 1, 0)]
    assert (dest / layout.INDEX).read_bytes() == before
    assert files_under(dest) == files_before
    # a snapshot table changes: the day gets a second revision carrying that table only
    datanommer.execute("UPDATE users SET name = name || '-renamed' WHERE id = 1")
    changed = run(config, store, y)
    assert [p.id for p in changed.publications] == [rev(y, 2)]
    [m] = changed.manifests
    assert m.previous_revision == rev(y, 1)
    users = read_table(store, m, "public.users")
    assert len(users.rows) == 1024 and any(n.endswith("-renamed") for n in users.column("name"))
    assert m.tables["public.messages"].unchanged_since == rev(y, 1)
    assert m.tables["public.messages"].rows == PER_DAY
    assert m.tables["public.packages"].unchanged_since == rev(y, 1)


@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
def test_a_window_that_has_not_ended_is_in_the_future(datanommer, config, dest, force):
    store = open_store(str(dest))
    today = datetime.now(UTC).date()
    now = datetime.now(UTC).replace(tzinfo=None)
    with datanommer.primary() as conn:
        sample.add_messages(conn, today, 3, tag="today", span=now - datetime(
            today.year, today.month, today.day))
    datanommer.sync()
    for window in (Window.day(today), Window.day(today + timedelta(days=30)), choose_window(
            None, (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            (datetime.now(UTC) + timedelta(hours=1)).isoformat())):
        with pytest.raises(ConfigError) as info:
            export_incremental(config, store, window, force=force)
        assert f"{window.label} is in the future" in info.value.message
        assert "ends at" in info.value.message and "once it has ended" in info.value.hint
    assert not dest.exists() or files_under(dest) == []
    assert read_index(store) is None


def test_a_window_given_by_since_and_until(datanommer, config, dest):
    store = open_store(str(dest))
    y = yesterday()
    window = choose_window(None, f"{y}T06:00", f"{y}T12:00")
    result = export_incremental(config, store, window)
    assert [p.id for p in result.publications] == [f"incremental/{y}T060000Z--{y}T120000Z/r1"]
    [m] = result.manifests
    assert m.rechecked == []  # a span has no lookback days
    expected = datanommer.standby_query(
        "SELECT count(*) FROM messages WHERE \"timestamp\" >= %s AND \"timestamp\" < %s",
        (f"{y} 06:00", f"{y} 12:00"))[0][0]
    messages = read_table(store, m, "public.messages")
    assert 0 < len(messages.rows) == expected
    stamps = messages.column("timestamp")
    assert min(stamps) >= f"{y} 06:00" and max(stamps) < f"{y} 12:00"


DST_CONFIG = """
[tables.wall]
cursor = "t"
cursor_timezone = "Europe/London"

[tables.instant]
cursor = "t"
"""


def test_daylight_saving_fall_back_splits_rows_once(db, dest):
    """Europe/London goes back from 02:00 BST to 01:00 GMT on 2026-10-25: wall-clock
    01:00-02:00 happens twice. Every row lands in exactly one day, and the days meet at
    wall-clock 01:00 (= 00:00 UTC)."""
    db.execute(
        "CREATE TABLE wall (id serial PRIMARY KEY, t timestamp without time zone NOT NULL,"
        " pass integer NOT NULL);"
        "CREATE INDEX ON wall (t);"
        "INSERT INTO wall (t, pass) SELECT g, 1 FROM generate_series("
        "'2026-10-24 22:00'::timestamp, '2026-10-25 04:00', '5 minutes') g;"
        # the second pass through the repeated hour writes the same wall-clock times again
        "INSERT INTO wall (t, pass) SELECT g, 2 FROM generate_series("
        "'2026-10-25 01:00'::timestamp, '2026-10-25 01:55', '5 minutes') g;"
        "CREATE TABLE instant (id serial PRIMARY KEY, t timestamptz NOT NULL);"
        "CREATE INDEX ON instant (t);"
        "INSERT INTO instant (t) SELECT g FROM generate_series("
        "'2026-10-24 21:00+00'::timestamptz, '2026-10-25 03:00+00', '5 minutes') g;")
    config = make_config(db, DST_CONFIG, lookback_days=1)
    store = open_store(str(dest))
    first = run(config.with_export(lookback_days=0), store, date(2026, 10, 24))
    second = run(config, store, date(2026, 10, 25))
    assert [p.id for p in second.publications] == [rev(date(2026, 10, 25), 1)]
    # the 24th is re-checked and found unchanged: no row moved between the days
    assert second.unchanged == ["2026-10-24"]
    d24, d25 = first.manifests[0], second.manifests[0]
    wall24, wall25 = (read_table(store, m, "public.wall") for m in (d24, d25))
    total = db.standby_query("SELECT count(*) FROM wall")[0][0]
    assert total == 73 + 12
    ids24, ids25 = set(wall24.column("id")), set(wall25.column("id"))
    assert len(ids24) == len(wall24.rows) and len(ids25) == len(wall25.rows)
    assert not ids24 & ids25
    assert len(ids24) + len(ids25) == total
    assert max(wall24.column("t")) == "2026-10-25 00:55:00"
    assert min(wall25.column("t")) == "2026-10-25 01:00:00"
    assert len(wall24.rows) == 36  # 22:00 .. 00:55 wall clock, all before the change
    # both passes through the repeated hour are on the 25th
    assert sorted(wall25.column("pass")).count("2") == 12
    inst24, inst25 = (read_table(store, m, "public.instant") for m in (d24, d25))
    assert len(inst24.rows) + len(inst25.rows) == 73
    assert not set(inst24.column("id")) & set(inst25.column("id"))
    assert max(inst24.column("t")) == "2026-10-24 23:55:00+00"
    assert min(inst25.column("t")) == "2026-10-25 00:00:00+00"
    assert d24.tables["public.wall"].cursor_timezone == "Europe/London"


def test_a_view_is_rechecked_by_content_hash(datanommer, dest):
    """Views have no xmin: the recheck of a view's day falls back to the content hash."""
    datanommer.execute("CREATE VIEW koji_messages AS SELECT id, msg_id, \"timestamp\" "
                       "FROM messages WHERE category = 'koji'")
    config = make_config(datanommer, '[tables.koji_messages]\ncursor = "timestamp"\n',
                         lookback_days=1)
    store = open_store(str(dest))
    y = yesterday()
    d = y - timedelta(days=1)
    run(config.with_export(lookback_days=0), store, d)
    result = run(config, store, y)
    [recheck] = result.manifests[0].rechecked
    assert (recheck["window"], recheck["result"]) == (d.isoformat(), "unchanged-hash")
    datanommer.execute("UPDATE messages SET category = 'koji' WHERE id = (SELECT min(id) FROM "
                       "messages WHERE category <> 'koji' AND \"timestamp\" >= %s AND "
                       "\"timestamp\" < %s)", (d, y))
    result = run(config, store, y)
    assert [p.id for p in result.publications] == [rev(d, 2)]
    assert result.unchanged == [y.isoformat()]
    m = result.manifests[0]
    expected = datanommer.standby_query(
        "SELECT count(*) FROM koji_messages WHERE \"timestamp\" >= %s AND \"timestamp\" < %s",
        (d, y))[0][0]
    assert len(read_table(store, m, "public.koji_messages").rows) == expected


EQUAL_BUT_DIFFERENT = {
    "float-negative-zero": ("f", "'-0'::float8", "'0'::float8"),
    "interval-month": ("i", "'1 mon'::interval", "'30 days'::interval"),
    "numeric-scale": ("n", "0.1", "0.10"),
    "array-bounds": ("a", "'[0:2]={1,2,3}'::int[]", "'{1,2,3}'::int[]"),
}


@pytest.mark.parametrize("change", list(EQUAL_BUT_DIFFERENT), ids=list(EQUAL_BUT_DIFFERENT))
def test_a_change_equal_under_the_types_equality_is_republished(db, dest, change):
    """Values a type's hash calls equal but whose text differs: the exported text
    changed, so the day gets a new revision carrying the new text."""
    column, before, after = EQUAL_BUT_DIFFERENT[change]
    # the per-type hashes call them equal; their text differs
    assert db.standby_query(
        f"SELECT hash_record_extended(ROW({before}), 0) = hash_record_extended(ROW({after}), 0),"
        f" ({before})::text <> ({after})::text")[0] == (True, True)
    d = yesterday() - timedelta(days=1)
    db.execute(
        "CREATE TABLE odd (id integer PRIMARY KEY, t timestamptz NOT NULL, f float8,"
        " i interval, n numeric, a integer[]); CREATE INDEX ON odd (t);"
        f"INSERT INTO odd SELECT g, '{d} 00:00+00'::timestamptz + g * interval '1 minute',"
        " 1.5, '2 days', 7, '{4}' FROM generate_series(1, 20) g;"
        f"UPDATE odd SET {column} = {before} WHERE id = 3")
    config = make_config(db, '[tables.odd]\ncursor = "t"\n', lookback_days=1)
    store = open_store(str(dest))
    run(config.with_export(lookback_days=0), store, d)
    db.execute(f"UPDATE odd SET {column} = {after} WHERE id = 3")
    # the xmin check cannot decide (an update left the count as it was): the hash decides
    result = run(config, store, d + timedelta(days=1))
    [recheck] = result.manifests[-1].rechecked
    assert (recheck["window"], recheck["result"]) == (d.isoformat(), "changed-hash")
    assert [p.id for p in result.publications] == [rev(d, 2), rev(d + timedelta(days=1), 1)]
    odd = read_table(store, result.manifests[0], "public.odd")
    [row] = [r for r in odd.rows if r[odd.header.index("id")] == "3"]
    expected = db.standby_query(f"SELECT ({after})::text")[0][0]
    assert row[odd.header.index(column)] == expected
    assert result.manifests[0].tables["public.odd"].content_hash.startswith("cs1:")
    # a run after it finds the new revision unchanged, by the same hash
    again = run(config, store, d + timedelta(days=1))
    assert again.publications == [] and d.isoformat() in again.unchanged


def test_hashes_of_older_versions_never_compare_equal(datanommer, config):
    """An ``rh1`` hash (hash_record_extended, by older versions) is never computed again:
    a day published with one is re-exported rather than judged unchanged."""
    with datanommer.standby() as conn:
        tables = {t.qualified: t for t in introspect(conn, config)}
    messages, users = tables["public.messages"], tables["public.users"]
    assert hash_algorithm(150000) == "rt1" and hash_algorithm(100000) == "md5"
    for table in (messages, users):
        assert recheck_algorithm("rh1:42", table, 150000) is None
        assert recheck_algorithm(None, table, 150000) is None
        assert recheck_algorithm("md5:42", table, 150000) is None
        assert recheck_algorithm("rt1:42", table, 150000) == "rt1"
    assert recheck_algorithm("md5:42", messages, 100000) == "md5"
    # the hash of the exported rows in (cursor, key) order: for cursor tables with a key
    assert recheck_algorithm("cs1:ab", messages, 150000) == "cs1"
    assert recheck_algorithm("cs1:ab", users, 150000) is None


def test_the_suggested_index_is_sql_that_runs(db, dest, caplog):
    """The warning about a missing cursor index prints identifiers quoted as SQL needs them:
    its CREATE INDEX statement runs as printed."""
    db.execute('CREATE TABLE "Odd Notes" (id integer PRIMARY KEY, "Sent At" timestamptz);'
               "INSERT INTO \"Odd Notes\" VALUES (1, now() - interval '2 days')")
    config = make_config(db, '[tables."Odd Notes"]\ncursor = "Sent At"\n')
    with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
        run(config, open_store(str(dest)), yesterday())
    [line] = [r.getMessage() for r in caplog.records if "no index starts" in r.getMessage()]
    assert 'cursor column "Sent At"' in line
    statement = line[line.index("CREATE INDEX"):].removesuffix(")")
    assert statement == 'CREATE INDEX ON "public"."Odd Notes" ("Sent At")'
    db.execute(statement)
    caplog.clear()
    with topoff_log(), caplog.at_level(logging.WARNING, logger="topoff"):
        run(config, open_store(str(dest)), yesterday())
    assert not [r for r in caplog.records if "no index starts" in r.getMessage()]


@pytest.mark.per_day(300)  # a day of several 64 KiB files
def test_a_days_content_hash_is_the_sha256_of_its_rows_as_published(datanommer, dest):
    """cs1, as documented: sha256 of the data rows of the files, headers left out, in file
    order; several files (small chunks) give the same hash as one."""
    y = yesterday()
    hashes = {}
    for chunk in ("64KiB", "256MiB"):
        config = make_config(datanommer, lookback_days=0, chunk_bytes=parse_size(chunk, "chunk"))
        store = open_store(str(dest / chunk))
        [m] = run(config, store, y).manifests
        entry = m.tables["public.messages"]
        assert (len(entry.files) > 1) == (chunk == "64KiB")
        rows = b""
        for f in entry.files:
            text = decompress(checked_bytes(store, m, f))
            rows += text[text.index(b"\n") + 1:]
        assert entry.content_hash == f"cs1:{hashlib.sha256(rows).hexdigest()}"
        hashes[chunk] = entry.content_hash
    assert len(set(hashes.values())) == 1
