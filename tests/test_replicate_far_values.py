"""``topoff replicate`` of values at the far ends of their types into a PostgreSQL
replica, whose columns hold them all: every refresh and reconcile path that hashes rows
(a snapshot table with a row condition, a view, reconcile's ranges) takes them too."""

from __future__ import annotations

from support.replicate import config, hashes, new_database, new_target, query
from topoff.replicate.engine import run_once
from topoff.replicate.operate import reconcile

#: the last microsecond PostgreSQL holds: its microseconds since 1970 pass a bigint's range
LAST = "294276-12-31 23:59:59.999999"


def test_timestamps_past_a_bigint_of_microseconds_are_hashed(cluster, tmp_path):
    """A timestamp after 294247-01-10 (microseconds since 1970 above 2^63) failed every
    refresh of a snapshot table hashed by content, and reconcile, with 'bigint out of
    range' (exit 3), though the replica holds the value."""
    source = new_database(cluster)
    source.execute(f"""
        CREATE TABLE w (id int PRIMARY KEY, tz timestamptz, t timestamp);
        INSERT INTO w VALUES (1, '{LAST}+00', '{LAST}'), (2, '4713-01-01 00:00+00 BC',
          '4713-01-01 BC'), (3, 'infinity', '-infinity'), (4, NULL, '294247-01-10 04:00:54.775807');
        CREATE VIEW wv AS SELECT * FROM w;
        CREATE TABLE u (id int PRIMARY KEY, ts timestamptz NOT NULL, far timestamptz);
        INSERT INTO u VALUES (1, '2026-01-01', '{LAST}+00'), (2, '2026-01-01', '-infinity');""")
    url = new_target("postgresql", cluster, tmp_path)
    cfg = config(url, {"app": (source.standby_url, {
        "w": {"method": "snapshot", "where": "id > 0"},
        "wv": {"method": "snapshot", "key": ["id"]},
        "u": {"method": "updater", "cursor": "ts"}})})
    runs = run_once(cfg)
    assert [(r.status, r.error) for r in runs] == [("ok", None)] * 3
    assert [r.status for r in run_once(cfg)] == ["unchanged", "unchanged", "ok"]
    source.execute("UPDATE w SET tz = tz - interval '1 us' WHERE id = 1")
    runs = run_once(cfg)
    assert [(r.status, r.rows, r.error) for r in runs][:2] == [("ok", 4, None)] * 2
    for name in ("w", "wv"):
        assert query(url, f"SELECT tz::text, t::text FROM app.{name} ORDER BY id") == [
            ("294276-12-31 23:59:59.999998+00", LAST),
            ("4713-01-01 00:00:00+00 BC", "4713-01-01 00:00:00 BC"),
            ("infinity", "-infinity"), (None, "294247-01-10 04:00:54.775807")]
    mine, theirs = hashes(url, source.standby_url, "app", "public.u")
    assert mine == theirs
    query(url, "UPDATE app.u SET far = far - interval '1 us' WHERE id = 1")
    report = reconcile(cfg, "u")
    assert report.updated == 1
    assert query(url, "SELECT far::text FROM app.u ORDER BY id") == [
        (f"{LAST}+00",), ("-infinity",)]
