"""``sync``: building a replica from a published dataset and topping it off, on both targets.

Every scenario ends with ``verify`` against the source's standby reporting equal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest

from support.pg import Database, make_config
from support.replica import (
    TABLES,
    add_messages,
    assert_no_duplicates,
    cli,
    columns,
    contents,
    day,
    end_state,
    fill,
    is_postgres,
    ledger,
    nommer_config,
    publish_day,
    publish_full,
    publish_standard,
    query,
    reader,
    rows,
    source_rows,
    user_tables,
    wait_for_next_second,
)
from support.store_fixtures import Published
from topoff.dataset.index import Index, read_index
from topoff.dataset.retention import prune
from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster
from topoff.errors import ConfigError, NotPublishedError, TargetError
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]


def assert_equal(replica: str, db: Database, dataset: str | None = None) -> None:
    report = verify(replica, db.standby_url, dataset=dataset)
    assert report.equal, json.dumps(report.to_json(), indent=1, default=str)
    assert report.tables and all(t.compared_rows > 0 for t in report.tables)


def assert_counts(replica: str, db: Database, tables: list[str] = TABLES,
                  schema: str | None = None) -> None:
    with reader(replica) as r:
        for t in tables:
            name = f"{schema}.{t.split('.')[1]}" if schema else t
            have = r.query(f"SELECT count(*) FROM {name}")[0][0]
            assert have == source_rows(db, t), t


# -- 1. every kind of FROM -----------------------------------------------------------------

def test_sync_from_every_store_kind(db, published: Published, replica, tmp_path):
    fill(db)
    config = nommer_config(db, chunk_bytes=64 * 1024)
    ids = publish_standard(config, published.write_url)
    assert len(ids) == 3 and ids[0].startswith("full/")
    cache = tmp_path / "cache"

    first = sync(published.read_url, replica, SyncOptions(cache_dir=cache))
    assert first.base_loaded == ids[0]
    assert first.applied == ids[1:]
    assert first.last_sequence == 3 and first.passed_over == []
    assert first.rows > sum(source_rows(db, t) for t in TABLES)  # the days were loaded twice
    if published.kind == "local":
        assert first.downloaded_bytes == 0
    else:
        assert first.downloaded_bytes > 0
        assert list(cache.iterdir()) == []  # applied downloads are dropped
    assert user_tables(replica) == sorted(TABLES)
    assert_counts(replica, db)
    assert_no_duplicates(replica)
    [(origin, base, base_seq, status, last, tables, since, schema)] = ledger(replica).values()
    assert (origin, base, base_seq, status, last) == (
        open_store(published.read_url).url, ids[0], 1, "ready", 3)
    assert (tables, since, schema) == (None, None, None)
    assert_equal(replica, db)

    again = sync(published.read_url, replica, SyncOptions(cache_dir=cache))
    assert again.applied == [] and again.base_loaded is None
    assert again.rows == 0 and again.downloaded_bytes == 0 and again.last_sequence == 3
    assert_equal(replica, db)


def test_nothing_published_yet(tmp_path, replica):
    with pytest.raises(NotPublishedError, match="nothing is published") as e:
        sync(str(tmp_path / "empty"), replica)
    assert "export full" in (e.value.hint or "")


def test_a_newer_full_export_is_passed_over(db, replica, tmp_path):
    """A replica that already has the increments does not reload a newer full export."""
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica)
    add_messages(db, day(1), 40)
    new = [p.id for p in publish_day(config, url, day(1)).publications]
    wait_for_next_second()
    full2 = publish_full(config, url).publications[0].id

    result = sync(url, replica)
    assert result.base_loaded is None
    assert result.applied == new and result.passed_over == [full2]
    assert ledger(replica)["datanommer"][4] == 5  # the full export's sequence, passed over
    assert_counts(replica, db)
    assert_equal(replica, db)
    assert sync(url, replica).applied == []


# -- 2. late rows --------------------------------------------------------------------------

def test_late_rows_replace_their_day(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica)
    late_day = day(2)
    add_messages(db, late_day, 25, tag="late")

    published = [p.id for p in publish_day(config, url, day(1)).publications]
    r2 = f"incremental/{late_day.isoformat()}/r2"
    assert published == [r2, f"incremental/{day(1).isoformat()}/r1"]
    result = sync(url, replica)
    assert result.applied == published and result.base_loaded is None

    assert_no_duplicates(replica)
    assert_no_duplicates(replica, "public.users_messages", "msg_id")
    late = query(replica, "SELECT count(*) FROM public.messages WHERE msg_id LIKE 'late-%'")
    assert late[0][0] == 25
    start = datetime.combine(late_day, time())
    in_day = query(replica, 'SELECT count(*) FROM public.messages WHERE "timestamp" >= ? '
                   'AND "timestamp" < ?', [start, start + timedelta(days=1)])[0][0]
    assert in_day == 100 + 25
    assert_counts(replica, db)
    assert_equal(replica, db)


def insert_late_messages_only(db: Database, d, n: int) -> None:
    """Late rows in messages alone (no link rows): the link tables' day stays unchanged."""
    db.execute('INSERT INTO messages (msg_id, i, topic, "timestamp", category, msg) '
               "SELECT 'lone-' || g, g, 'late.topic', %s::timestamp + g * interval '1 minute', "
               "'bodhi', '{}' FROM generate_series(1, %s) g", [datetime.combine(d, time()), n])


