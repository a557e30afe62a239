"""Snapshot tables decided by the xmin rule (no hashing) and refreshed with only what
changed, from the real standby, into both targets: every way a table can change is
found (update, delete, insert, TRUNCATE, rewrite, a commit that was in progress,
subtransactions, inheritance and partitions swapped), and nothing that did not change is
called changed where it matters (aborted transactions, row locks, freezing)."""

from __future__ import annotations

import psycopg
import pytest

from support.replicate import config, hashes, new_database, new_target, query, target
from topoff.replicate.change import by_xmin, signature
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.engine import repull, run_once
from topoff.replicate.read import open_snapshot, snapshot_marks
from topoff.replicate.state import TableState
from topoff.replicate.store import StateStore

ENGINES = ["duckdb", "postgresql"]


@pytest.fixture(params=ENGINES)
def fresh(request, cluster, tmp_path):
    return request.param, new_target(request.param, cluster, tmp_path), new_database(cluster)


def equal(url, db, table="public.s"):
    mine, theirs = hashes(url, db.primary_url, "app", table)
    assert mine == theirs, table


def state(url, table="public.s"):
    with target(url) as engine:
        found = StateStore(engine).get("app", table)  # type: ignore[arg-type]
        assert found is not None
        return found.state


def refresh(cfg):
    (r,) = run_once(cfg)
    assert r.error is None, r.error
    return r.status, r.rows


def test_every_change_is_found_without_hashing_and_applied_by_key(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text, n float8); "
               "INSERT INTO s SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 5000) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    assert refresh(cfg) == ("ok", 5000)
    assert state(url).content == "5000:" and state(url).relation  # no hash taken
    assert refresh(cfg) == ("unchanged", 0)
    # one value updated: one row written (the upsert), the rest untouched
    db.execute("UPDATE s SET v = 'changed' WHERE id = 17")
    assert refresh(cfg) == ("ok", 1)
    equal(url, db)
    assert refresh(cfg) == ("unchanged", 0)
    # aborted work, row locks: nothing visible changed
    db.execute("BEGIN; INSERT INTO s VALUES (-1, 'x', 0); UPDATE s SET v = 'y' WHERE id < 100; "
               "DELETE FROM s WHERE id > 4000; ROLLBACK")
    db.execute("BEGIN; SELECT * FROM s WHERE id < 10 FOR UPDATE; COMMIT")
    db.execute("BEGIN; SAVEPOINT a; UPDATE s SET v = 'z' WHERE id = 3; ROLLBACK TO a; COMMIT")
    assert refresh(cfg) == ("unchanged", 0)
    # a subtransaction that commits
    db.execute("BEGIN; SAVEPOINT a; SAVEPOINT b; UPDATE s SET v = 'sub' WHERE id = 4; "
               "RELEASE b; RELEASE a; COMMIT")
    assert refresh(cfg)[0] == "ok"
    equal(url, db)
    # a delete alone (the count drops), then a delete and an insert (the count stays)
    db.execute("DELETE FROM s WHERE id = 9")
    assert refresh(cfg) == ("ok", 1)
    equal(url, db)
    db.execute("DELETE FROM s WHERE id = 10; INSERT INTO s VALUES (100000, 'new', 1)")
    assert refresh(cfg)[0] == "ok"
    equal(url, db)
    # a key that changes: the old key goes, the new one comes
    db.execute("UPDATE s SET id = 200000 WHERE id = 11")
    assert refresh(cfg)[0] == "ok"
    equal(url, db)
    assert query(url, "SELECT count(*) FROM app.s WHERE id IN (11, 200000)") == [(1,)]
    # freezing keeps every row as it was
    db.execute("VACUUM (FREEZE) s")
    assert refresh(cfg) == ("unchanged", 0)
    # a rewrite: another file node, copied whole (a rewrite may come with other changes)
    db.execute("VACUUM FULL s")
    assert refresh(cfg) == ("ok", 4999)
    assert refresh(cfg) == ("unchanged", 0)
    # TRUNCATE and the same count again
    db.execute("CREATE TABLE keep AS SELECT * FROM s; TRUNCATE s; "
               "INSERT INTO s SELECT id, v || '!', n FROM keep")
    assert refresh(cfg) == ("ok", 4999)
    equal(url, db)
    db.execute("TRUNCATE s")
    assert refresh(cfg) == ("ok", 0)
    assert query(url, "SELECT count(*) FROM app.s") == [(0,)]
    assert refresh(cfg) == ("unchanged", 0)


