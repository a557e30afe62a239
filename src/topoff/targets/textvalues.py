"""The checks of a text PostgreSQL's output form (textforms.py) lets through that no regular
expression sees: whether the value it spells is one PostgreSQL's input function takes and
writes back so.

Each check takes a text already in its type's form and says whether it is such a value: a
cidr without bits right of its mask; a range with its bounds in order, not empty unless
written ``empty``, its dates and timestamps real days within PostgreSQL's range, a date
bound of a daterange written ``[a,b)``; a multirange's ranges in order, neither
overlapping nor adjacent (PostgreSQL merges them); an interval whose months, days and
microseconds fit PostgreSQL's integers; a tsvector's lexemes sorted and unique, each one's
positions too; a txid_snapshot's or pg_snapshot's ``xmin:xmax:xip,...`` with
0 < xmin <= xip < xmax, the xips sorted and unique; a date's or timestamp's day within its
month and PostgreSQL's range (the elements of a date[] or timestamp[]); a
multi-dimensional array's text well formed and rectangular. They run in Python, once a
value, for these rare types only (an interval only when it holds a number of 9 digits or
more, a date or timestamp when its day is past the 28th...: the rule's ``suspect``); a
check never raises, a text it cannot read is refused.
"""

from __future__ import annotations

import functools
import itertools
import re
import socket
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from topoff.targets import textgeometry, textparsed
from topoff.targets.textforms import element_rule

_I32 = 2**31
_I64 = 2**63
_DAY_US = 86_400_000_000
_BIG = 10**15  # above every date's ordinal: the infinity values of dates and timestamps


def _ordinal(year: int, month: int, day: int) -> int | None:
    """The day number of a proleptic Gregorian date (astronomical ``year``: 1 BC is 0), or
    None when the day is beyond its month."""
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= days[month - 1]:
        return None
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy


#: 4714-11-24 BC and 5874897-12-31: PostgreSQL's first and last dates
_DATE_FIRST = _ordinal(-4713, 11, 24) or 0
_DATE_LAST = _ordinal(5874897, 12, 31) or 0
#: Python's date.toordinal() to :func:`_ordinal`
_TO_ORDINAL = (_ordinal(1, 1, 1) or 0) - 1
_STAMP_LAST = ((_ordinal(294276, 12, 31) or 0) + 1) * _DAY_US - 1
_DATE_RE = re.compile(r"([0-9]+)-([0-9]{2})-([0-9]{2})( BC)?")
_STAMP_RE = re.compile(
    r"([0-9]+)-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(\+00)?( BC)?")


def _day(m: re.Match[str]) -> int | None:
    year = int(m[1])
    if year < 1:  # PostgreSQL has no year 0
        return None
    return _ordinal(1 - year if m.group(m.re.groups) else year, int(m[2]), int(m[3]))


def _date(text: str) -> int | None:
    """A date bound's ordinal (±infinity beyond every date), or None: no date."""
    if text in ("infinity", "-infinity"):
        return -_BIG if text[0] == "-" else _BIG
    if len(text) == 10 and text[4] == text[7] == "-":  # 4 digits AD: Python's date, quicker
        return date.fromisoformat(text).toordinal() + _TO_ORDINAL
    m = _DATE_RE.fullmatch(text)
    d = _day(m) if m else None
    return d if d is not None and _DATE_FIRST <= d <= _DATE_LAST else None


def _stamp(text: str) -> int | None:
    """A timestamp bound in microseconds (±infinity beyond every one), or None: none, or
    24:00:00, which PostgreSQL writes as the next day."""
    if text in ("infinity", "-infinity"):
        return -_BIG * _DAY_US if text[0] == "-" else _BIG * _DAY_US
    if text[4] == "-" and text[-1] != "C" and text[11:13] != "24":  # 4 digits AD: quicker
        t = datetime.fromisoformat(text.removesuffix("+00"))
        return (t.toordinal() + _TO_ORDINAL) * _DAY_US + (
            (t.hour * 60 + t.minute) * 60 + t.second) * 10**6 + t.microsecond
    m = _STAMP_RE.fullmatch(text)
    d = _day(m) if m else None
    if m is None or d is None or int(m[4]) > 23:
        return None
    us = d * _DAY_US + (int(m[4]) * 3600 + int(m[5]) * 60 + int(m[6])) * 10**6 \
        + int(((m[7] or ".")[1:] + "000000")[:6])
    return us if _DATE_FIRST * _DAY_US <= us <= _STAMP_LAST else None


_Bound = tuple[Any, bool] | None  # (its order, inclusive); None: unbounded


def _numeric(text: str) -> tuple[int, Any]:
    """A numrange bound's place in numeric's order: -Infinity, numbers, Infinity, NaN."""
    if text == "NaN":
        return (2, 0)
    if text.endswith("Infinity"):
        return (-1 if text[0] == "-" else 1, 0)
    return (0, Decimal(text))


_KEYS: dict[str, Callable[[str], Any]] = {
    "int4range": int, "int8range": int, "numrange": _numeric, "daterange": _date,
    "tsrange": _stamp, "tstzrange": _stamp,
}


