"""A table's current rows as a stream of Arrow batches, one data file at a time.

pyiceberg 0.12's own readers (``to_arrow_batch_reader``, ``ArrowScan.to_record_batches``)
submit every file of a scan to a thread pool at once and each thread holds its whole file,
so memory grows with the table; here each file is read only when the previous one is
consumed: memory is bounded by the largest data file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa


def batches(table: Any, tasks: Iterable[Any] | None = None,
            fields: tuple[str, ...] = ("*",)) -> Iterator[pa.RecordBatch]:
    """The rows of ``tasks`` (default: every file of the current snapshot), deletes
    applied, with the columns ``fields``."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    scan = table.scan(selected_fields=fields)
    arrow = ArrowScan(table.metadata, table.io, scan.projection(), AlwaysTrue(),
                      case_sensitive=True)
    for task in scan.plan_files() if tasks is None else tasks:
        yield from arrow.to_record_batches([task])


def reader(table: Any, fields: tuple[str, ...] = ("*",)) -> pa.RecordBatchReader:
    """:func:`batches` as a RecordBatchReader (which DuckDB reads as a stream)."""
    stream = batches(table, None, fields)
    first = next(stream, None)
    if first is None:
        return table.scan(selected_fields=fields).to_arrow().to_reader()
    return pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], stream))