def test_a_transaction_open_across_a_run_is_found_when_it_commits(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text); "
               "INSERT INTO s SELECT g, 'a' FROM generate_series(1, 1000) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    refresh(cfg)
    late = db.primary()
    late.execute("BEGIN")
    late.execute("UPDATE s SET v = 'late' WHERE id = 500")  # not committed yet
    db.execute("SELECT 1")  # the standby replays past the open transaction's start
    assert refresh(cfg) == ("unchanged", 0)  # its snapshot does not see it
    assert refresh(cfg) == ("unchanged", 0)
    late.execute("COMMIT")
    late.close()
    db.sync()
    assert refresh(cfg) == ("ok", 1)
    equal(url, db)


def test_rows_removed_from_the_replica_by_hand_are_put_back(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text); "
               "INSERT INTO s SELECT g, 'a' FROM generate_series(1, 1000) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    refresh(cfg)
    query(url, "DELETE FROM app.s WHERE id <= 3")
    db.execute("UPDATE s SET v = 'b' WHERE id = 7")
    # the changes applied by key leave 997 rows where the source has 1,000: copied whole
    assert refresh(cfg) == ("ok", 1000)
    equal(url, db)


def test_a_repull_or_a_table_without_a_primary_key_copies_whole(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int, v text); "
               "INSERT INTO s SELECT g, 'a' FROM generate_series(1, 1000) g")
    cfg = config(url, {"app": (db.standby_url, {"s": {"method": "snapshot"}})})
    refresh(cfg)
    assert refresh(cfg) == ("unchanged", 0)
    db.execute("UPDATE s SET v = 'b' WHERE id = 7")
    assert refresh(cfg) == ("ok", 1000)
    equal(url, db)
    assert repull(cfg, "s").rows == 1000


def test_children_and_partitions_swapped_with_the_same_count_are_found(cluster, tmp_path):
    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute(
        "CREATE TABLE p (id int, v text); CREATE TABLE c1 () INHERITS (p); "
        "CREATE TABLE c2 (id int, v text); "
        "INSERT INTO c1 SELECT g, 'one' FROM generate_series(1, 100) g; "
        "INSERT INTO c2 SELECT g, 'two' FROM generate_series(1, 100) g; "
        "CREATE TABLE q (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); "
        "CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (1000); "
        "CREATE TABLE q2 (id int PRIMARY KEY, v text); "
        "INSERT INTO q SELECT g, 'one' FROM generate_series(1, 100) g; "
        "INSERT INTO q2 SELECT g, 'two' FROM generate_series(1, 100) g")
    cfg = config(url, {"app": (db.standby_url, {"p": {"method": "snapshot"},
                                                "q": {"method": "snapshot"}})})
    assert {r.status for r in run_once(cfg)} == {"ok"}
    assert {r.status for r in run_once(cfg)} == {"unchanged"}
    # the same number of rows, none of them written since the previous run
    db.execute("ALTER TABLE c1 NO INHERIT p; ALTER TABLE c2 INHERIT p; "
               "ALTER TABLE q DETACH PARTITION q1; "
               "ALTER TABLE q ATTACH PARTITION q2 FOR VALUES FROM (0) TO (1000)")
    assert {r.table: r.status for r in run_once(cfg)} == {"public.p": "ok", "public.q": "ok"}
    equal(url, db, "public.p")
    equal(url, db, "public.q")
    assert query(url, "SELECT DISTINCT v FROM app.p UNION ALL SELECT DISTINCT v FROM app.q"
                 ) == [("two",), ("two",)]


def test_views_and_row_conditions_keep_the_content_hash(fresh):
    _, url, db = fresh
    db.execute("CREATE TABLE s (id int PRIMARY KEY, v text); "
               "INSERT INTO s SELECT g, 'a' FROM generate_series(1, 100) g; "
               "CREATE VIEW w AS SELECT * FROM s WHERE id > 50")
    cfg = config(url, {"app": (db.standby_url, {
        "w": {"method": "snapshot", "key": ["id"]},
        "s": {"method": "snapshot", "where": "id <= 50"}})})
    assert {r.status for r in run_once(cfg)} == {"ok"}
    assert all(state(url, t).content.partition(":")[2] for t in ("public.w", "public.s"))
    # rows outside each table's part change: their hashes stay the same
    db.execute("UPDATE s SET v = 'b' WHERE id IN (1, 100)")
    assert {r.table: r.status for r in run_once(cfg)} == {"public.w": "ok", "public.s": "ok"}
    db.execute("UPDATE s SET v = 'b' WHERE id = 1")  # the same value again: a new xmin
    assert {r.status for r in run_once(cfg)} == {"unchanged"}
    equal(url, db, "public.w")


def _decide(db, st):
    conn = open_snapshot(db.standby_url, False)
    try:
        info = describe(conn, ReplicateTable("s", "public", "s", "snapshot"))
        return by_xmin(conn, info, st, signature(conn, info), snapshot_marks(conn).xmax), \
            signature(conn, info)
    finally:
        conn.close()


