"""Freshness checks for monitoring: Nagios exit codes and Prometheus textfile metrics.

``evaluate`` turns the catalog into one status line and a Nagios code: CRITICAL (2) when
no backup finished, when the newest finished one is older than the limit, or smaller
than the minimum size; WARNING (1) when its size changed more than allowed against the
previous finished backup, when a backup attempt failed after it, or when the newest drill
failed; OK (0) otherwise. Metrics for node_exporter's textfile collector are written to a
temp file in the same directory and renamed over the target, so a scrape never reads a
half-written file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from topoff.backup.catalog import Entry, parse_time
from topoff.errors import ConfigError
from topoff.monitoring import human, label, write_textfile

OK, WARNING, CRITICAL = 0, 1, 2
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
#: how far in the future a backup's end may lie (clocks differ a little)
SKEW = timedelta(minutes=5)
_PCT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def parse_age(text: str) -> float:
    m = _AGE.match(text)
    if not m:
        raise ConfigError(f"invalid --max-age {text!r}", hint="write it like 26h, 90m or 2d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[m.group(2)]


def parse_percent(text: str) -> float:
    m = _PCT.match(text)
    if not m:
        raise ConfigError(f"invalid --max-size-change {text!r}", hint="write it like 15%")
    return float(m.group(1)) / 100


@dataclass
class CheckResult:
    code: int
    line: str
    metrics: dict[str, float] = field(default_factory=dict)


def evaluate(entries: list[Entry], max_age: float, min_size: int | None = None,
             max_change: float | None = None, now: datetime | None = None) -> CheckResult:
    now = now or datetime.now(UTC)
    done = [e for e in entries if e.status == "finished" and parse_time(e.end_time)]
    # an end in the future (a wrong clock, a forged entry) would be "fresh" for ever
    future = [e for e in done if parse_time(e.end_time) > now + SKEW]  # type: ignore[operator]
    done = [e for e in done if e not in future]
    late = [f"backup {future[-1].name} ended in the future ({future[-1].end_time}), "
            "not counted"] if future else []
    # a drill dated in the future would be the newest for ever, as an end would be fresh
    drills = sorted((t, e.name, d.get("ok") is True) for e in entries for d in e.drills
                    if (t := parse_time(d.get("time"))) is not None and t <= now + SKEW)
    metrics: dict[str, float] = {}
    if drills:
        metrics["drill_success"] = 1.0 if drills[-1][2] else 0.0
        metrics["drill_timestamp_seconds"] = drills[-1][0].timestamp()
    if not done:
        return _result(CRITICAL, ["no finished backup", *late], metrics)
    last = done[-1]
    ended = parse_time(last.end_time)
    assert ended is not None and last.size is not None
    age = max((now - ended).total_seconds(), 0.0)  # ended within SKEW ahead: just now
    metrics.update(last_success_timestamp_seconds=ended.timestamp(), last_size_bytes=last.size,
                   age_seconds=age)
    duration = (last.finished or {}).get("seconds")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        metrics["last_duration_seconds"] = float(duration)
    crit, warn = [], list(late)
    if age > max_age:
        crit.append(f"newest finished backup {last.name} is {human(age)} old "
                    f"(limit {human(max_age)})")
    if min_size is not None and last.size < min_size:
        crit.append(f"{last.name} is {last.size} bytes, below the minimum {min_size}")
    change = ""
    if len(done) > 1 and done[-2].size:
        prev = done[-2].size
        ratio = (last.size - prev) / prev
        change = f" ({ratio:+.1%})"
        if max_change is not None and abs(ratio) > max_change:
            warn.append(f"{last.name} size changed {ratio:+.1%} from {done[-2].name} "
                        f"(limit {max_change:.0%})")
    last_start = parse_time(last.start_time)
    later_failed = [e for e in entries if e.status == "failed" and last_start is not None
                    and (t := parse_time(e.start_time)) is not None and t > last_start]
    if later_failed:
        warn.append(f"backup {later_failed[-1].name} failed after {last.name}")
    if drills and not drills[-1][2]:
        warn.append(f"the newest drill (of {drills[-1][1]}) failed")
    ok_line = f"{last.name} finished {human(age)} ago, {last.size} bytes{change}"
    if drills:
        ok_line += "; drill ok"
    if crit:
        return _result(CRITICAL, crit + warn, metrics)
    if warn:
        return _result(WARNING, warn, metrics)
    return _result(OK, [ok_line], metrics)


def _result(code: int, parts: list[str], metrics: dict[str, float]) -> CheckResult:
    metrics["check_status"] = float(code)
    return CheckResult(code, f"BACKUP {LABELS[code]} - " + "; ".join(parts), metrics)


HELP = {
    "check_status": "0 OK, 1 WARNING, 2 CRITICAL (topoff backups check)",
    "last_success_timestamp_seconds": "End time of the newest finished backup",
    "last_size_bytes": "Size of the newest finished backup (encrypted object)",
    "last_duration_seconds": "Duration of the newest finished backup",
    "age_seconds": "Age of the newest finished backup",
    "drill_success": "1 if the newest restore drill passed, else 0",
    "drill_timestamp_seconds": "Time of the newest restore drill",
}


def write_prometheus(path: str, store_url: str, metrics: dict[str, float]) -> None:
    lines = []
    for key in HELP:
        if key in metrics:
            name = f"topoff_backup_{key}"
            lines += [f"# HELP {name} {HELP[key]}", f"# TYPE {name} gauge",
                      f'{name}{{store="{label(store_url)}"}} {float(metrics[key])!r}']
    write_textfile(path, "\n".join(lines) + "\n")
