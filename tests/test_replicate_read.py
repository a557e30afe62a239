"""Refresh reads of inserter/updater tables on the real standby: one snapshot, late commits
found by xmin, keyset batches through ties, the repeated hour of a fall-back, full precision."""

from __future__ import annotations

import csv
import io
import itertools
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from support.pg import Database
from topoff.errors import ConfigError, SafetyError, SourceError
from topoff.replicate.config import ReplicateTable, parse_interval
from topoff.replicate.describe import describe
from topoff.replicate.read import Refresh, open_snapshot
from topoff.replicate.state import TableState

_roles = itertools.count(1)


def reader_url(db: Database) -> str:
    """A SELECT-only role's URL on the standby."""
    role = f"rd{os.getpid()}_{next(_roles)}"
    db.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'pw\'; '
               f'GRANT USAGE ON SCHEMA public TO "{role}"; '
               f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    assert db.cluster.standby is not None
    return db.cluster.standby.url(db.name, user=role, password="pw")


def table(name: str = "events", **kw: object) -> ReplicateTable:
    settings: dict[str, object] = {"method": "inserter", "cursor": "ts", "batch_rows": 1000}
    settings.update(kw)
    for k in ("boundary", "lookback"):
        if k in settings:
            settings[k] = parse_interval(settings[k], k)
    return ReplicateTable(source="s", schema="public", name=name, **settings)  # type: ignore[arg-type]


def refresh(url: str, t: ReplicateTable, state: TableState,
            allow_primary: bool = False) -> tuple[list[list[str]], TableState, int]:
    """One refresh: every batch's CSV rows, the next state and the number of batches."""
    conn = open_snapshot(url, allow_primary)
    try:
        r = Refresh(conn, describe(conn, t), state)
        rows: list[list[str]] = []
        batches = 0
        for b in r.batches():
            batches += 1
            text = b"".join(bytes(x) for x in r.rows(b)).decode()
            rows.extend(csv.reader(io.StringIO(text)))
        conn.execute("COMMIT")
        return rows, r.next_state(len(rows)), batches
    finally:
        conn.close()


def test_a_primary_is_refused(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL)")
    with pytest.raises(SafetyError):
        refresh(db.primary_url, table(), TableState())


def test_a_transaction_open_across_a_run_is_read_by_the_next_run(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO events SELECT g, now() - interval '1 hour' + g * interval '1 s', "
               "'x' FROM generate_series(1, 50) g")
    url = reader_url(db)
    rows, state, _ = refresh(url, table(), TableState())
    assert len(rows) == 50
    # A writer opens a transaction, inserts a row whose cursor is already old (it carries
    # the time its message was sent, 30 minutes ago: far behind the 10 minute boundary)
    late = psycopg.connect(db.primary_url)  # a transaction stays open
    late.execute("INSERT INTO events VALUES (1000, now() - interval '30 minutes', 'late')")
    other = psycopg.connect(db.primary_url)
    other.execute("INSERT INTO events VALUES (51, now(), 'on time')")
    other.commit()
    db.sync()
    rows, state, _ = refresh(url, table(), state)  # the late row is not committed yet
    ids = {r[0] for r in rows}
    assert "51" in ids and "1000" not in ids
    late.commit()
    late.close()
    other.close()
    db.sync()
    rows, state2, _ = refresh(url, table(), state)
    ids = {r[0] for r in rows}
    assert "1000" in ids, "a transaction committed after the previous run was lost"
    assert state2.xmin is not None and state.xmin is not None and state2.xmin >= state.xmin
    # and once read, the next run does not read it again (the boundary alone)
    rows, _, _ = refresh(url, table(), state2)
    assert "1000" not in {r[0] for r in rows}


