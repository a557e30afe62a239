"""Writes shared by sync and replicate inside an open Iceberg transaction: Arrow tables
appended as one snapshot's data files, the rows with given keys deleted, and the filter
that picks rows by their keys."""

from __future__ import annotations

import contextlib
import itertools
import math
import uuid
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    IsNaN,
    LessThanOrEqual,
    Or,
)

from topoff.errors import TopoffError
from topoff.targets.iceberg.datafiles import data_files
from topoff.targets.iceberg.spans import span_text


def append(txn: Any, table: Any, tables: Iterator[pa.Table], props: dict[str, str]) -> int:
    """Every table of ``tables`` as data files of one append snapshot; the rows written."""
    rows = 0
    names = itertools.count()  # one counter for the snapshot: its files' names are unique
    with txn.update_snapshot(snapshot_properties=props).fast_append() as snap:
        for t in tables:
            rows += t.num_rows
            if t.num_rows == 0:
                continue
            for f in data_files(txn.table_metadata, t, table.io, snap.commit_uuid, names):
                snap.append_data_file(f)
    return rows


def _number_text(values: Any) -> Any:
    """PostgreSQL's text of numerics without the trailing zeros of their fraction: equal
    numbers written otherwise (2 and 2.00) give one text (it never has an exponent)."""
    trimmed = pc.utf8_rtrim(pc.utf8_rtrim(values, characters="0"), characters=".")
    return pc.if_else(pc.match_substring(values, "."), trimmed, values)


def _zero(values: Any) -> Any:
    """``values`` with each -0 of a float column as 0 (anything else as it is)."""
    if not pa.types.is_floating(values.type):
        return values
    return pc.if_else(pc.equal(values, 0), pa.scalar(0.0, values.type), values)


def _keyed(t: pa.Table, keys: list[str], numbers: Collection[str],
           spans: Collection[str] = ()) -> pa.Table:
    """The ``keys`` columns of ``t`` as compared: -0 as 0, a number's text as its shortest,
    an interval's as its span."""
    cols = [_zero(t.column(k)) for k in keys]
    return pa.table([_number_text(c) if k in numbers else span_text(c) if k in spans else c
                     for k, c in zip(keys, cols, strict=True)], names=keys)


def _rough(wanted: pa.Table, numbers: Collection[str],
           spans: Collection[str] = ()) -> BooleanExpression:
    """A filter of the data files that may hold a row of ``wanted``'s keys: each key
    column's range (none for a float column holding NaN: no bound covers it; none for an
    interval: its texts of one span have no common range)."""
    out: BooleanExpression = AlwaysTrue()
    for k in wanted.column_names:
        c = wanted.column(k)
        if k in spans or (pa.types.is_floating(c.type) and pc.any(pc.is_nan(c)).as_py()):
            continue
        bounds = pc.min_max(c)
        top = bounds["max"].as_py()
        if k in numbers:  # every text of a number starts with its shortest one
            top += "\U0010ffff"
        term = And(GreaterThanOrEqual(k, bounds["min"].as_py()),  # type: ignore[call-arg]
                   LessThanOrEqual(k, top))  # type: ignore[call-arg]
        out = term if isinstance(out, AlwaysTrue) else And(out, term)
    return out


def _hits(df: pa.Table, keys: list[str], wanted: pa.Table,
          numbers: Collection[str], spans: Collection[str]) -> pa.Array:
    """Which rows of ``df`` have the keys of a row of ``wanted`` (compared as _keyed)."""
    mine = _keyed(df, keys, numbers, spans)
    if len(keys) == 1:
        return pc.fill_null(pc.is_in(mine.column(0), value_set=wanted.column(0).cast(
            mine.column(0).type)), False)
    index = "_".join(keys) + "_row"  # a name no key column has
    mine = mine.append_column(index, pa.array(range(len(mine)), pa.int64()))
    found = mine.join(wanted.cast(mine.schema.remove(len(keys))), keys=keys,
                      join_type="left semi")  # a NULL key matches nothing, NaN matches NaN
    return pc.is_in(mine.column(index), value_set=found.column(index))


