"""``verify`` is exact for every value both sides can hold: a one-ulp float change, -0 for
0, an interval of 30 days for one of a month are differences; a composite of NULLs and an
XML declaration (which COPY drops) are not. A table or column the source lacks is a
difference with a next step, not a crash."""

from __future__ import annotations

import json
import random
import struct

from support.pg import make_config
from support.replica import cli
from topoff.export.full import export_full
from topoff.stores import open_store
from topoff.sync import sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

CONFIG = """
dataset = "v"

[tables.v]
method = "snapshot"
"""


def publish_and_sync(db, replica: str, tmp_path) -> str:
    url = str(tmp_path / "published")
    with open_store(url) as store:
        export_full(make_config(db, CONFIG), store)
    sync(url, replica)
    return url


def differing(replica: str, db) -> list[str | None]:
    report = verify(replica, db.standby_url)
    return [d.what for t in report.tables for d in t.differences]


def test_one_ulp_and_other_small_changes_are_differences(db, replica, tmp_path):
    db.execute("CREATE TYPE pair AS (a integer, b text); "
               "CREATE TABLE v (id integer PRIMARY KEY, f8 double precision, f4 real, "
               "z double precision, iv interval, d date, p pair, x xml, "
               "fr numeric(5, 5), fr38 numeric(38, 38)); "
               "INSERT INTO v VALUES (1, 0.1, 0.1, 0, '1 mon', '2024-01-01', ROW(NULL, NULL), "
               "'<?xml version=\"1.0\"?><a>1</a>', 0.5, -1e-38), (2, 1e16, 3.4028235e38, "
               "5e-324, '-1 days', '0044-03-15 BC', ROW(1, 'x'), '<b/>', 0, 0.99999), "
               "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -0.99999, NULL)")
    publish_and_sync(db, replica, tmp_path)
    report = verify(replica, db.standby_url)
    # the composite of NULLs, the XML declaration; a numeric(p, p), which DuckDB prints
    # without the leading zero (.5)
    assert report.equal, report.to_json()

    # the XML declaration changes: COPY writes the same text, so nothing to compare
    db.execute("UPDATE v SET x = '<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>1</a>' "
               "WHERE id = 1")
    assert differing(replica, db) == []
    assert any("XML declaration" in n for n in verify(replica, db.standby_url).notes)

    for change in ("f8 = '0.10000000000000002'",  # one ulp
                   "f4 = '0.10000001'",  # one ulp of a real
                   "z = '-0'", "z = '1e-323'",  # -0 for 0; the next subnormal
                   "f8 = '1.0000000000000002e16'", "iv = '30 days'", "d = '0044-03-16 BC'",
                   "p = ROW(NULL, '')", "fr = 0.50001"):
        column = change.split(" = ", 1)[0]
        (before,) = db.standby_query(f"SELECT {column}::text FROM v WHERE id = 1")[0]
        db.execute(f"UPDATE v SET {change} WHERE id = 1")
        assert differing(replica, db) == ["same count, different content"], change
        db.execute(f"UPDATE v SET {column} = %s WHERE id = 1", [before])
        assert differing(replica, db) == [], change


def test_random_floats_verify_equal(db, replica, tmp_path):
    """PostgreSQL and DuckDB write the same shortest digits for every double and real:
    random bit patterns (subnormals, huge and tiny exponents) hash alike on both sides."""
    rnd = random.Random(20261130)
    doubles = [struct.unpack(">d", rnd.randbytes(8))[0] for _ in range(3000)]
    singles = [struct.unpack(">f", rnd.randbytes(4))[0] for _ in range(3000)]
    doubles += [2.0 ** e for e in range(-1074, 1024, 7)] + [10.0 ** e for e in range(-300, 300)]
    db.execute("CREATE TABLE v (id integer PRIMARY KEY, f8 double precision, f4 real)")
    with db.primary() as conn, conn.cursor() as cur, cur.copy("COPY v FROM STDIN") as copy:
        for i, d in enumerate(doubles):
            copy.write_row((i, repr(d), repr(singles[i % len(singles)])))
    db.sync()
    publish_and_sync(db, replica, tmp_path)
    report = verify(replica, db.standby_url)
    assert report.equal, report.to_json()
    assert report.tables[0].compared_rows == len(doubles)


