"""The output forms of the PostgreSQL types DuckDB and Iceberg replicas hold as text.

A dataset is untrusted: a column declared ``inet`` may hold ``not an address``, which a
PostgreSQL replica's COPY refuses. The DuckDB and Iceberg targets keep such a column's text
as it is, so they check it against the text PostgreSQL's output function writes for a
valid value, in the dataset's session settings (DateStyle ISO, IntervalStyle postgres,
TimeZone UTC, lc_monetary C, extra_float_digits 1: docs/dataset-format.md), and refuse any
other text as a damaged publication (exit 6). Each rule is one RE2 expression, matched
whole, by DuckDB's ``regexp_full_match`` and Arrow's ``match_substring_regex`` alike.

What a rule checks is the form and the range of the numbers in it (an inet's octets, a
money amount, an int4range's bounds, an interval's fields, a bit string's length); what
it cannot see (a cidr's bits right of its mask, a range's bounds in order, a date's day
within its month in a range, a tsvector's lexemes sorted...) is checked by the Python
function its ``exact`` names (textvalues.py). A text PostgreSQL reads in another spelling
than its own (``192.168.000.001``, ``1.5`` as money) is refused, never kept as a text
PostgreSQL would not have written. xml and tsquery have no form but their check as
values (textparsed.py); jsonpath, composite, extension and user-defined types have no rule:
they are kept as they are (docs/targets.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from topoff.pgtypes import TypeNameError, parse_type


def _below(limit: str) -> list[str]:
    """Texts of ``limit``'s shape (its digits as digits, its other characters as they
    are) that read as a smaller number, the first digit not 0."""
    out = []
    for i, ch in enumerate(limit):
        low = 1 if i == 0 else 0
        if ch.isdigit() and int(ch) > low:
            rest = "".join("[0-9]" if c.isdigit() else _esc(c) for c in limit[i + 1:])
            out.append(_esc_text(limit[:i]) + f"[{low}-{int(ch) - 1}]" + rest)
    return out


def upto(limit: str) -> str:
    """A number from 0 to ``limit`` (digits) as PostgreSQL writes it: no leading zero."""
    shorter = [f"[1-9][0-9]{{0,{len(limit) - 2}}}"] if len(limit) > 1 else []
    return "(" + "|".join(["0", *shorter, *_below(limit), limit]) + ")"


def _esc(c: str) -> str:
    return "\\" + c if c in r".$\^*+?()[]{}|" else c


def _esc_text(s: str) -> str:
    return "".join(_esc(c) for c in s)


#: cash_out in lc_monetary C: -$1,234.56, at most 92,233,720,368,547,758.07 (.08 below 0)
_CASH_TOP = "92,233,720,368,547,758"
_MONEY = (r"-?\$(0|[1-9][0-9]{0,2}(,[0-9]{3}){0,4}|[1-9](,[0-9]{3}){5}|"
          + "|".join(_below(_CASH_TOP)) + r")\.[0-9]{2}|"
          + rf"-?\${_esc_text(_CASH_TOP)}\.0[0-7]|-\${_esc_text(_CASH_TOP)}\.08")


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = r"[0-9a-f]{1,4}"
#: an IPv6 address as PostgreSQL writes it: lower case, at most one ``::``, the last 32
#: bits possibly as IPv4 (``::ffff:1.2.3.4``)
_V6 = ("(" + "|".join([
    rf"({_H}:){{7}}{_H}", rf"({_H}:){{6}}{_V4}",
    *[rf"({_H}(:{_H}){{0,{k}}})?::({_H}(:{_H}){{0,{5 - k}}}:)?{_H}" for k in range(6)],
    *[rf"({_H}(:{_H}){{0,{k}}})?::({_H}:){{0,{4 - k}}}{_V4}" for k in range(5)],
    rf"({_H}(:{_H}){{0,6}})?::",
]) + ")")
_MASK4 = r"/(3[0-2]|[12]?[0-9])"
_MASK6 = r"/(12[0-8]|1[01][0-9]|[1-9]?[0-9])"
_INT4 = rf"-?{upto('2147483647')}|-2147483648"
_INT8 = rf"-?{upto('9223372036854775807')}|-9223372036854775808"
#: float8out with extra_float_digits > 0: the shortest text that reads back exactly
_FLOAT = r"(-?[0-9]+(\.[0-9]+)?(e[+-][0-9]{2,3})?|-?Infinity|NaN)"
_POINT = rf"\({_FLOAT},{_FLOAT}\)"
_NUMERIC = r"(-?[1-9][0-9]*(\.[0-9]+)?|-?0\.[0-9]*[1-9][0-9]*|0(\.[0-9]+)?|-?Infinity)"
_YEAR = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3,6})"
_DATE = rf"{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{0,5}[1-9])?"
_TIME = rf"({_CLOCK}|24:00:00)"
_OFFSET = r"[+-](0[0-9]|1[0-5])(:[0-5][0-9](:[0-5][0-9])?)?"
_STAMP = rf"{_DATE} {_TIME}"
_INFINITY = r"-?infinity"
#: interval_out, IntervalStyle postgres: years (months of the years and months within
#: PostgreSQL's int32), months below 12, days of an int32, then the time of day's hours
#: (a MariaDB TIME: ``-838:59:59``); zero is ``00:00:00``
_SIGNED = r"[+-]?"
_YEARS = rf"{_SIGNED}{upto('178956970')} years?"
_MONS = rf"{_SIGNED}([0-9]|1[01]) mons?"
_DAYS = rf"{_SIGNED}{upto('2147483648')} days?"
_INTERVAL_DATE = rf"({_YEARS}( {_MONS})?( {_DAYS})?|{_MONS}( {_DAYS})?|{_DAYS})"
_INTERVAL_TIME = (rf"{_SIGNED}({upto('2562047788')}|[0-9]{{2}}):[0-5][0-9]:[0-5][0-9]"
                  rf"(\.[0-9]{{1,6}})?")
#: interval_out, IntervalStyle postgres (``-1 years +2 mons 3 days -04:05:06.5``): years
#: within the int32 of months, months below 12, days of an int32, hours of the int64 of
#: microseconds; zero is ``00:00:00`` (a MariaDB TIME: ``-838:59:59``)
_INTERVAL = (rf"(?:{_INTERVAL_DATE} {_INTERVAL_TIME}|{_INTERVAL_TIME}|{_INTERVAL_DATE})")


def _range(lower: str, upper: str = "") -> str:
    """A range's text (``empty``, or two bounds, each possibly absent: infinite)."""
    upper = upper or lower
    return rf"(empty|(\(|[\[(]({lower})),(\)|({upper})[\])]))"