def delete_keys(txn: Any, table: Any, keys: list[str], rows: pa.Table,
                props: dict[str, str], numbers: Collection[str] = (),
                spans: Collection[str] = ()) -> None:
    """Delete the rows whose ``keys`` equal those of a row of ``rows`` (no NULL among
    them): the data files the keys' ranges may hold rewritten without them, in one
    overwrite snapshot. ``numbers``: key columns that are an unconstrained numeric kept
    as its text, where equal numbers written otherwise (2 and 2.00) are the same key.
    ``spans``: key columns that are an interval kept as its text, where intervals of one
    span written otherwise (1 day and 24:00:00) are the same key (spans.py).

    What pyiceberg's ``Transaction.delete`` does for a filter of the keys, less its cost:
    it binds and converts every listed key several times in Python (5 of 7 seconds for
    25,000 keys over a 500,000-row table); here the keys' ranges pick the files (their
    column bounds) and Arrow finds the rows (``is_in``, a join for a composite key, on
    keys whose -0 is read as 0: equal in PostgreSQL, one key, which Arrow tells apart)."""
    from pyiceberg.io.pyarrow import ArrowScan

    wanted = _keyed(rows, keys, numbers, spans)
    if len(keys) == 1:
        wanted = pa.table([pc.unique(wanted.column(0).combine_chunks())], names=keys)
    if wanted.num_rows == 0:
        return
    meta = txn.table_metadata
    write_uuid, counter = uuid.uuid4(), itertools.count(0)
    replaced: list[tuple[Any, list[Any]]] = []
    for task in txn._scan(row_filter=_rough(wanted, numbers, spans)).plan_files():
        df = ArrowScan(table_metadata=meta, io=table.io, projected_schema=meta.schema(),
                       row_filter=AlwaysTrue()).to_table(tasks=[task])
        keep = df.filter(pc.invert(_hits(df, keys, wanted, numbers, spans)))
        if len(keep) == len(df):
            continue
        new = list(data_files(meta, keep, table.io, write_uuid, counter)) if len(keep) else []
        replaced.append((task.file, new))
    if not replaced:
        return
    with txn.update_snapshot(snapshot_properties=props).overwrite() as snap:
        snap.commit_uuid = write_uuid
        for old, files in replaced:
            snap.delete_data_file(old)
            for f in files:
                snap.append_data_file(f)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _is_zero(v: Any) -> bool:
    return isinstance(v, float) and v == 0.0


def key_filter(keys: list[str], t: pa.Table) -> BooleanExpression:
    """The rows whose ``keys`` equal those of a row of ``t``. A NaN key matches NaN, as
    in PostgreSQL (where NaN equals NaN: a float key holds one row of it), by IsNaN: an
    expression literal cannot be NaN. A zero key matches 0 and -0, equal in PostgreSQL,
    by EqualTo (Arrow's ``==``): an ``In`` list is Arrow's ``is_in``, which tells them
    apart."""
    # pyiceberg's predicates take (term, literal) positionally; its pydantic fields mislead mypy
    if len(keys) == 1:
        values = t.column(keys[0]).to_pylist()
        terms: list[BooleanExpression] = []
        if plain := {v for v in values if not _nan(v) and not _is_zero(v)}:
            terms.append(In(keys[0], plain))  # type: ignore[call-arg, arg-type]
        if any(_is_zero(v) for v in values):
            terms.append(EqualTo(keys[0], 0.0))  # type: ignore[call-arg, arg-type]
        if any(_nan(v) for v in values):
            terms.append(IsNaN(keys[0]))  # type: ignore[call-arg, arg-type]
    else:
        rows = zip(*(t.column(k).to_pylist() for k in keys), strict=True)
        terms = [And(*(IsNaN(k) if _nan(v) else EqualTo(k, v)  # type: ignore
                       for k, v in zip(keys, row, strict=True))) for row in rows]
    out = terms[0]
    for term in terms[1:]:
        out = Or(out, term)
    return out


@contextlib.contextmanager
def committing(conflict: Callable[[], TopoffError],
               failed: Callable[[str], TopoffError]) -> Iterator[None]:
    """pyiceberg's refusal of a commit (another writer committed first) raised as
    ``conflict()``, a failure of the warehouse as ``failed(reason)``."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    try:
        yield
    except (CommitFailedException, ValidationException) as e:
        raise conflict() from e  # pyiceberg's reason kept in the chain, for a traceback
    except OSError as e:
        raise failed(e.strerror or type(e).__name__) from None
