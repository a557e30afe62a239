"""The dataset's column types in Iceberg, and the conversion of the CSV text PostgreSQL wrote
(COPY, with topoff's session settings) into Arrow arrays of those types.

| logical kind                      | Iceberg type                    | CSV text read as          |
|-----------------------------------|---------------------------------|---------------------------|
| bool                              | boolean                         | ``t`` / ``f``             |
| int 8, 16, 32 (unsigned 8, 16)    | int                             | cast                      |
| int 64, unsigned 32               | long                            | cast                      |
| unsigned int 64                   | decimal(20, 0)                  | cast                      |
| float 32 / 64                     | float / double                  | cast (NaN, ±Infinity kept)|
| decimal(p, s), 0 <= s <= p <= 38  | decimal(p, s)                   | cast, exact               |
| decimal, other p or s (p > 38)    | string                          | PostgreSQL's text         |
| timestamp with zone               | timestamptz (microseconds, UTC) | cast of ``... +00``       |
| timestamp without zone            | timestamp (microseconds)        | cast                      |
| date                              | date                            | cast                      |
| bytes                             | binary                          | the ``\\x`` hex form       |
| array of int / float / bool       | list<int / long / double / ...> | parsed from ``{1,2,NULL}``|
| any other 1-D array               | list<string>                    | parsed, elements as text  |
| json, text, enum, set, uuid, time, interval, bits, other | string   | as is, checked (below)    |

Every column is optional (Iceberg's ``required`` is not used: NOT NULL stays the source's
business). The type is decided per column, from the manifest's declared type. Values an
exact column's Iceberg type cannot hold (a BC date, ``infinity``, a year after 9999, a
``NaN`` numeric in a decimal(p,s) column, a multi-dimensional array or one with explicit
bounds) stop the load with an error naming the column and the value; nothing of that
publication is committed (docs/iceberg.md, "Types"). A text that is no value of the
column's declared type at all (``abc`` in an integer, ``2023-02-30``, ``{1,2``, ``1e39`` in
a real: PostgreSQL refuses it too) raises :class:`Unparsable`: the dataset is damaged, as
does a text held as it is (inet, uuid, interval, a range...) in no form PostgreSQL's output
function writes for its type (targets/textforms.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg import types as it

from topoff.dataset.logical import Logical
from topoff.dataset.manifest import Column
from topoff.pgtypes import family, parse_type
from topoff.targets.iceberg.jsonvalid import first_invalid
from topoff.targets.textforms import NO_FRACTION, Rule, element_rule, rule
from topoff.targets.textvalues import exact

#: Iceberg's decimal holds at most 38 digits; wider decimals are kept as text
MAX_DECIMAL_DIGITS = 38


def _scalar(lg: Logical) -> it.PrimitiveType:
    k = lg.kind
    if k == "bool":
        return it.BooleanType()
    if k == "int":
        bits = (lg.bits or 64) * (2 if lg.unsigned else 1)
        if bits > 64:
            return it.DecimalType(20, 0)
        return it.IntegerType() if bits <= 32 else it.LongType()
    if k == "float":
        return it.FloatType() if lg.bits == 32 else it.DoubleType()
    if k == "decimal":
        p, s = lg.precision, lg.scale or 0
        if p is not None and p <= MAX_DECIMAL_DIGITS and 0 <= s <= p:
            return it.DecimalType(p, s)
        return it.StringType()
    if k == "timestamp":
        return it.TimestamptzType() if lg.zone else it.TimestampType()
    if k == "date":
        return it.DateType()
    if k == "bytes":
        return it.BinaryType()
    return it.StringType()


def _element(lg: Logical) -> it.PrimitiveType:
    """Array elements: numbers and booleans keep their type, everything else is text."""
    if lg.kind in ("int", "float", "bool"):
        return _scalar(lg)
    return it.StringType()


def iceberg_type(c: Column) -> it.IcebergType:
    lg = c.logical
    if lg.kind == "array":
        assert lg.element is not None
        return it.ListType(element_id=0, element_type=_element(lg.element),
                           element_required=False)
    return _scalar(lg)


_ARROW: dict[type, pa.DataType] = {
    it.BooleanType: pa.bool_(), it.IntegerType: pa.int32(), it.LongType: pa.int64(),
    it.FloatType: pa.float32(), it.DoubleType: pa.float64(), it.StringType: pa.large_string(),
    it.DateType: pa.date32(), it.BinaryType: pa.large_binary(),
    it.TimestampType: pa.timestamp("us"), it.TimestamptzType: pa.timestamp("us", tz="UTC"),
}


def arrow_type(t: it.IcebergType) -> pa.DataType:
    if isinstance(t, it.DecimalType):
        return pa.decimal128(t.precision, t.scale)
    if isinstance(t, it.ListType):
        return pa.large_list(pa.field("element", arrow_type(t.element_type)))
    return _ARROW[type(t)]


class ValueError_(ValueError):
    """A CSV value the column's Iceberg type cannot hold."""


