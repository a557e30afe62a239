"""Iceberg tables made from a manifest's table entries, and the ledger they carry.

The ledger of an Iceberg replica is kept in each table, in the same commit as its data:
every commit topoff makes to a table sets the table properties ``topoff.*`` (dataset,
origin, the full export it was built from, the last publication and sequence applied,
whether the first load is done, the table's definition) and the bound of its metadata
files (metafiles.py), and writes the same values as the
summary properties of the snapshots it adds. A commit is one metadata file swapped in by
the catalog: the rows and the ledger change together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import NestedField

from topoff.dataset.manifest import Column, TableEntry
from topoff.errors import TargetError
from topoff.pgtypes import family
from topoff.targets.base import ReplicaState, TableDef, TableRef
from topoff.targets.iceberg.config import NAME
from topoff.targets.iceberg.metafiles import bound
from topoff.targets.iceberg.types import iceberg_type

P = "topoff."


def table_name(entry: TableEntry) -> str:
    """The Iceberg table name: the source name, prefixed by its schema unless ``public``."""
    name = entry.name if entry.schema == "public" else f"{entry.schema}__{entry.name}"
    if not NAME.match(name):
        raise TargetError(
            f"table {entry.qualified!r} has a name an Iceberg replica does not take "
            "(letters, digits and _ only)",
            hint="sync the other tables with --tables, or use a DuckDB or PostgreSQL replica")
    if entry.method == "upsert" and any("." in k for k in entry.primary_key):
        raise TargetError(
            f"table {entry.qualified!r} has a key column whose name holds a dot, which "
            "pyiceberg takes for a nested field when it deletes rows by key",
            hint="sync the other tables with --tables, or use a DuckDB or PostgreSQL replica")
    if entry.method == "upsert" and (why := array_key(entry.columns, entry.primary_key)):
        raise TargetError(f"table {entry.qualified!r} {why}",
                          hint="sync the other tables with --tables, export the table with "
                          "another key or as a snapshot, or use a DuckDB or PostgreSQL "
                          "replica")
    return name


def array_key(columns: list[Column] | tuple[Column, ...], key: Sequence[str]) -> str | None:
    """Why an Iceberg replica cannot replace rows by ``key``: a column of it is an array,
    an Iceberg list, which a delete by key does not match (nor as PostgreSQL compares it:
    ``'{1 day}'`` and ``'{24:00:00}'`` are one interval[] key); None when it can."""
    kinds = {c.name: c.logical.kind for c in columns}
    for k in key:
        if kinds.get(k) == "array":
            return (f"has the array column {k!r} in its key, which an Iceberg replica "
                    "cannot match rows by")
    return None


def partition_clash(metadata: Any, added: Sequence[Column]) -> str | None:
    """Why the columns ``added`` cannot be added to the table: one has the name of a
    partition field of the table (of any of its specs: ``ts_day``, the day of the cursor
    ``ts``), which Iceberg (pyiceberg) refuses for a column; None when they can."""
    fields = {f.name for spec in metadata.partition_specs for f in spec.fields}
    for c in added:
        if c.name in fields:
            return (f"cannot take the new column {c.name!r}: Iceberg refuses a column named "
                    "as a partition field of the table, which its day partitions are")
    return None


def schema_of(columns: list[Column]) -> Schema:
    fields = []
    next_id = len(columns) + 1
    for n, c in enumerate(columns, 1):
        t = iceberg_type(c)
        if hasattr(t, "element_id"):
            t = type(t)(element_id=next_id, element_type=t.element_type,  # type: ignore
                        element_required=False)
            next_id += 1
        fields.append(NestedField(field_id=n, name=c.name, field_type=t, required=False))
    return Schema(*fields)


def partition_spec(entry: TableEntry, schema: Schema) -> PartitionSpec:
    """By day of the cursor, for a cursor table whose cursor is a date or timestamp."""
    if not entry.cursor or not entry.cursor_type:
        return PartitionSpec()
    if family(entry.cursor_type).kind not in ("date", "timestamp", "timestamptz"):
        return PartitionSpec()
    source = schema.find_field(entry.cursor)
    taken = {f.name for f in schema.fields}
    name = f"{entry.cursor}_day"
    while name in taken:  # a partition field may not share a column's name
        name += "_"
    return PartitionSpec(PartitionField(source_id=source.field_id, field_id=1000,
                                        transform=DayTransform(), name=name))


@dataclass
class TableLedger:
    """What one table's properties say it holds."""

    dataset: str
    origin: str
    base: str
    base_sequence: int
    sequence: int  # the last publication applied (or passed over) in this table
    publication: str | None
    step: str  # "schema", "file:N" (N files of the full export loaded), "ready"
    definition: TableDef
    #: the tables the replica was built with (--tables), None for all
    tables: list[str] | None = None

    @property
    def ready(self) -> bool:
        return self.step == "ready"

    def files_done(self) -> int:
        return int(self.step[5:]) if self.step.startswith("file:") else 0

    def properties(self) -> dict[str, str]:
        return {P + "dataset": self.dataset, P + "origin": self.origin, P + "base": self.base,
                P + "base-sequence": str(self.base_sequence),
                P + "sequence": str(self.sequence), P + "publication": self.publication or "",
                P + "step": self.step, P + "source": self.definition.source,
                P + "definition": self.definition.to_json(),
                P + "tables": json.dumps(self.tables) if self.tables is not None else "",
                **bound()}

    @classmethod
    def from_properties(cls, props: dict[str, str], schema: str, name: str
                        ) -> TableLedger | None:
        if P + "dataset" not in props:
            return None
        try:
            d = TableDef.from_row(props[P + "source"], schema, name, props[P + "definition"])
            return cls(props[P + "dataset"], props[P + "origin"], props[P + "base"],
                       int(props[P + "base-sequence"]), int(props[P + "sequence"]),
                       props[P + "publication"] or None, props[P + "step"], d,
                       _tables(props.get(P + "tables", "")))
        except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
            raise TargetError(f"Iceberg table {schema}.{name} has damaged topoff properties "
                              f"({type(e).__name__})",
                              hint="drop the table and sync again with --rebase") from None