def test_ten_thousand_rows_on_one_timestamp_progress_in_keyset_batches(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO events SELECT g, '2026-01-01 00:00:00.123456+00' "
               "FROM generate_series(1, 10000) g")
    rows, state, batches = refresh(reader_url(db), table(batch_rows=500), TableState())
    assert batches == 21  # 20 full ones, then the last COPY, which finds no row
    assert sorted(int(r[0]) for r in rows) == list(range(1, 10001))
    assert state.cursor == "2026-01-01 00:00:00.123456+00"


def test_without_a_key_batches_hold_whole_groups_and_a_huge_group_is_an_error(db):
    db.execute("CREATE TABLE events (n int, ts bigint NOT NULL); "
               "INSERT INTO events SELECT g, g / 7 FROM generate_series(1, 100) g")
    t = table(batch_rows=10, boundary=0, lookback=0)
    rows, state, batches = refresh(reader_url(db), t, TableState())
    assert sorted(int(r[0]) for r in rows) == list(range(1, 101))
    assert batches >= 10
    db.execute("INSERT INTO events SELECT 0, 99 FROM generate_series(1, 11)")
    with pytest.raises(SourceError) as info:
        refresh(reader_url(db), t, state)
    assert "share the cursor value 99" in info.value.message
    assert "key" in (info.value.hint or "")


def test_an_integer_cursor_and_a_full_precision_timestamp(db):
    big = 2**62 + 1
    db.execute("CREATE TABLE seq (id bigint PRIMARY KEY, c bigint NOT NULL); "
               f"INSERT INTO seq VALUES (1, {big}), (2, {big + 1})")
    t = table("seq", cursor="c", boundary=0, lookback=0)
    url = reader_url(db)
    rows, state, _ = refresh(url, t, TableState())
    assert state.cursor == str(big + 1)
    db.execute(f"INSERT INTO seq VALUES (3, {big + 2})")
    rows, _, _ = refresh(url, t, state)
    assert [r[0] for r in rows] == ["3"]  # a float would have lost the last digits

    db.execute("CREATE TABLE ts (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO ts VALUES (1, '2026-03-01 10:00:00.000001+00')")
    t = table("ts", boundary="0s", lookback="0s")
    rows, state, _ = refresh(reader_url(db), t, TableState())
    assert state.cursor == "2026-03-01 10:00:00.000001+00"
    db.execute("INSERT INTO ts VALUES (2, '2026-03-01 10:00:00.000002+00'), "
               "(3, '2026-03-01 10:00:00+00')")
    rows, _, _ = refresh(reader_url(db), t, state)
    assert [r[0] for r in rows] == ["2"]  # one microsecond later is new; earlier is not


def test_the_upper_bound_comes_from_the_rows_snapshot(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO events VALUES (1, '2026-01-01 00:00+00')")
    url = reader_url(db)
    conn = open_snapshot(url, False)
    try:
        r = Refresh(conn, describe(conn, table()), TableState())
        db.execute("INSERT INTO events VALUES (2, '2026-06-01 00:00+00')")  # replayed now
        ids = [bytes(x).decode().split(",")[0] for b in r.batches() for x in r.rows(b)]
        assert ids == ["1"] and r.upper == "2026-01-01 00:00:00+00"
        assert r.next_state(1).cursor == "2026-01-01 00:00:00+00"
    finally:
        conn.close()
    rows, _, _ = refresh(url, table(), r.next_state(1))
    assert [x[0] for x in rows] == ["2"]  # 1 was read in the snapshot that set the mark


def test_the_repeated_hour_of_a_fall_back_is_read_again(db):
    # A local-time cursor in Europe/Paris: on 2026-10-25 the clocks go from 03:00 back to
    # 02:00. The previous run saw 02:50 of the first pass; rows written during the second
    # pass (02:05 ... 02:40) are behind the 10 minute boundary and must still be read.
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamp NOT NULL); "
               "INSERT INTO events VALUES (1, '2026-10-25 01:30'), (2, '2026-10-25 02:50')")
    t = table(cursor_timezone="Europe/Paris", lookback="10m")
    url = reader_url(db)
    rows, state, _ = refresh(url, t, TableState())
    assert state.cursor == "2026-10-25 02:50:00"
    db.execute("INSERT INTO events VALUES (3, '2026-10-25 02:05'), (4, '2026-10-25 02:40')")
    rows, _, _ = refresh(url, t, state)
    assert {"3", "4"} <= {r[0] for r in rows}
    # the same rows in a zone without a clock change stay behind the boundary (the
    # commit rule is kept out of it: the lookback equals the boundary)
    rows, _, _ = refresh(url, table(cursor_timezone="UTC", lookback="10m"),
                         TableState(cursor=state.cursor, xmin=2**40))
    assert {r[0] for r in rows} == {"2"}  # only the row inside the boundary


