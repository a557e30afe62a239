"""Freshness of replicated tables for monitoring: Nagios output and exit codes, and a
Prometheus textfile (node_exporter's textfile collector), like ``backups check``.

Each table is judged by the age of its last successful run (``now - last_success``):

* CRITICAL (2): an active table whose last success is older than ``crit``, or that never
  succeeded;
* WARNING (1): an active table older than ``warn``; a paused table older than ``warn`` or
  never run (paused tables are reported, never critical);
* UNKNOWN (3): no table to judge, or a record that cannot be judged (a time without a
  time zone);
* OK (0) otherwise.

The worst table decides the code. ``lag_seconds`` (how far the replica is behind its
source's primary, when known) is reported and exported, and judged only when
``lag_warn`` / ``lag_crit`` are given (same rules, paused tables never critical); then a
table that succeeded with its lag unknown (its source never said how far behind its
primary it is) is at least WARNING, "lag unknown". A table whose lag is an upper bound
(``lag_bound_role``: its PostgreSQL role cannot see the standby's WAL receiver) adds one
``note:`` line per such role to the long output (:func:`upper_bound_notes`).

Output: one status line ``REPLICATE <STATE> - <summary> | <perfdata>`` (age of every
table in seconds with its warn and crit limits), then one line per table (Nagios' long
output). Metrics (one family per fact, labelled by table): ``topoff_replicate_last_success_
timestamp_seconds`` (left out for a table that never succeeded), ``topoff_replicate_lag_
seconds`` (tables with a known lag), ``topoff_replicate_paused`` (1 or 0), and
``topoff_replicate_check_status`` (the code, unlabelled). The file is written to a temp
file in the same directory, synced and renamed over the target: a scrape never reads a
half-written file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from topoff.errors import ConfigError
from topoff.monitoring import human, label, write_textfile

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


@dataclass(frozen=True)
class TableFreshness:
    """What a check knows of one replicated table."""

    name: str  # as the operator knows it, e.g. "matomo.log_visit"
    last_success: datetime | None
    paused: bool = False
    lag_seconds: float | None = None
    #: the lag is an upper bound: this role cannot see the standby's WAL receiver
    lag_bound_role: str | None = None


@dataclass
class FreshnessResult:
    code: int
    line: str  # the status line, with perfdata
    details: list[str] = field(default_factory=list)  # one line per table

    @property
    def text(self) -> str:
        return "\n".join([self.line, *self.details])


def upper_bound_notes(tables: Iterable[tuple[str, str | None]]) -> list[str]:
    """One line per role of the ``(table, role)`` pairs with a role: the lag of those
    tables counts from the last replayed commit (the role cannot see the standby's WAL
    receiver), so it grows while the primary writes nothing."""
    by_role: dict[str, list[str]] = {}
    for name, role in tables:
        if role is not None:
            by_role.setdefault(role, []).append(name)
    return [f"the lag of {', '.join(names)} is an upper bound: role {role} cannot see the "
            "standby's WAL receiver, so the lag counts from the last replayed commit and "
            f"grows while the primary writes nothing; GRANT pg_read_all_stats TO "
            f"{_role(role)} (on the primary) to measure it" for role, names in by_role.items()]


def _role(name: str) -> str:
    """A role name as GRANT takes it (quoted unless a plain lowercase name)."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else \
        '"' + name.replace('"', '""') + '"'


def parse_age(text: str, option: str = "--warn") -> float:
    """'90m', '2h', '1d', '300' (seconds) -> seconds."""
    m = _AGE.match(text) if isinstance(text, str) else None
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"invalid {option} {text!r}", hint="write an age like 90m, 2h or 1d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _check_limits(warn: float, crit: float, what: str) -> None:
    for v in (warn, crit):
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ConfigError(f"invalid {what} limit {v!r}", hint="limits are ages above 0")
    if warn > crit:
        raise ConfigError(f"the {what} warning limit ({human(warn)}) is above the critical "
                          f"one ({human(crit)})", hint="use --warn below --crit")


def _judge(value: float | None, warn: float, crit: float, paused: bool) -> int:
    if value is None or value > crit:
        return WARNING if paused else CRITICAL
    return WARNING if value > warn else OK


def _perf_label(name: str) -> str:
    return "'" + name.replace("'", "''").replace("=", "_") + "_age'"


Record = TableFreshness | tuple[str, datetime | None, bool, float | None]


def records(tables: Iterable[Record]) -> list[TableFreshness]:
    """``(name, last_success, paused, lag_seconds)`` tuples or TableFreshness, as the
    latter."""
    return [t if isinstance(t, TableFreshness) else TableFreshness(*t) for t in tables]


