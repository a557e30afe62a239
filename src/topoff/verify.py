"""``topoff verify TARGET --against SOURCE``: is the replica what the source holds?

For each table of the replica: the row count and the canonical content hash (see
topoff.canonical), per UTC day for tables with a cursor and for the whole table otherwise,
computed on the source (in one read-only snapshot on the standby, through the Source's
verifier: topoff.sources.base) and on the replica, and compared. The source is hashed the
way the replica holds the data (e.g. an unconstrained numeric as the double DuckDB keeps),
so equal data gives equal hashes on both engines.

Days at or after the end of the newest window the replica has applied are newer than the
replica by design; their rows are counted as "not yet published", not as differences.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from topoff.dataset.bounds import cursor_bounds, lower_bound
from topoff.dataset.layout import Window, full_time
from topoff.errors import ConfigError, NoReplicaError, TargetError
from topoff.export.windows import FIRST_DAY, LAST_DAY
from topoff.pgtypes import family
from topoff.safety import source_failures
from topoff.sources.base import SourceVerifier, open_source
from topoff.sync.plan import rebase_hint
from topoff.targets import Target, open_target
from topoff.targets.base import TableDef, TableRef
from topoff.targets.ledger import Ledger

log = logging.getLogger("topoff")


@dataclass
class Difference:
    table: str
    day: str | None  # None: the whole table
    source_rows: int
    replica_rows: int
    same_content: bool
    #: what the source lacks or has changed, when the table cannot be compared at all
    missing: str | None = None

    @property
    def what(self) -> str:
        if self.missing:
            return self.missing
        if self.source_rows != self.replica_rows:
            return f"{self.source_rows - self.replica_rows:+d} rows on the source"
        return "same count, different content"


@dataclass
class TableReport:
    table: str
    compared_rows: int = 0
    days: int = 0
    newer_rows: int = 0  # source rows after the replica's newest window (not an error)
    differences: list[Difference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


@dataclass
class VerifyReport:
    dataset: str
    cutoff: datetime | None
    tables: list[TableReport] = field(default_factory=list)
    #: what to do when they differ
    hint: str | None = None
    #: what is compared less than exactly, and why
    notes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return all(t.equal for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "equal": self.equal,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "hint": None if self.equal else self.hint, "notes": self.notes,
            "tables": [{"table": t.table, "equal": t.equal, "rows": t.compared_rows,
                        "days": t.days, "newer_rows": t.newer_rows,
                        "differences": [d.__dict__ | {"what": d.what} for d in t.differences]}
                       for t in self.tables],
        }


def _cutoff(target: Target, dataset: str) -> datetime | None:
    """End of the newest window applied, or the start of the full export's snapshot day."""
    ledger = Ledger(target)
    windows = [Window.from_label(r[3]).end for r in ledger.applied(dataset, limit=100000)
               if r[3]]
    if windows:
        return max(windows)
    state = ledger.read_replica(dataset)
    full = ledger.full_load_publication(dataset)
    if state is None or full is None:
        return None
    taken = full_time(full)
    return datetime(taken.year, taken.month, taken.day, tzinfo=UTC)


def choose_dataset(datasets: list[str], where: str, dataset: str | None) -> str:
    """The replica's dataset to verify: the one asked for, or the only one there."""
    if not datasets:
        raise NoReplicaError(f"{where} holds no topoff replica",
                             hint=f"check the path or URL, or build one with "
                             f"`topoff sync FROM {where}`")
    if dataset is not None:
        return dataset
    if len(datasets) > 1:
        raise ConfigError(f"{where} holds several datasets ({', '.join(datasets)})",
                          hint="choose one with --dataset")
    return datasets[0]


def _profile(target: Target) -> str:
    return "exact" if target.capabilities.native_types else "duckdb"


def _per_window(hash_fn: Any, table: TableDef, days: list[date],
                since: Any) -> dict[str | None, tuple[int, str]]:
    """Per-day hashes by one query per day (cursors whose day needs a time zone)."""
    assert table.cursor_type
    out: dict[str | None, tuple[int, str]] = {}
    for d in days:
        b = cursor_bounds(table.cursor_type, table.cursor_timezone, Window.day(d))
        (counted,) = hash_fn(table, False, since, b).values()
        if counted[0]:
            out[d.isoformat()] = counted
    return out


def _notes(table: TableDef) -> list[str]:
    out = []
    for c in table.columns:
        f = family(c.type, c.enum)
        if f.kind == "bpchar":
            out.append(f"{table.source}.{c.name} ({c.type}): compared without trailing "
                       "spaces, which PostgreSQL ignores in character(n)")
        elif f.pg_type.split(".")[-1] in ("xml", "xml[]"):
            out.append(f"{table.source}.{c.name} (xml): compared as COPY writes it, "
                       "without an XML declaration (which PostgreSQL does not output)")
    return out


