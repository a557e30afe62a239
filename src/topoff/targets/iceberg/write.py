"""Writes shared by sync and replicate inside an open Iceberg transaction: Arrow tables
appended as one snapshot's data files, and the filter that picks rows by their keys."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import And, BooleanExpression, EqualTo, In, IsNaN, Or

from topoff.errors import TopoffError


def append(txn: Any, table: Any, tables: Iterator[pa.Table], props: dict[str, str]) -> int:
    """Every table of ``tables`` as data files of one append snapshot; the rows written."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    rows = 0
    names = itertools.count()  # one counter for the snapshot: its files' names are unique
    with txn.update_snapshot(snapshot_properties=props).fast_append() as snap:
        for t in tables:
            rows += t.num_rows
            if t.num_rows == 0:
                continue
            for f in _dataframe_to_data_files(table_metadata=txn.table_metadata,
                                              write_uuid=snap.commit_uuid, df=t, io=table.io,
                                              counter=names):
                snap.append_data_file(f)
    return rows


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _zero(v: Any) -> bool:
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
        if plain := {v for v in values if not _nan(v) and not _zero(v)}:
            terms.append(In(keys[0], plain))  # type: ignore[call-arg, arg-type]
        if any(_zero(v) for v in values):
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
    except (CommitFailedException, ValidationException):
        raise conflict() from None
    except OSError as e:
        raise failed(e.strerror or type(e).__name__) from None
