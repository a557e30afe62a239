"""An Arrow table written as the data files of an Iceberg table: what pyiceberg's
``_dataframe_to_data_files`` writes (the same files, rows, partitions and statistics), in
one pass over a partitioned table's rows.

pyiceberg splits a table among its partitions by filtering all of its rows once per
partition value and copying each part (a batch spanning many days of the cursor is read
as many times). Here the days are computed once: rows already grouped by day (a dataset's
files are written in the cursor's order, most batches hold one or two days) are sliced
where the day changes, no row copied; other rows are put in order of their day once (a
stable sort: rows keep their order within a day) and sliced."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def data_files(meta: Any, df: pa.Table, io: Any, write_uuid: uuid.UUID,
               counter: itertools.count[int]) -> Iterator[Any]:
    """The data files (pyiceberg's DataFile) of ``df``'s rows in the table of ``meta``,
    written with ``io``, named from ``write_uuid`` and ``counter``."""
    from pyiceberg.io.pyarrow import (
        _dataframe_to_data_files,
        bin_pack_arrow_table,
        pyarrow_to_schema,
        write_file,
    )
    from pyiceberg.table import DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE, TableProperties, WriteTask
    from pyiceberg.utils.config import Config
    from pyiceberg.utils.properties import property_as_int

    spec = meta.spec()
    if len(spec.fields) != 1:  # unpartitioned: no split to make
        yield from _dataframe_to_data_files(table_metadata=meta, write_uuid=write_uuid,
                                            df=df, io=io, counter=counter)
        return
    target_size = property_as_int(meta.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                                  TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT)
    assert target_size is not None
    task_schema = pyarrow_to_schema(
        df.schema, name_mapping=meta.schema().name_mapping,
        downcast_ns_timestamp_to_us=Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE)
        or False, format_version=meta.format_version)
    yield from write_file(io=io, table_metadata=meta, tasks=(
        WriteTask(write_uuid=write_uuid, task_id=next(counter), record_batches=batches,
                  partition_key=key, schema=task_schema)
        for key, part in partitions(meta, df)
        for batches in bin_pack_arrow_table(part, target_size)))


def partitions(meta: Any, df: pa.Table) -> Iterator[tuple[Any, pa.Table]]:
    """The rows of ``df`` by partition of the table of ``meta`` (one partition field):
    each partition's key (pyiceberg's PartitionKey) and its rows, in their order in
    ``df``."""
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey

    spec, schema = meta.spec(), meta.schema()
    (field,) = spec.fields
    source = schema.find_field(field.source_id)
    name = schema.find_column_name(field.source_id)
    values = field.transform.pyarrow_transform(source.field_type)(df.column(name))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    runs = _runs(values)
    if len({v for v, _, _ in runs}) < len(runs):  # a value in several runs
        order = pc.sort_indices(values)  # stable: rows keep their order within a value
        df, runs = df.take(order), _runs(values.take(order))
    for value, start, length in runs:
        key = PartitionKey(field_values=[PartitionFieldValue(field=field, value=value)],
                           partition_spec=spec, schema=schema)
        yield key, df.slice(start, length).combine_chunks()


def _runs(values: pa.Array) -> list[tuple[Any, int, int]]:
    """The runs of equal values of ``values`` (NULL one value): (value, start, length)."""
    if len(values) == 0:
        return []
    encoded = pc.run_end_encode(values)
    ends = encoded.run_ends.to_pylist()
    starts = [0, *ends[:-1]]
    return [(v, s, e - s) for v, s, e in zip(encoded.values.to_pylist(), starts, ends,
                                              strict=True)]
