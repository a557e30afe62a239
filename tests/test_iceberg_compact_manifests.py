"""Compaction of a table of many manifests over many partitions, some compacted and some
not: pyiceberg finds the files an overwrite deletes by evaluating the manifests on several
threads, which it did with one evaluator shared between them: the commit was refused as
if another writer had changed the table, with none. Every topoff command opens its catalog
through ``open_catalog``, which applies topoff.targets.iceberg.threadsafe; these tables are
made with pyiceberg's catalog directly, so the fixture applies it. Slow (about 50 s): the
race itself is covered in the default run by tests/test_iceberg_threadsafe.py."""

from __future__ import annotations

import datetime as dt
import sys

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import DateType, LongType, NestedField

from topoff.targets.iceberg import threadsafe
from topoff.targets.iceberg.compact import DEFAULT_TARGET, compact_one
from topoff.targets.iceberg.write import delete_keys

pytestmark = pytest.mark.slow

PARTITIONS = 32
ARROW = pa.schema([pa.field("id", pa.int64()), pa.field("d", pa.date32())])


def _table(tmp_path, name: str):
    """A table of one small file per append: the even partitions hold three files (to
    compact), the odd ones one (left as they are); a manifest per file."""
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/catalog.db",
                         warehouse=f"file://{tmp_path}/warehouse")
    catalog.create_namespace_if_not_exists("n")
    schema = Schema(NestedField(1, "id", LongType(), required=False),
                    NestedField(2, "d", DateType(), required=False))
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "d_part"))
    table = catalog.create_table(("n", name), schema=schema, partition_spec=spec)
    first = dt.date(2026, 1, 1)
    for k in range(3):
        for p in range(0, PARTITIONS, 1 if k == 0 else 2):
            table.append(pa.table({"id": [p * 10 + k], "d": [first + dt.timedelta(days=p)]},
                                  schema=ARROW))
    return table


@pytest.fixture
def busy_switches():
    """Threads switched as often as the interpreter can: the race made likely."""
    threadsafe.apply()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_many_manifests_compact_with_no_other_writer(tmp_path, busy_switches):
    for n in range(3):
        table = _table(tmp_path, f"t{n}")
        done = compact_one(f"n.t{n}", table, DEFAULT_TARGET)
        assert (done.files_before, done.files_after) == (2 * PARTITIONS, PARTITIONS)
        table.refresh()
        assert table.scan().to_arrow().num_rows == 2 * PARTITIONS


def test_keys_deleted_across_many_manifests_with_no_other_writer(tmp_path, busy_switches):
    for n in range(3):
        table = _table(tmp_path, f"t{n}")
        gone = pa.table({"id": [p * 10 + 1 for p in range(0, PARTITIONS, 2)]},
                        schema=pa.schema([pa.field("id", pa.int64())]))
        with table.transaction() as txn:
            delete_keys(txn, table, ["id"], gone, {})
        table.refresh()
        assert table.scan().to_arrow().num_rows == 2 * PARTITIONS - PARTITIONS // 2
