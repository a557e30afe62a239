"""What an Iceberg commit costs in pyiceberg's table metadata: computed once per staged
change, the ledger's properties set once per commit (counted through pyiceberg's own
functions during a real first build)."""

from __future__ import annotations

import pytest

from support.replica import fill, nommer_config, publish_standard
from test_iceberg_sync import CHUNK, assert_same, catalog_file, iceberg_table
from topoff.sync import sync


@pytest.fixture
def standard(db, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    return db, url


def test_a_commit_computes_the_table_metadata_once_per_change(standard, tmp_path,
                                                              monkeypatch):
    """pyiceberg's transaction applies its staged changes to a deep copy of the table's
    metadata each time it is asked for it (a snapshot producer asks about ten times, the
    copy grows with the table's snapshots): the metadata is computed again only when a
    change was staged since."""
    import pyiceberg.table as pt

    db, url = standard
    counts = {"computed": 0, "staged": 0, "commits": 0}
    compute, stage, commit = pt.update_table_metadata, pt.Transaction._stage, \
        pt.Transaction.commit_transaction

    def computed(*args, **kwargs):
        counts["computed"] += 1
        return compute(*args, **kwargs)

    def staged(self, *args, **kwargs):
        counts["staged"] += 1
        return stage(self, *args, **kwargs)

    def committed(self):
        counts["commits"] += 1
        return commit(self)

    monkeypatch.setattr(pt, "update_table_metadata", computed)
    monkeypatch.setattr(pt.Transaction, "_stage", staged)
    monkeypatch.setattr(pt.Transaction, "commit_transaction", committed)
    target = catalog_file(tmp_path)
    result = sync(url, target)
    assert result.base_loaded and result.applied
    assert counts["commits"] == 5  # one a table
    # once for the state before each change, once for the commit
    assert counts["computed"] <= counts["staged"] + counts["commits"], counts
    assert_same(target, db)


def test_a_commit_sets_the_ledger_s_properties_once(standard, tmp_path, monkeypatch):
    """A table's first build and the partitions merged into its commit set the table's
    properties once, the last ledger (each setting was a change of the commit: one more
    application of the changes each time the metadata is computed); each partition still
    has its own snapshot naming it."""
    import pyiceberg.table as pt
    from pyiceberg.table.update import SetPropertiesUpdate

    db, url = standard
    settings: dict[object, int] = {}  # by transaction (held: no id reused)
    stage = pt.Transaction._stage

    def staged(self, updates, *args, **kwargs):
        n = sum(isinstance(u, SetPropertiesUpdate) for u in updates)
        settings[self] = settings.get(self, 0) + n
        return stage(self, updates, *args, **kwargs)

    monkeypatch.setattr(pt.Transaction, "_stage", staged)
    target = catalog_file(tmp_path)
    result = sync(url, target)
    assert len(result.applied) >= 2
    assert len(settings) == 5 and set(settings.values()) == {1}, settings
    msgs = iceberg_table(target, "public.messages")
    assert msgs.properties["topoff.publication"] == result.applied[-1]
    assert msgs.properties["topoff.step"] == "ready"
    props = [s.summary.additional_properties for s in msgs.metadata.snapshots]
    assert [p["topoff.publication"] for p in props] == [result.base_loaded, *result.applied]
    assert_same(target, db)
