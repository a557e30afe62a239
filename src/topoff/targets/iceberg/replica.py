"""Tables ``topoff replicate`` keeps in an Iceberg catalog: their state, made and read back.

A replicated table's state lives in the table itself, in the same commit as its rows: its
table properties ``topoff.replicate.*`` hold the source table it comes from, its method,
its definition (columns, key, cursor), the :class:`TableState` (watermark, snapshot xmin,
content hash), whether it is paused, the rows moved in total and when it was last
refreshed; the snapshots a refresh adds carry the source table, the watermark and the
xmin as summary properties. A commit is one metadata file swapped in by the catalog (a
compare-and-swap): rows and state change together or not at all.

Every commit asserts the snapshot the refresh read its state from, and the tables are made
with ``commit.retry.num-retries = 0``: a second run committing to the same table in the
meantime makes this commit fail whole (CommitFailedException), never lands on top of it.

What is read back is untrusted: the definition's column types are parsed, the state is
handed back as text for the replicate engine to check (``TableState.from_json``); anything
malformed is an IntegrityError.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform

from topoff.dataset.manifest import Column
from topoff.errors import IntegrityError, TargetError
from topoff.pgtypes import family, parse_type
from topoff.targets.base import TableDef, TableRef
from topoff.targets.iceberg.config import NAME
from topoff.targets.iceberg.metafiles import bound
from topoff.targets.iceberg.rows import (
    BLOCK,
    LONG_ROW,
    Stoppable,
    arrow_schema,
    parse_options,
    too_long,
)
from topoff.targets.iceberg.table import schema_of
from topoff.targets.iceberg.types import ValueError_, array_delimiter, convert

P = "topoff.replicate."
#: pyiceberg retries a failed commit on top of the other writer's by default: never here
NO_RETRY = {"commit.retry.num-retries": "0"}


@dataclass
class Held:
    """What a replicated table's properties say."""

    source: str  # the source's name in the config
    table: str  # the source table, schema.name
    method: str
    definition: TableDef
    #: the replicate engine's TableState as JSON (checked by it); "" before the first load
    state: str
    paused: bool
    rows_total: int
    updated_at: datetime | None

    def properties(self) -> dict[str, str]:
        return {P + "source": self.source, P + "table": self.table, P + "method": self.method,
                P + "definition": self.definition.to_json(),
                P + "state": self.state,
                P + "paused": "true" if self.paused else "false",
                P + "rows-total": str(self.rows_total),
                P + "updated-at": self.updated_at.isoformat() if self.updated_at else "",
                **bound()}


def check_name(namespace: str, name: str) -> TableRef:
    """Where a table lands; a name an Iceberg catalog does not take is refused (the
    message is shown after the source table's name)."""
    for what, value, fix in (
            ("namespace (target_schema)", namespace, "set the source's target_schema to "
             "letters, digits and _"),
            ("table name", name, "a table lands under its source name: leave the table out "
             "of this target")):
        if not NAME.match(value):
            raise TargetError(f"its {what} {value!r} is not a name an "
                              "Iceberg replica takes (letters, digits and _)",
                              hint=f"{fix}, or use a DuckDB or PostgreSQL target")
    return TableRef(namespace, name)


def _bad(ref: TableRef, why: str) -> IntegrityError:
    return IntegrityError(f"Iceberg table {ref}: its topoff.replicate properties are "
                          f"damaged ({why})",
                          hint="rebuild it: topoff replicate --resync TABLE")


def held(table: Any, ref: TableRef) -> Held | None:
    """The table's replication properties (None when it carries none: not topoff's)."""
    props = dict(table.properties)
    if P + "source" not in props:
        return None
    try:
        source, name = props[P + "source"], props[P + "table"]
        d = TableDef.from_row(name, ref.schema, ref.name, props[P + "definition"])
        names = {c.name for c in d.columns}
        for c in d.columns:
            if not isinstance(c.name, str) or not 0 < len(c.name) <= 1024:
                raise TypeError("column name")
            parse_type(c.type)
        if len(names) != len(d.columns) or not set(d.primary_key) <= names:
            raise ValueError("key")
        state = props.get(P + "state", "")
        if not isinstance(state, str) or len(state) > 1 << 16:
            raise ValueError("state")
        stamp = props.get(P + "updated-at", "")
        when = datetime.fromisoformat(stamp).astimezone(UTC) if stamp else None
        total = int(props.get(P + "rows-total", "0"))
        if total < 0:
            raise ValueError("rows-total")
        return Held(source, name, props[P + "method"], d, state,
                    props.get(P + "paused") == "true", total, when)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise _bad(ref, type(e).__name__) from None


def partitions(tdef: TableDef, schema: Schema) -> PartitionSpec:
    """By day of the cursor, for a cursor that is a date or a timestamp."""
    if not tdef.cursor or not tdef.cursor_type or \
            family(tdef.cursor_type).kind not in ("date", "timestamp", "timestamptz"):
        return PartitionSpec()
    source = schema.find_field(tdef.cursor)
    taken = {f.name for f in schema.fields}
    name = f"{tdef.cursor}_day"
    while name in taken:
        name += "_"
    return PartitionSpec(PartitionField(source_id=source.field_id, field_id=1000,
                                        transform=DayTransform(), name=name))