def test_the_xmin_rule_refuses_to_decide_when_it_cannot_compare(db):
    db.execute("CREATE TABLE s (id int PRIMARY KEY); INSERT INTO s VALUES (1)")
    _, sig = _decide(db, TableState())
    assert sig and sig.count("/") == 2  # cluster, timeline, relations
    with psycopg.connect(db.standby_url) as conn:
        (xmin,) = conn.execute(  # type: ignore[misc]
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
    good = TableState(xmin=xmin, content="1:", relation=sig)
    assert _decide(db, good)[0] is not None and not _decide(db, good)[0].changed
    for bad in (TableState(xmin=xmin, content="1:", relation=None),  # first run
                TableState(xmin=xmin, content="1:", relation=sig.replace("/", "/9", 1)),
                TableState(xmin=xmin + 10**6, content="1:", relation=sig),  # from the future
                TableState(xmin=xmin - 2**32, content="1:", relation=sig),  # too old
                TableState(xmin=xmin, content="x:", relation=sig),  # a count altered
                TableState(xmin=None, content="1:", relation=sig)):
        assert _decide(db, bad)[0] is None, bad


TYPES_SQL = """
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE wide (id int PRIMARY KEY, ts timestamptz NOT NULL, t timestamp, d date,
  n numeric(20, 6), f float8, r real, b bytea, j jsonb, i interval, a int[], ta text[],
  u uuid, bo boolean, c char(3), p posint, txt text);
INSERT INTO wide SELECT g, '2026-01-01'::timestamptz + g * interval '1 s',
  '2026-01-01 12:00:00.123456', CASE WHEN g % 7 = 0 THEN '0044-03-15 BC'::date
  ELSE 'infinity'::date END, g / 7.0, CASE g % 3 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN
  '-0'::float8 ELSE g / 3.0 END, g, '\\x00ff'::bytea, '{"a": [1, "x\\"y"]}', '1 day 2 µs'
  ::text::interval, ARRAY[g, NULL], ARRAY['a,b', NULL, 'c"d'], gen_random_uuid(), g % 2 = 0,
  'ab', g, CASE WHEN g % 5 = 0 THEN NULL ELSE E'line\\nnext\\t"q",' END
FROM generate_series(1, 3000) g;
CREATE TABLE withenum (id int PRIMARY KEY, ts timestamptz NOT NULL, m mood, ms mood[]);
INSERT INTO withenum SELECT g, now(), 'ok', ARRAY['sad']::mood[] FROM generate_series(1, 50) g;
"""


def test_builtin_types_move_in_binary_and_others_in_csv(cluster, tmp_path):
    from topoff.replicate import fastcopy
    from topoff.replicate.shape import table_def
    from topoff.targets.base import TableRef

    url = new_target("postgresql", cluster, tmp_path)
    db = new_database(cluster)
    db.execute(TYPES_SQL.replace("1 day 2 µs", "1 day 2 microseconds"))
    tables = {"wide": {"method": "inserter", "cursor": "ts", "batch_rows": 700},
              "withenum": {"method": "updater", "cursor": "ts"},
              "snapwide": {"method": "snapshot"}}
    db.execute("CREATE TABLE snapwide AS SELECT * FROM wide; ALTER TABLE snapwide "
               "ADD PRIMARY KEY (id)")
    cfg = config(url, {"app": (db.standby_url, tables)})
    assert {r.table: (r.status, r.rows) for r in run_once(cfg)} == {
        "public.wide": ("ok", 3000), "public.withenum": ("ok", 50),
        "public.snapwide": ("ok", 3000)}
    for t in ("public.wide", "public.withenum", "public.snapwide"):
        equal(url, db, t)
    with target(url) as engine:
        conn = open_snapshot(db.standby_url, False)
        try:
            for name, ok in (("wide", True), ("withenum", False)):
                info = describe(conn, ReplicateTable("s", "public", name, "inserter", "ts"))
                tdef = table_def(info, TableRef("app", name))
                assert fastcopy.binary_ok(engine, conn, info, tdef) is ok, name
        finally:
            conn.close()
    # new rows above the watermark go straight in, in binary, several batches of them
    db.execute("INSERT INTO wide SELECT id + 10000, ts + interval '1 day', t, d, n, f, r, b, "
               "j, i, a, ta, u, bo, c, p, txt FROM wide")
    db.execute("TRUNCATE snapwide; INSERT INTO snapwide SELECT * FROM wide")
    assert {r.table: (r.status, r.rows) for r in run_once(cfg)} == {
        "public.wide": ("ok", 3000), "public.withenum": ("ok", 0),
        "public.snapwide": ("ok", 6000)}
    for t in ("public.wide", "public.snapwide"):
        equal(url, db, t)