def _quoted(x: str) -> str:
    return rf'"({x})"'


_DATE_BOUND = _DATE + "|" + _quoted(_DATE + " BC") + "|" + _INFINITY
_STAMP_BOUND = _quoted(_STAMP + "( BC)?") + "|" + _INFINITY
_STAMPTZ_BOUND = _quoted(_STAMP + r"\+00( BC)?") + "|" + _INFINITY
_RANGES = {
    "int4range": rf"(empty|(\(|\[({_INT4})),(\)|({_INT4})\)))",
    "int8range": rf"(empty|(\(|\[({_INT8})),(\)|({_INT8})\)))",
    "numrange": _range(_NUMERIC + "|NaN"),
    "daterange": _range(_DATE_BOUND),
    "tsrange": _range(_STAMP_BOUND),
    "tstzrange": _range(_STAMPTZ_BOUND),
}
#: one tsvector lexeme: quoted, ' and \ doubled; positions 1 to 16383, weights A to C
_LEXEME = rf"'([^'\\]|''|\\\\)+'(:{upto('16383')}[ABC]?(,{upto('16383')}[ABC]?)*)?"

#: jsonb_out's tokens: strings escaped as escape_json does (\", \\, \b \f \n \r \t, \u00XX
#: for the other control characters), numbers as numeric_out writes them (no exponent, no
#: -0), ", " and ": " its only white space, ", " followed by a value (no comma trailing or
#: doubled: DuckDB's JSON reader takes them); the value's structure: Rule.json
_JSON_SCALAR = (r'"([^"\\\x00-\x1f]|\\["\\bfnrt]|\\u00(0[1-7bef]|1[0-9a-f]))*"'
                r"|-?[1-9][0-9]*(\.[0-9]+)?|-0\.[0-9]*[1-9][0-9]*|0(\.[0-9]+)?"
                r"|true|false|null")