class Unparsable(ValueError_):
    """A CSV text that is no value of the column's declared type (the source could not
    have written it: a damaged or hostile dataset), not a value Iceberg cannot hold."""


#: texts of a valid date or timestamp an Iceberg column cannot hold: BC, infinite, year > 9999
_NO_ICEBERG_TIME = r"^(-?infinity|\d{4}-\d\d-\d\d( [^ ]+)? BC|\d{5,}-\d\d-\d\d( [^ ]+)?)$"
#: the start of a valid array text an Iceberg list cannot hold: several dimensions, bounds
_NO_ICEBERG_LIST = re.compile(r"\{\{|(\[-?\d+:-?\d+\])+=")


def array_delimiter(c: Column) -> str:
    """The delimiter between the elements of ``c``'s array text: ``;`` for ``box[]`` (a
    box's own text holds commas: ``{(1,1),(0,0);(2,2),(1,1)}``), else ``,``."""
    return ";" if c.type.removesuffix("[]").strip() == "box" else ","


def parse_pg_array(text: str, delimiter: str = ",") -> list[str | None]:
    """The elements of PostgreSQL's text of a one-dimensional array (``{a,"b c",NULL}``),
    whose elements are separated by ``delimiter`` (see :func:`array_delimiter`)."""
    if len(text) < 2 or text[0] != "{" or text[-1] != "}":
        raise ValueError_(f"not a one-dimensional array: {text[:40]!r}")
    body = text[1:-1]
    out: list[str | None] = []
    if body == "":
        return out
    i, n = 0, len(body)
    while True:
        if i < n and body[i] == '"':
            i += 1
            buf = []
            while i < n and body[i] != '"':
                if body[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(body[i])
                i += 1
            if i >= n:
                raise ValueError_("unterminated quoted array element")
            i += 1
            out.append("".join(buf))
        else:
            j = i
            while j < n and body[j] != delimiter:
                if body[j] in "{}\"\\":
                    raise ValueError_("multi-dimensional or malformed array value")
                j += 1
            item = body[i:j].strip()
            if not item:  # array_in refuses it: an empty string is written ""
                raise ValueError_("malformed array value (an empty element)")
            out.append(None if item.upper() == "NULL" else item)
            i = j
        if i >= n:
            return out
        if body[i] != delimiter:
            raise ValueError_("malformed array value")
        i += 1


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0].split(": expected")[0][:160]


def array_element(c: Column) -> str:
    """The PostgreSQL type of the elements of ``c`` (an array), else ``""``."""
    f = family(c.type, c.enum)
    return f.element.pg_type if f.element is not None else ""


def _array(text: str, delimiter: str, element: str) -> list[str | None]:
    """An array's elements; a valid multi-dimensional array (``element``'s, textvalues.py)
    ValueError_: Iceberg has no type for it; any other text Unparsable."""
    try:
        return parse_pg_array(text, delimiter)
    except ValueError_ as e:
        if not _NO_ICEBERG_LIST.match(text) or not exact("array:" + element, text):
            raise Unparsable(f"{text[:60]!r}: {str(e).split(':')[0]}") from None
        raise ValueError_(f"{text[:60]!r}: {str(e).split(':')[0]} (Iceberg's lists have one "
                          "dimension and start at 1)") from None