def test_a_table_or_column_missing_on_the_source(db, replica, tmp_path):
    db.execute("CREATE TABLE v (id integer PRIMARY KEY, a text, t timestamptz); "
               "INSERT INTO v VALUES (1, 'x', now()), (2, NULL, NULL)")
    url = publish_and_sync(db, replica, tmp_path)
    db.execute("ALTER TABLE v DROP COLUMN a")
    assert differing(replica, db) == ["column(s) a missing on the source"]
    db.execute("ALTER TABLE v ADD COLUMN a text; ALTER TABLE v ALTER COLUMN t TYPE text")
    assert differing(replica, db) == ["column(s) t changed type on the source"]
    db.execute("DROP TABLE v")
    assert differing(replica, db) == ["the table is missing on the source"]

    result = cli("verify", replica, "--against", db.standby_url)
    assert result.exit_code == 1, result.stderr
    assert "public.v: DIFFERS" in result.stdout
    assert "the table is missing on the source" in result.stdout
    hint = [line for line in result.stderr.splitlines() if line.startswith("hint: ")]
    assert len(hint) == 1 and f"topoff sync {url} " in hint[0] and "--rebase" in hint[0]
    doc = json.loads(cli("verify", replica, "--against", db.standby_url, "--json").stdout)
    assert doc["equal"] is False and "--rebase" in doc["hint"]
    assert doc["tables"][0]["differences"][0]["what"] == "the table is missing on the source"


def test_verify_is_silent_about_hints_when_equal(db, tmp_path):
    replica = str(tmp_path / "r.duckdb")
    db.execute("CREATE TABLE v (id integer PRIMARY KEY, c char(3)); "
               "INSERT INTO v VALUES (1, 'a')")
    publish_and_sync(db, replica, tmp_path)
    result = cli("verify", replica, "--against", db.standby_url)
    assert result.exit_code == 0, result.stderr
    assert "hint:" not in result.stdout + result.stderr
    assert "note: public.v.c (character(3)): compared without trailing spaces" in result.stdout


def test_a_value_moving_the_row_text_s_marks_is_a_difference(db, replica, tmp_path):
    """The canonical row text marks NULL with U+001E and separates values with U+001F:
    values holding those characters (or the escape U+001D) are escaped, so a text "\\x1e"
    is not NULL and ('p\\x1fq', 'r') is not ('p', 'q\\x1fr')."""
    db.execute("CREATE TABLE v (id integer PRIMARY KEY, a text, b text, l text[]); "
               "INSERT INTO v VALUES (1, NULL, 'r', NULL), "
               "(2, E'p\\x1fq', 'r', ARRAY[E'\\x1d', E'x\\x1ey', E'\\x1f']), "
               "(3, E'\\x1d\\x1e', E'\\x1f', '{}')")
    publish_and_sync(db, replica, tmp_path)
    report = verify(replica, db.standby_url)
    assert report.equal, report.to_json()
    for change, back in (("a = E'\\x1e' WHERE id = 1", "a = NULL WHERE id = 1"),
                         ("a = 'p', b = E'q\\x1fr' WHERE id = 2",
                          "a = E'p\\x1fq', b = 'r' WHERE id = 2"),
                         ("a = E'\\x1d', b = E'\\x1e\\x1f' WHERE id = 3",
                          "a = E'\\x1d\\x1e', b = E'\\x1f' WHERE id = 3")):
        db.execute(f"UPDATE v SET {change}")
        assert differing(replica, db) == ["same count, different content"], change
        db.execute(f"UPDATE v SET {back}")
        assert differing(replica, db) == [], back
