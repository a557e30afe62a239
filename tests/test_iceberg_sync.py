"""``topoff sync DATASET iceberg:catalog.toml``: Iceberg tables (SQL catalog on SQLite, local
warehouse) built from a full export and topped off, read back through pyiceberg and through
DuckDB on the tables' Parquet files, and compared with the source value by value."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from support.pg import Database
from support.replica import (
    TABLES,
    add_messages,
    cli,
    day,
    fill,
    nommer_config,
    publish_day,
    publish_standard,
)
from topoff.errors import IntegrityError
from topoff.status import status
from topoff.sync import SyncOptions, sync
from topoff.targets.iceberg.config import open_catalog, read_settings

CHUNK = 16 * 1024  # small files: several per table and per day


def catalog_file(tmp_path: Path) -> str:
    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                    'warehouse = "warehouse"\nnamespace = "replica"\n')
    return f"iceberg:{path}"


def iceberg_table(location: str, table: str) -> Any:
    settings = read_settings(location)
    name = table.split(".", 1)[1]
    return open_catalog(settings).load_table((settings.namespace, name))


def _key(row: tuple) -> tuple:
    return tuple((v is None, str(v)) for v in row)


def iceberg_rows(location: str, table: str) -> list[tuple]:
    """Every row through pyiceberg, sorted; json as text, in the columns' order."""
    t = iceberg_table(location, table).scan().to_arrow()
    return sorted(zip(*(t.column(n).to_pylist() for n in t.column_names), strict=True),
                  key=_key) if t.num_rows else []


def duckdb_rows(location: str, table: str) -> list[tuple]:
    """Every row through DuckDB, reading the Parquet data files pyiceberg lists."""
    files = [task.file.file_path for task in iceberg_table(location, table).scan().plan_files()]
    if not files:
        return []
    paths = [f.removeprefix("file://") for f in files]
    rows = duckdb.sql("SELECT * FROM read_parquet($files, hive_partitioning = false, "
                      "union_by_name = true)",
                      params={"files": paths}).fetchall()
    return sorted(rows, key=_key)


def source_rows(db: Database, table: str, names: list[str]) -> list[tuple]:
    """The standby's rows of the columns ``names`` (those published), json columns as
    text (as the dataset's CSV holds them)."""
    schema, name = table.split(".")
    with db.standby() as conn:
        types = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            "attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [f'"{schema}"."{name}"']).fetchall())
        cols = [(n, types[n]) for n in names]
        exprs = ", ".join(f'"{c}"::text' if t in ("jsonb", "json") else f'"{c}"'
                          for c, t in cols)
        rows = conn.execute(f'SELECT {exprs} FROM "{schema}"."{name}"').fetchall()
    return sorted((tuple(r) for r in rows), key=_key)


def assert_same(location: str, db: Database, tables: list[str] = TABLES,
                through_duckdb: bool = True) -> None:
    for t in tables:
        names = [f.name for f in iceberg_table(location, t).schema().fields]
        want = source_rows(db, t, names)
        assert iceberg_rows(location, t) == want, t
        if not through_duckdb:
            continue
        have = duckdb_rows(location, t)
        assert len(have) == len(want), t
        for a, b in zip(have, want, strict=True):
            assert a == b, t


@pytest.fixture
def standard(db, tmp_path) -> tuple[Database, str]:
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    return db, url


