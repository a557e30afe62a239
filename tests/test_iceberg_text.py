"""Values whose CSV text is easy to misread, end to end into Iceberg (source -> dataset ->
Iceberg, read back through pyiceberg and verified against the standby): a NULL in a table
of one column (COPY writes it as an empty line)."""

from __future__ import annotations

from support.pg import make_config
from support.replica import cli, publish_full
from test_iceberg_sync import catalog_file, iceberg_rows
from topoff.dataset.columns import Column
from topoff.targets.iceberg.replica import csv_batches
from topoff.targets.iceberg.table import schema_of
from topoff.verify import verify

TOML = 'dataset = "text"\n[tables.one]\nmethod = "snapshot"\n'


def _synced(db, tmp_path) -> str:
    db.sync()
    url = str(tmp_path / "published")
    publish_full(make_config(db, TOML), url)
    target = catalog_file(tmp_path)
    out = cli("sync", url, target)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()
    return target


def test_a_null_in_a_table_of_one_column_is_a_row(db, tmp_path):
    """COPY writes a row whose only column is NULL as an empty line, which Arrow's CSV
    reader skipped: the file was refused as damaged for its row count (exit 6)."""
    db.execute("CREATE TABLE one (t text)")
    db.execute("INSERT INTO one VALUES ('a'), (NULL), (''), (NULL), ('b')")
    target = _synced(db, tmp_path)
    assert iceberg_rows(target, "public.one") == [("",), ("a",), ("b",), (None,), (None,)]


def test_replicate_reads_a_null_in_a_table_of_one_column_as_a_row():
    """The same empty line in the rows ``topoff replicate`` copies (it was dropped)."""
    columns = [Column("t", "text")]
    rows = [b.to_pylist() for b in csv_batches(iter([b'a\n\n""\n\nb\n']), columns,
                                               schema_of(columns), "one")]
    assert [r["t"] for b in rows for r in b] == ["a", None, "", None, "b"]


def test_a_box_array_keeps_its_boxes(db, tmp_path):
    """box[] separates its elements with ``;`` (a box's text holds commas): each box is one
    element of the Iceberg list (they were split at every comma, and verify found the
    broken list equal)."""
    db.execute("CREATE TABLE one (b box[])")
    db.execute("""INSERT INTO one VALUES ('{(1,1),(0,0);(3,2.5),(-1,1e-3)}'), ('{}'),
                  (ARRAY[NULL, '(1,1),(0,0)']::box[])""")
    target = _synced(db, tmp_path)
    assert iceberg_rows(target, "public.one") == [
        (["(1,1),(0,0)", "(3,2.5),(-1,0.001)"],), ([None, "(1,1),(0,0)"],), ([],)]
