"""Export windows: which rows belong to a day, and when a day is safe to publish.

A window is a half-open interval [start, end) of UTC instants. For a ``timestamp with time
zone`` cursor the bounds are compared as they are. A ``timestamp without time zone``
cursor holds wall-clock times of the zone it was written in (``cursor_timezone``); the
bounds become wall-clock times of that zone. Windows stay contiguous, so every stored value
falls in exactly one window, even across daylight-saving changes.

When clocks go back, an hour of wall-clock times happens twice: rows written in the second
pass carry values that a window which ended during the first pass already covered. A
window is therefore closed only once the *last* instant that its end bound names has
passed (:func:`closing_instant`), and the recheck of recent days (see incremental.py)
re-reads them anyway.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from topoff.dataset.bounds import wall_clock
from topoff.dataset.layout import Window
from topoff.errors import ConfigError, SafetyError

if TYPE_CHECKING:  # annotations only: the CLI imports this module for parse_date
    from topoff.sources.base import SourceSnapshot, SourceTable

log = logging.getLogger("topoff")


#: the days an export can name: a day window ends the next day; the re-check goes back
#: at most MAX_LOOKBACK_DAYS before it (config.py)
FIRST_DAY, LAST_DAY = date(1, 1, 1), date(9999, 12, 30)


def parse_date(text: str) -> date:
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"invalid date {text!r}", hint="write dates as YYYY-MM-DD") from None
    if d > LAST_DAY:
        raise ConfigError(f"date {text} is out of range: a day's window ends the day after",
                          hint=f"give a day up to {LAST_DAY}")
    return d


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"invalid time {text!r}",
                          hint="write times as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
                          ) from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    try:
        t.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ConfigError(f"time {text!r} is out of range", hint="give a time in the years "
                          "1 to 9999, in UTC") from None
    return t


def yesterday(now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    return (now.astimezone(UTC) - timedelta(days=1)).date()


def choose_window(day: str | None, since: str | None, until: str | None,
                  now: datetime | None = None) -> Window:
    """The window of an incremental export from the command line's --date / --since / --until."""
    if day and (since or until):
        raise ConfigError("--date cannot be combined with --since/--until",
                          hint="give either one day (--date) or a window (--since and --until)")
    if since or until:
        if not (since and until):
            raise ConfigError("--since and --until go together",
                              hint="give both ends of the window, e.g. --since 2026-11-20T06:00 "
                              "--until 2026-11-20T12:00")
        start, end = parse_instant(since), parse_instant(until)
        if not start < end:
            raise ConfigError(f"--since {since} is not before --until {until}")
        return Window(start, end)
    d = parse_date(day) if day else yesterday(now)
    return Window.day(d)


def closing_instant(bound: datetime, cursor_type: str | None, tz: str) -> datetime:
    """The UTC instant after which no new row can fall before ``bound`` in this cursor."""
    if cursor_type is None or "without time zone" not in cursor_type or tz == "UTC":
        return bound
    wall = wall_clock(bound, tz)
    zone = zoneinfo.ZoneInfo(tz)
    # In a repeated hour the same wall-clock time names two instants: wait for the later.
    candidates = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
    return max([bound, *candidates])


def days_back(window: Window, lookback: int) -> list[Window]:
    """The ``lookback`` UTC days before a day window, oldest first."""
    if not window.is_day or lookback <= 0:
        return []
    d = window.start.astimezone(UTC).date()
    if (d - FIRST_DAY).days < lookback:
        raise ConfigError(f"{window.label} has no {lookback} days before it to re-check",
                          hint="export a later day, or this one with --lookback-days "
                          f"{(d - FIRST_DAY).days}")
    return [Window.day(d - timedelta(days=n)) for n in range(lookback, 0, -1)]


def check_closed(info: SourceSnapshot, window: Window, tables: list[SourceTable],
                  force: bool) -> None:
    """Refuse a window that has not ended, or that the replica has not replayed past."""
    needed = max([closing_instant(window.end, t.cursor_type, t.config.cursor_timezone)
                  for t in tables if t.config.cursor] or [window.end])
    now = max(datetime.now(UTC), info.time)
    if needed > now:
        raise ConfigError(
            f"{window.label} is in the future: it ends at {needed.isoformat()}, and it is "
            f"{now.replace(microsecond=0).isoformat()} now",
            hint="export a window once it has ended (the default is yesterday, UTC); "
            "--force does not publish windows that have not ended")
    replayed = info.replayed_until()
    if replayed is not None and replayed >= needed:
        return
    suffix, first_hint = info.lag()
    # no time and no reason (a stopped replication, a status the user may not read): a
    # standby that has replayed nothing yet
    seen = replayed.isoformat() if replayed else "an unknown time" + (
        "" if suffix or first_hint else " (nothing replayed yet)")
    message = (f"the standby has replayed the primary only up to {seen}" if info.in_recovery
               else f"the primary's snapshot is at {seen}") + suffix
    if force:
        log.warning("%s may be incomplete: %s (--force given)", window.label, message)
        return
    hint = ("run again later (or pass --force to publish it anyway; a later run republishes "
            "the day if rows arrive)")
    raise SafetyError(f"{window.label} may still be incomplete: {message}, before "
                      f"{needed.isoformat()}", hint=(first_hint or "") + hint)