def _bounds(kind: str, text: str) -> tuple[_Bound, _Bound] | None:
    """A non-empty range's bounds, or None: no valid range as PostgreSQL writes it."""
    key = _KEYS[kind]
    lower_text, _, upper_text = text[1:-1].partition(",")
    bounds: list[_Bound] = []
    for t, inclusive in ((lower_text, text[0] == "["), (upper_text, text[-1] == "]")):
        if t == "":
            bounds.append(None)
            continue
        value = key(t.strip('"'))
        if value is None:
            return None
        bounds.append((value, inclusive))
    lower, upper = bounds
    if kind == "daterange":  # canonical: a finite date bound is [a,b)
        for b, want in ((lower, True), (upper, False)):
            if b is not None and abs(b[0]) != _BIG and b[1] != want:
                return None
    if lower is not None and upper is not None:
        lo, hi = lower[0], upper[0]
        if lo > hi or (lo == hi and not (lower[1] and upper[1])):
            return None
    return lower, upper


def range_ok(kind: str, text: str) -> bool:
    return text == "empty" or _bounds(kind, text) is not None


_RANGE_RE = re.compile(r"[\[(][^\])]*[\])]")


def multirange_ok(kind: str, text: str) -> bool:
    """Its ranges each valid and not empty, in order, none overlapping or adjacent."""
    before: _Bound = None
    for i, m in enumerate(_RANGE_RE.finditer(text)):
        b = _bounds(kind, m[0])
        if b is None:
            return False
        lower, upper = b
        if i:
            if before is None or lower is None:
                return False
            (u, u_in), (lo, lo_in) = before, lower
            if u > lo or (u == lo and (u_in or lo_in)):
                return False
        before = upper
    return True


def cidr_ok(text: str) -> bool:
    """No bit of the address right of its mask (cidr_in refuses it)."""
    address, _, mask = text.partition("/")
    if ":" in address:
        bits, value = 128, int.from_bytes(socket.inet_pton(socket.AF_INET6, address))
    else:
        bits, value = 32, int.from_bytes(socket.inet_aton(address))
    return value & ((1 << (bits - int(mask))) - 1) == 0


_FIELD = re.compile(r"([+-]?[0-9]+) (year|mon|day)s?")
_CLOCK = re.compile(r"([+-]?)([0-9]+):([0-9]{2}):([0-9]{2})(\.[0-9]+)?$")


def interval_ok(text: str) -> bool:
    """Months (of the years and months), days and microseconds within PostgreSQL's
    int32, int32 and int64 (-2^63 is none: interval_in refuses it too)."""
    fields = {k: int(v) for v, k in _FIELD.findall(text)}
    months = fields.get("year", 0) * 12 + fields.get("mon", 0)
    if not -_I32 <= months < _I32 or not -_I32 <= fields.get("day", 0) < _I32:
        return False
    m = _CLOCK.search(text)
    if m:
        us = (int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])) * 10**6 \
            + int(((m[5] or ".")[1:] + "000000")[:6])
        if us >= _I64:
            return False
    return True


_LEXEME = re.compile(r"'((?:[^'\\]|''|\\\\)+)'(?::([0-9ABC,]+))?")


def tsvector_ok(text: str) -> bool:
    """Lexemes in byte order, none twice; each one's positions ascending, none twice."""
    found = _LEXEME.findall(text)
    # (the order of Python's strings is the order of their UTF-8 bytes)
    words = [w.replace("''", "'").replace("\\\\", "\\") if "'" in w or "\\" in w else w
             for w, _ in found]
    if any(a >= b for a, b in itertools.pairwise(words)):
        return False
    for _, where in found:
        if "," in where:
            positions = [int(p.rstrip("ABC")) for p in where.split(",")]
            if any(a >= b for a, b in itertools.pairwise(positions)):
                return False
    return True


def snapshot_ok(text: str) -> bool:
    """``xmin:xmax:xip,...``: 0 < xmin <= xmax, xmin <= each xip < xmax, ascending."""
    xmin_text, xmax_text, xips = text.split(":")
    xmin, xmax = int(xmin_text), int(xmax_text)
    previous = xmin - 1
    for x in (int(v) for v in xips.split(",") if v):
        if not previous < x < xmax:
            return False
        previous = x
    return 0 < xmin <= xmax


#: name (Rule.exact) -> its check, of a text already in its type's form
CHECKS: dict[str, Callable[[str], bool]] = {
    "cidr": cidr_ok, "interval": interval_ok, "tsvector": tsvector_ok,
    "txid_snapshot": snapshot_ok, "pg_snapshot": snapshot_ok,
    "date": lambda t: _date(t) is not None, "timestamp": lambda t: _stamp(t) is not None,
    **{k: functools.partial(range_ok, k) for k in _KEYS},
    **{k.replace("range", "multirange"): functools.partial(multirange_ok, k) for k in _KEYS},
    "xml": textparsed.xml_ok, "tsquery": textparsed.tsquery_ok, "json": textparsed.json_ok,
    "jsonb": textparsed.jsonb_ok, "float4": textparsed.float4_ok,
    "float8": textparsed.float8_ok, "box": textgeometry.box_ok,
    "circle": textgeometry.circle_ok, "line": textgeometry.line_ok,
}


