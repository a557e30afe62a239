"""The data files topoff writes for an Arrow table (targets/iceberg/datafiles.py) are those
pyiceberg's own write makes of it: the same partitions, rows in the same order, the same
statistics, whether the rows come grouped by day, interleaved, or with NULL cursors."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io.pyarrow import _determine_partitions
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from topoff.targets.iceberg.datafiles import data_files, partitions
from topoff.targets.iceberg.write import append

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False),
                NestedField(2, "ts", TimestamptzType(), required=False),
                NestedField(3, "v", StringType(), required=False))
SPEC = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=DayTransform(),
                                    name="ts_day"))
ARROW = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                   ("v", pa.large_string())])
START = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(order: str, n: int = 3000) -> pa.Table:
    """``n`` rows over 7 days in chunks of 700 rows: by day, interleaved, or by day with
    NULL cursors among them."""
    if order == "interleaved":
        ts = [START + timedelta(days=(i * 5) % 7, seconds=i) for i in range(n)]
    else:
        ts = [START + timedelta(days=7 * i // n, seconds=i) for i in range(n)]
    if order == "nulls":
        ts = [None if i % 11 == 0 or 1000 <= i < 1100 else t for i, t in enumerate(ts)]
    t = pa.table([pa.array(range(n), pa.int64()), pa.array(ts, ARROW.field("ts").type),
                  pa.array([None if i % 13 == 0 else f"v{i % 97}" for i in range(n)],
                           pa.large_string())], schema=ARROW)
    return pa.Table.from_batches(t.to_batches(max_chunksize=700))


@pytest.fixture
def tables(tmp_path):
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'c.db'}",
                         warehouse=f"file://{tmp_path / 'w'}")
    catalog.create_namespace("n")
    return [catalog.create_table(("n", name), schema=SCHEMA, partition_spec=SPEC)
            for name in ("mine", "theirs")]


ORDERS = ["by-day", "interleaved", "nulls"]


@pytest.mark.parametrize("order", ORDERS)
def test_the_partitions_are_pyiceberg_s(tables, order):
    df = _rows(order)
    meta = tables[0].metadata
    theirs = {p.partition_key.partition: p.arrow_table_partition
              for p in _determine_partitions(meta.spec(), meta.schema(), df)}
    mine = {key.partition: part for key, part in partitions(meta, df)}
    assert mine.keys() == theirs.keys()
    for key, part in mine.items():
        assert part.equals(theirs[key]), key


def _files(table) -> list[tuple]:
    out = []
    for task in table.scan().plan_files():
        f = task.file
        out.append((tuple(f.partition), f.record_count, f.value_counts, f.null_value_counts,
                    f.nan_value_counts, f.lower_bounds, f.upper_bounds, f.file_format,
                    f.spec_id))
    return sorted(out, key=repr)


@pytest.mark.parametrize("order", ORDERS)
def test_the_data_files_are_pyiceberg_s(tables, order):
    mine, theirs = tables
    df = _rows(order)
    with mine.transaction() as txn:
        assert append(txn, mine, iter([df.slice(0, 1700), df.slice(1700)]), {"p": "1"}) \
            == df.num_rows
    theirs.append(df.slice(0, 1700))
    theirs.append(df.slice(1700))
    mine, theirs = mine.refresh(), theirs.refresh()
    assert _files(mine) == _files(theirs)
    assert mine.scan().to_arrow().sort_by("id").equals(theirs.scan().to_arrow().sort_by("id"))
    assert mine.current_snapshot().summary["p"] == "1"


def test_an_unpartitioned_table_is_written_whole(tmp_path):
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'c.db'}",
                         warehouse=f"file://{tmp_path / 'w'}")
    catalog.create_namespace("n")
    table = catalog.create_table(("n", "u"), schema=SCHEMA)
    df = _rows("interleaved")
    files = list(data_files(table.metadata, df, table.io, uuid.uuid4(), itertools.count()))
    assert [f.record_count for f in files] == [df.num_rows]