def _cast(arr: pa.Array, t: it.IcebergType) -> pa.Array:
    target = arrow_type(t)
    if isinstance(t, it.StringType):
        return arr.cast(target)
    if isinstance(t, it.BooleanType):
        bad = pc.and_(pc.is_valid(arr), pc.invert(pc.is_in(arr, pa.array(["t", "f"]))))
        if pc.any(bad).as_py():
            shown = pc.filter(arr, bad)[0].as_py()
            raise Unparsable(f"{shown[:40]!r} is a boolean that is neither t nor f")
        return pc.equal(arr, "t")
    if isinstance(t, it.BinaryType):
        values: list[bytes | None] = []
        for v in arr.to_pylist():
            if v is None:
                values.append(None)
            else:
                try:
                    if not v.startswith("\\x"):
                        raise ValueError
                    values.append(bytes.fromhex(v[2:]))
                except ValueError:
                    raise Unparsable(f"{v[:40]!r}: bytea not in its \\x hex form") from None
        return pa.array(values, type=target)
    if isinstance(t, it.DecimalType):
        try:
            return pc.cast(arr, target)
        except pa.ArrowInvalid as e:
            special = pc.match_substring_regex(arr, r"^[+-]?(nan|inf|infinity)$",
                                               ignore_case=True)
            _parsed(pc.filter(arr, pc.invert(pc.fill_null(special, False))), target)
            raise ValueError_(f"{_first_line(e)} (NaN and infinity fit only an unconstrained "
                              "numeric column, which an Iceberg replica holds as text)"
                              ) from None
    if isinstance(t, it.DateType | it.TimestampType | it.TimestamptzType):
        try:
            return _years(arr, pc.cast(arr, target))
        except pa.ArrowInvalid as e:
            valid = pc.match_substring_regex(arr, _NO_ICEBERG_TIME)
            _parsed(pc.filter(arr, pc.invert(pc.fill_null(valid, False))), target)
            raise ValueError_(f"{_first_line(e)} {YEARS}") from None
    if isinstance(t, it.FloatType | it.DoubleType):
        return _float(arr, _parsed(arr, target))
    return _parsed(arr, target)


YEARS = "(an Iceberg replica holds the years 1 to 9999: no BC date, no infinity, no year 10000)"