def exact(name: str, text: str) -> bool:
    """Whether ``text`` (in the form of its type) passes the check ``name``; never raises.
    ``array:<type>``: a multi-dimensional array's text (:func:`_array_ok`) whose elements
    are in the form of ``<type>`` (textforms.py) and pass its check."""
    try:
        if name.startswith("array:"):
            return _array_ok(text, _element_check(name[6:]), ";" if name == "array:box" else ",")
        return CHECKS[name](text)
    except (ValueError, ArithmeticError, LookupError, TypeError, RecursionError):
        return False


def _integer(bits: int) -> Callable[[str], bool]:
    return lambda e: _INTEGER.fullmatch(e) is not None and -(2 ** bits) <= int(e) < 2 ** bits


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
#: the elements of the types DuckDB lists hold, as array_out writes them
_OWN: dict[str, Callable[[str], bool]] = {
    "smallint": _integer(15), "integer": _integer(31), "bigint": _integer(63),
    "boolean": lambda e: e in ("t", "f"),
}


@functools.cache
def _element_check(pg_type: str) -> Callable[[str], bool] | None:
    r = element_rule(pg_type)
    if r is None:
        return _OWN.get(pg_type)
    form = re.compile(r.pattern) if r.pattern else None
    # labels (enums) are checked by the targets themselves; lengths are character counts

    def ok(e: str) -> bool:
        if form is not None and not form.fullmatch(e):
            return False
        if r.length is not None and len(e) != r.length:
            return False
        if r.longest is not None and len(e) > r.longest:
            return False
        return r.exact is None or exact(r.exact, e)
    return ok


#: an element as array_out writes it (quoted, or none of these characters), by delimiter
_ELEMENT = {d: re.compile(r'"(?:[^"\\]|\\.)*"|[^{}"\\ \t\n\r\v\f' + d + "]+") for d in ",;"}
_DIMS = re.compile(r"((?:\[-?[0-9]+:-?[0-9]+\])+)=")


def _nested(text: str, pos: int, elements: list[str], delimiter: str,
            depth: int = 1) -> tuple[object, int]:
    """The shape of the array text at ``pos`` (``{``): a list of the shapes of its
    sub-arrays, or the number of its elements (appended to ``elements``, NULL left out);
    ValueError when malformed or deeper than PostgreSQL's 6 dimensions."""
    if text[pos] != "{" or depth > 6:
        raise ValueError(pos)
    pos += 1
    if text[pos] == "{":
        subs = []
        while True:
            shape, pos = _nested(text, pos, elements, delimiter, depth + 1)
            subs.append(shape)
            if text[pos] == "}":
                return subs, pos + 1
            if text[pos] != delimiter:
                raise ValueError(pos)
            pos += 1
    count = 0
    while True:
        m = _ELEMENT[delimiter].match(text, pos)
        if m is None:
            raise ValueError(pos)
        if m[0] != "NULL":
            elements.append(m[0][1:-1].replace('\\"', '"').replace("\\\\", "\\")
                            if m[0][0] == '"' else m[0])
        count, pos = count + 1, m.end()
        if text[pos] == "}":
            return count, pos + 1
        if text[pos] != delimiter:
            raise ValueError(pos)
        pos += 1


def _lengths(shape: object) -> list[int] | None:
    """Each dimension's length of a rectangular shape (None: not rectangular)."""
    if isinstance(shape, int):
        return [shape]
    assert isinstance(shape, list)
    inner = [_lengths(s) for s in shape]
    if any(i is None or i != inner[0] for i in inner):
        return None
    return [len(shape), *inner[0]]  # type: ignore[misc]


def _array_ok(text: str, element: Callable[[str], bool] | None = None,
             delimiter: str = ",") -> bool:
    """An array's text as array_out writes it (``{}``, ``{{1,2},{3,4}}``, ``[0:1]={a,b}``):
    well formed, rectangular, bounds (written only when one is not 1) matching its
    lengths, each element passing ``element``; ``delimiter``: ``;`` for a box[]."""
    m = _DIMS.match(text)
    body = text[m.end():] if m else text
    if body == "{}":
        return m is None
    elements: list[str] = []
    shape, end = _nested(body, 0, elements, delimiter)
    lengths = _lengths(shape)
    if end != len(body) or lengths is None:
        return False
    if m:
        pairs = [tuple(map(int, d.split(":"))) for d in m[1][1:-1].split("][")]
        if len(pairs) != len(lengths) or all(lo == 1 for lo, _ in pairs) or any(
                hi - lo + 1 != n or not -_I32 <= lo <= hi < _I32
                for (lo, hi), n in zip(pairs, lengths, strict=True)):
            return False
    return element is None or all(element(e) for e in elements)
