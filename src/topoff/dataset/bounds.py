"""Which cursor values a window covers: shared by the exporter and every target, so that a
partition's rows and the rows a consumer replaces are the same set.

``[lo, hi)`` in the cursor's own type: aware UTC datetimes for ``timestamp with time zone``,
wall-clock times of ``cursor_timezone`` for ``timestamp without time zone`` (see
topoff/export/windows.py for daylight saving), dates for ``date``.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime

from topoff.dataset.layout import Window
from topoff.errors import ConfigError
from topoff.pgtypes import family


@dataclass(frozen=True)
class Bounds:
    lo: datetime | date
    hi: datetime | date
    kind: str  # timestamptz | timestamp | date

    def literals(self) -> tuple[str, str]:
        """The bounds as ISO text (space-separated for timestamps, as SQL casts expect)."""
        if self.kind == "date":
            return self.lo.isoformat(), self.hi.isoformat()
        return self.lo.isoformat(sep=" "), self.hi.isoformat(sep=" ")  # type: ignore[call-arg]


def wall_clock(instant: datetime, tz: str) -> datetime:
    """The wall-clock time (naive) in ``tz`` at ``instant``."""
    return instant.astimezone(zoneinfo.ZoneInfo(tz)).replace(tzinfo=None)


def cursor_bounds(cursor_type: str, cursor_timezone: str, window: Window,
                  what: str = "table") -> Bounds:
    kind = family(cursor_type).kind
    if kind == "timestamptz":
        return Bounds(window.start.astimezone(UTC), window.end.astimezone(UTC), kind)
    if kind == "timestamp":
        return Bounds(wall_clock(window.start, cursor_timezone),
                      wall_clock(window.end, cursor_timezone), kind)
    if kind == "date":
        if not window.is_day:
            raise ConfigError(f"{what} has a date cursor; it can only be exported by day",
                              hint="use --date YYYY-MM-DD rather than --since/--until")
        return Bounds(window.start.date(), window.end.date(), kind)
    raise ConfigError(f"{what}: cursor type {cursor_type} is not a time",
                      hint="a cursor must be a timestamp, timestamptz or date column")


def lower_bound(cursor_type: str, cursor_timezone: str, day: date) -> datetime | date:
    """The first cursor value of a UTC day (for partial replicas that start on ``day``)."""
    return cursor_bounds(cursor_type, cursor_timezone, Window.day(day)).lo
