"""Reconcile by key ranges on real tables: the source on the standby, a PostgreSQL table as
the target; the diff is exact, and only the rows of differing parts are fetched."""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg import sql

from topoff.errors import SourceError
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.read import open_snapshot
from topoff.replicate.reconcile import KeyRange, PostgresSide, reconcile

N = 10_000


def sides(db, key=("id",), table="src"):
    src_conn = open_snapshot(db.standby_url, False)
    info = describe(src_conn, ReplicateTable("s", "public", table, "snapshot", key=key))
    tgt_conn = psycopg.connect(db.primary_url, autocommit=True)
    tgt_conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    tgt = PostgresSide(tgt_conn, sql.Identifier("tgt"), info.columns, info.key)
    return PostgresSide(src_conn, info.ident, info.columns, info.key), tgt, (src_conn, tgt_conn)


def test_scattered_changes_give_the_exact_diff_reading_few_ranges(db):
    db.execute("CREATE TABLE src (id bigint PRIMARY KEY, v text, f float8, t timestamptz); "
               f"INSERT INTO src SELECT g * 3, 'row ' || g, g / 7.0, "
               f"'2026-01-01'::timestamptz + g * interval '1 us' FROM generate_series(1, {N}) g;"
               "CREATE TABLE tgt AS SELECT * FROM src")
    rnd = random.Random(7)
    ids = rnd.sample(range(1, N + 1), 30)
    deleted = {(str(3 * i),) for i in ids[:10]}
    updated = {(str(3 * i),) for i in ids[10:20]}
    inserted = {(str(3 * i + 1),) for i in ids[20:30]}
    changes = 30
    stmts = [f"DELETE FROM src WHERE id = {k[0]}" for k in deleted]
    upd = sorted(updated)
    stmts += [f"UPDATE src SET t = t + interval '1 us' WHERE id = {k[0]}" for k in upd[:5]]
    stmts += [f"UPDATE src SET v = NULL WHERE id = {k[0]}" for k in upd[5:]]
    stmts += [f"INSERT INTO src VALUES ({k[0]}, 'new', 0, now())" for k in inserted]
    db.execute("; ".join(stmts))
    src, tgt, conns = sides(db)
    try:
        d = reconcile(src, tgt, threshold=100)
        # many levels of few parts find the same difference
        deep = reconcile(src, tgt, threshold=3, max_parts=3)
        assert (deep.inserts, deep.updates, deep.deletes) == (d.inserts, d.updates, d.deletes)
        assert deep.fetched <= changes * 2 * 3
        with pytest.raises(ValueError):
            reconcile(src, tgt, max_parts=1)
    finally:
        for c in conns:
            c.close()
    assert set(d.deletes) == deleted and set(d.updates) == updated
    assert set(d.inserts) == inserted
    assert d.ranges == N // 80  # one level: every part of 80 rows hashed once
    assert d.source_rows == N
    assert d.fetched <= changes * 2 * 100  # only the small differing ranges' rows


def test_equal_tables_take_one_range_and_a_compound_key(db):
    db.execute("CREATE TABLE src (a text, b int, v int, PRIMARY KEY (a, b)); "
               "INSERT INTO src SELECT 'k' || (g % 10), g, g FROM generate_series(1, 3000) g;"
               "CREATE TABLE tgt AS SELECT * FROM src")
    src, tgt, conns = sides(db, key=("a", "b"))
    try:
        d = reconcile(src, tgt, threshold=50)
        # one level: 75 parts of 40 rows hashed in one scan per side, none differs
        assert d.ranges == 75 and d.fetched == 0
        assert not (d.inserts or d.updates or d.deletes)
    finally:
        for c in conns:
            c.close()
    db.execute("DELETE FROM tgt WHERE a = 'k3' AND b = 1503; "
               "UPDATE tgt SET v = -v WHERE a = 'k7' AND b = 7; "
               "DELETE FROM src WHERE a = 'k0' AND b = 10")
    src, tgt, conns = sides(db, key=("a", "b"))
    try:
        d = reconcile(src, tgt, threshold=50)
    finally:
        for c in conns:
            c.close()
    assert d.inserts == [("k3", "1503")]
    assert d.updates == [("k7", "7")]
    assert d.deletes == [("k0", "10")]


def test_an_empty_source_or_target(db):
    db.execute("CREATE TABLE src (id int PRIMARY KEY, v text); "
               "INSERT INTO src SELECT g, 'x' FROM generate_series(1, 500) g;"
               "CREATE TABLE tgt (id int PRIMARY KEY, v text)")
    src, tgt, conns = sides(db)
    try:
        d = reconcile(src, tgt, threshold=40)
        assert len(d.inserts) == 500 and not d.deletes
        d = reconcile(tgt, src, threshold=40)  # the other way round: everything deleted
        assert len(d.deletes) == 500 and not d.inserts
        assert tgt.hash(KeyRange()) == (0, "0")
    finally:
        for c in conns:
            c.close()
    with pytest.raises(ValueError):
        reconcile(src, tgt, threshold=0)


def test_parts_of_one_row(db):
    db.execute("CREATE TABLE src (id int PRIMARY KEY, v text); "
               "INSERT INTO src VALUES (1, 'a'), (2, 'b'), (4, 'd');"
               "CREATE TABLE tgt (id int PRIMARY KEY, v text); "
               "INSERT INTO tgt VALUES (2, 'B'), (3, 'c'), (4, 'd')")
    src, tgt, conns = sides(db)
    try:
        for threshold in (1, 2, 3):
            d = reconcile(src, tgt, threshold=threshold)
            assert (d.inserts, d.updates, d.deletes) == ([("1",)], [("2",)], [("3",)])
    finally:
        for c in conns:
            c.close()


def test_a_null_key_is_a_source_error(db):
    db.execute("CREATE TABLE src (id int, v text); "
               "INSERT INTO src SELECT g, 'x' FROM generate_series(1, 20) g; "
               "INSERT INTO src VALUES (NULL, 'y'); CREATE TABLE tgt (id int, v text)")
    src, tgt, conns = sides(db)
    try:
        with pytest.raises(SourceError) as info:
            reconcile(src, tgt, threshold=5)
        assert "NULL" in info.value.message and "key" in (info.value.hint or "")
    finally:
        for c in conns:
            c.close()


def test_values_moving_the_row_text_s_marks_are_differences(db):
    """A text of U+001E is not NULL, and ('p\\x1fq', 'r') is not ('p', 'q\\x1fr'), in the
    range hashes and in the rows' own hashes."""
    db.execute("CREATE TABLE src (id int PRIMARY KEY, a text, b text); "
               "INSERT INTO src VALUES (1, NULL, 'r'), (2, E'p\\x1fq', 'r'), (3, 'x', 'y');"
               "CREATE TABLE tgt AS SELECT * FROM src;"
               "UPDATE tgt SET a = E'\\x1e' WHERE id = 1;"
               "UPDATE tgt SET a = 'p', b = E'q\\x1fr' WHERE id = 2")
    src, tgt, conns = sides(db)
    try:
        for threshold in (100, 1):  # the rows' hashes, then the ranges' hashes
            d = reconcile(src, tgt, threshold=threshold)
            assert sorted(d.updates) == [("1",), ("2",)], threshold
    finally:
        for c in conns:
            c.close()