def create(catalog: Any, h: Held) -> Any:
    """The empty table, with its properties (no state yet: its first load is to come)."""
    schema = schema_of(list(h.definition.columns))
    ref = h.definition.target
    return catalog.create_table((ref.schema, ref.name), schema=schema,
                                partition_spec=partitions(h.definition, schema),
                                properties={**h.properties(), **NO_RETRY})


class _Blocks(io.RawIOBase):
    """An iterator of byte blocks as a readable binary file (for Arrow's CSV reader).

    Arrow reads ahead on a thread of its own, so ``blocks`` is advanced there, not in the
    caller's thread. :meth:`stop` waits for a read in progress to end and makes every later
    read an end of file: after it, the caller may close ``blocks`` (a generator cannot be
    closed while another thread runs it) and the source's connection."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks, self._held = blocks, b""
        self._lock = threading.Lock()
        self._stopped = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        with self._lock:
            while not self._held:
                block = None if self._stopped else next(self._blocks, None)
                if block is None:
                    return 0
                self._held = block
            n = min(len(buf), len(self._held))
            buf[:n] = self._held[:n]
            self._held = self._held[n:]
            return n

    def stop(self) -> None:
        with self._lock:
            self._stopped, self._held = True, b""


def csv_batches(blocks: Iterator[bytes], columns: list[Column], schema: Schema,
                what: str) -> Generator[pa.RecordBatch, None, None]:
    """COPY's CSV rows (no header, in ``columns``' order) as Arrow batches shaped as
    ``schema`` (its columns in its order; those the rows lack as NULL), streamed."""
    target = arrow_schema(schema)
    names = [c.name for c in columns]
    types = {f.name: f.field_type for f in schema.fields}
    delimiters = {c.name: array_delimiter(c) for c in columns}
    first = next(blocks, None)
    if first is None:
        return
    raw = _Blocks(_chain(iter([first]), blocks))
    stream, reader = Stoppable(io.BufferedReader(raw, BLOCK)), None
    try:
        reader = pacsv.open_csv(  # (no reader over no rows: Arrow refuses an empty file)
            stream.handle(),
            read_options=pacsv.ReadOptions(block_size=BLOCK, column_names=names),
            parse_options=parse_options(names),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=False))
        for batch in reader:
            arrays = []
            for field in target:
                if field.name not in names:
                    arrays.append(pa.nulls(batch.num_rows, field.type))
                    continue
                try:
                    arrays.append(convert(batch.column(field.name), types[field.name],
                                          delimiters[field.name]))
                except ValueError_ as e:
                    raise ValueError_(f"column {field.name} ({types[field.name]}): {e}"
                                      ) from None
            yield pa.RecordBatch.from_arrays(arrays, schema=target)
    except ValueError_ as e:
        raise TargetError(f"{what}: a value does not fit its Iceberg column, {e}",
                          hint="nothing was committed; leave the column out (exclude = "
                          "[...]), or use a DuckDB or PostgreSQL target (docs/iceberg.md, "
                          "Types)") from None
    except pa.ArrowInvalid as e:
        if not too_long(e):
            raise
        raise TargetError(f"{what}: {LONG_ROW}; nothing was committed", hint="leave the "
                          "column out (exclude = [...]), or use a DuckDB or PostgreSQL "
                          "target") from None
    finally:  # Arrow's read-ahead thread out of ``blocks`` before the caller closes them
        reader = None  # (stop() waits until Arrow lets go of the stream)
        stream.stop()
        raw.stop()


def _chain(a: Iterator[bytes], b: Iterator[bytes]) -> Iterator[bytes]:
    yield from a
    yield from b


def cursor_value(text: str, tdef: TableDef, schema: Schema) -> Any:
    """A cursor value (the source's text of it) as the Python value of its Iceberg column,
    for a filter; TargetError when it does not fit."""
    assert tdef.cursor is not None
    t = schema.find_field(tdef.cursor).field_type
    try:
        return convert(pa.array([text], pa.string()), t).to_pylist()[0]
    except ValueError_ as e:
        raise TargetError(f"{tdef.source}: the cursor value {text[:80]!r} does not fit its "
                          f"Iceberg column ({e})",
                          hint="use a DuckDB or PostgreSQL target for this table") from None


def replicated_tables(catalog: Any) -> list[tuple[str, Any]]:
    """``(source.table, table)`` of every table ``topoff replicate`` made, in every
    namespace of the catalog (a table whose properties are damaged is left out here)."""
    out: list[tuple[str, Any]] = []
    if catalog is None:  # a catalog opened without creating it, not there
        return out
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            table = catalog.load_table(ident)
            props = dict(table.properties)
            if P + "source" in props and P + "table" in props:
                out.append((f"{props[P + 'source']}.{props[P + 'table']}", table))
    return out