def evaluate(tables: Iterable[Record], warn: float, crit: float,
             now: datetime | None = None, lag_warn: float | None = None,
             lag_crit: float | None = None) -> FreshnessResult:
    """Judge every table (see the module text); limits in seconds."""
    _check_limits(warn, crit, "age")
    if (lag_warn is None) != (lag_crit is None):
        raise ConfigError("a lag limit needs both a warning and a critical value",
                          hint="give both lag limits, or neither")
    if lag_warn is not None and lag_crit is not None:
        _check_limits(lag_warn, lag_crit, "lag")
    now = now or datetime.now(UTC)
    rows = records(tables)
    if not rows:
        return FreshnessResult(UNKNOWN, "REPLICATE UNKNOWN - no replicated table to check")
    worst, problems, details, perf = OK, [], [], []
    oldest: tuple[float, str] | None = None
    for t in rows:
        if t.last_success is not None and t.last_success.tzinfo is None:
            return FreshnessResult(UNKNOWN, f"REPLICATE UNKNOWN - {t.name}: last success "
                                   "time has no time zone")
        age = None if t.last_success is None else max((now - t.last_success).total_seconds(), 0)
        code = _judge(age, warn, crit, t.paused)
        limits = (warn, crit)
        judged = lag_warn is not None and lag_crit is not None and age is not None
        if lag_warn is not None and lag_crit is not None and t.lag_seconds is not None:
            by_lag = _judge(t.lag_seconds, lag_warn, lag_crit, t.paused)
            if by_lag > code:
                code, limits = by_lag, (lag_warn, lag_crit)
        elif judged and lag_warn is not None and code == OK:
            code, limits = WARNING, (lag_warn, lag_warn)  # succeeded, its lag never known
        state = "paused, " if t.paused else ""
        seen = "never succeeded" if age is None else f"last success {human(age)} ago"
        lag = f", lag {human(max(t.lag_seconds, 0))}" if t.lag_seconds is not None else \
            ", lag unknown" if judged else ""
        details.append(f"{t.name}: {LABELS[code]}, {state}{seen}{lag}")
        if code != OK:
            limit = limits[1] if code == CRITICAL else limits[0]
            problems.append((code, f"{t.name} {state}{seen}{lag} (limit {human(limit)})"))
        if age is not None:
            perf.append(f"{_perf_label(t.name)}={age:.0f}s;{warn:.0f};{crit:.0f};0")
            if not t.paused and (oldest is None or age > oldest[0]):
                oldest = (age, t.name)
        worst = max(worst, code)
    if worst == OK:
        summary = f"{len(rows)} table{'s' if len(rows) != 1 else ''} fresh"
        if oldest is not None:
            summary += f", oldest {oldest[1]} {human(oldest[0])} ago"
        paused = sum(t.paused for t in rows)
        if paused:
            summary += f", {paused} paused"
    else:
        problems.sort(key=lambda p: -p[0])
        summary = f"{len(problems)} of {len(rows)} tables stale: " + "; ".join(
            p[1] for p in problems)
    line = f"REPLICATE {LABELS[worst]} - {summary}"
    if perf:
        line += " | " + " ".join(perf)
    details += [f"note: {n}" for n in upper_bound_notes(
        (t.name, t.lag_bound_role) for t in rows if t.lag_seconds is not None)]
    return FreshnessResult(worst, line, details)


HELP = {
    "last_success_timestamp_seconds": "End time of the table's last successful run",
    "lag_seconds": "How far the replica table is behind its source's primary",
    "paused": "1 if the table's replication is paused, else 0",
}


def metrics_text(tables: Sequence[Record], result: FreshnessResult) -> str:
    lines = []
    rows = records(tables)
    for key, help_text in HELP.items():
        name = f"topoff_replicate_{key}"
        samples = []
        for t in rows:
            if key == "last_success_timestamp_seconds":
                value = None if t.last_success is None else t.last_success.timestamp()
            elif key == "lag_seconds":
                value = t.lag_seconds
            else:
                value = 1.0 if t.paused else 0.0
            if value is not None:
                samples.append(f'{name}{{table="{label(t.name)}"}} {float(value)!r}')
        if samples:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]
    name = "topoff_replicate_check_status"
    lines += [f"# HELP {name} 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (replicated tables' "
              "freshness)", f"# TYPE {name} gauge", f"{name} {float(result.code)!r}"]
    return "\n".join(lines) + "\n"


def write_prometheus(path: str | Path, tables: Sequence[Record],
                     result: FreshnessResult) -> None:
    """Write the metrics atomically (temp file in the same directory, fsync, rename)."""
    write_textfile(path, metrics_text(tables, result))