def _compare_table(source: SourceVerifier, target: Target, table: TableDef,
                   since: date | None, cutoff: datetime | None) -> TableReport:
    """Compare one table; ``source`` reads the source (e.g. sources/pg_verify.py)."""
    report = TableReport(table.source)
    profile = _profile(target)
    with source_failures(f"reading {table.source} on the source"):
        missing = source.mismatch(table)
    if missing:
        rows = target.count(table)
        report.compared_rows = rows
        report.differences.append(Difference(table.source, None, 0, rows, False, missing))
        return report
    stored = target.stored_columns(table)

    def source_hash(t: TableDef, by_day: bool, since_b: Any, window: Any = None) -> dict:
        src = TableDef(t.source, _source_ref(t), t.method, stored, t.primary_key, t.cursor,
                       t.cursor_type, t.cursor_timezone)
        with source_failures(f"hashing {t.source} on the source"):
            return source.hash(src, by_day, since_b, window, profile)

    since_b = lower_bound(table.cursor_type, table.cursor_timezone, since) \
        if since and table.cursor and table.cursor_type else None
    if not table.cursor:
        s = source_hash(table, False, None)[None]
        r = target.hash_rows(table, False)[None]
        report.compared_rows = r[0]
        if s != r:
            report.differences.append(Difference(table.source, None, s[0], r[0], False))
        return report
    if target.day_expression(table) is not None:
        src = source_hash(table, True, since_b)
        rep = target.hash_rows(table, True, since_b)
    else:  # windows of wall-clock times: near the rows' own dates, on either side
        wall = replace(table, cursor_timezone="UTC")  # grouped by the values' dates
        src_dates = source_hash(wall, True, since_b)
        rep_dates = {_day_key(k): v for k, v in target.hash_rows(wall, True, since_b).items()}
        span = _days_near(set(src_dates) | set(rep_dates))
        src = _per_window(source_hash, table, span, since_b)
        rep = _per_window(target.hash_rows, table, span, since_b)
        for key in set(src_dates) | set(rep_dates):  # NULL, infinity, BC: in no window
            if _iso_day(key) is None:
                src[key], rep[key] = src_dates.get(key, (0, "0")), rep_dates.get(key, (0, "0"))
    rep = {_day_key(k): v for k, v in rep.items()}
    last_day = (cutoff - timedelta(days=1)).date() if cutoff else None
    for day in sorted(set(src) | set(rep), key=lambda d: (d is not None, d or "")):
        s, r = src.get(day, (0, "0")), rep.get(day, (0, "0"))
        if last_day is not None and _after(day, last_day):
            report.newer_rows += max(s[0] - r[0], 0)
            continue
        report.days += 1
        report.compared_rows += r[0]
        if s != r:
            report.differences.append(Difference(table.source, day, s[0], r[0], s[0] == r[0]))
    return report


def _day_key(day: str | None) -> str | None:
    """A day as PostgreSQL writes it: DuckDB writes 44 BC as "0044-03-15 (BC)"."""
    return day[:-5] + " BC" if day and day.endswith(" (BC)") else day


def _after(day: str | None, last_day: date) -> bool:
    """Whether rows of this day are newer than the replica (infinity and BC days are not:
    no partition brings them, so they are compared)."""
    try:
        return day is not None and date.fromisoformat(day) > last_day
    except ValueError:
        return False


def _source_ref(t: TableDef) -> TableRef:
    return t.source_ref()


def _iso_day(key: str | None) -> date | None:
    """The date of a day key of plain ISO form (not NULL, infinity or a BC date)."""
    try:
        return date.fromisoformat(key) if key and len(key) == 10 else None
    except ValueError:
        return None


def _days_near(keys: set[str | None]) -> list[date]:
    """The windows that can hold a wall-clock value of these dates: the day before, the
    day and the day after (a zone is less than a day from UTC), within the days a window
    can name."""
    days: set[date] = set()
    for key in keys:
        d = _iso_day(key)
        if d is not None:
            days.update(d + timedelta(days=n) for n in (-1, 0, 1)
                        if FIRST_DAY.toordinal() <= d.toordinal() + n <= LAST_DAY.toordinal())
    return sorted(days)


def verify(target_location: str, source_url: str, allow_primary: bool = False,
           dataset: str | None = None) -> VerifyReport:
    from topoff.targets.iceberg import is_iceberg

    if is_iceberg(target_location):  # the ledger lives in each Iceberg table
        from topoff.verify_iceberg import verify_iceberg

        return verify_iceberg(target_location, source_url, allow_primary, dataset)
    target = open_target(target_location, create=False)
    try:
        datasets = Ledger(target).replicas()
        dataset = choose_dataset(datasets, target.url, dataset)
        state = Ledger(target).read_replica(dataset)
        if state is None:
            raise NoReplicaError(f"{target.url} holds no replica of {dataset}",
                              hint=f"datasets here: {', '.join(datasets)}")
        if state.status != "ready":
            raise TargetError(f"the replica of {dataset} is still being built",
                              hint="run `topoff sync` until it finishes, then verify")
        cutoff = _cutoff(target, dataset)
        report = VerifyReport(dataset, cutoff, hint=(
            "if the source is right, " + rebase_hint(state.origin, target_location)
            + " (or sync again first when a publication is pending)"))
        with open_source(source_url, allow_primary, "topoff verify") as source:
            source.open()
            verifier = source.verifier()
            for table in Ledger(target).table_defs(dataset).values():
                t = _compare_table(verifier, target, table, state.since, cutoff)
                report.tables.append(t)
                report.notes.extend(_notes(table))
                log.info("%s: %s (%d rows over %d days)", table.source,
                         "equal" if t.equal else f"{len(t.differences)} differences",
                         t.compared_rows, t.days)
        return report
    finally:
        target.close()