def _tables(text: str) -> list[str] | None:
    if not text:
        return None
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("topoff.tables")
    return value


def summary(ledger: TableLedger, revision: int | None, sha256: str | None) -> dict[str, str]:
    """The snapshot summary properties of a commit (the ledger row of other targets)."""
    out = {P + "dataset": ledger.dataset, P + "publication": ledger.publication or "",
           P + "sequence": str(ledger.sequence), P + "step": ledger.step}
    if revision is not None:
        out[P + "revision"] = str(revision)
    if sha256:
        out[P + "manifest-sha256"] = sha256
    return out


def new_table(catalog: Any, namespace: str, entry: TableEntry, ledger: TableLedger) -> Any:
    schema = schema_of(list(entry.columns))
    return catalog.create_table((namespace, ledger.definition.target.name), schema=schema,
                                partition_spec=partition_spec(entry, schema),
                                properties=ledger.properties())


def definition(entry: TableEntry, namespace: str) -> TableDef:
    return TableDef.from_entry(entry, TableRef(namespace, table_name(entry)))


def replica_tables(catalog: Any, namespace: str, dataset: str | None = None
                   ) -> dict[str, tuple[Any, TableLedger]]:
    """The namespace's tables that topoff made (of ``dataset``), by source table."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    out: dict[str, tuple[Any, TableLedger]] = {}
    if catalog is None:  # a catalog opened without creating it, not there
        return out
    try:
        idents = catalog.list_tables(namespace)
    except NoSuchNamespaceError:  # opened without creating the namespace
        return out
    for ident in idents:
        table = catalog.load_table(ident)
        ledger = TableLedger.from_properties(dict(table.properties), namespace, ident[-1])
        if ledger is not None and (dataset is None or ledger.dataset == dataset):
            out[ledger.definition.source] = (table, ledger)
    return out


def state_of(tables: dict[str, tuple[Any, TableLedger]], dataset: str) -> ReplicaState | None:
    """The replica's state as the other targets keep it, from its tables' ledgers."""
    if not tables:
        return None
    ledgers = [lg for _, lg in tables.values()]
    first = ledgers[0]
    ready = all(lg.ready for lg in ledgers)
    return ReplicaState(dataset, first.origin, first.base, first.base_sequence,
                        "ready" if ready else "loading",
                        min(lg.sequence for lg in ledgers) if ready else 0, first.tables)


def row_count(table: Any) -> int:
    """Rows in the table's current snapshot (from its summary: no data read)."""
    snap = table.current_snapshot()
    if snap is None or snap.summary is None:
        return 0
    return int(snap.summary.additional_properties.get("total-records", 0))
