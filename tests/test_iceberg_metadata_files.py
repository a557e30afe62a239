"""An Iceberg table's metadata JSON files: each commit writes one; a table topoff made keeps
the current one and a bounded number of previous ones (its metadata log), deleting the
older at each commit, and ``topoff iceberg expire`` bounds those of a table made before
(365 a year of nightly top-offs were left, more for a first build and compactions)."""

from __future__ import annotations

from pathlib import Path

from support.replica import TABLES, add_messages, cli, day, nommer_config, publish_day
from test_iceberg_commits import standard  # noqa: F401  (a fixture)
from test_iceberg_sync import CHUNK, assert_same, catalog_file, iceberg_table
from topoff.sync import sync
from topoff.targets.iceberg import metafiles

#: the previous metadata files a table keeps (docs/iceberg.md)
KEPT = 10
BOUND = ("write.metadata.delete-after-commit.enabled", "write.metadata.previous-versions-max")


def metadata_files(target: str, table: str) -> list[Path]:
    location = iceberg_table(target, table).metadata_location.removeprefix("file://")
    return sorted(Path(location).parent.glob("*.metadata.json"))


def test_commits_keep_a_bounded_number_of_metadata_files(standard, tmp_path,  # noqa: F811
                                                        monkeypatch):
    """The bound, 3 here (10 by default: the other test) so that a few commits pass it."""
    monkeypatch.setattr(metafiles, "PREVIOUS_VERSIONS", 3)
    kept = 3
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    config = nommer_config(db, chunk_bytes=CHUNK)
    for n in range(kept + 2):  # a top-off a day, and a commit of the messages table each
        add_messages(db, day(1), 3, tag=f"round{n}")
        publish_day(config, url, day(1))
        assert sync(url, target).applied
    assert cli("iceberg", "compact", target).exit_code == 0
    messages = iceberg_table(target, "public.messages")
    assert messages.properties[BOUND[0]] == "true"
    assert messages.properties[BOUND[1]] == str(kept)
    for t in TABLES:
        files = metadata_files(target, t)
        assert len(files) <= kept + 1, (t, len(files))
        table = iceberg_table(target, t)
        named = {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
        assert {str(f) for f in files} == {n.removeprefix("file://") for n in named}
    assert_same(target, db)
    # time travel to the snapshots the table keeps: their files are all there
    snapshots = messages.metadata.snapshots
    assert len(snapshots) > kept
    rows = [messages.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows for s in snapshots]
    assert rows[0] < rows[-1] == messages.scan().to_arrow().num_rows
    add_messages(db, day(1), 5, tag="last")
    publish_day(config, url, day(1))
    assert sync(url, target).applied
    assert_same(target, db)


def test_expire_bounds_the_metadata_files_of_a_table_made_before(standard, tmp_path):  # noqa: F811
    """A table whose commits did not delete its old metadata files (over a hundred of
    them, past pyiceberg's default metadata log): ``iceberg expire`` deletes all but the
    bound, even when it has no snapshot to expire."""
    db, url = standard
    target = catalog_file(tmp_path)
    sync(url, target)
    users = iceberg_table(target, "public.users")
    with users.transaction() as txn:  # as a table made before the bound
        txn.remove_properties(*(k for k in BOUND if k in users.properties))
    for n in range(105):
        with users.transaction() as txn:
            txn.set_properties({"note": str(n)})
    assert len(metadata_files(target, "public.users")) > 105
    dry = cli("iceberg", "expire", target, "--older-than", "999999d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.stdout and "old metadata files" in dry.stdout, dry.stdout
    assert len(metadata_files(target, "public.users")) > 105
    out = cli("iceberg", "expire", target, "--older-than", "999999d")
    assert out.exit_code == 0, out.output
    assert "public.users: expired 0 snapshots" in out.stdout, out.stdout
    assert "old metadata files" in out.stdout, out.stdout
    for t in TABLES:
        assert len(metadata_files(target, t)) <= KEPT + 1, t
    assert iceberg_table(target, "public.users").properties[BOUND[1]] == str(KEPT)
    assert_same(target, db)
    add_messages(db, day(1), 5, tag="after")
    publish_day(nommer_config(db, chunk_bytes=CHUNK), url, day(1))
    assert sync(url, target).applied
    assert_same(target, db)