def test_a_passed_over_revision_still_brings_what_the_next_one_refers_to(db, replica, tmp_path):
    """A replica that was not synced between two revisions of a day passes over the first;
    tables that the second marks unchanged since the first must still arrive."""
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica)
    add_messages(db, day(1), 50)
    db.execute("INSERT INTO users (name) VALUES ('newcomer')")
    [r1] = [p.id for p in publish_day(config, url, day(1)).publications]
    insert_late_messages_only(db, day(1), 5)
    result = publish_day(config, url, day(1))
    [r2] = [p.id for p in result.publications]
    unchanged = {q: e.unchanged_since for q, e in result.manifests[0].tables.items()}
    assert unchanged["public.users_messages"] == unchanged["public.users"] == r1

    synced = sync(url, replica)
    assert synced.applied == [r2] and synced.passed_over == [r1]
    assert "newcomer" in {r[1] for r in rows(replica, "public.users")}
    assert_counts(replica, db)
    assert_no_duplicates(replica, "public.users_messages", "msg_id")
    assert_equal(replica, db)


def test_a_passed_over_full_export_still_brings_snapshot_changes(db, replica, tmp_path):
    """A snapshot table changed just before a full export is marked unchanged since that
    full export by the next partition; a replica that passes over the full export must
    still get the change."""
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica)
    db.execute("INSERT INTO users (name) VALUES ('newcomer')")
    wait_for_next_second()
    full2 = publish_full(config, url).publications[0].id
    add_messages(db, day(1), 20)
    result = publish_day(config, url, day(1))
    assert result.manifests[-1].tables["public.users"].unchanged_since == full2

    synced = sync(url, replica)
    assert synced.passed_over == [full2] and synced.base_loaded is None
    assert "newcomer" in {r[1] for r in rows(replica, "public.users")}
    assert_counts(replica, db)
    assert_equal(replica, db)


# -- 6. retention gap ----------------------------------------------------------------------