_JSONB = rf"({_JSON_SCALAR}|[{{}}\[\]]|, ({_JSON_SCALAR}|[{{\[])|: )*"

_XID8 = upto("18446744073709551615")
_FORMS: dict[str, str] = {
    "inet": rf"{_V4}({_MASK4})?|{_V6}({_MASK6})?",
    "cidr": rf"{_V4}{_MASK4}|{_V6}{_MASK6}",
    "macaddr": r"[0-9a-f]{2}(:[0-9a-f]{2}){5}",
    "macaddr8": r"[0-9a-f]{2}(:[0-9a-f]{2}){7}",
    "money": _MONEY,
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "time": _TIME,
    "timetz": rf"{_TIME}{_OFFSET}",
    "interval": rf"{_INTERVAL}|{_INFINITY}",
    "point": _POINT,
    "lseg": rf"\[{_POINT},{_POINT}\]",
    "box": rf"{_POINT},{_POINT}",
    "path": rf"\[{_POINT}(,{_POINT})*\]|\({_POINT}(,{_POINT})*\)",
    "polygon": rf"\({_POINT}(,{_POINT})*\)",
    "circle": rf"<{_POINT},{_FLOAT}>",
    "line": rf"\{{{_FLOAT},{_FLOAT},{_FLOAT}\}}",
    "tsvector": rf"({_LEXEME}( {_LEXEME})*)?",
    "pg_lsn": r"[0-9A-F]{1,8}/[0-9A-F]{1,8}",
    "jsonb": _JSONB,
    "xid": upto("4294967295"), "cid": upto("4294967295"),
    "xid8": upto("18446744073709551615"),
    "tid": rf"\({upto('4294967295')},{upto('65535')}\)",
    **{snap: rf"{_XID8}:{_XID8}:({_XID8}(,{_XID8})*)?" for snap in ("txid_snapshot",
                                                                 "pg_snapshot")},
    **_RANGES,
    **{multi: rf"\{{({form}(,{form})*)?\}}".replace("empty|", "")
       for multi, form in ((r.replace("range", "multirange"), f) for r, f in _RANGES.items())},
}


#: the rule of a timestamp(0): no fraction of a second (a target may test it as no ".")
NO_FRACTION = r"[^.]*"


@dataclass(frozen=True)
class Rule:
    """A text form: ``pattern`` matched whole (RE2; empty: any text); ``length`` the exact
    number of characters (bit(n), character(n)), ``longest`` the most (varbit(n),
    varchar(n)); ``labels`` the only texts (a PostgreSQL enum's, for a target that holds
    them as text without the enum's own check)."""

    pattern: str
    length: int | None = None
    longest: int | None = None
    labels: tuple[str, ...] | None = None
    exact: str | None = None
    suspect: str | None = None
    #: a text in the form is also one JSON value, brackets balanced (DuckDB: its JSON cast;
    #: Iceberg: DuckDB's json_valid, iceberg/jsonvalid.py), its keys' order unchecked
    json: bool = False


#: the types whose texts in their form are also checked as values (textvalues.py): a
#: Rule's ``exact``, run on the texts ``suspect`` finds (a regular expression searched in
#: the text; None: every text)
EXACT = frozenset({"cidr", "interval", "tsvector", "txid_snapshot", "pg_snapshot", "date",
                   "timestamp", "xml", "tsquery", "jsonb", "json", "float4", "float8", "box",
                   "circle", "line",
                   *_RANGES, *(r.replace("range", "multirange") for r in _RANGES)})
