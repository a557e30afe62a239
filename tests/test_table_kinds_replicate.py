"""Partitions and inheritance children attached to an inserter's or updater's table since
its previous refresh: their rows below the watermark were never read (they were not the
table's then, and their xmin is old), so the table is built again; a partition created
since holds only new rows and is read as usual."""

from __future__ import annotations

import pytest

from support.replicate import config, hashes, new_database, new_target
from topoff.replicate.engine import run_once


def _refresh(cfg: object) -> str:
    (r,) = run_once(cfg)  # type: ignore[arg-type]
    assert r.error is None, r.error
    return r.status


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
@pytest.mark.parametrize("method", ["inserter", "updater"])
def test_a_member_attached_with_old_rows_is_read(cluster, tmp_path, caplog, kind,
                                                 method) -> None:
    url = new_target(kind, cluster, tmp_path)
    db = new_database(cluster)
    db.execute("CREATE TABLE q (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); "
               "CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (1000); "
               "CREATE TABLE q2 (id int PRIMARY KEY, v text); "
               "INSERT INTO q SELECT g, 'one' FROM generate_series(1, 500) g; "
               "INSERT INTO q2 SELECT g, 'two' FROM generate_series(1000, 1100) g; "
               "CREATE TABLE p (id int PRIMARY KEY, v text); "
               "CREATE TABLE c (id int PRIMARY KEY, v text); "
               "INSERT INTO p SELECT g, 'p' FROM generate_series(1, 500, 2) g; "
               "INSERT INTO c SELECT g, 'c' FROM generate_series(2, 400, 2) g")
    settings = {"method": method, "cursor": "id", "boundary": 10, "lookback": 10}
    # p's own key binds only its rows once c inherits it: the config says its ids are unique
    cfg = config(url, {"app": (db.standby_url, {"q": settings,
                                                "p": {**settings, "key": ["id"]}})})
    assert {r.status for r in run_once(cfg)} == {"ok"}
    # a partition created since: its rows are new, read as usual (no rebuild)
    db.execute("CREATE TABLE q3 PARTITION OF q FOR VALUES FROM (2000) TO (3000); "
               "INSERT INTO q VALUES (2000, 'three')")
    caplog.clear()
    assert {r.status for r in run_once(cfg)} == {"ok"}
    assert "attached" not in caplog.text
    # rows committed long ago, below the watermark (2000), joining the tables
    db.execute("ALTER TABLE q ATTACH PARTITION q2 FOR VALUES FROM (1000) TO (1500); "
               "ALTER TABLE c INHERIT p")
    caplog.clear()
    assert {r.status for r in run_once(cfg)} == {"ok"}
    assert "public.q2 was attached" in caplog.text and "public.c was attached" in caplog.text
    for table in ("public.q", "public.p"):
        mine, theirs = hashes(url, db.primary_url, "app", table)
        assert mine == theirs, table
    # built once: the next refresh reads only what is new
    caplog.clear()
    db.execute("INSERT INTO q VALUES (2001, 'four')")
    assert {r.status for r in run_once(cfg)} == {"ok"}
    assert "attached" not in caplog.text
    mine, theirs = hashes(url, db.primary_url, "app", "public.q")
    assert mine == theirs


def test_an_inheritance_parent_needs_a_configured_key_for_the_updater(cluster, tmp_path) -> None:
    """A parent's primary key binds its own rows only: replicated by that key, the same id
    in parent and child became one row of the replica (the other lost, exit 0)."""
    db = new_database(cluster)
    db.execute("CREATE TABLE p (id int PRIMARY KEY, ts int NOT NULL, v text); "
               "CREATE TABLE c () INHERITS (p); "
               "INSERT INTO p VALUES (1, 1, 'parent'); INSERT INTO c VALUES (1, 2, 'child')")
    url = new_target("duckdb", cluster, tmp_path)
    cfg = config(url, {"app": (db.standby_url, {"p": {"method": "updater", "cursor": "ts",
                                                       "boundary": 1, "lookback": 1}})})
    (r,) = run_once(cfg)
    assert r.status == "failed" and r.exit_code == 2, r.error
    assert "public.p uses method updater but has no primary key" in (r.error or "")
    cfg = config(url, {"app": (db.standby_url, {"p": {"method": "inserter", "cursor": "ts",
                                                       "boundary": 1, "lookback": 1}})})
    assert _refresh(cfg) == "ok"
    mine, theirs = hashes(url, db.primary_url, "app", "public.p")
    assert mine == theirs
