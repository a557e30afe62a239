"""A big day read by several workers at once (topoff.export.split): the same rows, the same
order and the same content hash as one read; files numbered per part."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from support.cli import loaded_modules
from support.dataset import checked_bytes, decompress, read_dataset
from support.pg import make_config
from topoff.config import parse_size
from topoff.dataset.layout import Window
from topoff.export import split
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.sources.catalog import introspect
from topoff.stores import open_store

CURSOR_TABLES = ("public.messages", "public.users_messages", "public.packages_messages")
pytestmark = pytest.mark.per_day(300)  # days of several parts of SPLIT_ROWS


@pytest.fixture
def split_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test days hold hundreds of rows, not a big day's 100,000: split them anyway."""
    monkeypatch.setattr(split, "SPLIT_ROWS", 100)


def data_rows(store, m, table: str) -> tuple[list[str], bytes]:
    """The file names and the concatenated data rows (headers left out) of a table."""
    names, rows = [], b""
    for f in m.tables[table].files:
        text = decompress(checked_bytes(store, m, f))
        rows += text[text.index(b"\n") + 1:]
        names.append(f.path.rsplit(".", 3)[-3])
    return names, rows


@pytest.mark.parametrize("chunk", ["16KiB", "256MiB"])
def test_a_split_day_has_the_rows_order_and_hash_of_one_read(datanommer, dest, split_small,
                                                             chunk):
    y = yesterday()
    out = {}
    for jobs in (1, 2):
        config = make_config(datanommer, lookback_days=0, jobs=jobs,
                             chunk_bytes=parse_size(chunk, "chunk"))
        store = open_store(str(dest / str(jobs)))
        [m] = export_incremental(config, store, Window.day(y)).manifests
        out[jobs] = {t: (data_rows(store, m, t), m.tables[t]) for t in CURSOR_TABLES}
        read_dataset(store)  # every file checks out against its manifest
    for t in CURSOR_TABLES:
        (names1, rows1), e1 = out[1][t]
        (names2, rows2), e2 = out[2][t]
        assert rows2 == rows1 and e2.rows == e1.rows > 100  # same bytes, same order
        assert e2.content_hash == e1.content_hash == f"cs1:{hashlib.sha256(rows1).hexdigest()}"
        # one read numbers its files from 1; the second part's from 10001
        assert names1[0] == names2[0] == "00001"
        assert "10001" in names2 and names2 == sorted(names2)
        if t == "public.messages":  # small chunks: several files in each part
            assert (len(names2) > 2) == (chunk == "16KiB")


def test_a_split_day_is_rechecked_by_one_read(datanommer, dest, split_small):
    """A later run re-checks the split day by hashing it in one read: equal, not changed;
    after a real change, the new revision is split again and hashes like one read."""
    y = yesterday()
    d = y - timedelta(days=1)
    config = make_config(datanommer, lookback_days=1)
    store = open_store(str(dest))
    export_incremental(config.with_export(lookback_days=0), store, Window.day(d))
    in_day = f"\"timestamp\" >= '{d}' AND \"timestamp\" < '{y}'"
    datanommer.execute(f"UPDATE messages SET topic = topic WHERE {in_day}")  # newer xmin
    result = export_incremental(config, store, Window.day(y))
    [recheck] = [r for r in result.manifests[-1].rechecked if r["table"] == "public.messages"]
    assert recheck["result"] == "unchanged-hash"
    assert d.isoformat() in result.unchanged
    datanommer.execute(f"UPDATE messages SET topic = topic || '.x' WHERE {in_day}")
    result = export_incremental(config, store, Window.day(y))
    m = result.manifests[0]
    assert m.window == Window.day(d) and m.revision == 2
    names, rows = data_rows(store, m, "public.messages")
    assert names == ["00001", "10001"]
    assert m.tables["public.messages"].content_hash == \
        f"cs1:{hashlib.sha256(rows).hexdigest()}"
    assert rows.count(b".x,") == m.tables["public.messages"].rows


def test_an_empty_part_adds_no_file(db, dest, split_small):
    """Every row in the second half of the day: the first part is the table's header-only
    file; rows only in the first half: the second part writes nothing."""
    d = date(2026, 11, 2)
    db.execute("CREATE TABLE late (id integer PRIMARY KEY, t timestamptz NOT NULL);"
               "CREATE TABLE early (id integer PRIMARY KEY, t timestamptz NOT NULL);"
               "INSERT INTO late SELECT g, '2026-11-02 13:00+00'::timestamptz "
               "+ g * interval '1 second' FROM generate_series(1, 300) g;"
               "INSERT INTO early SELECT g, '2026-11-02 01:00+00'::timestamptz "
               "+ g * interval '1 second' FROM generate_series(1, 300) g;")
    config = make_config(db, '[tables.late]\ncursor = "t"\n[tables.early]\ncursor = "t"\n',
                         lookback_days=0)
    store = open_store(str(dest))
    [m] = export_incremental(config, store, Window.day(d)).manifests
    late_names, late_rows = data_rows(store, m, "public.late")
    early_names, early_rows = data_rows(store, m, "public.early")
    assert late_names == ["00001", "10001"] and early_names == ["00001"]
    assert m.tables["public.late"].files[0].rows == 0
    for table, rows in (("public.late", late_rows), ("public.early", early_rows)):
        assert rows.count(b"\n") == m.tables[table].rows == 300
        assert m.tables[table].content_hash == f"cs1:{hashlib.sha256(rows).hexdigest()}"


