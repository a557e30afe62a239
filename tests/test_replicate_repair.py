"""reconcile_table on real clusters: the source on the standby, the replica in PostgreSQL
or DuckDB. Scattered deletes, updates and inserts converge with exact counts, a second run
finds nothing, and a row altered on the replica is put back."""

from __future__ import annotations

import random

import psycopg
import pytest

from support.reconcile import changes, converged, new_replica, open_engine, run, table_def
from topoff.errors import ConfigError, SourceError, TargetError
from topoff.replicate.config import ReplicateTable

N = 10_000
ENGINES = ("postgresql", "duckdb")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=[pytest.mark.slow] * (k == "duckdb"))
                                  for k in ENGINES])
def test_scattered_changes_converge_with_exact_counts(db, tmp_path, kind):
    db.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, name text, score float8, "
        "at timestamptz, tags text[], payload jsonb); "
        "INSERT INTO events SELECT g * 2, 'event ' || g, g / 7.0, "
        "'2026-01-01'::timestamptz + g * interval '1 s', ARRAY['a', g::text], "
        f"jsonb_build_object('g', g) FROM generate_series(1, {N}) g")
    t = ReplicateTable("s", "public", "events", "snapshot")
    tdef = table_def(db, t)
    with open_engine(kind, db, tmp_path) as engine:
        new_replica(engine, tdef)
        first = run(db, t, engine, tdef)
        assert changes(first) == (N, 0, 0) and first.compared_rows == N
        assert converged(db, engine, tdef)

        rnd = random.Random(11)
        ids = rnd.sample(range(1, N + 1), 60)
        deletes, updates, inserts = ids[:20], ids[20:40], ids[40:]
        db.execute("; ".join(
            [f"DELETE FROM events WHERE id = {2 * i}" for i in deletes]
            + [f"UPDATE events SET score = score + 1e-12 WHERE id = {2 * i}" for i in updates[:10]]
            + [f"UPDATE events SET payload = NULL, tags = '{{}}' WHERE id = {2 * i}"
               for i in updates[10:]]
            + [f"INSERT INTO events VALUES ({2 * i + 1}, 'new', -0.0, now(), NULL, '[]')"
               for i in inserts]))
        assert not converged(db, engine, tdef)
        report = run(db, t, engine, tdef, threshold=100)
        assert changes(report) == (20, 20, 20)
        assert report.compared_rows == N
        # one level of 125 parts; the differing ones compared row by row
        assert report.ranges_hashed == N // 80
        assert converged(db, engine, tdef)
        again = run(db, t, engine, tdef, threshold=100)
        assert changes(again) == (0, 0, 0) and again.ranges_hashed == N // 80


@pytest.mark.parametrize("kind", ENGINES)
def test_rows_altered_on_the_replica_are_repaired(db, tmp_path, kind):
    db.execute("CREATE TABLE acct (id int PRIMARY KEY, owner text NOT NULL, "
               "balance numeric(12,2)); INSERT INTO acct SELECT g, 'owner ' || g, g * 1.25 "
               "FROM generate_series(1, 3000) g")
    t = ReplicateTable("s", "public", "acct", "snapshot")
    tdef = table_def(db, t)
    with open_engine(kind, db, tmp_path) as engine:
        new_replica(engine, tdef)
        run(db, t, engine, tdef)
        rel = engine.ident("replica", "acct")
        with engine.transaction():  # someone writes to the replica
            engine.execute(f"UPDATE {rel} SET balance = 1000000 WHERE id = 17")
            engine.execute(f"UPDATE {rel} SET owner = 'mallory' WHERE id = 2999")
            engine.execute(f"DELETE FROM {rel} WHERE id = 1500")
            engine.execute(f"INSERT INTO {rel} VALUES (4000, 'ghost', 1)")
            engine.execute(f"INSERT INTO {rel} VALUES (-5, 'ghost', 1)")
        report = run(db, t, engine, tdef, threshold=64)
        assert changes(report) == (1, 2, 2)
        assert converged(db, engine, tdef)
        assert engine.execute(f"SELECT owner, balance FROM {rel} WHERE id = 17")[0][1] == \
            pytest.approx(21.25)


