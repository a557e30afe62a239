"""The checks of the texts a regular expression cannot read at all (textvalues.py runs
them): an xml's well-formedness, a tsquery, a json or jsonb and a float array element as
PostgreSQL's output function writes them.

- xml (``XMLOPTION CONTENT``, as COPY reads it): the text after its XML declaration, if
  any, must be well-formed content, as xml_in's balanced chunk is: expat (the standard
  library's parser) reads it wrapped in one element, or, when it starts with a DOCTYPE, as
  a document. Expat reads no external entity and limits entity expansion.
- tsquery: tsqueryout's text, read back and written again as tsqueryout writes it
  (quoted lexemes, ``''`` and ``\\\\`` doubled, ``:*ABCD`` in that order, ``!``, `` & ``,
  `` | ``, `` <-> ``, `` <N> `` for N of 0 and 2 to 16384, ``( `` and `` )`` only where
  its priorities need them), must be the same text; a lexeme holds at most 2047 bytes.
- json (an array's element): a JSON text json_in reads (NaN and Infinity are none).
- jsonb (an array's element; a jsonb column's texts are not parsed, their structure is
  checked in C, Rule.json: docs/targets.md):
  jsonb_out's canonical text: its tokens (``": "`` and ``", "`` between items and no
  other white space, numbers as numeric_out writes them, strings escaped as escape_json
  does) are its rule's form (textforms.py); here, one JSON value whose objects' keys are
  in jsonb's order (shorter first, then by bytes), none twice.
- real and double precision (an array's element): the shortest text strictly nearer the
  value than either neighbouring value, as float4out and float8out write it with
  extra_float_digits 1 (fixed for a decimal exponent from -4 to 5, or 14 for a double),
  within the type's range.
"""

from __future__ import annotations

import json
import math
import re
import struct
from fractions import Fraction
from xml.parsers import expat

from topoff.targets.textforms import upto

_XML_DECL = re.compile(r"<\?xml[ \t\r\n]")
_WS = " \t\r\n"


def xml_ok(text: str) -> bool:
    """Well-formed content (or a document, from its DOCTYPE) after an XML declaration."""
    head, rest = "", text
    if _XML_DECL.match(text):
        end = text.find("?>")
        if end < 0:
            return False
        head, rest = text[:end + 2], text[end + 2:]
    doc = head + rest if rest.lstrip(_WS).startswith("<!DOCTYPE") else \
        f"{head}<x>{rest}</x>"
    parser = expat.ParserCreate(encoding="UTF-8")  # the text's own encoding is UTF-8
    try:
        parser.Parse(doc, True)
    except expat.ExpatError:
        return False
    return True


_TS_TOKEN = re.compile(r"'((?:[^'\\]|''|\\\\)+)'(:\*?A?B?C?D?)?|<(-|0|[1-9][0-9]*)>|[!&|()]| ")
_PRIORITY = {"|": 1, "&": 2, "<": 3}
_MAX_DISTANCE = 16384
_MAX_LEXEME = 2047  # MAXSTRLEN; some servers refuse 2047 already (tests say which)


_TS_LEXEME = r"!*'(?:[^'\\]|''|\\\\)+'(?::(?=[*ABCD])\*?A?B?C?D?)?"
#: a query without parentheses, as tsqueryout writes it: read with its operators'
#: priorities, it needs none, so its text is the one tsqueryout writes
_TS_FLAT = re.compile(rf"{_TS_LEXEME}( (&|\||<(-|(?!1>){upto('16384')})>) {_TS_LEXEME})*")


def tsquery_ok(text: str) -> bool:
    """The text tsqueryout writes for the query it spells (the module's docstring)."""
    if text == "" or ("(" not in text and len(text) <= _MAX_LEXEME // 4  # (UTF-8's bytes)
                      and _TS_FLAT.fullmatch(text)):
        return True
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TS_TOKEN.match(text, pos)
        if m is None:
            return False
        pos = m.end()
        if m[0] == " ":
            continue
        if m[1] is not None:
            word = m[1].replace("''", "'").replace("\\\\", "\\")
            if m[2] == ":" or len(word.encode()) > _MAX_LEXEME:
                return False
            tokens.append(("v", m[0]))
        elif m[3] is not None:
            if m[3] == "1" or (m[3] != "-" and int(m[3]) > _MAX_DISTANCE):
                return False
            tokens.append(("<", " <-> " if m[3] == "-" else f" <{m[3]}> "))
        else:
            tokens.append((m[0], f" {m[0]} "))
    tree, end = _ts_expr(tokens, 0, 0)
    return end == len(tokens) and _ts_out(tree, -1, False) == text


def _ts_operand(tokens: list[tuple[str, str]], i: int) -> tuple[object, int]:
    kind = tokens[i][0]
    if kind == "v":
        return tokens[i][1], i + 1
    if kind == "!":
        child, i = _ts_operand(tokens, i + 1)
        return ("!", child), i
    if kind == "(":
        inner, i = _ts_expr(tokens, i + 1, 0)
        if tokens[i][0] != ")":
            raise ValueError(i)
        return inner, i + 1
    raise ValueError(i)


def _ts_expr(tokens: list[tuple[str, str]], i: int, least: int) -> tuple[object, int]:
    """Operators of at least the priority ``least``, left-associative (makepol's order)."""
    left, i = _ts_operand(tokens, i)
    while i < len(tokens) and tokens[i][0] in _PRIORITY and _PRIORITY[tokens[i][0]] >= least:
        kind, spelled = tokens[i]
        right, i = _ts_expr(tokens, i + 1, _PRIORITY[kind] + 1)
        left = (kind, spelled, left, right)
    return left, i


