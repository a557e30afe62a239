"""Interval keys as PostgreSQL compares them. An Iceberg replica holds an interval as
PostgreSQL's text (IntervalStyle postgres: ``1 year 2 mons -3 days +04:05:06.5``; a
MariaDB TIME as ``-838:59:59``), and PostgreSQL takes two intervals as equal when their
spans are, counting a month as 30 days and a day as 24 hours: ``1 day`` and ``24:00:00``,
``1 mon`` and ``30 days``, ``1 year`` and ``360 days`` are one key. :func:`span_text`
gives each value one text per span, so keys match as the source matches them."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_DAY = 86_400_000_000  # microseconds
_FORM = (r"^(?:(?P<y>[-+]?\d+) years? ?)?(?:(?P<mo>[-+]?\d+) mons? ?)?"
         r"(?:(?P<d>[-+]?\d+) days? ?)?"
         r"(?:(?P<sign>[-+]?)(?P<h>\d+):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))?)?$")


def _int(parts: Any, name: str) -> Any:
    """Group ``name`` of the parsed values as int64 (0 where it is absent)."""
    text = pc.replace_substring(pc.struct_field(parts, name), "+", "")
    return pc.cast(pc.if_else(pc.equal(text, ""), "0", text), pa.int64())


def span_text(values: Any) -> Any:
    """``values`` (PostgreSQL's text of intervals) as ``<days> <microseconds>``: the span
    in whole days (months of 30) and the microseconds left of a day, 0 to a day less one.
    Equal spans give one text, different spans different texts. A text of no such form
    (``infinity``, ``-infinity``) is kept as it is: it is one value's only text."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if len(values) == 0:
        return values
    parts = pc.extract_regex(values, _FORM)
    valid = pc.fill_null(pc.is_valid(parts), False)
    months = pc.add(pc.multiply(_int(parts, "y"), 12), _int(parts, "mo"))
    days = pc.add(pc.multiply(months, 30), _int(parts, "d"))
    seconds = pc.add(pc.add(pc.multiply(_int(parts, "h"), 3600),
                            pc.multiply(_int(parts, "mi"), 60)), _int(parts, "s"))
    fraction = pc.cast(pc.utf8_rpad(pc.if_else(pc.equal(pc.struct_field(parts, "f"), ""), "0",
                                               pc.struct_field(parts, "f")), 6, "0"), pa.int64())
    # a sign of the time part covers all of it; unchecked arithmetic: -2^63 comes out whole
    micros = pc.add(pc.multiply(seconds, 1_000_000), fraction)
    micros = pc.if_else(pc.equal(pc.struct_field(parts, "sign"), "-"), pc.negate(micros),
                        micros)
    whole = pc.divide(micros, _DAY)  # toward zero: the rest may be negative
    rest = pc.subtract(micros, pc.multiply(whole, _DAY))
    below = pc.less(rest, 0)
    whole = pc.if_else(below, pc.subtract(whole, 1), whole)
    rest = pc.if_else(below, pc.add(rest, _DAY), rest)
    text = pc.binary_join_element_wise(pc.cast(pc.add(days, whole), pa.string()),
                                       pc.cast(rest, pa.string()), " ")
    return pc.if_else(valid, text, values.cast(pa.string()))