def _years(text: pa.Array, value: pa.Array) -> pa.Array:
    """``value`` (the cast of ``text``) when every value is in the years 1 to 9999 (Arrow
    reads a year 0, and an offset moves an instant past either end; pyiceberg writes a
    file's bounds through Python's datetime, which holds those years only)."""
    first, last = (datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
    if pa.types.is_date(value.type):
        low, high = pa.scalar(first.date(), value.type), pa.scalar(last.date(), value.type)
    else:
        zone = UTC if value.type.tz else None
        low = pa.scalar(first.replace(tzinfo=zone), value.type)
        high = pa.scalar(last.replace(tzinfo=zone), value.type)
    out = pc.or_(pc.less(value, low), pc.greater(value, high))
    if not pc.any(out).as_py():
        return value
    shown = pc.filter(text, out)[0].as_py()
    if shown.startswith("0000-"):  # no year PostgreSQL writes (1 BC is 0001 BC)
        raise Unparsable(f"{shown[:40]!r} has a year 0")
    raise ValueError_(f"{shown[:40]!r} falls outside the years 1 to 9999 in UTC {YEARS}")


def _parsed(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """``arr`` cast to ``target``; Unparsable when a text is no value of that type."""
    try:
        return pc.cast(arr, target)
    except pa.ArrowInvalid as e:
        raise Unparsable(_first_line(e)) from None


def _float(text: pa.Array, value: pa.Array) -> pa.Array:
    """``value`` (the cast of ``text``); ValueError_ when a finite text became an infinity
    or a non-zero one zero (out of the type's range: PostgreSQL refuses such a value, and
    Arrow rounds it silently)."""
    inf, zero = pc.is_inf(value), pc.equal(value, 0)
    suspect = pc.or_(inf, zero)
    if not pc.any(suspect).as_py():  # most batches; else only these texts are read again
        return value
    text, inf, zero = (pc.filter(a, suspect) for a in (text, inf, zero))
    infinity = pc.match_substring_regex(text, r"^\s*[+-]?inf(inity)?\s*$", ignore_case=True)
    nonzero = pc.match_substring_regex(text, r"^[^eE]*[1-9]")
    bad = pc.or_(pc.and_(inf, pc.invert(infinity)), pc.and_(zero, nonzero))
    if pc.any(bad).as_py():
        shown = pc.filter(text, bad)[0].as_py()
        raise Unparsable(f"{shown[:40]!r} is out of the range of {value.type} (PostgreSQL "
                         "refuses it too)")
    return value


def form_of(c: Column) -> Rule | None:
    """The form of the texts of ``c`` (an array's: of its elements) an Iceberg replica holds
    as they are: PostgreSQL's output form of its type (textforms.py), or None."""
    f = family(c.type, c.enum)
    one = f.element or f
    if one.kind == "enum" and c.enum is not None and parse_type(one.pg_type).user:
        return Rule("", labels=tuple(c.enum))  # (a MariaDB ENUM is text: it may hold '')
    return element_rule(one.pg_type) if f.element is not None else rule(one.pg_type)


def _formed(arr: pa.Array, r: Rule) -> None:
    """Unparsable unless every text of ``arr`` is in the form of ``r``."""
    if r.pattern == NO_FRACTION:  # a MariaDB DATETIME's: a cheaper test than a regex
        ok = pc.invert(pc.match_substring(arr, "."))
    else:
        ok = pc.match_substring_regex(arr, f"^(?:{r.pattern})$") if r.pattern else None
    if r.labels is not None:
        ok = pc.is_in(arr, value_set=pa.array(r.labels, pa.string()))
    for n, test in ((r.length, pc.equal), (r.longest, pc.less_equal)):
        if n is not None:
            fits = test(pc.utf8_length(arr), n)
            ok = fits if ok is None else pc.and_(ok, fits)
    bad = None if ok is None else pc.and_(pc.is_valid(arr), pc.invert(pc.fill_null(ok, True)))
    if bad is not None and pc.any(bad).as_py():
        shown = pc.filter(arr, bad)[0].as_py()
        raise Unparsable(f"{shown[:40]!r} is not a value as PostgreSQL writes its type")
    if r.json and (shown := first_invalid(arr)) is not None:  # brackets unbalanced...
        raise Unparsable(f"{shown[:40]!r} is not a value as PostgreSQL writes its type")
    if r.exact is not None:  # the value each text in its form spells (textvalues.py)
        some = pc.filter(arr, pc.match_substring_regex(arr, r.suspect)) if r.suspect \
            else arr.drop_null()
        for v in some.to_pylist():
            if v is not None and not exact(r.exact, v):
                raise Unparsable(f"{v[:40]!r} is not a value as PostgreSQL writes its type")


def convert(arr: pa.Array, t: it.IcebergType, delimiter: str = ",",
            form: Rule | None = None, element: str = "") -> pa.Array:
    """The CSV text of one column (strings, None for NULL) as an Arrow array of type ``t``
    (an array's elements, of the PostgreSQL type ``element``, separated by ``delimiter``,
    see :func:`array_delimiter`); texts held as they are must be in ``form``
    (:func:`form_of`), else Unparsable."""
    try:
        if isinstance(t, it.ListType):
            lists = [None if v is None else _array(v, delimiter, element)
                     for v in arr.to_pylist()]
            flat = pa.array([e for v in lists if v is not None for e in v], type=pa.string())
            if form is not None and isinstance(t.element_type, it.StringType):
                _formed(flat, form)
            values = _cast(flat, t.element_type)
            offsets, pos = [], 0
            for v in lists:
                offsets.append(pos)
                pos += len(v) if v is not None else 0
            offsets.append(pos)
            mask = pa.array([v is None for v in lists])
            return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), values,
                                                 type=arrow_type(t), mask=mask)
        if form is not None and isinstance(t, it.StringType | it.TimestampType
                                           | it.TimestamptzType):
            _formed(arr, form)
        return _cast(arr, t)
    except ValueError_ as e:
        raise type(e)(str(e).splitlines()[0][:200]) from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
        raise ValueError_(str(e).splitlines()[0][:200]) from None


def describe(t: Any) -> str:
    return str(t)