def test_no_split_where_wall_clock_bounds_would_not_follow_each_other(db, dest, split_small):
    """Europe/London's repeated hour (2026-10-25 00:00-02:00 UTC is wall-clock 01:00-02:00
    twice): [00:30, 02:30) UTC cut at 01:30 UTC, the first half would be wall-clock [01:30
    BST, 01:30 GMT): empty. Such a window is read in one COPY, every row once."""
    db.execute("CREATE TABLE wall (id serial PRIMARY KEY, t timestamp NOT NULL);"
               "INSERT INTO wall (t) SELECT '2026-10-25 01:00'::timestamp + g * "
               "interval '1 second' FROM generate_series(0, 3599) g;"
               "INSERT INTO wall (t) SELECT '2026-10-25 01:00'::timestamp + g * "
               "interval '1 second' FROM generate_series(0, 3599) g;")
    config = make_config(db, '[tables.wall]\ncursor = "t"\ncursor_timezone = '
                         '"Europe/London"\n', lookback_days=0)
    window = Window(datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
                    datetime(2026, 10, 25, 2, 30, tzinfo=UTC))
    with db.standby() as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        [t] = introspect(conn, config)
    assert split.sub_windows(t, window, 10_000, 2) == [window]
    day = Window.day(date(2026, 10, 25))
    assert len(split.sub_windows(t, day, 10_000, 2)) == 2  # a whole day splits
    assert split.sub_windows(t, day, 99, 2) == [day]  # too few rows
    assert split.sub_windows(t, day, 10_000, 1) == [day]  # one worker
    store = open_store(str(dest))
    [m] = export_incremental(config, store, window, force=True).manifests
    names, rows = data_rows(store, m, "public.wall")
    assert names == ["00001"]
    # wall-clock [01:30 BST, 02:30 GMT): the second half hour of both passes
    assert rows.count(b"\n") == m.tables["public.wall"].rows == 3600


def test_the_export_command_imports_no_consumer_library(datanommer, tmp_path):
    """A real ``topoff export incremental`` (in a process of its own) loads neither DuckDB,
    Arrow, Iceberg nor boto3 (an S3 store loads boto3 when it is opened), nor the other
    commands' modules: start-up is part of every day's export time."""
    y = yesterday()
    (tmp_path / "t.toml").write_text(
        'dataset = "datanommer"\n[tables.messages]\ncursor = "timestamp"\n')
    proc, loaded = loaded_modules(
        ["export", "incremental", "--config", str(tmp_path / "t.toml"), "--source",
         datanommer.standby_url, "--to", str(tmp_path / "out"), "--date", y.isoformat(),
         "--lookback-days", "0", "--quiet"],
        ("duckdb", "pyarrow", "pyiceberg", "boto3", "botocore", "rich.console", "topoff.sync",
         "topoff.targets", "topoff.replicate", "topoff.backup"))
    assert proc.returncode == 0, proc.stderr
    assert "published incremental/" in proc.stdout
    assert loaded == [], proc.stdout


def test_a_full_temporary_disk_is_a_store_error_and_publishes_nothing(datanommer, tmp_path):
    """A later part's rows go to a temporary file: when it cannot be written (here: the
    process may write no file past 48 KiB, RLIMIT_FSIZE), the export fails with one
    error line, exit code 5, and leaves nothing published."""
    y = yesterday()
    (tmp_path / "t.toml").write_text(
        'dataset = "datanommer"\n[export]\nchunk_size = "16KiB"\n'
        '[tables.messages]\ncursor = "timestamp"\n')
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (48 << 10, 48 << 10))\n"
            "from topoff.export import split\n"
            "split.SPLIT_ROWS = 100\n"
            "from topoff.cli import main\n"
            "main()\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", code, "export", "incremental", "--config",
         str(tmp_path / "t.toml"), "--source", datanommer.standby_url, "--to", str(out),
         "--date", y.isoformat(), "--lookback-days", "0", "--jobs", "2"],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith("error: cannot write the temporary file of a part of the day")
    assert lines[-1].startswith("hint: ") and "--jobs 1" in lines[-1]
    assert not (out / "index.json").exists()
    assert not [p for p in out.rglob("*.csv.zst")] if out.exists() else True