def _ts_out(node: object, parent: int, right_phrase: bool) -> str:
    """tsquery.c's infix(): parentheses where a priority is below its parent's, and
    around a phrase on the right of a phrase."""
    if isinstance(node, str):
        return node
    assert isinstance(node, tuple)
    if node[0] == "!":
        inner = "!" + _ts_out(node[1], 4, False)
        return f"( {inner} )" if parent > 4 else inner
    kind, spelled, left, right = node
    priority = _PRIORITY[kind]
    out = _ts_out(left, priority, False) + spelled + _ts_out(right, priority, kind == "<")
    return f"( {out} )" if priority < parent or (kind == "<" and right_phrase) else out


def _no_constant(name: str) -> object:
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=_no_constant).decode


def json_ok(text: str) -> bool:
    """A JSON text json_in reads (white space around it too)."""
    _JSON(text)
    return True


def _in_order(pairs: list[tuple[str, object]]) -> None:
    """An object's keys as jsonb orders them (length in bytes, then bytes), none twice."""
    before: tuple[int, str] | None = None
    for k, _ in pairs:
        key = (len(k) if k.isascii() else len(k.encode()), k)
        if before is not None and key <= before:
            raise ValueError(k)
        before = key


#: the parser's own scanner, without the white space json.loads skips around the text
_JSONB = json.JSONDecoder(object_pairs_hook=_in_order, parse_int=str, parse_float=str,
                          parse_constant=_no_constant).scan_once  # type: ignore[attr-defined]
#: more digits than numeric holds before or after the point
_JSONB_LONG = re.compile(r"[0-9]{131073}|\.[0-9]{16384}")


def jsonb_ok(text: str) -> bool:
    """A text in jsonb's form (its tokens as jsonb_out spells them: textforms.py) that is
    one JSON value whose objects' keys are in jsonb's order, none twice, and whose numbers
    numeric holds."""
    try:
        _, end = _JSONB(text, 0)
    except StopIteration:  # (the scanner's "no value here")
        return False
    return end == len(text) and not (len(text) > 16383 and _JSONB_LONG.search(text))


def _float_text(value: float, fixed_below: int, digits: int) -> str:
    """float4out's or float8out's shortest text of ``value`` (``digits``: the shortest
    significant digits that read back to it)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    spelled = f"{abs(value):.{digits - 1}e}"  # d.ddde+XX, correctly rounded
    mantissa, _, exponent = spelled.partition("e")
    mantissa, point = mantissa.replace(".", "").rstrip("0") or "0", int(exponent)
    s = "-" if value < 0 else ""
    if -4 <= point < fixed_below:
        if point < 0:
            return f"{s}0.{'0' * (-point - 1)}{mantissa}"
        whole = mantissa[:point + 1].ljust(point + 1, "0")
        frac = mantissa[point + 1:]
        return f"{s}{whole}.{frac}" if frac else f"{s}{whole}"
    rest = f".{mantissa[1:]}" if len(mantissa) > 1 else ""
    return f"{s}{mantissa[0]}{rest}e{'-' if point < 0 else '+'}{abs(point):02d}"


def _float4(x: float) -> float:
    """``x`` rounded to a real (infinity beyond its range)."""
    try:
        return float(struct.unpack("<f", struct.pack("<f", x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


def _neighbours(value: float, real: bool) -> tuple[Fraction, Fraction]:
    """The values of the type next below and above ``value`` (beyond the largest: as far
    above as the one below is)."""
    if real:
        bits = struct.unpack("<I", struct.pack("<f", abs(value)))[0]
        down, up = (struct.unpack("<f", struct.pack("<I", b))[0] for b in (bits - 1, bits + 1))
        low, high = (down, up) if value > 0 else (-up, -down)
    else:
        low, high = math.nextafter(value, -math.inf), math.nextafter(value, math.inf)
    v = Fraction(value)
    lo = Fraction(low) if math.isfinite(low) else v - (Fraction(high) - v)
    hi = Fraction(high) if math.isfinite(high) else v + (v - lo)
    return lo, hi


def _shortest(value: float, real: bool) -> str:
    """float4out's or float8out's text of a finite, non-zero ``value``: the fewest
    significant digits whose value lies strictly nearer to it than to either neighbour
    (Ryu's, as PostgreSQL's copy runs it: a decimal halfway between two values, which
    strtod reads as the even one, is not taken), fixed for a decimal exponent from -4 to 5
    (a real) or 14."""
    lo, hi = _neighbours(value, real)
    v = Fraction(value)
    for digits in range(1, 18):
        if (v + lo) / 2 < Fraction(f"{value:.{digits - 1}e}") < (v + hi) / 2:
            return _float_text(value, 6 if real else 15, digits)
    return _float_text(value, 6 if real else 15, 17)


def float4_ok(text: str) -> bool:
    """A real's text as float4out writes it: in range, the shortest that reads back."""
    if text in ("NaN", "Infinity", "-Infinity", "0", "-0"):
        return True
    value = _float4(float(text))
    if math.isinf(value) or value == 0:
        return False
    return _shortest(value, True) == text


def float8_ok(text: str) -> bool:
    """A double's text as float8out writes it: in range, the shortest that reads back."""
    if text in ("NaN", "Infinity", "-Infinity", "0", "-0"):
        return True
    value = float(text)
    if math.isinf(value) or value == 0:
        return False
    return _shortest(value, False) == text
