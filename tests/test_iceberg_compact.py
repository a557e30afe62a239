"""``topoff iceberg compact``: each partition's small files rewritten as fewer, in one commit
per table, with the same rows before and after, the ledger kept (the next sync resumes and
stays equal to the source), and bad options refused."""

from __future__ import annotations

import pytest

from support.replica import add_messages, cli, day, nommer_config, publish_day
from test_iceberg_sync import (  # noqa: F401
    CHUNK,
    assert_same,
    catalog_file,
    iceberg_rows,
    iceberg_table,
    standard,
)
from topoff.errors import TargetError
from topoff.sync import SyncOptions, iceberg_apply, sync
from topoff.targets.iceberg.compact import compact, compact_one
from topoff.verify import verify


@pytest.fixture(autouse=True)
def small_files(monkeypatch):
    """Each CSV batch its own data files: small files to compact (a first build otherwise
    writes one file per day partition)."""
    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)


def files_of(target: str, table: str) -> int:
    return len(list(iceberg_table(target, table).scan().plan_files()))


def test_compact_keeps_rows_and_ledger_then_sync_resumes(standard, tmp_path):  # noqa: F811
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    tables = ["public.messages", "public.users_messages"]
    before = {t: iceberg_rows(target, t) for t in tables}
    files = {t: files_of(target, t) for t in tables}
    props = {t: dict(iceberg_table(target, t).properties) for t in tables}
    snapshots = {t: len(iceberg_table(target, t).metadata.snapshots) for t in tables}
    assert files["public.messages"] > 4  # several small files per day

    dry = {c.table: c for c in compact(target, dry_run=True)}
    assert dry["public.messages"].rows == 0
    assert files_of(target, "public.messages") == files["public.messages"]

    done = {c.table: c for c in compact(target)}
    for t in tables:
        assert iceberg_rows(target, t) == before[t], t
        assert done[t].files_before == files[t] and done[t].files_after == files_of(target, t)
        assert dict(iceberg_table(target, t).properties) == props[t], t  # the ledger
    # several small files per day: one commit; one file per day: nothing to do, no commit
    table = iceberg_table(target, "public.messages")
    assert files_of(target, "public.messages") < files["public.messages"]
    assert len(table.metadata.snapshots) == snapshots["public.messages"] + 1
    summary = table.current_snapshot().summary
    assert summary["operation"].value == "overwrite"
    assert summary["topoff.dataset"] == "datanommer" and summary["topoff.compacted"]
    links = iceberg_table(target, "public.users_messages")
    assert files_of(target, "public.users_messages") == files["public.users_messages"]
    assert len(links.metadata.snapshots) == snapshots["public.users_messages"]
    again = {c.table: c for c in compact(target)}  # nothing small left to merge
    assert again["public.messages"].rows == 0
    assert verify(target, db.standby_url).equal

    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(1), 30, tag="after-compact")
    publish_day(config, url, day(1))
    result = sync(url, target)
    assert len(result.applied) == 1
    assert_same(target, db)


def test_compact_one_table_and_bad_options(standard, tmp_path):  # noqa: F811
    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    users_files = files_of(target, "public.users_messages")
    out = cli("iceberg", "compact", target, "--table", "messages", "--target-file-size", "64MB")
    assert out.exit_code == 0, out.stderr
    assert out.stdout.startswith("public.messages: rewrote "), out.stdout
    assert files_of(target, "public.users_messages") == users_files

    out = cli("iceberg", "compact", target, "--table", "public.nope")
    assert out.exit_code == 2 and "error: no table public.nope" in out.stderr
    for size in ("lots", "2GB", "1000"):  # not a size; more than memory should hold; < 1MB
        out = cli("iceberg", "compact", target, "--target-file-size", size)
        assert out.exit_code == 2 and "--target-file-size" in out.stderr, size
    out = cli("iceberg", "compact", str(tmp_path / "r.duckdb"))
    assert out.exit_code == 2 and "not an Iceberg replica" in out.stderr


def test_a_table_that_fails_leaves_the_others_compacted_and_said(standard, tmp_path):  # noqa: F811
    """A damaged data file in one table: that table fails (exit 7) and is as it was; the
    tables after it are compacted all the same, and those done are printed (they were
    neither tried nor said once one had failed)."""
    _, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    names = sorted(c.table for c in compact(target, dry_run=True))
    assert names[0] == "public.messages" and len(names) > 2  # the damaged one comes first
    task = next(iter(iceberg_table(target, "public.messages").scan().plan_files()))
    damaged = task.file.file_path.removeprefix("file://")
    with open(damaged, "r+b") as f:
        f.seek(4)
        f.write(b"\0" * 64)  # the Parquet magic stays, its first pages do not
    files = files_of(target, "public.messages")
    out = cli("iceberg", "compact", target)
    assert out.exit_code == 7, out.stderr
    assert out.stderr.startswith("error: compacting public.messages failed"), out.stderr
    said = [line.split(":")[0] for line in out.stdout.splitlines()]
    assert said == names[1:], out.stdout
    assert files_of(target, "public.messages") == files  # nothing of it committed


def test_a_sync_committed_during_compaction_wins(standard, tmp_path):  # noqa: F811
    """A compaction planned before a sync replaced a day is refused at commit (exit 7
    class), nothing of it applied; the rows stay the source's; compacting again works."""
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    stale = iceberg_table(target, "public.messages")  # planned before the sync below
    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(2), 9, tag="late")  # a new revision of day(2) replaces the day
    publish_day(config, url, day(2))
    assert sync(url, target).applied
    with pytest.raises(TargetError, match=r"changed public\.messages while it was compacted"):
        compact_one("public.messages", stale, 1 << 20)
    assert_same(target, db)
    compact(target)
    assert_same(target, db)
    assert verify(target, db.standby_url).equal


def test_a_compaction_committed_during_a_sync_is_not_undone(standard, tmp_path):  # noqa: F811
    """A compaction that commits while a sync's commit of the same table is being built
    (here: from inside it) makes that commit fail, nothing of it applied, or succeed on the
    compacted files; either way no row is lost or doubled, and the next sync resumes."""
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    config = nommer_config(db, chunk_bytes=CHUNK)
    add_messages(db, day(2), 9, tag="late")  # a new revision of day(2) replaces the day
    publish_day(config, url, day(2))
    done: list[str] = []

    def hook(name: str, **info: object) -> None:
        if name == "table_applied" and info["table"] == "public.messages" and not done:
            done.extend(c.table for c in compact(target, ["public.messages"]))

    try:
        sync(url, target, SyncOptions(hook=hook))
    except TargetError as e:
        assert "another writer changed" in e.message, e.message
    assert done == ["public.messages"]
    sync(url, target)
    assert_same(target, db)


def test_a_group_rewritten_as_several_files_keeps_every_row(standard, tmp_path):  # noqa: F811
    """A group of small files whose rows fill more than one output file: each file of the
    commit has a name of its own (they were all numbered from 0, and a later file of a
    partition replaced an earlier one on disk: rows lost, the commit refused or kept)."""
    _db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    before = iceberg_rows(target, "public.messages")
    # files of a few kB each, grouped up to 64 kB, whose rows take more than that in memory
    done = {c.table: c for c in compact(target, ["public.messages"], target=64 << 10)}
    assert done["public.messages"].files_after > 0
    table = iceberg_table(target, "public.messages")
    paths = [t.file.file_path for t in table.scan().plan_files()]
    assert len(paths) == len(set(paths))
    assert iceberg_rows(target, "public.messages") == before
