"""One refresh of a replicated table written as ONE Iceberg commit (replica.py's tables).

:func:`commit` opens the table's transaction, asserts the snapshot the caller read the
state from, adds the new columns, replaces what the refresh replaces (every row, a cursor
window, or the rows with the refresh's keys) with the refresh's rows, and sets the new
state properties; all of it lands in one metadata swap, or none of it does.

* ``all``: every row deleted, the new ones appended (a snapshot table, a repull);
* ``window``: the rows with ``lo < cursor <= hi`` (``lo <= cursor``: ``lo_inclusive``)
  deleted, the new ones appended (an inserter without a key re-reads its lookback window
  whole; a ranged repull of a table without a key);
* ``keys``: per :data:`WRITE_BYTES` of rows, the rows with their keys deleted (a filter
  per :data:`KEY_ROWS` keys), then the rows appended (an upsert: a row read again at the
  boundary, or updated, replaces itself);
* ``none``: the rows appended (a first load into the empty table);
* ``state``: no rows, only the state (an unchanged snapshot table, nothing new).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThan,
    GreaterThanOrEqual,
    LessThanOrEqual,
)
from pyiceberg.table.update import AssertRefSnapshotId

from topoff.dataset.manifest import Column
from topoff.errors import ConfigError, TargetError
from topoff.pgtypes import family
from topoff.targets.base import TableDef
from topoff.targets.iceberg.quiet import no_empty_delete_warning
from topoff.targets.iceberg.replica import Held, csv_batches, cursor_value
from topoff.targets.iceberg.rows import gathered
from topoff.targets.iceberg.txn import transaction
from topoff.targets.iceberg.types import iceberg_type
from topoff.targets.iceberg.write import append, delete_keys, key_filter

#: Arrow bytes gathered before they are written as data files
WRITE_BYTES = 64 << 20
#: keys per delete of an upsert: each delete rewrites every data file holding one of its
#: keys, so fewer, larger deletes rewrite less (30,000 keys spread over a 300,000-row file:
#: 2,000 a delete took 2-3x as long as 20,000 or 100,000); a composite key's filter is a
#: tree of ORs, slower to build and evaluate, so it takes fewer keys
KEY_ROWS = 100_000
COMPOSITE_KEY_ROWS = 2000


@dataclass
class Change:
    """What one refresh writes."""

    replace: str  # all | window | keys | none | state
    blocks: Iterator[bytes]  # the rows, COPY's CSV, in ``columns``' order
    columns: list[Column]
    lo: str | None = None  # window: the exclusive lower bound (None: none)
    hi: str | None = None  # window: the inclusive upper bound
    added: list[Column] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # columns to delete from the schema
    lo_inclusive: bool = False  # window: ``lo`` is inclusive (a ranged repull)


def _window(tdef: TableDef, schema: Any, lo: str | None, hi: str,
            lo_inclusive: bool = False) -> BooleanExpression:
    assert tdef.cursor is not None

    def value(text: str) -> Any:
        try:
            return cursor_value(text, tdef, schema)
        except TargetError:
            if not lo_inclusive:
                raise
            # a ranged repull's --from/--to (infinity, a BC date): the operator's to change
            raise ConfigError(f"--from/--to {text!r} is no value of {tdef.source}'s Iceberg "
                              f"cursor column {tdef.cursor}", hint="give bounds within the "
                              "years 1 to 9999, or leave --from or --to out") from None

    top = LessThanOrEqual(tdef.cursor, value(hi))  # type: ignore[call-arg, arg-type]
    if lo is None:
        return top
    above = GreaterThanOrEqual if lo_inclusive else GreaterThan
    low = value(lo)
    return And(above(tdef.cursor, low), top)  # type: ignore[call-arg, arg-type]


Hook = Callable[[], None]


def number_keys(tdef: TableDef, schema: Any, kind: str = "numeric_any") -> set[str]:
    """The table's key columns of ``kind`` kept as a string: an unconstrained numeric (an
    interval, ``kind="interval"``)."""
    from pyiceberg.types import StringType

    types = {c.name: c.type for c in tdef.columns}
    return {k for k in tdef.primary_key if k in types
            and family(types[k]).kind == kind
            and isinstance(schema.find_field(k).field_type, StringType)}


def commit(table: Any, h: Held, change: Change, finish: Callable[[int], Held],
           hook: Hook | None = None) -> int:
    """The refresh in one commit; ``finish(rows)`` gives the properties to store with them
    (called once every row was read). Returns the rows written."""
    current = table.metadata.current_snapshot_id
    props = change.summary
    with transaction(table) as txn, no_empty_delete_warning():  # a window or keys that are new
        txn._apply((), (AssertRefSnapshotId(  # type: ignore[call-arg]
            snapshot_id=current, ref="main"),))
        if change.added or change.dropped:
            with txn.update_schema() as upd:
                for name in change.dropped:
                    upd.delete_column(name)
                for c in change.added:
                    upd.add_column((c.name,), iceberg_type(c))  # a tuple: "a.b" is a name
        schema = txn.table_metadata.schema()
        tdef = h.definition
        stream = csv_batches(change.blocks, change.columns, schema, tdef.source)
        try:
            if change.replace == "state":  # nothing changed but the state
                rows = 0
            elif change.replace == "all":
                txn.delete(AlwaysTrue(), snapshot_properties=props)
            elif change.replace == "window" and change.hi is not None:
                txn.delete(_window(tdef, schema, change.lo, change.hi, change.lo_inclusive),
                           snapshot_properties=props)
            if change.replace == "state":
                pass
            elif change.replace == "keys":
                rows = 0
                keys, numbers = list(tdef.primary_key), number_keys(tdef, schema)
                spans = number_keys(tdef, schema, "interval")
                arrow = len(keys) == 1 or bool(numbers or spans)  # else pyiceberg's filter
                step = KEY_ROWS if arrow else COMPOSITE_KEY_ROWS
                for t in gathered(stream, WRITE_BYTES):
                    # the keys are unique in the refresh's rows: delete them all, append once
                    for start in range(0, t.num_rows, step):
                        part = t.slice(start, step)
                        if arrow:
                            delete_keys(txn, table, keys, part, props, numbers, spans)
                        else:
                            txn.delete(key_filter(keys, part), snapshot_properties=props)
                    rows += append(txn, table, iter([t]), props)
            else:
                rows = append(txn, table, gathered(stream, WRITE_BYTES), props)
        finally:  # its reader out of the source's blocks before anyone closes them
            stream.close()
        after = finish(rows)
        if hook is not None:  # inside the transaction: a failure here commits nothing
            hook()
        txn.set_properties(after.properties())
    return rows