def test_the_xmin_rule_survives_wraparound_arithmetic():
    from topoff.replicate.watermark import committed_since
    # prev far behind: everything counts as recent
    assert committed_since(0, 2**33).as_string(None) == "true"
    assert committed_since(None, 10).as_string(None) == "true"
    text = committed_since(2**32 + 5, 2**32 + 100).as_string(None)
    assert "<= 95" in text and "% 4294967296" in text


def test_bad_interval_and_views(db):
    with pytest.raises(ConfigError):
        parse_interval("10 parsecs", "x")
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "CREATE VIEW ev AS SELECT * FROM events; "
               "INSERT INTO events SELECT g, now() - g * interval '1 min' "
               "FROM generate_series(1, 30) g")
    url = reader_url(db)
    db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC")
    view = table("ev", key=("id",), boundary="1m", lookback="5m")
    rows, state, _ = refresh(url, view, TableState())
    assert len(rows) == 30
    rows, _, _ = refresh(url, view, state)
    assert 3 <= len(rows) <= 5  # the view's lookback window, read every time


def test_the_commit_rule_on_the_server_across_an_xid_wraparound(db):
    from topoff.replicate.watermark import committed_since
    # previous run's xmin just before the 32-bit wrap, this snapshot's xmax just after
    cond = committed_since(2**32 - 10, 2**32 + 20)
    xids = {"old, before prev": 2**32 - 16, "just before the wrap": 2**32 - 6,
            "prev itself": 2**32 - 10, "after the wrap": 5, "latest": 19}
    with db.standby() as conn:
        got = {name: conn.execute(sql.SQL("SELECT {} FROM (SELECT {}::xid) AS v(xmin)")
                                  .format(cond, sql.Literal(str(x)))).fetchone()[0]
               for name, x in xids.items()}
    assert got == {"old, before prev": False, "just before the wrap": True, "prev itself": True,
                   "after the wrap": True, "latest": True}


def test_a_refresh_resumes_after_the_last_batch_it_handed_over(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO events SELECT g, '2026-01-01'::timestamptz + (g / 10) * "
               "interval '1 s' FROM generate_series(1, 95) g")
    conn = open_snapshot(reader_url(db), False)
    try:
        r = Refresh(conn, describe(conn, table(batch_rows=20)), TableState())
        batches = r.batches()
        first = next(batches)
        n_first = sum(1 for _ in r.rows(first))
        assert n_first == 20 and first.last is not None
        rest = [bytes(x).decode().split(",")[0] for b in r.batches(after=first.last)
                for x in r.rows(b)]
    finally:
        conn.close()
    assert sorted(map(int, rest)) == list(range(21, 96))


def test_the_operators_where_limits_the_rows_and_the_upper_bound(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO events SELECT g, '2026-01-01'::timestamptz + g * interval '1 s', "
               "CASE WHEN g % 2 = 0 THEN 'keep%' ELSE 'drop' END FROM generate_series(1, 41) g")
    t = table(where="v LIKE 'keep\\%' AND id > 0", batch_rows=7)
    rows, state, _ = refresh(reader_url(db), t, TableState())
    assert sorted(int(r[0]) for r in rows) == list(range(2, 41, 2))
    assert state.cursor == "2026-01-01 00:00:40+00"  # row 41 is not kept


