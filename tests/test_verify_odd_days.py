"""Rows whose cursor is not an ordinary day (infinity, BC) are verified like any other,
instead of stopping verify with an internal error."""

from __future__ import annotations

from support.pg import make_config
from support.replica import day
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.sync import sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]


def test_infinite_and_bc_cursors(db, replica, tmp_path):
    db.execute("CREATE TABLE ev (id integer PRIMARY KEY, at timestamptz NOT NULL)")
    db.execute("INSERT INTO ev VALUES (1, %s), (2, 'infinity'), (3, '-infinity'), "
               "(4, '0044-03-15 12:00:00+00 BC')", [f"{day(3).isoformat()} 12:00:00+00"])
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(db, 'dataset = "ev"\n[tables.ev]\ncursor = "at"\n'), store)
    sync(url, replica)
    report = verify(replica, db.standby_url)
    assert report.equal, report.to_json()
    db.execute("UPDATE ev SET id = 5 WHERE id = 4")
    assert [d.day for d in verify(replica, db.standby_url).tables[0].differences] == [
        "0044-03-15 BC"]