def test_build_top_off_and_revision(standard, tmp_path):
    db, url = standard
    target = catalog_file(tmp_path)
    first = sync(url, target)
    assert first.base_loaded and first.base_loaded.startswith("full/")
    assert len(first.applied) == 2 and first.last_sequence == 3
    assert_same(target, db)
    msgs = iceberg_table(target, "public.messages")
    assert [f.name for f in msgs.spec().fields] == ["timestamp_day"]
    summary = msgs.current_snapshot().summary
    assert summary["topoff.dataset"] == "datanommer"
    assert summary["topoff.sequence"] == "3"

    again = sync(url, target)  # nothing new: nothing written
    assert again.applied == [] and again.rows == 0 and again.base_loaded is None

    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(1), 40, tag="next")
    publish_day(config, url, day(1))
    add_messages(db, day(2), 7, tag="late")  # late rows: a new revision of day(2)
    revision = [p.id for p in publish_day(config, url, day(2)).publications]
    result = sync(url, target)
    assert any(r.endswith("/r2") for r in result.applied), (result.applied, revision)
    assert_same(target, db)  # the day replaced: nothing twice, nothing missing

    [s] = status(target)
    assert s.dataset == "datanommer" and s.complete and s.pending == []
    assert {t.table for t in s.tables} == set(TABLES)
    held = {t.table: t for t in s.tables}
    assert held["public.users"].rows == len(source_rows(db, "public.users", ["id"]))
    assert held["public.messages"].newest is not None

    out = cli("status", target)
    assert out.exit_code == 0 and "datanommer" in out.stdout, out.stderr
    out = cli("status", target, "--json")
    assert out.exit_code == 0, out.stderr
    [report] = json.loads(out.stdout)
    assert report["dataset"] == "datanommer" and report["behind"] == 0