def test_retention_gap_stops_until_rebase(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    assert sync(url, replica).last_sequence == 3
    add_messages(db, day(2), 10, tag="late")
    publish_day(config, url, day(1))  # day(2) r2 (4), day(1) r1 (5)
    wait_for_next_second()
    full2 = publish_full(config, url).publications[0].id  # 6
    with open_store(url) as store:
        pruned = prune(store, "datanommer", keep_days=1, keep_full=1)
    assert f"incremental/{day(2).isoformat()}/r2" in [p.id for p in pruned.removed]
    before = end_state(replica)

    with pytest.raises(TargetError) as e:
        sync(url, replica)
    assert "older than the oldest data still published" in e.value.message
    assert f"incremental/{day(2).isoformat()}/r2" in e.value.message
    assert "--rebase" in (e.value.hint or "")
    assert end_state(replica) == before

    # --tables / --since must match the replica, but --rebase starts over
    rebuilt = sync(url, replica, SyncOptions(rebase=True))
    assert rebuilt.base_loaded == full2 and rebuilt.applied == []
    assert ledger(replica)["datanommer"][:5] == (url, full2, 6, "ready", 6)
    assert_counts(replica, db)
    assert_no_duplicates(replica)
    assert_equal(replica, db)


def test_a_recreated_dataset_needs_a_rebase(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = tmp_path / "published"
    publish_standard(config, str(url))
    sync(str(url), replica)
    before = end_state(replica)
    url.rename(tmp_path / "old")
    publish_full(config, str(url))

    with pytest.raises(TargetError, match="recreated") as e:
        sync(str(url), replica)
    assert "--rebase" in (e.value.hint or "")
    assert end_state(replica) == before
    # the new dataset grows past the replica's last sequence: its increments are still
    # another lineage's, never applied on top of the old one
    last = ledger(replica)["datanommer"][4]
    k = 1
    while read_index_of(url).next_sequence <= last + 1:
        publish_day(config, str(url), day(k))
        k += 1
    with pytest.raises(TargetError, match="did not publish") as e:
        sync(str(url), replica)
    assert "--rebase" in (e.value.hint or "")
    assert end_state(replica) == before
    assert sync(str(url), replica, SyncOptions(rebase=True)).base_loaded is not None
    assert_equal(replica, db)


def read_index_of(path: object) -> Index:
    with open_store(str(path)) as store:
        index = read_index(store)
        assert index is not None
        return index


# -- 7. schema changes ---------------------------------------------------------------------

def with_extra_column(text: str) -> str:
    assert text.count('agent_name = "public"\n') == 1
    return text.replace('agent_name = "public"\n', 'agent_name = "public"\nextra = "public"\n')


def test_a_new_column_is_added_to_the_replica(db, replica, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    sync(url, replica)
    db.execute("ALTER TABLE messages ADD COLUMN extra text")
    add_messages(db, day(1), 30)
    db.execute("UPDATE messages SET extra = 'extra ' || i WHERE msg_id LIKE %s",
               [f"m{day(1).isoformat()}-%"])
    config = make_config(db, with_extra_column(sample.example_config()), lookback_days=1)

    published = [p.id for p in publish_day(config, url, day(1)).publications]
    result = sync(url, replica)
    assert result.applied == published
    assert [c for c, _ in columns(replica, "public.messages")][-1] == "extra"
    extras = query(replica, "SELECT msg_id, extra FROM public.messages WHERE extra IS NOT NULL")
    assert len(extras) == 30
    assert all(e == f"extra {m.rsplit('-', 1)[1]}" for m, e in extras)
    (nulls,) = query(replica, "SELECT count(*) FROM public.messages WHERE extra IS NULL")[0]
    assert nulls == source_rows(db, "messages") - 30
    assert_counts(replica, db)
    assert_equal(replica, db)
    assert sync(url, replica).applied == []


def test_a_changed_column_type_stops_the_sync(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica)
    before = end_state(replica)
    db.execute("ALTER TABLE messages ALTER COLUMN i TYPE bigint")
    add_messages(db, day(1), 20)
    publish_day(config, url, day(1))

    with pytest.raises(TargetError) as e:
        sync(url, replica)
    assert "public.messages.i" in e.value.message
    assert "integer" in e.value.message and "bigint" in e.value.message
    # the newest full export has the old type: a rebase alone would stop here again
    assert "--rebase" in (e.value.hint or "") and "export full" in (e.value.hint or "")
    assert end_state(replica) == before

    # once a full export made after the change is published, a rebase rebuilds from it
    wait_for_next_second()
    publish_full(config, url)
    with pytest.raises(TargetError) as e:
        sync(url, replica)
    assert "--rebase" in (e.value.hint or "") and "export full" not in (e.value.hint or "")
    assert end_state(replica) == before
    sync(url, replica, SyncOptions(rebase=True))
    assert dict(columns(replica, "public.messages"))["i"].lower() == "bigint"
    assert_counts(replica, db)
    assert_equal(replica, db)


# -- 8. partial replicas -------------------------------------------------------------------

def test_only_some_tables(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica, SyncOptions(tables=["messages", "public.users"]))
    assert user_tables(replica) == ["public.messages", "public.users"]
    assert json.loads(ledger(replica)["datanommer"][5]) == ["public.messages", "public.users"]
    assert_counts(replica, db, ["public.messages", "public.users"])
    report = verify(replica, db.standby_url)
    assert report.equal and [t.table for t in report.tables] == [
        "public.messages", "public.users"]

    # the same tables, named either way, keep working; new partitions touch only them
    add_messages(db, day(1), 20)
    db.execute("INSERT INTO users (name) VALUES ('newcomer')")
    publish_day(config, url, day(1))
    result = sync(url, replica, SyncOptions(tables=["public.messages", "users"]))
    assert len(result.applied) == 1
    assert user_tables(replica) == ["public.messages", "public.users"]
    assert_counts(replica, db, ["public.messages", "public.users"])
    assert_equal(replica, db)

    before = end_state(replica)
    with pytest.raises(ConfigError, match="--tables differs") as e:
        sync(url, replica, SyncOptions(tables=["messages", "packages"]))
    assert "--rebase" in (e.value.hint or "")
    with pytest.raises(ConfigError) as e:
        sync(url, replica, SyncOptions(since=day(3)))
    assert "--rebase" in (e.value.hint or "")
    assert end_state(replica) == before

    with pytest.raises(ConfigError, match="not in the dataset"):
        sync(url, replica, SyncOptions(tables=["nosuchtable"], rebase=True))


def test_only_rows_since_a_day(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    since = day(3)
    sync(url, replica, SyncOptions(since=since))
    start = datetime.combine(since, time())

    def oldest(table: str, cursor: str) -> datetime:
        return query(replica, f'SELECT min("{cursor}") FROM {table}')[0][0]

    for table, cursor in (("public.messages", "timestamp"),
                          ("public.users_messages", "msg_timestamp"),
                          ("public.packages_messages", "msg_timestamp")):
        assert oldest(table, cursor) >= start, table
        want = db.standby_query(f'SELECT count(*) FROM {table} WHERE "{cursor}" >= %s',
                                [start])[0][0]
        assert query(replica, f"SELECT count(*) FROM {table}")[0][0] == want > 0
    assert_counts(replica, db, ["public.users", "public.packages"])  # snapshot tables whole
    assert ledger(replica)["datanommer"][6] == since
    assert_equal(replica, db)

    add_messages(db, day(1), 20)
    publish_day(config, url, day(1))
    assert len(sync(url, replica, SyncOptions(since=since)).applied) == 1
    assert oldest("public.messages", "timestamp") >= start
    assert_equal(replica, db)

    with pytest.raises(ConfigError, match="--since") as e:
        sync(url, replica, SyncOptions(since=day(2)))
    assert "--rebase" in (e.value.hint or "")


# -- 10. upsert ----------------------------------------------------------------------------

ACCOUNTS_TOML = """
dataset = "accounts"

[tables.accounts]
method = "upsert"
cursor = "updated_at"
"""


def test_upsert_updates_rows_in_place(db, replica, tmp_path):
    db.execute("CREATE TABLE accounts (id integer PRIMARY KEY, name text NOT NULL, "
               "balance numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL)")
    db.execute("CREATE INDEX ON accounts (updated_at)")
    first = datetime.combine(day(4), time(), tzinfo=UTC)
    db.execute("INSERT INTO accounts SELECT g, 'acct' || g, g * 1.5, "
               "%s + g * interval '2 hours' FROM generate_series(1, 30) g", [first])
    config = make_config(db, ACCOUNTS_TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(config, url)
    publish_day(config, url, day(2))
    sync(url, replica)
    assert query(replica, "SELECT count(*) FROM public.accounts")[0][0] == 30

    noon = datetime.combine(day(1), time(12), tzinfo=UTC)
    db.execute("UPDATE accounts SET balance = balance + 100, name = name || ' (updated)', "
               "updated_at = %s + id * interval '1 minute' WHERE id %% 6 = 0", [noon])
    published = [p.id for p in publish_day(config, url, day(1)).publications]
    assert f"incremental/{day(1).isoformat()}/r1" in published
    result = sync(url, replica)
    assert result.applied == published

    have = rows(replica, "public.accounts")
    assert len(have) == 30 and len({r[0] for r in have}) == 30
    updated = {r[0]: r for r in have if r[1].endswith("(updated)")}
    assert sorted(updated) == [6, 12, 18, 24, 30]
    for key, r in updated.items():
        assert float(r[2]) == key * 1.5 + 100
        assert r[3] == noon + timedelta(minutes=key)
    assert_equal(replica, db)


# -- 11. snapshot tables -------------------------------------------------------------------

def test_a_changed_snapshot_table_is_replaced(db, replica, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    sync(url, replica)
    db.execute("INSERT INTO users (name) VALUES ('newcomer1'), ('newcomer2')")
    db.execute("UPDATE packages SET name = name || '-renamed' WHERE id <= 3")

    published = [p.id for p in publish_day(config, url, day(2)).publications]
    assert published == [f"incremental/{day(2).isoformat()}/r2"]
    assert sync(url, replica).applied == published
    names = {r[1] for r in rows(replica, "public.users")}
    assert {"newcomer1", "newcomer2"} <= names
    renamed = query(replica, "SELECT count(*) FROM public.packages WHERE name LIKE '%-renamed'")
    assert renamed[0][0] == 3
    assert_counts(replica, db)
    assert_no_duplicates(replica, "public.users")
    assert_equal(replica, db)


# -- 12. several datasets in one replica ---------------------------------------------------

@pytest.fixture
def second_db(cluster: ThrowawayCluster, db: Database):
    name = db.name + "_b"
    cluster.create_database(name)
    yield Database(name, cluster)
    cluster.primary.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_datasets_in_one_replica(db, second_db, replica, tmp_path):
    fill(db, per_day=50)
    fill(second_db, days=2, per_day=70)
    urls = {}
    for name, source in (("alpha", db), ("beta", second_db)):
        config = nommer_config(source).with_overrides(dataset=name)
        urls[name] = str(tmp_path / name)
        publish_standard(config, urls[name])

    sync(urls["alpha"], replica, SyncOptions(schema="a"))
    sync(urls["beta"], replica, SyncOptions(schema="b"))
    assert user_tables(replica) == sorted(
        f"{s}.{t.split('.')[1]}" for s in "ab" for t in TABLES)
    assert set(ledger(replica)) == {"alpha", "beta"}
    assert_counts(replica, db, schema="a")
    assert_counts(replica, second_db, schema="b")
    assert query(replica, "SELECT count(*) FROM a.messages")[0][0] == 150
    assert query(replica, "SELECT count(*) FROM b.messages")[0][0] == 140
    assert_equal(replica, db, dataset="alpha")
    assert_equal(replica, second_db, dataset="beta")
    for name, source in (("alpha", db), ("beta", second_db)):
        result = cli("verify", replica, "--against", source.standby_url, "--dataset", name)
        assert result.exit_code == 0 and result.stdout.endswith("are equal\n"), result.stdout
    with pytest.raises(ConfigError, match="several datasets") as e:
        verify(replica, db.standby_url)
    assert "--dataset" in (e.value.hint or "")
    result = cli("verify", replica, "--against", db.standby_url)  # a choice not made: usage
    assert result.exit_code == 2 and "choose one with --dataset" in result.stderr, result.stderr

    # each dataset keeps the schema it was built into
    with pytest.raises(ConfigError, match="schema") as e:
        sync(urls["alpha"], replica, SyncOptions(schema="b"))
    assert "--rebase" in (e.value.hint or "")
    assert sync(urls["beta"], replica).applied == []
    # a crossed wire: verifying one dataset against the other's source finds differences
    assert not verify(replica, second_db.standby_url, dataset="alpha").equal


def test_a_table_in_the_way_is_not_overwritten(db, replica, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    query(replica, "CREATE SCHEMA IF NOT EXISTS public")
    query(replica, "CREATE TABLE public.users (x integer)")
    with pytest.raises(TargetError, match="already exists") as e:
        sync(url, replica)
    assert "--schema" in (e.value.hint or "")
    assert contents(replica)["public.users"] == []
    sync(url, replica, SyncOptions(schema="mirror"))
    assert_equal(replica, db)


# -- a table the dataset gains later -------------------------------------------------------

TAGS_TOML = """
[tables.tags]
method = "snapshot"

[tables.tags.columns]
id = "public"
name = "public"
"""


def test_a_table_added_to_the_dataset_later(db, replica, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    sync(url, replica)
    db.execute("CREATE TABLE tags (id integer PRIMARY KEY, name text NOT NULL); "
               "INSERT INTO tags SELECT g, 'tag' || g FROM generate_series(1, 25) g")
    config = make_config(db, sample.example_config() + TAGS_TOML, lookback_days=1)
    published = [p.id for p in publish_day(config, url, day(2)).publications]
    assert len(published) == 1
    assert sync(url, replica).applied == published
    assert "public.tags" in user_tables(replica)
    assert [r[1] for r in rows(replica, "public.tags")][:2] == ["tag1", "tag10"]
    assert_counts(replica, db, [*TABLES, "public.tags"])
    report = verify(replica, db.standby_url)
    assert report.equal and "public.tags" in [t.table for t in report.tables]
    # and the table has its primary key index where the target makes one by default
    if is_postgres(replica):
        with pytest.raises(Exception, match=r"(?i)duplicate|constraint"):
            query(replica, "INSERT INTO public.tags VALUES (1, 'again')")


def test_primary_key_indexes_are_a_choice_kept_by_the_replica(db, replica, tmp_path):
    """PostgreSQL replicas get primary key indexes unless --no-primary-keys; DuckDB ones
    only with --primary-keys (an ART index is rewritten whole at each checkpoint). Merges
    work either way, and a later sync cannot change the choice without --rebase."""
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    want = not is_postgres(replica)  # the other choice than the default
    sync(url, replica, SyncOptions(primary_keys=want))
    insert = "INSERT INTO public.users VALUES (1, 'again')"
    if want:
        with pytest.raises(Exception, match=r"(?i)duplicate|constraint"):
            query(replica, insert)
    else:
        query(replica, insert)  # no index: the duplicate goes in
        query(replica, "DELETE FROM public.users WHERE name = 'again'")
    with pytest.raises(ConfigError, match="primary keys") as info:
        sync(url, replica, SyncOptions(primary_keys=not want))
    assert "--rebase" in (info.value.hint or "")
    # late rows for a published day still merge exactly, with or without the index
    add_messages(db, day(2), 7, tag="late")
    published = publish_day(nommer_config(db), url, day(1)).publications
    assert [p.id for p in published] == [f"incremental/{day(2)}/r2", f"incremental/{day(1)}/r1"]
    sync(url, replica)
    assert verify(replica, db.standby_url).equal


# -- a cursor kept in local wall-clock time, across a daylight-saving change --------------

EVENTS_TOML = """
dataset = "events"

[tables.events]
method = "append"
cursor = "at"
cursor_timezone = "Europe/Paris"
"""
DST_END = datetime(2025, 10, 26).date()  # Paris: 03:00 CEST becomes 02:00 CET


def test_a_local_time_cursor_across_daylight_saving(db, replica, tmp_path):
    db.execute("CREATE TABLE events (id serial PRIMARY KEY, at timestamp NOT NULL, what text); "
               "CREATE INDEX ON events (at); "
               "INSERT INTO events (at, what) SELECT t, 'tick' FROM generate_series("
               "'2025-10-24 22:15'::timestamp, '2025-10-28 01:45', interval '30 minutes') t")
    config = make_config(db, EVENTS_TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(config, url)
    for d in (DST_END - timedelta(days=1), DST_END, DST_END + timedelta(days=1)):
        publish_day(config, url, d)
    sync(url, replica)
    assert_counts(replica, db, ["public.events"])
    assert_equal(replica, db)

    # late rows inside the hour that happens twice, and right at the window's edges
    db.execute("INSERT INTO events (at, what) VALUES ('2025-10-26 02:40', 'late'), "
               "('2025-10-26 02:00', 'late edge'), ('2025-10-27 00:59:59.999999', 'late end')")
    published = [p.id for p in publish_day(config, url, DST_END).publications]
    assert published == [f"incremental/{DST_END.isoformat()}/r2"]
    assert sync(url, replica).applied == published
    late = query(replica, "SELECT count(*) FROM public.events WHERE what LIKE 'late%'")
    assert late[0][0] == 3
    assert_counts(replica, db, ["public.events"])
    assert_no_duplicates(replica, "public.events")
    report = verify(replica, db.standby_url)
    assert report.equal, json.dumps(report.to_json(), default=str)
    assert report.tables[0].days >= 3
