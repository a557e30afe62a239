"""An Iceberg replica follows each method (upsert by key, snapshot replaced) and each schema
change (a new column added; a changed type refused with nothing changed)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from support.pg import make_config
from support.replica import (
    add_messages,
    day,
    fill,
    nommer_config,
    publish_day,
    publish_full,
    publish_standard,
    wait_for_next_second,
)
from test_iceberg_sync import assert_same, catalog_file, iceberg_rows, iceberg_table
from topoff.dataset.retention import prune
from topoff.demo import sample
from topoff.errors import ConfigError, TargetError
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.verify import verify

ACCOUNTS_TOML = """
dataset = "accounts"

[tables.accounts]
method = "upsert"
cursor = "updated_at"
"""


def test_upsert_updates_rows_by_key(db, tmp_path):
    db.execute("CREATE TABLE accounts (id integer PRIMARY KEY, name text NOT NULL, "
               "balance numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL, "
               "tags text[], blob bytea, ok boolean)")
    db.execute("CREATE INDEX ON accounts (updated_at)")
    first = datetime.combine(day(4), time(), tzinfo=UTC)
    db.execute("INSERT INTO accounts SELECT g, 'acct' || g, g * 1.5, "
               "%s + g * interval '2 hours', ARRAY['a' || g, NULL, 'x,\"y\"'], "
               "decode(lpad(to_hex(g), 4, '0'), 'hex'), g %% 2 = 0 "
               "FROM generate_series(1, 30) g", [first])
    config = make_config(db, ACCOUNTS_TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    assert_same(target, db, ["public.accounts"])

    noon = datetime.combine(day(1), time(12), tzinfo=UTC)
    db.execute("UPDATE accounts SET balance = balance + 100, name = name || ' (updated)', "
               "updated_at = %s + id * interval '1 minute' WHERE id %% 6 = 0", [noon])
    db.execute("INSERT INTO accounts VALUES (31, 'new', 1, %s, '{}', '', NULL)", [noon])
    db.sync()
    published = [p.id for p in publish_day(config, url, day(1)).publications]
    assert sync(url, target).applied == published
    have = iceberg_rows(target, "public.accounts")
    assert len(have) == 31 and len({r[0] for r in have}) == 31
    updated = {r[0]: r for r in have if r[1].endswith("(updated)")}
    assert sorted(updated) == [6, 12, 18, 24, 30]
    assert updated[6][2] == Decimal("109.00")
    assert updated[6][3] == noon + timedelta(minutes=6)
    assert updated[6][4] == ["a6", None, 'x,"y"'] and updated[6][5] == b"\x00\x06"
    assert_same(target, db, ["public.accounts"])
    assert sync(url, target).applied == []
    report = verify(target, db.standby_url)  # text[], bytea, numeric, timestamptz cursor
    assert report.equal and report.tables[0].compared_rows == 31, report.to_json()


def test_a_changed_snapshot_table_is_replaced(db, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    db.execute("INSERT INTO users (name) VALUES ('newcomer1'), ('newcomer2')")
    db.execute("UPDATE packages SET name = name || '-renamed' WHERE id <= 3")
    db.sync()
    publish_day(config, url, day(2))
    assert sync(url, target).applied
    assert_same(target, db, ["public.users", "public.packages"])


def with_extra_column(text: str) -> str:
    assert text.count('agent_name = "public"\n') == 1
    return text.replace('agent_name = "public"\n', 'agent_name = "public"\nextra = "public"\n')


def test_a_new_column_becomes_an_iceberg_column(db, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db), url)
    target = catalog_file(tmp_path)
    sync(url, target)
    db.execute("ALTER TABLE messages ADD COLUMN extra text")
    add_messages(db, day(1), 30)
    db.execute("UPDATE messages SET extra = 'extra ' || i WHERE msg_id LIKE %s",
               [f"m{day(1).isoformat()}-%"])
    db.sync()
    config = make_config(db, with_extra_column(sample.example_config()), lookback_days=1)
    published = [p.id for p in publish_day(config, url, day(1)).publications]
    assert sync(url, target).applied == published
    table = iceberg_table(target, "public.messages")
    assert table.schema().fields[-1].name == "extra"
    extras = [r for r in iceberg_rows(target, "public.messages") if r[-1] is not None]
    assert len(extras) == 30
    assert_same(target, db)
    assert sync(url, target).applied == []
    assert verify(target, db.standby_url).equal  # files with and without the column


def test_a_changed_column_type_stops_and_changes_nothing(db, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    before = iceberg_table(target, "public.messages").metadata
    db.execute("ALTER TABLE messages ALTER COLUMN i TYPE bigint")
    add_messages(db, day(1), 20)
    publish_day(config, url, day(1))
    with pytest.raises(TargetError) as e:
        sync(url, target)
    assert "public.messages.i" in e.value.message and "bigint" in e.value.message
    assert "--rebase" in (e.value.hint or "")
    assert iceberg_table(target, "public.messages").metadata == before


def insert_late_messages_only(db, d, n: int) -> None:
    """Late rows in messages alone (no link rows): the link tables' day stays unchanged."""
    db.execute('INSERT INTO messages (msg_id, i, topic, "timestamp", category, msg) '
               "SELECT 'lone-' || g, g, 'late.topic', %s::timestamp + g * interval '1 minute', "
               "'bodhi', '{}' FROM generate_series(1, %s) g", [datetime.combine(d, time()), n])