def run_sync(url: str, target: str, kill_on: str | None = None) -> tuple[int, list[dict]]:
    """``python -m topoff sync`` with JSON logs; SIGKILL at the first line whose message
    starts with ``kill_on``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "topoff", "sync", url, target, "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[dict] = []
    try:
        for raw in proc.stderr:
            lines.append(json.loads(raw))
            if kill_on is not None and lines[-1]["message"].startswith(kill_on):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.stderr.close()
        code = proc.wait(timeout=120)
    return code, lines


@pytest.mark.slow
def test_sigkill_midway_then_rerun(standard, tmp_path):
    db, url = standard
    target = catalog_file(tmp_path)
    killed = 0
    # "loading": killed while the first files are read, converted and written (by two
    # threads), before any commit
    for point in ("loading full/", "loaded public.messages", "loaded public.users file 1",
                  "applied incremental/", "applied incremental/"):
        code, lines = run_sync(url, target, kill_on=point)
        killed += code == -signal.SIGKILL
    assert killed >= 2  # the runs did die before they finished
    code, lines = run_sync(url, target)
    assert code == 0, lines
    assert_same(target, db)  # every row once
    [s] = status(target)
    assert s.complete and s.last_sequence == 3 and s.pending == []
    code, lines = run_sync(url, target)
    assert code == 0 and not any(m["message"].startswith(("loaded", "applied"))
                                 for m in lines)


class Crash(Exception):
    pass


def test_a_failure_inside_a_commit_changes_nothing(standard, tmp_path):
    db, url = standard
    target = catalog_file(tmp_path)
    seen: list[dict] = []

    def hook(name: str, **info: object) -> None:
        if name == "table_applied" and info["table"] == "public.users_messages":
            seen.append(info)
            raise Crash()

    with pytest.raises(Crash):
        sync(url, target, SyncOptions(hook=hook))
    assert seen
    t = iceberg_table(target, "public.users_messages")
    # the full export and its partitions are one commit: nothing of it was made
    assert t.properties["topoff.step"] == "schema" and t.current_snapshot() is None
    assert iceberg_table(target, "public.messages").properties["topoff.step"] == "ready"
    result = sync(url, target)
    assert len(result.applied) == 2
    assert_same(target, db)


def test_a_damaged_file_is_refused_and_nothing_changes(standard, tmp_path):
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    before = {t: iceberg_table(target, t).current_snapshot().snapshot_id for t in TABLES}
    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(1), 30, tag="next")
    pub = publish_day(config, url, day(1)).publications[0]
    victim = next(Path(url, pub.id, "data").glob("public.messages.*.csv.zst"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x55
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        sync(url, target)
    after = {t: iceberg_table(target, t).current_snapshot().snapshot_id for t in TABLES}
    assert after == before


@pytest.mark.slow
def test_a_warehouse_on_s3(standard, tmp_path, s3_server, monkeypatch):
    """The warehouse in a bucket of moto's S3 server (over HTTP on loopback): sync, then
    compact and verify."""
    from topoff.sync import iceberg_apply

    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)  # small files to compact
    db, url = standard
    bucket = s3_server.create_bucket()
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "sqlite:///{tmp_path}/catalog.db"\n'
                    f'warehouse = "s3://{bucket}/lake"\nnamespace = "replica"\n'
                    f'[s3]\nendpoint = "{s3_server.endpoint_url}"\nregion = "us-east-1"\n'
                    'access_key_id = "testing"\nsecret_access_key = "testing"\n')
    target = f"iceberg:{path}"
    result = sync(url, target)
    assert result.base_loaded and len(result.applied) == 2
    assert_same(target, db, through_duckdb=False)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("lake/replica/messages/data/") for k in keys)
    assert not list((tmp_path).glob("**/*.parquet"))
    # compaction and verify read and write through the same S3 file IO
    from topoff.targets.iceberg.compact import compact
    from topoff.verify import verify

    done = {c.table: c for c in compact(target)}
    assert done["public.messages"].files_after < done["public.messages"].files_before
    assert_same(target, db, through_duckdb=False)
    assert verify(target, db.standby_url).equal
    assert not list((tmp_path).glob("**/*.parquet"))
    # the compacted files go with the snapshots that read them; an orphan is listed and
    # kept while young
    def objects() -> set[str]:  # the data files and manifests
        pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {o["Key"] for p in pages for o in p.get("Contents", [])
                if o["Key"].endswith((".parquet", ".avro"))}

    s3_server.client().put_object(Bucket=bucket, Key="lake/replica/messages/data/x.parquet",
                                  Body=b"orphan")
    before = objects()
    out = cli("iceberg", "expire", target, "--older-than", "0s")
    assert out.exit_code == 0 and "deleted" in out.stdout, out.output
    after = objects()
    assert after < before and "lake/replica/messages/data/x.parquet" in after
    assert_same(target, db, through_duckdb=False)
    out = cli("iceberg", "remove-orphans", target, "--older-than", "1h")
    assert out.exit_code == 0 and "public.messages: no orphans" in out.stdout, out.output
    assert objects() == after


def test_a_warehouse_that_cannot_be_written_is_exit_7(standard, tmp_path):
    _, url = standard
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    path = tmp_path / "catalog.toml"
    path.write_text(f'uri = "sqlite:///{tmp_path}/catalog.db"\n'
                    f'warehouse = "{blocker}/wh"\n')
    out = cli("sync", url, f"iceberg:{path}")
    assert out.exit_code == 7, out.stderr
    assert out.stderr.startswith("error: ") and "hint: " in out.stderr
    assert "writing the Iceberg tables" in out.stderr


def test_expire_keeps_the_current_snapshot_and_the_ledger(standard, tmp_path):
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    many = {t: len(iceberg_table(target, t).metadata.snapshots) for t in TABLES}
    assert many["public.messages"] > 1
    out = cli("iceberg", "expire", target, "--older-than", "0s", "--dry-run")
    assert out.exit_code == 0 and "would expire" in out.stdout, out.stderr
    assert {t: len(iceberg_table(target, t).metadata.snapshots) for t in TABLES} == many
    out = cli("iceberg", "expire", target, "--older-than", "0s")
    assert out.exit_code == 0, out.stderr
    assert f"public.messages: expired {many['public.messages'] - 1} snapshots, kept 1" \
        in out.stdout
    assert all(len(iceberg_table(target, t).metadata.snapshots) == 1 for t in TABLES)
    assert_same(target, db)
    assert sync(url, target).applied == []  # the ledger is in the table properties

    add_messages(db, day(1), 25, tag="after")
    publish_day(nommer_config(db, chunk_bytes=CHUNK), url, day(1))
    assert len(sync(url, target).applied) == 1
    assert_same(target, db)
    assert cli("iceberg", "expire", target, "--older-than", "soon").exit_code == 2
    # an age beyond the calendar (before year 1) expires nothing: it was an internal error
    out = cli("iceberg", "expire", target, "--older-than", "999999d")
    assert out.exit_code == 0 and "expired 0 snapshots" in out.stdout, out.stderr


def _warehouse(tmp_path: Path) -> set[str]:
    """Every file under the warehouse but the tables' metadata JSON files."""
    return {str(p) for p in (tmp_path / "warehouse").rglob("*")
            if p.is_file() and not p.name.endswith(".metadata.json")}