SUSPECT = {"interval": "[0-9]{9}"}


def rule(pg_type: str) -> Rule | None:
    """The rule of a column of the PostgreSQL type ``pg_type`` held as text, or None (no
    rule: kept as it is)."""
    try:
        p = parse_type(pg_type.strip())
    except TypeNameError:
        return None
    if p.dims > 1:  # declared multi-dimensional: held as the array's text, as array_out
        element = pg_type.strip()[:-2 * p.dims]  # writes it, its elements checked
        return Rule(array_quoting(";" if element == "box" else ","), exact="array:" + element)
    if p.user or p.dims:
        return None
    if p.base == "character":  # bpchar_out: padded to n
        return Rule("", length=p.mods[0] if p.mods else 1)
    if p.base == "character varying" and p.mods:
        return Rule("", longest=p.mods[0])
    if p.base == "bit":
        return Rule("[01]*", length=p.mods[0] if p.mods else 1)
    if p.base == "bit varying":
        return Rule("[01]*", longest=p.mods[0] if p.mods else None)
    if p.base == "time":
        return Rule(_form("timetz" if p.suffix == "with time zone" else "time", p.mods))
    if p.base == "interval":
        return Rule(_FORMS["interval"], exact="interval", suspect=SUSPECT["interval"])
    if p.base == "numeric":
        return Rule(_numeric(p.mods))
    if p.base == '"char"':  # charout: a byte below 128 as itself, above as \ooo
        return Rule(r"[\x01-\x7f]?|\\[23][0-7]{2}")
    if p.base == "timestamp" and p.mods and p.mods[0] < 6:  # at most p decimals
        digits = p.mods[0]
        return Rule(NO_FRACTION if digits == 0 else
                    rf"[^.]*(\.[0-9]{{1,{digits}}}([^0-9][^.]*)?)?")
    if p.base in _PARSED:  # no form but the value's own (textparsed.py)
        return Rule("", exact=p.base)
    if p.base == "jsonb":  # its tokens and structure; its keys' order in arrays only
        return Rule(_FORMS["jsonb"], json=True)  # (docs/targets.md)
    form = _FORMS.get(p.base)
    if form is None:
        return None
    return Rule(form, exact=p.base if p.base in EXACT else None, suspect=SUSPECT.get(p.base))


#: the types whose texts only a parser reads (their check: textparsed.py)
_PARSED = ("xml", "tsquery")


def _float_form(fixed: int) -> str:
    """A float's text as float8out (``fixed`` 15) or float4out (6) writes it: fixed for a
    decimal exponent from -4 to ``fixed`` - 1, no trailing zero (whether it is the shortest
    text of its value: textparsed.py, or the DuckDB target's own test, on the texts of
    more digits than any two normal values of the type share, or a subnormal's: the
    rule's ``suspect``)."""
    tens, ones = divmod(fixed, 10)  # an exponent of at least ``fixed``, 2 or 3 digits
    exponent = (rf"e(-0[5-9]|-[1-9][0-9]{{1,2}}|\+({tens}[{ones}-9]|[{tens + 1}-9][0-9]"
                r"|[0-9]{3}))")
    return (rf"NaN|-?Infinity|-?0|-?[1-9][0-9]{{0,{fixed - 1}}}(\.[0-9]*[1-9])?"
            rf"|-?0\.0{{0,3}}[1-9]([0-9]*[1-9])?|-?[1-9](\.[0-9]*[1-9])?{exponent}")