def test_a_null_key_in_the_refresh_is_a_source_error(db):
    db.execute("CREATE TABLE events (id int, ts timestamptz NOT NULL); "
               "INSERT INTO events SELECT g, '2026-01-01'::timestamptz + g * interval '1 s' "
               "FROM generate_series(1, 50) g; INSERT INTO events VALUES (NULL, '2026-01-01')")
    with pytest.raises(SourceError) as info:
        refresh(reader_url(db), table(key=("id",), batch_rows=7), TableState())
    assert "key column is NULL" in info.value.message


#: one refresh batch of 200,000 rows read under tracemalloc; prints rows, bytes, peak
MEASURE = """
import sys, tracemalloc
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.read import Refresh, open_snapshot
from topoff.replicate.state import TableState
conn = open_snapshot(sys.argv[1], False)
t = ReplicateTable(source="s", schema="public", name="events", method="inserter", cursor="ts",
                   batch_rows=1_000_000)
r = Refresh(conn, describe(conn, t), TableState())
[batch] = list(r.batches())
tracemalloc.start()
n = size = 0
for row in r.rows(batch):
    n += 1
    size += len(row)
_, peak = tracemalloc.get_traced_memory()
conn.close()
print(n, size, peak)
"""


def test_a_batch_streams_in_bounded_memory_and_a_primary_can_be_allowed(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO events SELECT g, '2026-01-01'::timestamptz + g * interval '1 ms', "
               "repeat('x', 100) FROM generate_series(1, 200000) g")
    # measured in a process of its own: tracemalloc counts every thread's allocations
    out = subprocess.run([sys.executable, "-c", MEASURE, reader_url(db)], check=True,
                         capture_output=True, text=True, env={**os.environ,
                         "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    n, size, peak = map(int, out.split())
    assert n == 200_000 and size > 20_000_000
    assert peak < 2_000_000, peak  # 20 MB went through; a few rows at a time were held
    rows, state, _ = refresh(db.primary_url, table(batch_rows=100_000), TableState(),
                             allow_primary=True)
    assert len(rows) == 200_000 and state.xmin is not None


def test_without_cursor_timezone_the_servers_zone_decides(db):
    db.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamp NOT NULL); "
               "INSERT INTO events VALUES (1, '2026-10-25 02:50')")
    url = reader_url(db)
    role = url.split("//")[1].split(":")[0]
    db.execute(f"ALTER ROLE \"{role}\" SET timezone = 'Europe/Paris'")
    t = table(lookback="10m")
    _, state, _ = refresh(url, t, TableState())
    db.execute("INSERT INTO events VALUES (2, '2026-10-25 02:05')")
    rows, _, _ = refresh(url, t, state)
    assert "2" in {r[0] for r in rows}
    # the session itself still reads in UTC: the COPY text does not depend on the zone
    assert [r[1] for r in rows if r[0] == "2"] == ["2026-10-25 02:05:00"]


def test_a_partitioned_table_uses_the_commit_rule_too(db):
    db.execute("CREATE TABLE events (id int, ts timestamptz NOT NULL, PRIMARY KEY (id, ts)) "
               "PARTITION BY RANGE (ts); "
               "CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2026-01-01') "
               "TO ('2026-02-01'); CREATE TABLE events_b PARTITION OF events FOR VALUES "
               "FROM ('2026-02-01') TO ('2026-03-01'); "
               "INSERT INTO events VALUES (1, '2026-01-10'), (2, '2026-02-10')")
    url = reader_url(db)
    _, state, _ = refresh(url, table(), TableState())
    db.execute("INSERT INTO events VALUES (3, '2026-01-20')")  # old cursor, committed since
    rows, _, _ = refresh(url, table(lookback="60d"), state)
    assert {r[0] for r in rows} == {"3"}  # 2, the watermark row, was read before
