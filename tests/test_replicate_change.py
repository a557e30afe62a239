"""Snapshot tables: change detected by content hash on the standby, also after TRUNCATE,
with the relation's file node and size as hints only."""

from __future__ import annotations

from topoff.export.copy_out import copy_rows
from topoff.replicate.change import content_hash, copy_all, detect
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import describe
from topoff.replicate.read import open_snapshot


def run(db, previous=None, previous_hints=None, where=None):
    conn = open_snapshot(db.standby_url, False)
    try:
        info = describe(conn, ReplicateTable("s", "public", "site", "snapshot", where=where))
        return detect(conn, info, previous, previous_hints)
    finally:
        conn.close()


def test_changes_are_found_by_content_and_hints_only_hint(db):
    db.execute("CREATE TABLE site (id int PRIMARY KEY, name text, score float8); "
               "INSERT INTO site SELECT g, 'site ' || g, g / 3.0 FROM generate_series(1, 500) g")
    first = run(db)
    assert first.changed and first.rows == 500
    same = run(db, first.content, first.hints)
    assert not same.changed and same.hint is None
    # an update in place of one value: same count, same pages, the hash tells
    db.execute("UPDATE site SET name = 'site 7 ' WHERE id = 7")
    upd = run(db, same.content, same.hints)
    assert upd.changed and upd.rows == 500
    # TRUNCATE and the very same rows again: the file node changed, the rows did not
    db.execute("CREATE TABLE keep AS SELECT * FROM site; TRUNCATE site; "
               "INSERT INTO site SELECT * FROM keep")
    again = run(db, upd.content, upd.hints)
    assert not again.changed
    assert again.hint and "rewritten" in again.hint
    # TRUNCATE to empty
    db.execute("TRUNCATE site")
    empty = run(db, again.content, again.hints)
    assert empty.changed and empty.rows == 0 and empty.content == "0:0"
    # the row swap that keeps the count: -0 and 0 are the same float, 'a' and 'A' are not
    db.execute("INSERT INTO site VALUES (1, 'a', 0)")
    a = run(db, empty.content)
    db.execute("UPDATE site SET name = 'A'")
    assert run(db, a.content).changed
    db.execute("UPDATE site SET name = 'a'")
    assert not run(db, a.content).changed


def test_the_where_is_part_of_the_content(db):
    db.execute("CREATE TABLE site (id int PRIMARY KEY, name text); "
               "INSERT INTO site SELECT g, 'x' FROM generate_series(1, 10) g")
    part = run(db, where="id <= 5")
    assert part.rows == 5
    db.execute("UPDATE site SET name = 'y' WHERE id = 9")
    assert not run(db, part.content, where="id <= 5").changed
    conn = open_snapshot(db.standby_url, False)
    try:
        info = describe(conn, ReplicateTable("s", "public", "site", "snapshot"))
        assert content_hash(conn, info)[0] == 10
        info = describe(conn, ReplicateTable("s", "public", "site", "snapshot",
                                             where="id <= 5", exclude=("name",)))
        rows = [bytes(r).decode() for r in copy_rows(conn, copy_all(info))]
        assert rows == [f"{i}\n" for i in range(1, 6)]
    finally:
        conn.close()
