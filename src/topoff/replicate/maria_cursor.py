"""A MariaDB cursor value at full precision (:class:`Cursor`), the source's clock that
a time cursor's watermark never passes (:func:`not_ahead`), and the zone a DATETIME
cursor is taken to be written in (:func:`server_zone`)."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from topoff.errors import ConfigError, SourceError
from topoff.replicate.config import ReplicateTable
from topoff.replicate.describe import bound_hint
from topoff.replicate.maria_read import query
from topoff.replicate.watermark import exact_minus, local_lower, zone_or_none
from topoff.sources.mariadb.types import MariaColumn, literal

log = logging.getLogger("topoff")

_OFFSET = re.compile(r"[+-]\d{1,2}:\d{2}")


def server_zone(conn: Any) -> str | None:
    """The zone the server's clock is in, for a DATETIME cursor without cursor_timezone:
    its global ``time_zone``; None for a fixed offset (``+05:45``: no hour is ever
    repeated). ``SYSTEM`` is the host's zone, which the server names by an abbreviation
    only (``CET``, ``NST``, ``+0545``): UTC when that says so, else a name that is no
    IANA zone (a warning at the refresh: set cursor_timezone)."""
    ((zone, system),) = query(conn, "SELECT @@global.time_zone, @@system_time_zone",
                              "reading the time zone")
    zone, system = str(zone or ""), str(system or "")
    if zone.upper() == "SYSTEM":
        return "UTC" if system.upper() in ("UTC", "GMT", "Z", "+00", "+0000") \
            else f"SYSTEM ({system})"
    return None if not zone or _OFFSET.fullmatch(zone) else zone


def not_ahead(conn: Any, found: Cursor, taken_at: datetime, t: ReplicateTable) -> Cursor:
    """``found`` (``max(cursor)``), or the source's clock at the snapshot where a time
    cursor's largest value lies ahead of it (a bogus far date would become a watermark
    every later row is below): rows ahead of the clock are read once their time has come.
    A TIMESTAMP is compared in UTC (as it is read); a DATETIME or DATE in cursor_timezone,
    else the server's global time_zone (UTC where MariaDB cannot convert to it). Integers
    have no clock."""
    col = found.col
    if col.form not in ("datetime", "timestamp", "date"):
        return found
    now = taken_at.replace(tzinfo=None)  # UTC
    if col.form != "timestamp":
        zone = zone_or_none(t.cursor_timezone)
        if zone is not None:
            now = taken_at.astimezone(zone).replace(tzinfo=None)
        else:
            ((local,),) = query(conn, "SELECT CAST(CONVERT_TZ("
                                f"{literal(now.isoformat(sep=' '))}, '+00:00', "
                                "@@global.time_zone) AS CHAR)", "reading the clock")
            if local is not None:
                now = datetime.fromisoformat(str(local))
    clock = Cursor(col, now.date().isoformat() if col.form == "date"
                   else now.isoformat(sep=" "), t.qualified, "the source's clock")
    if found.value <= clock.value:
        return found
    far = found.value > (clock.value + (timedelta(minutes=5) if col.form != "date"
                                        else timedelta(0)))
    (log.warning if far else log.debug)(
        "%s.%s: cursor values up to %s lie ahead of the source's clock (%s%s): the "
        "watermark stops there, and those rows are read once their time has come",
        t.source, t.qualified, found.text, clock.text,
        "" if col.form == "timestamp" else f" in {t.cursor_timezone or 'its time_zone'}")
    return clock


class Cursor:
    """A cursor value: MariaDB's own text of it (``CAST(... AS CHAR)``), its literal for
    MariaDB statements (:attr:`sql`) and PostgreSQL's text of it (:attr:`text`, stored as
    the watermark and cast by the target). Parsed, never placed in SQL as given."""

    def __init__(self, col: MariaColumn, maria_text: str, qualified: str,
                 what: str = "the source's cursor value") -> None:
        self.col = col
        try:
            if col.form in ("int", "year"):
                self.value: Any = Decimal(maria_text)
                if not self.value.is_finite():
                    raise ValueError(maria_text)
            elif col.form == "date":
                self.value = date.fromisoformat(maria_text)
            else:
                self.value = datetime.fromisoformat(maria_text)
                if self.value.tzinfo is not None:
                    raise ValueError(maria_text)
        except (ValueError, InvalidOperation):
            raise SourceError(f"{qualified}: {what} {maria_text[:40]!r} is not a "
                              f"{col.native} value topoff can compare (a zero date?)",
                              hint="a cursor needs real dates or numbers in the rows read") \
                from None
        self.sql = literal(self.value)
        if isinstance(self.value, Decimal):
            self.text = str(self.value)
        elif isinstance(self.value, datetime):
            self.text = self.value.isoformat(sep=" ") + ("+00" if col.form == "timestamp"
                                                          else "")
        else:
            self.text = self.value.isoformat()

    @classmethod
    def stored(cls, col: MariaColumn, text: str, qualified: str) -> Cursor:
        """The watermark as stored (PostgreSQL's text: ``+00`` after a TIMESTAMP)."""
        if col.form == "timestamp" and text.endswith("+00"):
            text = text[:-3]
        return cls(col, text, qualified, "the stored watermark")

    @classmethod
    def given(cls, col: MariaColumn, text: str, qualified: str) -> Cursor:
        try:
            return cls.stored(col, text.strip(), qualified)
        except SourceError:
            timely = col.form in ("date", "datetime", "timestamp")
            raise ConfigError(f"--from/--to is not a value of {qualified}.{col.name}: "
                              f"{text[:40]!r}", hint=bound_hint(not timely)) from None

    def minus(self, back: timedelta | int, zone: str | None) -> Cursor | None:
        """``self - back``, exactly (a date rounded down: a wider read, never narrower);
        None when that is before year 1 (no lower bound)."""
        v = self.value
        if isinstance(v, Decimal):
            lower: str | None = exact_minus(str(v), back if isinstance(back, int) else 0)
        elif isinstance(v, datetime):
            assert isinstance(back, timedelta)
            if self.col.form == "datetime" and zone:  # a repeated hour (daylight saving)
                lower = local_lower(v.isoformat(sep=" "), back, zone_or_none(zone))
            else:
                lower = (v - back).isoformat(sep=" ") if v - datetime.min >= back else None
        else:
            assert isinstance(back, timedelta)
            start = datetime.combine(v, datetime.min.time())
            lower = (start - back).date().isoformat() if start - datetime.min >= back \
                else None
        return None if lower is None else \
            Cursor(self.col, lower, "the lower bound", "the lower bound")
