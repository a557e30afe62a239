"""``topoff iceberg expire``: drop old snapshots of an Iceberg replica's tables.

Each top-off adds snapshots; expiring those older than a while keeps the metadata small.
The current snapshot of each table is never expired (its data and the ledger in the
table's properties stay as they are); a table expired down to its current snapshot can
still be read, topped off and resumed (docs/iceberg.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.replica import replicated_tables
from topoff.targets.iceberg.table import replica_tables


@dataclass
class Expired:
    table: str
    expired: int
    kept: int


def expire(location: str, older_than: timedelta, dry_run: bool = False) -> list[Expired]:
    """Expire the snapshots older than ``older_than`` of every table topoff made."""
    settings = read_settings(location)
    catalog = open_catalog(settings, create=False)  # nothing to make: no table, no work
    # in milliseconds, as the snapshots' times: an age before year 1 is no datetime
    cutoff = datetime.now(UTC).timestamp() * 1000 - older_than.total_seconds() * 1000
    out = []
    found = [(s, t) for s, (t, _) in replica_tables(catalog, settings.namespace).items()]
    found += replicated_tables(catalog)  # topoff replicate's, in their own namespaces
    for source, table in sorted(found, key=lambda f: f[0]):
        current = table.current_snapshot()
        total = len(table.metadata.snapshots)
        old = [s.snapshot_id for s in table.metadata.snapshots
               if s.timestamp_ms < cutoff
               and (current is None or s.snapshot_id != current.snapshot_id)]
        if old and not dry_run:
            table.maintenance.expire_snapshots().by_ids(old).commit()
        out.append(Expired(source, len(old), total - len(old)))
    return out
