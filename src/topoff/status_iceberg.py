"""``topoff status iceberg:catalog.toml``: what each dataset's Iceberg tables have applied,
read back from the tables' ledger properties and their snapshots' summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.table import replica_tables, row_count, state_of

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _newest(table: Any, column: str | None) -> str | None:
    """The largest cursor value, from the data files' column bounds (no data read)."""
    if column is None or table.current_snapshot() is None:
        return None
    from pyiceberg.conversions import from_bytes

    field = table.schema().find_field(column)
    best: Any = None  # the column's own type: an int of micros or days, or other
    for task in table.scan().plan_files():
        raw = (task.file.upper_bounds or {}).get(field.field_id)
        if raw is not None:
            value = from_bytes(field.field_type, raw)
            best = value if best is None else max(best, value)
    if best is None:
        return None
    from pyiceberg.types import DateType, TimestampType, TimestamptzType

    if isinstance(field.field_type, TimestampType | TimestamptzType):
        tz = UTC if isinstance(field.field_type, TimestamptzType) else None
        when = EPOCH + timedelta(microseconds=best)  # exact: no float of seconds
        return (when if tz else when.replace(tzinfo=None)).isoformat(sep=" ")
    if isinstance(field.field_type, DateType):
        return (EPOCH.date() + timedelta(days=best)).isoformat()
    return str(best)


def iceberg_status(location: str, check_origin: bool, store_options: Any) -> list[Any]:
    """Each dataset's status; read again from its tables' metadata when a file of the
    snapshots read first went meanwhile (a sync or compaction, then an expiry)."""
    from topoff.errors import TargetError

    missing = FileNotFoundError()
    for _ in range(3):
        try:
            return _status(location, check_origin, store_options)
        except FileNotFoundError as e:
            missing = e
    raise TargetError(f"a file of the Iceberg tables of {location} is missing "
                      f"({missing.strerror or type(missing).__name__})",
                      hint="if no sync, compaction or expiry runs, the warehouse lost it: "
                      "restore it, or rebuild the replica")


def _status(location: str, check_origin: bool, store_options: Any) -> list[Any]:
    from topoff.status import ReplicaStatus, TableStatus, check_origin_of

    settings = read_settings(location)
    catalog = open_catalog(settings, create=False)
    by_dataset: dict[str, dict[str, Any]] = {}
    for source, (table, ledger) in replica_tables(catalog, settings.namespace).items():
        by_dataset.setdefault(ledger.dataset, {})[source] = (table, ledger)
    out = []
    for dataset, tables in sorted(by_dataset.items()):
        state = state_of(tables, dataset)
        assert state is not None
        # the replica is where its table furthest behind is (a sync stopped between two
        # tables' commits): its publication is the last one every table applied
        last = min(tables.values(), key=lambda tl: tl[1].sequence)
        snap = last[0].current_snapshot()
        s = ReplicaStatus(
            dataset=dataset, origin=state.origin, base=state.base, status=state.status,
            last_sequence=state.last_sequence, last_applied=last[1].publication,
            last_applied_at=datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC)
            .isoformat(sep=" ") if snap else None, since=None)
        for source, (table, ledger) in sorted(tables.items()):
            d = ledger.definition
            s.tables.append(TableStatus(source, f"{settings.namespace}.{d.target.name}",
                                        d.method, row_count(table), _newest(table, d.cursor)))
        if check_origin:
            check_origin_of(s, state, location, store_options)
        out.append(s)
    return out
