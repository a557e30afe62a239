"""Where the next refresh of an inserter/updater table starts reading.

A refresh reads the rows above the watermark, and, by the commit rule, the rows inside
``watermark - lookback`` whose ``xmin`` is at or after the previous run's snapshot xmin
(committed since that run, whatever their cursor): a row that committed late (its
transaction began before the previous run and committed after it, carrying an old cursor
value) is never lost. Where xmin cannot tell (a view, a previous xmin out of reach), the
whole lookback window (at least the boundary) is read again.

A ``timestamp without time zone`` cursor written in a zone with daylight saving repeats an
hour when the clocks go back: a lower bound inside the repeated hour is widened back to the
start of that hour (minus the lookback), so rows written during its second pass are read.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg import sql

log = logging.getLogger("topoff")

XID_SPACE = 2**32


def _offsets(local: datetime, zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    first = local.replace(tzinfo=zone, fold=0).utcoffset()
    second = local.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None and second is not None
    return first, second


def repeated_from(local: datetime, zone: ZoneInfo) -> datetime | None:
    """If the wall-clock time ``local`` occurs twice in ``zone`` (the hour repeated when
    the clocks go back), the first wall-clock time of that repeated stretch; else None."""
    first, second = _offsets(local, zone)
    if first <= second:  # not repeated (a spring-forward gap has first < second)
        return None
    lo, hi = local - (first - second), local  # lo is before the stretch, hi inside it
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=mid.microsecond)
        a, b = _offsets(mid, zone)
        if a > b:
            hi = mid
        else:
            lo = mid
    return hi


def zone_or_none(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("time zone %r is not an IANA zone; a repeated hour (daylight saving) "
                    "of a timestamp cursor is not widened: set cursor_timezone to the zone "
                    "its values are written in", name)
        return None


def parse_local(text: str) -> datetime | None:
    """PostgreSQL's ISO text of a ``timestamp`` (None for infinity or BC values)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def local_lower(watermark: str, boundary: timedelta, zone: ZoneInfo | None) -> str | None:
    """For a ``timestamp without time zone`` cursor: the lower bound as text, widened
    across a repeated hour; None when the text cannot be parsed or the bound falls before
    year 1 (let PostgreSQL subtract: its timestamps go back to 4714 BC)."""
    w = parse_local(watermark)
    if w is None:
        return None
    try:
        lower = w - boundary
        start = repeated_from(w, zone) if zone is not None else None
        if start is not None:
            lower = min(lower, start - boundary)
    except OverflowError:  # before datetime's year 1
        return None
    return lower.isoformat(sep=" ")


#: the first value of each integer cursor type: a lower bound below it reads from the start
#: (an oid reads -5 as 4294967291, the others refuse it)
INT_FIRST = {"smallint": -2**15, "integer": -2**31, "bigint": -2**63, "oid": 0}


def before_first(conn: psycopg.Connection, watermark: str, back: timedelta,
                 cursor_kind: str) -> bool:
    """Whether ``watermark - back`` is before 4714-11-24 BC, the first date and timestamp
    PostgreSQL holds (subtracting would fail: the difference of the two is computed); a
    watermark of -infinity (every row read had it) is before everything."""
    if watermark.lower() == "-infinity":
        return True
    row = conn.execute(sql.SQL(
        "SELECT {w}::timestamp - '4714-11-24 00:00:00 BC'::timestamp < {b}::interval").format(
            w=_typed(watermark, cursor_kind),
            b=sql.Literal(f"{back // timedelta(microseconds=1)} microseconds"))).fetchone()
    return bool(row and row[0])


def bound(watermark: str, back: timedelta | int, cursor_kind: str,
          zone: ZoneInfo | None, first: int | None = None) -> sql.Composable | None:
    """SQL for ``watermark - back`` in the cursor's type, compared at full precision; None
    when it lies below ``first``, the integer cursor type's first value (no lower bound)."""
    if cursor_kind == "timestamp" and isinstance(back, timedelta):
        text = local_lower(watermark, back, zone)
        if text is not None:
            return sql.Literal(text)
    if isinstance(back, timedelta):
        us = back // timedelta(microseconds=1)
        return sql.SQL("({} - {}::interval)").format(
            _typed(watermark, cursor_kind), sql.Literal(f"{us} microseconds"))
    # integers and numeric: exact decimal arithmetic here, the result an untyped literal
    # that PostgreSQL reads as the cursor column's own type (so its index is used)
    lower = exact_minus(watermark, back)
    if first is not None and Decimal(lower) < first:
        return None
    return sql.Literal(lower)


def exact_minus(number: str, back: int) -> str:
    """``number - back`` with every digit (decimal's default context keeps 28)."""
    with localcontext(prec=len(number) + 25):
        return str(Decimal(number) - back)


def _typed(text: str, kind: str) -> sql.Composable:
    cast = {"timestamptz": "timestamptz", "timestamp": "timestamp", "date": "date"}[kind]
    return sql.SQL("{}::{}").format(sql.Literal(text), sql.SQL(cast))


def xmin_comparable(prev_xmin: int | None, snapshot_xmax: int) -> bool:
    """Whether rows committed since ``prev_xmin`` can be told by their 32-bit ``xmin`` in a
    snapshot whose xmax is ``snapshot_xmax``: no previous xmin, one from the future
    (another server's state) or one 2^32 transactions back or more cannot."""
    if prev_xmin is None:
        return False
    reach = snapshot_xmax - prev_xmin
    return 0 <= reach < XID_SPACE - 1


def committed_since(prev_xmin: int | None, snapshot_xmax: int) -> sql.Composable:
    """A row condition: the row's inserting transaction is at or after ``prev_xmin``.

    ``xmin`` is 32 bits and wraps around. Every row the snapshot sees was written by a
    transaction before the snapshot's xmax (64 bits), so the row's full ID is xmax minus
    ``(xmax - xmin) mod 2^32``; it is at or after prev_xmin when that distance is at most
    ``xmax - prev_xmin``. Errors only go the safe way: a frozen row older than 2^32
    transactions may be read again, never a recent one left out.
    """
    if not xmin_comparable(prev_xmin, snapshot_xmax):
        return sql.SQL("true")
    assert prev_xmin is not None
    reach = snapshot_xmax - prev_xmin
    return sql.SQL("((({ref} - xmin::text::bigint) % {space} + {space}) % {space} "
                   "<= {reach})").format(ref=sql.Literal(snapshot_xmax % XID_SPACE),
                                         space=sql.Literal(XID_SPACE),
                                         reach=sql.Literal(reach))
