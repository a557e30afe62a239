"""What ``topoff replicate --status`` shows: one row per configured table, from the state
the target holds (the source is not read).

``lag`` is how far the replica is behind its source's primary: the seconds between now
and the time (the primary's clock) up to which the data the table's last successful
refresh read was complete (``TableState.as_of``: a standby's replay, a MariaDB replica's
Seconds_Behind_Master, a primary's clock). None for a table never refreshed, or whose
source could never tell (a MariaDB replica whose replication was stopped or hidden at
every refresh). A state written before ``as_of`` was kept: since its snapshot's time.
``lag_bound_role``: the lag is an upper bound, the role having read a PostgreSQL standby
without seeing its WAL receiver (no pg_read_all_stats): from its last replayed commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from topoff.replicate.apply import landing
from topoff.replicate.config import ReplicateConfig
from topoff.replicate.state import TableState
from topoff.replicate.store import StateStore, StoredTable
from topoff.targets import open_target
from topoff.targets.iceberg import is_iceberg


@dataclass(frozen=True)
class TableStatus:
    source: str
    table: str
    target: str
    method: str
    rows: int  # moved by the last refresh
    rows_total: int  # moved since the table was first built
    last_refresh: datetime | None
    lag_seconds: float | None
    paused: bool
    configured: bool  # still in the config (a table removed from it is still stored)
    lag_bound_role: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "table": self.table, "target": self.target,
                "method": self.method, "rows": self.rows, "rows_total": self.rows_total,
                "last_refresh": self.last_refresh.isoformat() if self.last_refresh else None,
                "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
                "lag_upper_bound": self.lag_bound_role is not None,
                "paused": self.paused, "configured": self.configured}


def _row(s: StoredTable | None, source: str, table: str, target: str, method: str,
         configured: bool, now: datetime) -> TableStatus:
    if s is None:
        return TableStatus(source, table, target, method, 0, 0, None, None, False, configured)
    lag = s.state.lag_seconds(now)
    return TableStatus(source, table, str(s.target), s.method, s.state.rows, s.rows_total,
                       s.updated_at, lag, s.paused, configured,
                       s.state.receiver_hidden_from if lag is not None else None)


def _stored(config: ReplicateConfig) -> list[StoredTable]:
    if not is_iceberg(config.target):
        with open_target(config.target, create=False) as engine:
            return StateStore(engine).all()
    from topoff.replicate.iceberg_apply import IcebergReplica, state_of

    found = IcebergReplica(config.target).stored({s.landing_schema for s in config.sources})
    return [StoredTable(h.source, h.table, h.definition.target, h.method,
                        state_of(h) or TableState(), h.paused, h.updated_at, h.rows_total)
            for h in found]


def table_status(config: ReplicateConfig) -> list[TableStatus]:
    """Every configured table (and any other the target still keeps state for)."""
    stored = {(s.source, s.table): s for s in _stored(config)}
    now = datetime.now(UTC)
    out = []
    for src in config.sources:
        for t in src.tables:
            out.append(_row(stored.pop((src.name, t.qualified), None), src.name, t.qualified,
                            str(landing(src, t)), t.method, True, now))
    for (source, table), s in sorted(stored.items()):
        out.append(_row(s, source, table, str(s.target), s.method, False, now))
    return out
