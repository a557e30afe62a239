"""``topoff verify`` on an Iceberg replica: a clean replica is equal; a row changed by hand
in an Iceberg table (a commit made through pyiceberg), a float one ulp off and a missing
day are differences (exit 1 from the command)."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from support.pg import make_config
from support.replica import cli, day, publish_full
from test_iceberg_sync import catalog_file, iceberg_table, standard  # noqa: F401
from topoff.sync import sync
from topoff.verify import verify

FLOATS_TOML = """
dataset = "floats"

[tables.measures]
method = "snapshot"
"""


def test_a_clean_replica_verifies_then_a_missing_day_and_a_changed_row(standard, tmp_path):  # noqa: F811
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()
    assert {t.table for t in report.tables} >= {"public.messages", "public.users"}
    assert sum(t.compared_rows for t in report.tables) > 0
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, out.stderr

    msgs = iceberg_table(target, "public.messages")
    d = day(3)
    lo, hi = f"{d.isoformat()}T00:00:00", f"{day(2).isoformat()}T00:00:00"
    msgs.delete(And(GreaterThanOrEqual("timestamp", lo), LessThan("timestamp", hi)))
    report = verify(target, db.standby_url)
    [t] = [t for t in report.tables if t.table == "public.messages"]
    assert [x.day for x in t.differences] == [d.isoformat()], report.to_json()
    assert t.differences[0].replica_rows == 0 and t.differences[0].source_rows > 0
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 1, (out.stdout, out.stderr)

    users = iceberg_table(target, "public.users")
    rows = users.scan(row_filter=EqualTo("id", 1)).to_arrow()
    assert rows.num_rows == 1
    users.delete(EqualTo("id", 1))
    changed = rows.set_column(rows.schema.get_field_index("name"), rows.schema.field("name"),
                              pa.array(["someone else"], rows.schema.field("name").type))
    users.append(changed)
    report = verify(target, db.standby_url)
    [t] = [t for t in report.tables if t.table == "public.users"]
    assert [(x.day, x.what) for x in t.differences] == [
        (None, "same count, different content")], report.to_json()


def test_a_float_one_ulp_off_is_a_difference(db, tmp_path):
    db.execute("CREATE TABLE measures (id integer PRIMARY KEY, f8 double precision, "
               "f4 real, n numeric(12, 3), big numeric, iv interval, ints integer[], "
               "days date[], fs float8[], fr numeric(38, 38))")  # fr: DuckDB prints .5
    db.execute("INSERT INTO measures VALUES (1, 0.1, 0.1, 1.5, 123456789012345678901234567890"
               "1234567890.5, '1 mon 2 days', '{1,NULL,3}', '{2024-01-01,NULL}', '{1.5,2}', "
               "0.5), (2, 1e16, 3.4028235e38, -0.001, 'NaN', '-1 days', '{}', '{}', NULL, "
               "-1e-38), (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0)")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, FLOATS_TOML), url)
    target = catalog_file(tmp_path)
    sync(url, target)
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()
    assert any("measures.fs" in n and "not compared" in n for n in report.notes)

    table = iceberg_table(target, "public.measures")
    row = table.scan(row_filter=EqualTo("id", 1)).to_arrow()
    table.delete(EqualTo("id", 1))
    i = row.schema.get_field_index("f8")
    table.append(row.set_column(i, row.schema.field("f8"),
                                pa.array([0.10000000000000002], pa.float64())))
    report = verify(target, db.standby_url)
    assert [d.what for t in report.tables for d in t.differences] == [
        "same count, different content"], report.to_json()


def test_a_table_of_float_arrays_only_is_compared_by_its_rows(db, tmp_path):
    """A table whose every column is left out (arrays of floats) was an internal error
    (exit 70: the row hash of no column was no SQL); its rows are counted and compared."""
    db.execute("CREATE TABLE measures (fs float8[], fr real[])")
    db.execute("INSERT INTO measures VALUES ('{1.5,NaN}', NULL), (NULL, '{}'), (NULL, NULL)")
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, FLOATS_TOML), url)
    target = catalog_file(tmp_path)
    sync(url, target)
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    assert (out.stdout + out.stderr).count("not compared") == 2, (out.stdout, out.stderr)
    db.execute("INSERT INTO measures VALUES (NULL, NULL)")
    db.sync()
    out = cli("verify", target, "--against", db.standby_url)
    assert out.exit_code == 1, (out.stdout, out.stderr)
    assert "public.measures" in out.stdout and "internal error" not in out.stderr
