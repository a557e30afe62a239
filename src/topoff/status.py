"""``topoff status TARGET``: what a replica has applied and how far behind its dataset it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from topoff.dataset.index import read_index
from topoff.errors import NotPublishedError, TopoffError
from topoff.stores import StoreOptions, open_store
from topoff.sync.plan import plan_sync
from topoff.targets import Target, open_target
from topoff.targets.base import ReplicaState
from topoff.targets.errors import engine_errors
from topoff.targets.iceberg import is_iceberg
from topoff.targets.ledger import Ledger


@dataclass
class TableStatus:
    table: str
    replica_table: str
    method: str
    rows: int
    newest: str | None  # the largest cursor value, as text


@dataclass
class ReplicaStatus:
    dataset: str
    origin: str
    base: str
    status: str
    last_sequence: int
    last_applied: str | None
    last_applied_at: str | None
    since: str | None
    tables: list[TableStatus] = field(default_factory=list)
    #: filled when the origin could be read
    published_sequence: int | None = None
    pending: list[str] = field(default_factory=list)
    origin_error: str | None = None

    @property
    def complete(self) -> bool:
        """False while the first load (from a full export) has not finished: the replica
        holds part of its tables, and ``topoff sync`` resumes the load."""
        return self.status == "ready"

    @property
    def behind(self) -> int | None:
        return None if self.published_sequence is None else len(self.pending)

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tables"] = [t.__dict__ for t in self.tables]
        d["behind"] = self.behind
        d["complete"] = self.complete
        return d


def _text(v: Any) -> str | None:
    """A value as status prints it: an instant in UTC (a DuckDB replica gives it in the
    zone of the process, its TZ), whatever the target."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return (v.astimezone(UTC) if v.tzinfo is not None else v).isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def status(target_location: str, check_origin: bool = True,
           store_options: StoreOptions | None = None) -> list[ReplicaStatus]:
    """What each dataset in the replica has applied (and, with ``check_origin``, what its
    origin has published since); empty when the target holds no replica."""
    if is_iceberg(target_location):  # the ledger lives in each Iceberg table
        from topoff.status_iceberg import iceberg_status

        return iceberg_status(target_location, check_origin, store_options)
    target = open_target(target_location, create=False)
    try:
        with engine_errors(target.url):
            out = [_status(target, dataset, target_location, check_origin, store_options)
                   for dataset in Ledger(target).replicas()]
    finally:
        target.close()
    return out


def _status(target: Target, dataset: str, target_location: str, check_origin: bool,
            store_options: StoreOptions | None) -> ReplicaStatus:
    state = Ledger(target).read_replica(dataset)
    assert state is not None
    applied = Ledger(target).applied(dataset, limit=1)
    s = ReplicaStatus(
        dataset=dataset, origin=state.origin, base=state.base, status=state.status,
        last_sequence=state.last_sequence,
        last_applied=applied[0][0] if applied else None,
        last_applied_at=_text(applied[0][6]) if applied else None,
        since=_text(state.since))
    defs = list(Ledger(target).table_defs(dataset).values())
    there = target.existing_tables(t.target for t in defs)
    for t in defs:
        exists = t.target in there
        s.tables.append(TableStatus(
            t.source, str(t.target), t.method, target.count(t) if exists else 0,
            _text(target.max_cursor(t)) if exists else None))
    if check_origin:
        check_origin_of(s, state, target_location, store_options)
    return s


def check_origin_of(s: ReplicaStatus, state: ReplicaState, target_location: str,
                    store_options: StoreOptions | None) -> None:
    """Fill in what the replica's origin has published and what is still to apply."""
    try:
        with open_store(state.origin, store_options) as store:
            index = read_index(store)
        if index is None:
            raise NotPublishedError(f"nothing is published at {state.origin}")
        s.published_sequence = index.next_sequence - 1
        plan = plan_sync(index, state, state.origin, target_location)
        s.pending = [p.id for p in plan.apply]
    except TopoffError as e:
        s.origin_error = e.message + (f" ({e.hint})" if e.hint else "")
