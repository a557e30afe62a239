"""Two ``topoff sync`` of one dataset into one Iceberg catalog at once: the run that loses
the race to make a table (or to commit) stops with exit 7 and "run the sync again", never
an internal error or a hint to drop a table the other run made; the next run resumes."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from support.replica import cli
from test_iceberg_sync import assert_same, catalog_file, standard  # noqa: F401
from topoff.status import status
from topoff.sync import iceberg as sync_iceberg


def other_sync(url: str, target: str) -> None:
    """A whole sync of the same dataset in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "topoff", "sync", url, target],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def assert_lost_the_race(out: Any) -> None:
    assert out.exit_code == 7, out.stderr
    assert "another writer" in out.stderr and "internal error" not in out.stderr
    assert "hint: run the sync again" in out.stderr
    assert "drop it" not in out.stderr


@pytest.mark.parametrize("when", ["listed", "creating"])
def test_tables_another_sync_made_meanwhile(standard, tmp_path, monkeypatch,  # noqa: F811
                                            when):
    """``listed``: the other run made the tables after this one listed the namespace (it
    said the table "is not part of this replica": drop it); ``creating``: between this
    run's check and its create (an internal error, exit 70)."""
    db, url = standard
    target = catalog_file(tmp_path)
    if when == "listed":
        real_list = sync_iceberg.replica_tables

        def listed(*args: Any) -> Any:
            found = real_list(*args)
            other_sync(url, target)
            return found
        monkeypatch.setattr(sync_iceberg, "replica_tables", listed)
    else:
        real_new = sync_iceberg.new_table

        def creating(*args: Any) -> Any:
            other_sync(url, target)
            return real_new(*args)
        monkeypatch.setattr(sync_iceberg, "new_table", creating)
    assert_lost_the_race(cli("sync", url, target))
    monkeypatch.undo()
    again = cli("sync", url, target)
    assert again.exit_code == 0, again.stderr
    assert_same(target, db, through_duckdb=False)
    [s] = status(target)
    assert s.complete and s.last_sequence == 3 and s.pending == []


def test_a_table_that_is_not_topoffs_is_still_refused(standard, tmp_path):  # noqa: F811
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    from topoff.targets.iceberg.config import open_catalog, read_settings

    _, url = standard
    target = catalog_file(tmp_path)
    settings = read_settings(target)
    catalog = open_catalog(settings)
    catalog.create_table((settings.namespace, "users"),
                         schema=Schema(NestedField(1, "id", LongType(), required=False)))
    out = cli("sync", url, target)
    assert out.exit_code == 7, out.stderr
    assert "replica.users already exists" in out.stderr and "not part of this replica" \
        in out.stderr and "hint: drop it, or use another namespace" in out.stderr
