"""``export full``: one snapshot of every table, its manifest, files, README and stores."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from conftest import PER_DAY
from support.dataset import (
    check_publication,
    check_schema_files,
    decompress,
    files_under,
    read_dataset,
    read_table,
    sha256,
)
from support.pg import make_config
from support.store_fixtures import Published
from topoff import __version__
from topoff.dataset import layout
from topoff.dataset.index import read_index
from topoff.dataset.lock import dataset_lock
from topoff.dataset.manifest import FORMAT_VERSION
from topoff.demo import sample
from topoff.errors import IntegrityError
from topoff.export import full as full_module
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.stores import open_store
from topoff.stores.base import FileExists

TABLES = ["public.messages", "public.users_messages", "public.packages_messages",
          "public.users", "public.packages"]
MESSAGE_COLUMNS = [
    ("id", "bigint", False), ("msg_id", "text", False), ("i", "integer", False),
    ("topic", "text", False), ("timestamp", "timestamp without time zone", False),
    ("category", "text", False), ("username", "text", True), ("source_name", "text", True),
    ("source_version", "text", True), ("msg", "jsonb", False), ("headers", "jsonb", True),
    ("agent_name", "text", True)]


def counts(db) -> dict[str, int]:
    return {t: db.standby_query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def test_manifest_describes_the_snapshot_tables_and_files(datanommer, config, dest):
    store = open_store(str(dest))
    result = export_full(config, store)
    [pub] = result.publications
    assert re.fullmatch(r"full/\d{4}-\d{2}-\d{2}T\d{6}Z", pub.id)
    assert (pub.sequence, pub.kind, pub.window, pub.revision) == (1, "full", None, None)

    raw = (dest / pub.manifest).read_bytes()
    assert pub.manifest_sha256 == sha256(raw)
    data = read_dataset(store)
    m = data.manifests[pub.id]
    assert m.format_version == FORMAT_VERSION == 1
    assert m.kind == "full" and m.dataset == "datanommer" and m.tool_version == __version__
    with datanommer.standby() as conn:
        version_num = conn.info.server_version
        lsn_ok, = conn.execute("SELECT %s::pg_lsn <= pg_last_wal_replay_lsn()",
                               (m.snapshot.lsn,)).fetchone()
    assert m.source["server_version_num"] == version_num
    assert m.source["server_version"].startswith(str(version_num // 10000))
    assert m.source["database"] == datanommer.name and m.source["in_recovery"] is True
    assert m.source["url"].endswith(f"/{datanommer.name}")
    snap = m.snapshot
    assert snap.in_recovery is True and snap.isolation == "repeatable read, read only"
    assert lsn_ok and re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", snap.lsn)
    assert snap.replay_timestamp is not None
    taken = datetime.fromisoformat(snap.time)
    assert datetime.fromisoformat(snap.replay_timestamp) <= taken <= datetime.now(UTC)
    assert 3 <= snap.xmin <= snap.xmax
    assert pub.snapshot_time == snap.time

    assert list(m.tables) == TABLES
    msgs = m.tables["public.messages"]
    assert [(c.name, c.type, c.nullable) for c in msgs.columns] == MESSAGE_COLUMNS
    assert (msgs.method, msgs.cursor, msgs.cursor_type, msgs.primary_key) == (
        "append", "timestamp", "timestamp without time zone", ["id"])
    assert m.tables["public.users_messages"].primary_key == ["user_id", "msg_id"]
    assert m.tables["public.users"].method == "snapshot"
    source = counts(datanommer)
    assert {t: e.rows for t, e in m.tables.items()} == source
    for name, e in m.tables.items():
        # snapshot tables carry a content hash (so unchanged ones are skipped later)
        assert (e.content_hash is not None) == (e.method == "snapshot"), name
        assert e.files and all(f.path.startswith(f"data/{name}.") for f in e.files)
        on_disk = dest / pub.id
        for f in e.files:
            blob = (on_disk / f.path).read_bytes()
            assert (len(blob), sha256(blob)) == (f.bytes, f.sha256)
    assert set(m.schema_files) == {"pre_data", "post_data"}
    assert pub.bytes == m.total_bytes == sum(f.bytes for f in m.files())

    # the rows are the source's rows
    tables = check_publication(store, m)
    assert sorted(tables["public.users"].rows, key=lambda r: int(r[0])) == [
        [str(i), n] for i, n in datanommer.standby_query("SELECT id, name FROM users ORDER BY id")]
    ids = sorted(int(x) for x in tables["public.messages"].column("id"))
    assert ids == [r[0] for r in datanommer.standby_query("SELECT id FROM messages ORDER BY id")]
    # and the whole dataset tree is: index, manifest, README, schema, data
    expected = {layout.INDEX, layout.INDEX_HTML} | {f"{pub.id}/{n}" for n in (
        layout.MANIFEST, layout.README, layout.PRE_DATA, layout.POST_DATA)} | {
        f"{pub.id}/{f.path}" for e in m.tables.values() for f in e.files}
    assert set(files_under(dest)) == expected
    assert result.rows == sum(source.values())


@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_every_table_is_read_in_one_snapshot(datanommer, dest, kind):
    """Rows committed while the export runs appear in no table, so references hold."""
    config = make_config(datanommer, jobs=2)
    store = open_store(str(dest))
    when = datetime.combine(yesterday(), datetime.min.time()) + timedelta(hours=12)
    before = counts(datanommer)
    fired = []
    attempts = []
    lock = threading.Lock()

    def hook(event, **kw):
        if event == "snapshot":
            attempts.append(kw["attempt"])
        if event != "table_start":
            return
        with lock:
            if fired:
                return
            fired.append(kw["table"])
        with datanommer.primary() as conn:
            conn.execute(
                "WITH m AS (INSERT INTO messages (msg_id, i, topic, \"timestamp\", category, "
                "msg) VALUES ('intruder', 0, 'x.y', %s, 'koji', '{}') RETURNING id, "
                "\"timestamp\") INSERT INTO users_messages (user_id, msg_id, msg_timestamp) "
                "SELECT 1, id, \"timestamp\" FROM m", (when,))
        # The standby shows the new rows while the export's snapshot is open. Replay can
        # conflict with that snapshot (a cleanup record of a shared catalog that other
        # tests' roles and databases left) and wait for it: then the export goes on in its
        # snapshot (the standby would cancel it only after max_standby_streaming_delay,
        # 30 s, and the export retry in a new snapshot, which holds the new rows in both
        # tables: the assertions below allow either).
        with contextlib.suppress(RuntimeError):
            datanommer.cluster.wait_replay(timeout=5)

    if kind == "full":
        [m] = export_full(config, store, hook=hook).manifests
    else:
        result = export_incremental(config, store, layout.Window.day(yesterday()), hook=hook)
        m = next(m for m in result.manifests if m.window.label == yesterday().isoformat())
    assert fired
    # the standby sees the new rows (during the export, unless a conflict held them) ...
    datanommer.cluster.wait_replay(timeout=120)
    after = counts(datanommer)
    assert after["public.messages"] == before["public.messages"] + 1
    assert after["public.users_messages"] == before["public.users_messages"] + 1
    # ... but the dataset, read in the snapshot taken before, has neither of them (or, if
    # a replay conflict made the export start again after them, both)
    grown = 1 if attempts[-1] > 1 else 0
    messages = read_table(store, m, "public.messages")
    links = read_table(store, m, "public.users_messages")
    assert ("intruder" in messages.column("msg_id")) is bool(grown)
    ids = set(messages.column("id"))
    assert set(links.column("msg_id")) <= ids
    if kind == "full":
        assert m.tables["public.messages"].rows == before["public.messages"] + grown
        assert m.tables["public.users_messages"].rows == before["public.users_messages"] + grown
    else:
        assert len(ids) == PER_DAY + grown


def test_private_columns_and_their_indexes_are_left_out(datanommer, config, dest):
    datanommer.execute(
        "CREATE INDEX messages_certificate_idx ON messages (certificate);"
        "CREATE INDEX messages_lower_signature_idx ON messages (lower(signature));"
        "CREATE INDEX messages_no_crypto_idx ON messages (topic) WHERE crypto IS NULL;"
        "CREATE INDEX messages_covering_idx ON messages (category) INCLUDE (signature);"
        "ALTER TABLE messages ADD CONSTRAINT messages_sig_key UNIQUE (msg_id, signature);"
        "CREATE INDEX messages_topic_idx ON messages (topic);")
    (certificate, signature), = datanommer.standby_query(
        "SELECT certificate, signature FROM messages LIMIT 1")
    store = open_store(str(dest))
    [m] = export_full(config, store).manifests
    private = {"certificate", "signature", "crypto"}
    messages = read_table(store, m, "public.messages")
    assert not private & set(messages.header)
    assert not private & {c.name for c in m.tables["public.messages"].columns}
    schema = check_schema_files(store, m)
    for word in (*private, "messages_certificate_idx", "messages_lower_signature_idx",
                 "messages_no_crypto_idx", "messages_covering_idx", "messages_sig_key"):
        assert word not in schema["pre_data"]
        assert word not in schema["post_data"]
        assert not any(word in s for s in m.tables["public.messages"].post_data)
    # indexes on public columns stay
    assert "messages_topic_idx" in schema["post_data"]
    assert any("messages_pkey" in s for s in m.tables["public.messages"].post_data)
    # and no private value is anywhere in the data
    for f in m.tables["public.messages"].files:
        text = decompress((dest / m.publication / f.path).read_bytes()).decode()
        assert certificate not in text and signature not in text


@pytest.mark.parametrize("kind", ["full", "incremental"])
def test_equal_timestamps_split_into_many_files_without_loss(db, dest, kind):
    """3000 rows with one cursor value, 16 KiB files: every row exactly once."""
    db.execute("CREATE TABLE burst (id integer PRIMARY KEY, t timestamptz NOT NULL, "
               "pad text NOT NULL);"
               "CREATE INDEX ON burst (t);"
               "INSERT INTO burst SELECT g, '2026-11-01 12:00:00+00', repeat(md5(g::text), 2) "
               "FROM generate_series(1, 3000) g")
    config = make_config(db, '[tables.burst]\ncursor = "t"\n', chunk_bytes=16 * 1024,
                         lookback_days=0)
    store = open_store(str(dest))
    if kind == "full":
        [m] = export_full(config, store).manifests
    else:
        [m] = export_incremental(config, store, layout.Window.day(
            datetime(2026, 11, 1).date())).manifests
    data = read_table(store, m, "public.burst")  # checks each file's header and count
    assert len(data.files) >= 5
    assert all(len(rows) > 0 for rows in data.files)
    assert sum(f.rows for f in m.tables["public.burst"].files) == 3000
    ids = Counter(int(i) for i in data.column("id"))
    assert max(ids.values()) == 1
    assert set(ids) == set(range(1, 3001))
    paths = [f.path for f in m.tables["public.burst"].files]
    assert len(set(paths)) == len(paths)


def test_big_tables_are_read_as_page_ranges_in_parallel(datanommer, dest, monkeypatch):
    monkeypatch.setattr(full_module, "SPLIT_BYTES", 4 * 8192)
    config = make_config(datanommer, jobs=2)
    parts: dict[str, set[int]] = {}
    lock = threading.Lock()

    def hook(event, **kw):
        if event == "table_start":
            with lock:
                parts.setdefault(kw["table"], set()).add(kw["part"])

    store = open_store(str(dest))
    [m] = export_full(config, store, hook=hook).manifests
    assert len(parts["public.messages"]) > 2
    source = counts(datanommer)
    for name in TABLES:
        data = read_table(store, m, name)
        assert len(data.rows) == source[name]
        key = m.tables[name].primary_key
        cols = [data.header.index(k) for k in key]
        keys = Counter(tuple(r[i] for i in cols) for r in data.rows)
        assert max(keys.values()) == 1, f"duplicate rows in {name}"
    paths = [f.path for f in m.tables["public.messages"].files]
    assert len(paths) >= len(parts["public.messages"]) and len(set(paths)) == len(paths)


def test_readme_loads_the_export_with_psql_alone(datanommer, config, dest):
    store = open_store(str(dest))
    [pub] = export_full(config, store).publications
    readme = (dest / pub.id / layout.README).read_text()
    script = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert script
    commands = script.group(1)
    assert "schema/pre-data.sql" in commands and "schema/post-data.sql" in commands
    target = f"{datanommer.name}_loaded"
    primary = datanommer.cluster.primary
    primary.execute(f'CREATE DATABASE "{target}"')
    try:
        res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", commands],
                             cwd=dest / pub.id, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "DB": primary.url(target)})
        assert res.returncode == 0, res.stderr
        assert res.stdout.count(": OK") == 2 + 5  # sha256sum -c: schema files and data
        source = counts(datanommer)
        loaded = {t: primary.execute(f"SELECT count(*) FROM {t}", dbname=target)[0][0]
                  for t in TABLES}
        assert loaded == source
        fks = primary.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' ORDER BY 1, 2", dbname=target)
        assert fks == [("packages_messages", "messages"), ("packages_messages", "packages"),
                       ("users_messages", "messages"), ("users_messages", "users")]
        pks = primary.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'p' "
                              "AND connamespace = 'public'::regnamespace", dbname=target)[0][0]
        assert pks == 5
        # private columns never reach the loaded copy
        cols = {r[0] for r in primary.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'",
            dbname=target)}
        assert not cols & {"certificate", "signature", "crypto"}
    finally:
        primary.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_full_and_incremental_through_every_store(datanommer, config, published: Published):
    writer = open_store(published.write_url)
    full = export_full(config, writer)
    inc = export_incremental(config, writer, layout.Window.day(yesterday()))
    reader = open_store(published.read_url)
    data = read_dataset(reader)  # every manifest and file checked through the reader
    assert data.ids() == [p.id for p in full.publications + inc.publications]
    source = counts(datanommer)
    [fm] = full.manifests
    assert {t: e.rows for t, e in data.manifests[fm.publication].tables.items()} == source
    day = data.manifests[layout.incremental_id(layout.Window.day(yesterday()), 1)]
    assert read_table(reader, day, "public.messages").rows
    assert len(read_table(reader, day, "public.messages").rows) == PER_DAY
    # unchanged snapshot tables point at the full export instead of being copied again
    assert day.tables["public.users"].unchanged_since == fm.publication
    assert day.tables["public.users"].files == []
    assert "revision 1" in reader.read_bytes(f"{day.publication}/README.md").decode()
    if published.kind == "s3":
        client = published.s3.client()
        uploads = client.list_multipart_uploads(Bucket=published.bucket).get("Uploads", [])
        assert uploads == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_export_leaves_nothing_behind(datanommer, published: Published, jobs):
    config = make_config(datanommer, jobs=jobs, chunk_bytes=16 * 1024)
    writer = open_store(published.write_url)
    done = []
    lock = threading.Lock()

    def hook(event, **kw):
        if event == "table_done":
            with lock:
                done.append(kw["table"])
                if len(done) == 2:
                    raise RuntimeError("the export breaks here")

    with pytest.raises(RuntimeError, match="breaks here"):
        export_full(config, writer, hook=hook)
    assert len(done) >= 2  # files of at least two tables were written, then removed
    assert writer.list("") == []
    assert read_index(writer) is None
    if published.directory is not None:  # no temp files or empty directories either
        assert list(published.directory.rglob("*")) == []


def test_a_full_export_never_overwrites_a_published_one(datanommer, config, dest, monkeypatch):
    """Full exports are named after their snapshot's second: one whose every snapshot
    falls in a published one's second (the source's clock stands still) fails before
    writing, leaving the first one whole."""
    store = open_store(str(dest))
    [first] = export_full(config, store).publications
    before = {p: (dest / p).read_bytes() for p in files_under(dest)}
    monkeypatch.setattr(full_module.layout, "full_id", lambda _time: first.id)
    with pytest.raises(IntegrityError) as info:
        export_full(config, store)
    assert "already published" in info.value.message and info.value.hint
    assert {p: (dest / p).read_bytes() for p in files_under(dest)} == before
    read_dataset(store)


def test_a_concurrent_run_of_the_same_day_keeps_the_winner_whole(datanommer, dest):
    """Two runs of one day at once that get past the dataset's lock (both given the store
    of one held lock; or one whose lock was taken over while it stalled): the one that
    publishes second fails, and neither overwrites the other's manifest nor deletes its
    files."""
    config = make_config(datanommer, jobs=1, lookback_days=0)
    store = open_store(str(dest))
    day = layout.Window.day(yesterday())
    winner = []

    def hook(event, **kw):
        if event == "table_start" and not winner:
            winner.append(export_incremental(config, locked, day))

    # the loser stops at its first file whose name the winner published (never overwritten)
    with dataset_lock(store, config.dataset) as locked, \
            pytest.raises(FileExists, match="already exists"):
        export_incremental(config, locked, day, hook=hook)
    data = read_dataset(store)  # manifests and every file still match the index
    assert data.ids() == [p.id for p in winner[0].publications]
    [m] = winner[0].manifests
    assert len(read_table(store, m, "public.messages").rows) == PER_DAY


def test_a_filtered_table_keeps_no_foreign_keys_to_it(datanommer, dest):
    """Rows left out by a filter could leave references dangling: foreign keys to or
    from a filtered table are not in post-data."""
    text = sample.example_config().replace(
        'cursor_timezone = "UTC"      #',
        "filter = \"category <> 'koji'\"\ncursor_timezone = \"UTC\" #")
    config = make_config(datanommer, text)
    assert config.table("public.messages").filter
    store = open_store(str(dest))
    [m] = export_full(config, store).manifests
    msgs = m.tables["public.messages"]
    assert msgs.filtered and not m.tables["public.users"].filtered
    expected = datanommer.standby_query("SELECT count(*) FROM messages WHERE category <> 'koji'")
    assert msgs.rows == expected[0][0] < counts(datanommer)["public.messages"]
    assert "koji" not in read_table(store, m, "public.messages").column("category")
    post = check_schema_files(store, m)["post_data"]
    assert "users_messages_msg_id_fkey" not in post
    assert "packages_messages_msg_id_fkey" not in post
    assert "users_messages_user_id_fkey" in post  # between unfiltered tables it stays


def test_a_store_holding_another_dataset_is_refused(datanommer, config, dest):
    store = open_store(str(dest))
    export_full(config, store)
    before = files_under(dest)
    other = config.with_overrides(dataset="other")
    for run in (lambda: export_full(other, store),
                lambda: export_incremental(other, store, layout.Window.day(yesterday()))):
        with pytest.raises(IntegrityError) as info:
            run()
        assert "holds dataset 'datanommer', not 'other'" in info.value.message
        assert files_under(dest) == before


def test_each_file_declares_its_uncompressed_size(datanommer, config, dest):
    """Consumers stop decompressing a file at the size its manifest declares."""
    import zstandard

    store = open_store(str(dest))
    [pub] = export_full(config, store).publications
    m = read_dataset(store).manifests[pub.id]
    files = [f for t in m.tables.values() for f in t.files]
    assert files
    for f in files:
        raw = (dest / pub.id / f.path).read_bytes()
        with zstandard.ZstdDecompressor().stream_reader(raw) as r:
            assert f.uncompressed_bytes == len(r.read())