def _referred(target: str) -> set[str]:
    """The manifest lists, manifests and live data files of every table's snapshots."""
    out = set()
    for t in TABLES:
        table = iceberg_table(target, t)
        for snap in table.metadata.snapshots:
            out.add(snap.manifest_list)
            for m in snap.manifests(table.io):
                out.add(m.manifest_path)
                out |= {e.data_file.file_path for e in m.fetch_manifest_entry(table.io)}
    return {p.removeprefix("file://") for p in out}


def test_expire_deletes_the_files_only_expired_snapshots_referred_to(standard, tmp_path):
    """Compacted files, days replaced by their revision: the files no remaining snapshot
    reads are deleted with the snapshots (they were left for the engines' orphan-file
    removal, the warehouse growing with every compaction and revision); a file no snapshot
    ever referred to (a killed run's) is left alone, and a dry run deletes nothing."""
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    assert cli("iceberg", "compact", target).exit_code == 0
    orphan = next((tmp_path / "warehouse").rglob("*.parquet")).with_name("killed-run.parquet")
    orphan.write_bytes(b"PAR1")
    before = _warehouse(tmp_path)
    assert before - _referred(target) == {str(orphan)}
    dry = cli("iceberg", "expire", target, "--older-than", "0s", "--dry-run")
    assert dry.exit_code == 0 and "would delete" in dry.stdout, dry.output
    assert _warehouse(tmp_path) == before
    out = cli("iceberg", "expire", target, "--older-than", "0s")
    assert out.exit_code == 0, out.output
    assert "public.messages: expired" in out.stdout and "files only they referred to" \
        in out.stdout, out.stdout
    after = _warehouse(tmp_path)
    assert after == _referred(target) | {str(orphan)}
    assert len(after) < len(before)
    assert_same(target, db)
    add_messages(db, day(1), 25, tag="after")
    publish_day(nommer_config(db, chunk_bytes=CHUNK), url, day(1))
    assert len(sync(url, target).applied) == 1
    assert_same(target, db)


def test_remove_orphans_deletes_old_files_no_metadata_names(standard, tmp_path):
    """Every file of the warehouse made four days old: only the files no metadata of their
    table names (a killed run's data file, manifest) go; those the snapshots, the metadata
    log and the catalog name stay, as do a young orphan and files outside the tables."""
    import os
    import time

    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    warehouse = tmp_path / "warehouse"
    data = next(warehouse.rglob("*.parquet")).parent
    metadata = next(warehouse.rglob("*.metadata.json")).parent
    old = [data / "killed-run.parquet", metadata / "snap-killed.avro"]
    for f in old:
        f.write_bytes(b"orphan")
    outside = warehouse / "notes.txt"
    outside.write_text("not a table's")
    four_days = time.time() - 4 * 86400  # the default age is 3d
    for f in warehouse.rglob("*"):
        if f.is_file():
            os.utime(f, (four_days, four_days))
    young = data / "in-progress.parquet"
    young.write_bytes(b"being written")
    before = {str(f) for f in warehouse.rglob("*") if f.is_file()}
    assert cli("iceberg", "remove-orphans", target, "--older-than", "30m").exit_code == 2
    dry = cli("iceberg", "remove-orphans", target, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 orphan files" in dry.stdout and "no orphans" in dry.stdout
    assert {str(f) for f in warehouse.rglob("*") if f.is_file()} == before
    out = cli("iceberg", "remove-orphans", target)
    assert out.exit_code == 0, out.output
    assert {str(f) for f in warehouse.rglob("*") if f.is_file()} == before - {
        str(f) for f in old}
    assert_same(target, db)
    add_messages(db, day(1), 25, tag="after")
    publish_day(nommer_config(db, chunk_bytes=CHUNK), url, day(1))
    assert len(sync(url, target).applied) == 1
    assert_same(target, db)
