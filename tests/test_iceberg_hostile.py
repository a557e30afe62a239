"""Hostile datasets synced into Iceberg: a real publication whose data file is then
rewritten with its size and sha256 listed truly, so that only topoff's reading of the
values can refuse it. A refusal is one ``error:`` line and its ``hint:`` with a documented
exit code, commits nothing of that publication, keeps what the run committed before it,
and a rerun after the publisher fixes the file resumes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from support.dataset import compress, decompress, replace_data_file
from support.pg import make_config
from support.replica import cli, day, publish_day, publish_full
from test_iceberg_sync import catalog_file, iceberg_rows, iceberg_table
from topoff.verify import verify

TOML = 'dataset = "u"\n[tables.u]\nmethod = "upsert"\ncursor = "ts"\n'


def _data(url: Path, pub: str, table: str) -> bytes:
    doc = json.loads((url / pub / "manifest.json").read_bytes())
    return decompress((url / pub / doc["tables"][table]["files"][0]["path"]).read_bytes())


def _day(db, cfg, url: Path, n: int) -> str:
    db.sync()
    return next(p.id for p in publish_day(cfg, str(url), day(n)).publications
                if day(n).isoformat() in p.id)


def test_a_null_key_in_an_upsert_partition_is_refused_after_the_publications_before(
        db, tmp_path):
    """A row of an upsert partition whose key is NULL was an internal error (exit 70,
    pyiceberg's "Invalid literal value: None")."""
    db.execute("CREATE TABLE u (id integer PRIMARY KEY, ts timestamptz NOT NULL, v text)")
    db.execute(f"INSERT INTO u VALUES (1, '{day(3)} 01:00+00', 'one'), "
               f"(2, '{day(3)} 01:00+00', 'two')")
    db.sync()
    url = tmp_path / "published"
    cfg = make_config(db, TOML)
    publish_full(cfg, str(url))
    target = catalog_file(tmp_path)
    assert cli("sync", str(url), target).exit_code == 0
    db.execute(f"UPDATE u SET v = 'uno', ts = '{day(2)} 01:00+00' WHERE id = 1")
    _day(db, cfg, url, 2)
    db.execute(f"UPDATE u SET v = 'dos', ts = '{day(1)} 01:00+00' WHERE id = 2")
    second = _day(db, cfg, url, 1)
    good = _data(url, second, "public.u")
    assert b"\n2," in good
    replace_data_file(url, second, "public.u", compress(good.replace(b"\n2,", b"\n,")))
    out = cli("sync", str(url), target)
    assert out.exit_code == 6, (out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and second in errors[0] and "id is NULL" in errors[0], out.stderr
    assert "hint: " in out.stderr and "internal error" not in out.stderr
    applied = iceberg_table(target, "public.u").properties["topoff.publication"]
    assert applied != second  # the publications before it stay: "uno" is the first's
    assert [r[2] for r in iceberg_rows(target, "public.u")] == ["uno", "two"]
    replace_data_file(url, second, "public.u", compress(good))  # the publisher fixes it
    out = cli("sync", str(url), target)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    assert [r[2] for r in iceberg_rows(target, "public.u")] == ["uno", "dos"]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


OUT_OF_RANGE = [("f", "1e39"), ("f", "-1e39"), ("f", "1e-50"), ("d", "1e400"), ("d", "1e-400")]


@pytest.mark.parametrize(("column", "value"), OUT_OF_RANGE,
                         ids=[f"{c}-{v}" for c, v in OUT_OF_RANGE])
def test_a_float_out_of_its_range_is_refused(db, tmp_path, column, value):
    """A float text beyond its type's range (PostgreSQL refuses it) landed as an infinity
    or as zero; it is a malformed file (exit 6), as PostgreSQL's COPY reports it."""
    db.execute("CREATE TABLE h (id integer, f real, d double precision)")
    db.execute("INSERT INTO h VALUES (1, 1.5, 2.5)")
    db.sync()
    url = tmp_path / "published"
    full = publish_full(make_config(db, 'dataset = "h"\n[tables.h]\nmethod = "snapshot"\n'),
                        str(url)).publications[0].id
    row = {"f": f"1,{value},2.5", "d": f"1,1.5,{value}"}[column]
    assert _data(url, full, "public.h") == b"id,f,d\n1,1.5,2.5\n"
    replace_data_file(url, full, "public.h", compress(f"id,f,d\n{row}\n".encode()))
    target = catalog_file(tmp_path)
    out = cli("sync", str(url), target)
    assert out.exit_code == 6, (out.stdout, out.stderr)
    assert any(line.startswith("error: ") and f"column {column} " in line
               and f"'{value}'" in line for line in out.stderr.splitlines()), out.stderr
    assert "hint: " in out.stderr
    assert iceberg_table(target, "public.h").current_snapshot() is None


def test_a_row_longer_than_the_csv_reader_takes_is_exit_7_not_a_damaged_file(db, tmp_path):
    """A valid row of more than twice the reader's block (a 40 MB text) was called "not
    the CSV its manifest describes" (exit 6, ask the publisher) though the file is fine."""
    from topoff.targets.iceberg.rows import BLOCK

    db.execute("CREATE TABLE h (id integer, t text)")
    db.execute("INSERT INTO h VALUES (1, 'x')")
    db.sync()
    url = tmp_path / "published"
    full = publish_full(make_config(db, 'dataset = "h"\n[tables.h]\nmethod = "snapshot"\n'),
                        str(url)).publications[0].id
    text = b"id,t\n1," + b"y" * (2 * BLOCK + (1 << 20)) + b"\n"
    replace_data_file(url, full, "public.h", compress(text), uncompressed_bytes=len(text))
    target = catalog_file(tmp_path)
    out = cli("sync", str(url), target)
    assert out.exit_code == 7, (out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "32 MiB" in errors[0], out.stderr
    assert "hint: " in out.stderr
    assert iceberg_table(target, "public.h").current_snapshot() is None


def test_a_replicated_row_longer_than_the_csv_reader_takes_fails_the_table_with_7(cluster,
                                                                                  tmp_path):
    """The same row read from a source by ``topoff replicate`` was an internal error."""
    from support.replicate import config, new_database
    from test_replicate_iceberg import catalog_file as replicate_catalog
    from topoff.replicate.engine import run_once

    db = new_database(cluster)
    db.execute("CREATE TABLE w (id int PRIMARY KEY, ts timestamptz NOT NULL, v text); "
               "INSERT INTO w VALUES (1, '2026-01-01', repeat('x', 40000000))")
    cfg = config(replicate_catalog(tmp_path),
                 {"app": (db.standby_url, {"w": {"method": "updater", "cursor": "ts"}})})
    [run] = run_once(cfg)
    assert (run.status, run.exit_code) == ("failed", 7), run.error
    assert "32 MiB" in (run.error or "")


def test_a_box_whose_corners_are_not_in_box_out_s_order_is_refused(db, tmp_path):
    """PostgreSQL writes a box's upper right corner first (box_in swaps the coordinates it
    is given): a dataset's ``(0,0),(1,1)`` is no text a source wrote; it was kept as it is,
    a string no PostgreSQL replica of the same publication holds. The publication as
    written syncs, and verify finds it equal."""
    db.execute("CREATE TABLE g (id integer, b box, bs box[])")
    db.execute("INSERT INTO g VALUES (1, '(0,0),(1,1)', '{(0,1),(1,0);NULL}'), "
               "(2, '(NaN,0),(1,1)', '{}')")
    db.sync()
    url = tmp_path / "published"
    full = publish_full(make_config(db, 'dataset = "g"\n[tables.g]\nmethod = "snapshot"\n'),
                        str(url)).publications[0].id
    good = _data(url, full, "public.g")
    assert good == (b'id,b,bs\n1,"(1,1),(0,0)","{(1,1),(0,0);NULL}"\n'
                    b'2,"(NaN,1),(1,0)",{}\n')
    target = catalog_file(tmp_path)
    for old, new, column in ((b'1,"(1,1),(0,0)",', b'1,"(0,0),(1,1)",', "b"),
                             (b'"(NaN,1),(1,0)"', b'"(1,0),(NaN,1)"', "b"),
                             (b'"{(1,1),(0,0);NULL}"', b'"{(0,0),(1,1);NULL}"', "bs")):
        replace_data_file(url, full, "public.g", compress(good.replace(old, new)))
        out = cli("sync", str(url), target)
        assert out.exit_code == 6, (new, out.stdout, out.stderr)
        errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and f"column {column} " in errors[0], out.stderr
        assert iceberg_table(target, "public.g").current_snapshot() is None
    replace_data_file(url, full, "public.g", compress(good))
    assert cli("sync", str(url), target).exit_code == 0
    assert [r[1:] for r in iceberg_rows(target, "public.g")] == [
        ("(1,1),(0,0)", ["(1,1),(0,0)", None]), ("(NaN,1),(1,0)", [])]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


def test_a_new_column_named_as_the_day_partition_field_is_refused_then_rebuilt(db, tmp_path):
    """A column ``ts_day`` added to a table partitioned by the day of ``ts`` (its partition
    field ``ts_day``) was an internal error (exit 70: pyiceberg refuses a column of a
    partition field's name); it is exit 7, nothing of the partition committed, and a
    replica rebuilt from a full export holding the column names its partitions otherwise."""
    db.execute("CREATE TABLE days (id integer, ts timestamptz NOT NULL)")
    db.execute(f"INSERT INTO days VALUES (1, '{day(3)} 01:00+00')")
    db.sync()
    url = str(tmp_path / "published")
    config = make_config(db, 'dataset = "d"\n[tables.days]\nmethod = "append"\n'
                             'cursor = "ts"\n')
    publish_full(config, url)
    target = catalog_file(tmp_path)
    assert cli("sync", url, target).exit_code == 0
    db.execute("ALTER TABLE days ADD COLUMN ts_day integer")
    db.execute(f"INSERT INTO days VALUES (2, '{day(1)} 01:00+00', 7)")
    db.sync()
    publish_day(config, url, day(1))
    out = cli("sync", url, target)
    assert out.exit_code == 7, (out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "'ts_day'" in errors[0] and "partition" in errors[0]
    assert "--rebase" in out.stderr and "internal error" not in out.stderr
    assert [r[0] for r in iceberg_rows(target, "public.days")] == [1]
    publish_full(config, url)
    out = cli("sync", url, target, "--rebase")
    assert out.exit_code == 0, (out.stdout, out.stderr)
    table = iceberg_table(target, "public.days")
    assert [f.name for f in table.spec().fields] == ["ts_day_"]
    assert [r[::2] for r in iceberg_rows(target, "public.days")] == [(1, None), (2, 7)]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


def test_a_replicated_column_named_as_the_day_partition_field_fails_the_table(cluster,
                                                                             tmp_path):
    """The same column added on a replicated table's source was an internal error (exit
    70); it fails the table with exit 7, nothing changed, and --resync rebuilds it."""
    from datetime import UTC, datetime

    from support.replicate import config, new_database
    from test_replicate_iceberg import catalog_file as replicate_catalog
    from test_replicate_iceberg import iceberg_rows as replicated_rows
    from test_replicate_iceberg import iceberg_table as replicated_table
    from topoff.replicate.engine import resync, run_once

    db = new_database(cluster)
    db.execute("CREATE TABLE w (id int PRIMARY KEY, ts timestamptz NOT NULL); "
               "INSERT INTO w VALUES (1, '2026-01-01')")
    target = replicate_catalog(tmp_path)
    cfg = config(target, {"app": (db.standby_url, {"w": {"method": "updater", "cursor": "ts"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    db.execute("ALTER TABLE w ADD COLUMN ts_day int; INSERT INTO w VALUES (2, '2026-01-02', 7)")
    [run] = run_once(cfg)
    assert (run.status, run.exit_code) == ("failed", 7), run.error
    assert "'ts_day'" in (run.error or "") and "--resync app.public.w" in (run.error or "")
    assert replicated_rows(target, "app", "w")[1] == [(1, datetime(2026, 1, 1, tzinfo=UTC))]
    assert resync(cfg, "app.public.w").status == "ok"
    assert [f.name for f in replicated_table(target, "app", "w").spec().fields] == ["ts_day_"]
    assert [r[::2] for r in replicated_rows(target, "app", "w")[1]] == [(1, None), (2, 7)]


def test_a_column_dropped_and_added_again_is_new_to_iceberg_readers_only(cluster, tmp_path):
    """iceberg.md "Querying the replica": the offline query reads the data files by column
    name, not by Iceberg's field ids: a column a replicated table dropped
    (``drop_columns``) and took again under its name shows the old rows' values there,
    where an Iceberg reader shows NULL (the page said the files could be read so)."""
    import duckdb

    from support.replicate import config, new_database
    from test_replicate_iceberg import catalog_file as replicate_catalog
    from test_replicate_iceberg import iceberg_rows as replicated_rows
    from test_replicate_iceberg import iceberg_table as replicated_table
    from topoff.replicate.engine import run_once

    db = new_database(cluster)
    db.execute("CREATE TABLE re (id int PRIMARY KEY, ts timestamptz NOT NULL, c int); "
               "INSERT INTO re VALUES (1, '2026-01-01', 5)")
    target = replicate_catalog(tmp_path)
    cfg = config(target, {"app": (db.standby_url, {"re": {
        "method": "updater", "cursor": "ts", "drop_columns": True}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    db.execute("ALTER TABLE re DROP COLUMN c")
    assert [r.status for r in run_once(cfg)] == ["ok"]
    db.execute("ALTER TABLE re ADD COLUMN c text; INSERT INTO re VALUES (2, '2026-01-02', 'x')")
    assert [r.status for r in run_once(cfg)] == ["ok"]
    assert [(r[0], r[2]) for r in replicated_rows(target, "app", "re")[1]] == [(1, None),
                                                                               (2, "x")]
    table = replicated_table(target, "app", "re")
    files = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    by_name = duckdb.connect().execute(
        "SELECT id, c FROM read_parquet(?, hive_partitioning = false, union_by_name = true) "
        "ORDER BY id", [files]).fetchall()
    assert by_name == [(1, "5"), (2, "x")]
    page = (Path(__file__).resolve().parent.parent / "docs" / "iceberg.md").read_text()
    assert "not by Iceberg's field ids" in page


def test_a_declared_multi_dimensional_array_s_text_is_checked(db, tmp_path):
    """A column declared ``integer[][]`` is a string of the array's text: one that is not
    rectangular or holds no integer (``{{1,2},{3}}``, PostgreSQL refuses it) was kept as
    it was; it is a damaged publication, and the text as written syncs, verify equal."""
    db.execute("CREATE TABLE md (id integer, m integer[][])")
    db.execute("INSERT INTO md VALUES (1, '{{1,2},{3,4}}'), (2, '{5}')")
    db.sync()
    url = tmp_path / "published"
    full = publish_full(make_config(db, 'dataset = "m"\n[tables.md]\nmethod = "snapshot"\n'),
                        str(url)).publications[0].id
    good = _data(url, full, "public.md")
    assert good == b'id,m\n1,"{{1,2},{3,4}}"\n2,{5}\n'
    target = catalog_file(tmp_path)
    for bad in (b'"{{1,2},{3}}"', b'"{{1,2},{3,x}}"', b'"{{1,2},{ 3,4}}"'):
        replace_data_file(url, full, "public.md", compress(good.replace(b'"{{1,2},{3,4}}"', bad)))
        out = cli("sync", str(url), target)
        assert out.exit_code == 6, (bad, out.stdout, out.stderr)
        assert "column m " in out.stderr and "internal error" not in out.stderr
    replace_data_file(url, full, "public.md", compress(good))
    assert cli("sync", str(url), target).exit_code == 0
    assert [r[1] for r in iceberg_rows(target, "public.md")] == ["{{1,2},{3,4}}", "{5}"]
    report = verify(target, db.standby_url)
    assert report.equal, report.to_json()


def test_a_built_in_type_a_user_type_shadows_is_replicated_as_itself(cluster, tmp_path):
    """A database whose search_path puts a schema with types named ``box`` and ``date``
    before pg_catalog: format_type() names the built-in ones ``pg_catalog.box`` and
    ``pg_catalog.date``, which were taken for user types: a box[]'s elements were split at
    their commas (``['(1', '1)', ...]``) and a date was a string."""
    from support.replicate import config, new_database
    from test_replicate_iceberg import catalog_file as replicate_catalog
    from test_replicate_iceberg import iceberg_rows as replicated_rows
    from test_replicate_iceberg import iceberg_table as replicated_table
    from topoff.replicate.engine import run_once

    db = new_database(cluster)
    db.execute("CREATE TYPE public.box AS (a int); CREATE TYPE public.date AS (a int); "
               f"ALTER DATABASE {db.name} SET search_path = public, pg_catalog")
    db.execute("CREATE TABLE sh (id int PRIMARY KEY, b pg_catalog.box[], d pg_catalog.date, "
               "bs pg_catalog.box); INSERT INTO sh VALUES "
               "(1, '{(1,1),(0,0);(3,3),(2,2)}', '2026-01-01', '(1,1),(0,0)')")
    target = replicate_catalog(tmp_path)
    cfg = config(target, {"app": (db.standby_url, {"sh": {"method": "snapshot"}})})
    assert [r.status for r in run_once(cfg)] == ["ok"]
    fields = replicated_table(target, "app", "sh").schema().fields
    assert [str(f.field_type) for f in fields] == ["int", "list<string>", "date", "string"]
    assert replicated_rows(target, "app", "sh")[1] == [
        (1, ["(1,1),(0,0)", "(3,3),(2,2)"], date(2026, 1, 1), "(1,1),(0,0)")]