@pytest.mark.parametrize("kind", ENGINES)
def test_a_row_condition_and_a_column_filter(db, tmp_path, kind):
    db.execute("CREATE TABLE m (id int PRIMARY KEY, site int, secret text, v text); "
               "INSERT INTO m SELECT g, g % 3, 'pw' || g, 'v' || g FROM generate_series(1, 900) g")
    t = ReplicateTable("s", "public", "m", "snapshot", exclude=("secret",), where="site = 1")
    tdef = table_def(db, t)
    assert [c.name for c in tdef.columns] == ["id", "site", "v"]
    with open_engine(kind, db, tmp_path) as engine:
        new_replica(engine, tdef)
        assert changes(run(db, t, engine, tdef, threshold=20)) == (300, 0, 0)
        db.execute("UPDATE m SET site = 2 WHERE id = 1; UPDATE m SET site = 1 WHERE id = 3; "
                   "UPDATE m SET secret = 'changed'")  # not replicated: no difference
        assert changes(run(db, t, engine, tdef, threshold=20)) == (1, 0, 1)
        rel = engine.ident("replica", "m")
        assert engine.execute(f"SELECT count(*) FROM {rel} WHERE site <> 1")[0][0] == 0


def test_failures_are_clear_and_leave_the_replica_alone(db, tmp_path):
    db.execute("CREATE TABLE nokey (id int, v text); INSERT INTO nokey VALUES (1, 'a');"
               "CREATE TABLE k (id int PRIMARY KEY, v text); INSERT INTO k VALUES (1, 'a')")
    with open_engine("duckdb", db, tmp_path) as engine:
        t = ReplicateTable("s", "public", "nokey", "snapshot")
        with pytest.raises(ConfigError) as info:
            run(db, t, engine, table_def(db, t))
        assert "key" in info.value.message and info.value.hint
        t = ReplicateTable("s", "public", "k", "snapshot")
        tdef = table_def(db, t)
        with pytest.raises(TargetError) as info:
            run(db, t, engine, tdef)  # not replicated yet
        assert "does not exist" in info.value.message
        new_replica(engine, tdef)
        rel = engine.ident("replica", "k")
        engine.execute(f"INSERT INTO {rel} VALUES (NULL, 'x'), (5, 'y')")
        with pytest.raises(TargetError) as info:
            run(db, t, engine, tdef)
        assert "NULL" in info.value.message
        assert engine.execute(f"SELECT count(*) FROM {rel}")[0][0] == 2  # rolled back


def test_a_null_key_on_the_source_is_refused(db, tmp_path):
    db.execute("CREATE TABLE nk (id int, v text); INSERT INTO nk VALUES (1, 'a'), (NULL, 'b')")
    t = ReplicateTable("s", "public", "nk", "snapshot", key=("id",))
    with open_engine("postgresql", db, tmp_path) as engine:
        tdef = table_def(db, t)
        new_replica(engine, tdef)
        with pytest.raises(SourceError):
            run(db, t, engine, tdef)
        assert engine.count(tdef) == 0


def test_a_failed_repair_changes_nothing(db, tmp_path):
    db.execute("CREATE TABLE ts (id int PRIMARY KEY, at timestamp); "
               "INSERT INTO ts SELECT g, '2026-01-01'::timestamp + g * interval '1 h' "
               "FROM generate_series(1, 50) g")
    t = ReplicateTable("s", "public", "ts", "snapshot")
    tdef = table_def(db, t)
    with open_engine("postgresql", db, tmp_path) as engine:
        new_replica(engine, tdef)
        run(db, t, engine, tdef)
        # the replica refuses a row (a constraint added there), after a delete to repair
        engine.execute("ALTER TABLE replica.ts ADD CHECK (at < '2100-01-01')")
        db.execute("DELETE FROM ts WHERE id = 1; UPDATE ts SET at = at + interval '1 s' "
                   "WHERE id = 2; INSERT INTO ts VALUES (99, '2200-01-01')")
        with pytest.raises(psycopg.errors.CheckViolation):
            run(db, t, engine, tdef, threshold=4)
        assert engine.count(tdef) == 50  # the delete was rolled back with the rest
        db.execute("DELETE FROM ts WHERE id = 99")
        assert changes(run(db, t, engine, tdef, threshold=4)) == (0, 1, 1)
        assert converged(db, engine, tdef)


def test_duckdb_staging_of_a_value_it_cannot_hold(db, tmp_path):
    db.execute("CREATE TABLE ts (id int PRIMARY KEY, at timestamp)")
    t = ReplicateTable("s", "public", "ts", "snapshot")
    tdef = table_def(db, t)
    with open_engine("duckdb", db, tmp_path) as engine:
        new_replica(engine, tdef)
        with pytest.raises(TargetError) as info, engine.transaction():
            engine.execute(f"INSERT INTO {engine.ident('replica', 'ts')} VALUES (1, NULL)")
            rows = [("2", "2026-01-01 00:00:00"), ("3", "294270-01-01 00:00:00")]
            with engine.stage_rows(tdef, tdef.columns, rows, text=True):
                pass
        assert "does not fit" in info.value.message and info.value.hint  # not masked
        assert engine.count(tdef) == 0