def test_a_passed_over_revision_still_brings_what_the_next_one_refers_to(db, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    add_messages(db, day(1), 50)
    db.execute("INSERT INTO users (name) VALUES ('newcomer')")
    [r1] = [p.id for p in publish_day(config, url, day(1)).publications]
    insert_late_messages_only(db, day(1), 5)
    db.sync()
    result = publish_day(config, url, day(1))
    [r2] = [p.id for p in result.publications]
    unchanged = {q: e.unchanged_since for q, e in result.manifests[0].tables.items()}
    assert unchanged["public.users_messages"] == unchanged["public.users"] == r1

    synced = sync(url, target)
    assert synced.applied == [r2] and synced.passed_over == [r1]
    assert "newcomer" in {r[1] for r in iceberg_rows(target, "public.users")}
    assert_same(target, db)
    assert sync(url, target).applied == []


def test_a_passed_over_full_export_still_brings_snapshot_changes(db, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    db.execute("INSERT INTO users (name) VALUES ('newcomer')")
    db.sync()
    wait_for_next_second()
    full2 = publish_full(config, url).publications[0].id
    add_messages(db, day(1), 20)
    result = publish_day(config, url, day(1))
    assert result.manifests[-1].tables["public.users"].unchanged_since == full2

    synced = sync(url, target)
    assert synced.passed_over == [full2] and synced.base_loaded is None
    assert "newcomer" in {r[1] for r in iceberg_rows(target, "public.users")}
    assert_same(target, db)


def test_only_some_tables_and_a_retention_gap_then_rebase(db, tmp_path):
    fill(db)
    config = nommer_config(db)
    url = str(tmp_path / "published")
    publish_standard(config, url)
    target = catalog_file(tmp_path)
    sync(url, target, SyncOptions(tables=["messages", "public.users"]))
    settings = read_settings(target)
    names = {i[-1] for i in open_catalog(settings).list_tables(settings.namespace)}
    assert names == {"messages", "users"}
    assert_same(target, db, ["public.messages", "public.users"])
    with pytest.raises(ConfigError, match="--tables differs"):
        sync(url, target, SyncOptions(tables=["messages"]))

    add_messages(db, day(2), 10, tag="late")
    publish_day(config, url, day(1))  # day(2) r2 (4), day(1) r1 (5)
    wait_for_next_second()
    full2 = publish_full(config, url).publications[0].id  # 6
    with open_store(url) as store:
        pruned = prune(store, "datanommer", keep_days=1, keep_full=1)
    assert f"incremental/{day(2).isoformat()}/r2" in [p.id for p in pruned.removed]
    before = iceberg_table(target, "public.messages").metadata
    with pytest.raises(TargetError) as e:
        sync(url, target)
    assert "older than the oldest data still published" in e.value.message
    assert "--rebase" in (e.value.hint or "")
    assert iceberg_table(target, "public.messages").metadata == before

    rebuilt = sync(url, target, SyncOptions(rebase=True))
    assert rebuilt.base_loaded == full2 and rebuilt.applied == []
    names = {i[-1] for i in open_catalog(settings).list_tables(settings.namespace)}
    assert names == {"messages", "users", "users_messages", "packages_messages", "packages"}
    assert_same(target, db)


EVENTS_TOML = """
dataset = "events"

[tables.events]
method = "snapshot"
"""


def test_a_value_iceberg_cannot_hold_stops_with_nothing_committed(db, tmp_path):
    db.execute("CREATE TABLE events (id integer PRIMARY KEY, d date)")
    db.execute("INSERT INTO events VALUES (1, '2026-01-01'), (2, '0044-03-15 BC')")
    db.sync()
    config = make_config(db, EVENTS_TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(config, url)
    target = catalog_file(tmp_path)
    with pytest.raises(TargetError, match="does not fit its Iceberg column") as e:
        sync(url, target)
    assert "docs/iceberg.md" in (e.value.hint or "")
    table = iceberg_table(target, "public.events")
    assert table.current_snapshot() is None and table.properties["topoff.step"] == "schema"
    db.execute("DELETE FROM events WHERE id = 2")
    db.sync()
    wait_for_next_second()
    publish_full(config, url)
    sync(url, target, SyncOptions(rebase=True))
    assert_same(target, db, ["public.events"])


def test_upsert_by_a_float_key_replaces_its_nan_row(db, tmp_path):
    """PostgreSQL holds one row of key NaN (NaN equals NaN there, and -0 equals 0): an
    update of it replaces it in the replica, never adds a second one."""
    db.execute("CREATE TABLE accounts (id float8 PRIMARY KEY, name text NOT NULL, "
               "updated_at timestamptz NOT NULL)")
    first = datetime.combine(day(4), time(), tzinfo=UTC)
    db.execute("INSERT INTO accounts VALUES ('NaN', 'nan', %s), ('-0', 'zero', %s), "
               "('Infinity', 'inf', %s), (1.5, 'one', %s)", [first] * 4)
    config = make_config(db, ACCOUNTS_TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    noon = datetime.combine(day(1), time(12), tzinfo=UTC)
    db.execute("UPDATE accounts SET name = name || ' (updated)', updated_at = %s", [noon])
    db.sync()
    publish_day(config, url, day(1))
    sync(url, target)
    names = sorted(r[1] for r in iceberg_rows(target, "public.accounts"))
    assert names == ["inf (updated)", "nan (updated)", "one (updated)", "zero (updated)"]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


NUMBERS_TOML = """
dataset = "numbers"

[tables.pairs]
method = "upsert"
cursor = "updated_at"

[tables.singles]
method = "upsert"
cursor = "updated_at"
"""


def test_upsert_by_an_unconstrained_numeric_key_written_otherwise_replaces_its_row(
        db, tmp_path):
    """2 and 2.00 are one key of an unconstrained numeric in PostgreSQL (kept as its text in
    Iceberg), alone or in a composite key: an update writing it otherwise replaces the row."""
    db.execute("CREATE TABLE pairs (id integer, n numeric, name text NOT NULL, "
               "updated_at timestamptz NOT NULL, PRIMARY KEY (id, n));"
               "CREATE TABLE singles (n numeric PRIMARY KEY, name text NOT NULL, "
               "updated_at timestamptz NOT NULL)")
    first = datetime.combine(day(4), time(), tzinfo=UTC)
    db.execute("INSERT INTO pairs VALUES (1, 2, 'a', %s), (1, 3.50, 'b', %s), (2, 2, 'c', %s),"
               " (1, -7.0, 'd', %s)", [first] * 4)
    db.execute("INSERT INTO singles VALUES (2, 'a', %s), (3.50, 'b', %s)", [first] * 2)
    config = make_config(db, NUMBERS_TOML, lookback_days=1)
    url = str(tmp_path / "published")
    publish_full(config, url)
    target = catalog_file(tmp_path)
    sync(url, target)
    noon = datetime.combine(day(1), time(12), tzinfo=UTC)
    for update in ("pairs SET n = 2.00, name = 'A' WHERE id = 1 AND n = 2",
                   "pairs SET n = 3.5, name = 'B' WHERE n = 3.5",
                   "pairs SET n = -7, name = 'D' WHERE n = -7",
                   "singles SET n = 2.000, name = 'A' WHERE n = 2"):
        table, change = update.split(" SET ")
        db.execute(f"UPDATE {table} SET updated_at = %s, {change}", [noon])
    # a key close to one that changed, never the same (trimmed zeros only, not rounded)
    db.execute("INSERT INTO singles VALUES (2.0000000000000000000001, 'near', %s)", [noon])
    db.sync()
    publish_day(config, url, day(1))
    sync(url, target)
    assert sorted(r[:3] for r in iceberg_rows(target, "public.pairs")) == [
        (1, "-7", "D"), (1, "2.00", "A"), (1, "3.5", "B"), (2, "2", "c")]
    assert sorted(r[:2] for r in iceberg_rows(target, "public.singles")) == [
        ("2.000", "A"), ("2.0000000000000000000001", "near"), ("3.50", "b")]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()