#: what a day beyond its month, a date beyond PostgreSQL's, or 24:00:00 needs: a date or
#: timestamp without it needs no check as a value
_DAY_SUSPECT = r"-(29|3[01])|24:|BC|^[0-9]{5}"
#: the elements of arrays kept as text (each checked in the array's text) of types whose
#: values are not otherwise held as text
_ELEMENTS = {
    "real": Rule(_float_form(6), exact="float4", suspect=r"([0-9]\.?){7}|e-(3[89]|4)"),
    "double precision": Rule(_float_form(15), exact="float8",
                             suspect=r"([0-9]\.?){16}|e-3[0-9]{2}"),
    "bytea": Rule(r"\\x([0-9a-f]{2})*"), "json": Rule("", exact="json"),
    "date": Rule(rf"{_DATE}( BC)?|{_INFINITY}", exact="date", suspect=_DAY_SUSPECT),
    "timestamp": Rule(rf"{_STAMP}( BC)?|{_INFINITY}", exact="timestamp",
                      suspect=_DAY_SUSPECT),
    "timestamptz": Rule(rf"{_STAMP}\+00( BC)?|{_INFINITY}", exact="timestamp",
                        suspect=_DAY_SUSPECT),
}


def array_quoting(delimiter: str = ",") -> str:
    """An array's text (its shape aside) whose elements are quoted as array_out quotes
    them: an element in double quotes when it is empty, NULL in any case, or holds a brace,
    a double quote, a backslash, ``delimiter`` or white space (a quote and a backslash
    escaped by a backslash, nothing else), else as it is; no white space around them."""
    ws = r" \t\n\r\v\f"
    n = rf'[^{{}}"\\{delimiter}{ws}]'
    unquoted = (rf"{n}{{1,3}}|{n}{{5,}}|NULL|[^nN{{}}\"\\{delimiter}{ws}]{n}{{3}}"
                rf"|[nN][^uU{{}}\"\\{delimiter}{ws}]{n}{{2}}"
                rf"|[nN][uU][^lL{{}}\"\\{delimiter}{ws}]{n}"
                rf"|[nN][uU][lL][^lL{{}}\"\\{delimiter}{ws}]")
    char = r'[^"\\]|\\["\\]'
    quoted = (rf'"([nN][uU][lL][lL]|({char})*(\\["\\]|[{{}}{delimiter}{ws}])({char})*)?"')
    return (rf"((\[-?[0-9]+:-?[0-9]+\])+=)?"
            rf"(\{{|\}}|{delimiter}|({unquoted}|{quoted})(\}}|{delimiter}))*")


def element_rule(pg_type: str) -> Rule | None:
    """The rule of an element of an array of ``pg_type`` kept as text: :func:`rule`'s, or
    the form of a real, double precision, bytea, json, date, timestamp or timestamptz as
    array_out writes it."""
    found = rule(pg_type)
    try:
        p = parse_type(pg_type.strip())
    except TypeNameError:
        return None
    if p.base == "jsonb" and not p.user and not p.dims:
        return Rule(_FORMS["jsonb"], exact="jsonb")  # an element's structure too
    if found is not None:
        return found
    if p.user or p.dims or p.mods:
        return None
    if p.base == "timestamp":
        return _ELEMENTS["timestamptz" if p.suffix == "with time zone" else "timestamp"]
    return _ELEMENTS.get(p.base)


def _numeric(mods: tuple[int, ...]) -> str:
    """numeric_out: no leading zero, NaN; an unconstrained numeric its own number of
    decimals and ±Infinity, a numeric(p,s) s decimals (none for s <= 0) after at most
    p - s digits (any number beyond RE2's 1000 repeats)."""
    if not mods:
        return _NUMERIC + "|NaN"
    p, s = mods[0], mods[1] if len(mods) > 1 else 0
    whole = "0" if p - s < 1 else (
        f"(0|[1-9][0-9]{{0,{p - s - 1}}})" if p - s <= 1000 else "(0|[1-9][0-9]*)")
    frac = rf"\.[0-9]{{{s}}}" if s > 0 else ""
    return rf"-?{whole}{frac}|NaN"


def _form(kind: str, mods: tuple[int, ...]) -> str:
    form = _FORMS[kind]
    if mods:  # time(p): at most p digits of a second's fraction
        digits = mods[0]
        frac = r"(\.[0-9]{0,5}[1-9])?"
        form = form.replace(frac, "" if digits == 0 else rf"(\.[0-9]{{0,{digits - 1}}}[1-9])?")
    return form
