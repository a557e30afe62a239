"""PostgreSQL's input rules for the CSV texts DuckDB would read otherwise.

A dataset is untrusted, and DuckDB's casts are more lenient than PostgreSQL's input
functions: ``1.5`` cast to INTEGER is 2, ``0x10`` is 16, ``1e39`` cast to FLOAT is
infinity, a varchar(3) holds any length. Each expression here reads a text as
PostgreSQL's input function for the column's type does (the value PostgreSQL
would store), or stops the load with an error naming the column (:data:`NOT_A_VALUE`,
a damaged publication: exit 6). The few texts PostgreSQL accepts that no export writes and
these rules do not follow (hexadecimal floats, bytea's escape format, date words such as
``epoch``, white space around a date or time, more than 6 digits of fractions of a
second, a timestamptz without its offset, numbers in exponent form in a numeric kept as
text) are refused the same way, never read as another value.

The text of the types DuckDB keeps as text (inet, money, ranges, ...: types.py) is checked
against the form PostgreSQL's output function writes (targets/textforms.py, :func:`form`).
Kept as they are, by design: a json text PostgreSQL's json refuses and a text holding NUL
(values of a MariaDB source, which a PostgreSQL replica refuses with exit 7: docs/targets.md),
and the types textforms.py has no rule for (jsonpath, extension types, ...); xml, tsquery
and jsonb[] elements are checked as values before the load (values.py); a jsonb's tokens
here, its structure by DuckDB's JSON cast (its keys' order unchecked: docs/targets.md).
"""

from __future__ import annotations

from topoff.dataset.manifest import Column
from topoff.pgtypes import Family, parse_type
from topoff.targets.textforms import Rule, array_quoting, element_rule, rule

#: in the message of every error these expressions raise
NOT_A_VALUE = " is not a value PostgreSQL reads as "
#: white space as PostgreSQL's input functions skip it (isspace)
_WS = r"[ \t\n\r\v\f]"
_WS_CHARS = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_INT = rf"{_WS}*[+-]?[0-9]+{_WS}*"
_DECIMAL = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
_NUMERIC_WORD = r"nan|[+-]?(inf|infinity)"
#: numeric_out's text (never -0)
_NUMERIC_OUT = (r"-?[1-9][0-9]*(\.[0-9]+)?|-?0\.[0-9]*[1-9][0-9]*|0(\.[0-9]+)?|NaN|"
                r"-?Infinity")
#: a zone offset PostgreSQL accepts (at most 15:59:59 either way)
_ZONE = r"(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9](:?[0-5][0-9])?)?)"
_TIME = r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
#: a year from 1 (PostgreSQL has no year 0), a month and a day
_DATE = r"(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3,6})-[0-9]{2}-[0-9]{2}"
_INFINITE = r"-?infinity"
#: bytea's hex form as byteaout writes it
_HEX = r"\\x([0-9a-fA-F]{2})*"
#: white space bytea's hex form allows between pairs of digits
_HEX_WS = r"[ \t\n\r]"
#: a "char" byte above 127 as charout writes it
_CHAR_OCTAL = r"[\\][23][0-7]{2}"
_BOOL_TRUE = ("t", "tr", "tru", "true", "y", "ye", "yes", "on", "1")
_BOOL_FALSE = ("f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _trim(x: str) -> str:
    return f"trim({x}, {_WS_CHARS})"


def _match(x: str, pattern: str, flags: str = "") -> str:
    return f"regexp_full_match({x}, {_lit(pattern)}{', ' + _lit(flags) if flags else ''})"


def refuse(x: str, column: str, pg_type: str) -> str:
    """The error a text that is no value of the column's type stops the load with."""
    return (f"error({_lit(f'column {column!r}: ' + chr(34))} || left({x}, 40) || "
            f"{_lit(chr(34) + NOT_A_VALUE + pg_type)})")


def checked(x: str, ok: str, value: str, column: str, pg_type: str) -> str:
    return f"(CASE WHEN {x} IS NULL THEN NULL WHEN {ok} THEN {value} " \
           f"ELSE {refuse(x, column, pg_type)} END)"


def _cast(t: str, target: str, x: str, column: str, pg_type: str) -> str:
    """``t`` cast to ``target``, or the error naming the column (DuckDB's own names none)."""
    return f"coalesce(TRY_CAST({t} AS {target}), {refuse(x, column, pg_type)})"


def named_cast(x: str, target: str, column: str, pg_type: str) -> str:
    """``x`` cast to ``target`` (NULL stays NULL), or the error naming the column."""
    return f"(CASE WHEN {x} IS NULL THEN NULL ELSE {_cast(x, target, x, column, pg_type)} END)"


def cast(x: str, target: str, column: str, pg_type: str) -> str:
    """A numeric(p,s) in DuckDB's DECIMAL (its cast reads as numeric_in does) or in a wider
    integer type (a MariaDB unsigned bigint, whose cast would read 0x10: a decimal number
    only), naming the column."""
    ok = "true" if target.startswith("DECIMAL") else _match(x, f"{_WS}*{_DECIMAL}{_WS}*")
    return checked(x, ok, _cast(x, target, x, column, pg_type), column, pg_type)


def integer(x: str, target: str, column: str, pg_type: str) -> str:
    """smallint, integer, bigint: digits with a sign and white space, nothing else (DuckDB
    reads 1.5, 1e2, 0x10, 0b1 and 1_000); an oid from -2^31 to 2^32-1, negative ones as
    the unsigned value of their 32 bits (oidin)."""
    v = _cast(x, "BIGINT" if pg_type == "oid" else target, x, column, pg_type)
    if pg_type == "oid":
        v = (f"CAST((CASE WHEN {v} < -2147483648 OR {v} > 4294967295 THEN "
             f"{refuse(x, column, pg_type)} WHEN {v} < 0 THEN {v} + 4294967296 ELSE {v} END) "
             f"AS {target})")
    # the digits every export writes first (the common case, one cheap test); the cast
    # written once (DuckDB binds every copy of it)
    return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN {_match(x, '-?[0-9]+')} OR "
            f"{_match(x, _INT)} THEN {v} ELSE {refuse(x, column, pg_type)} END)")


def floating(x: str, target: str, column: str, pg_type: str) -> str:
    """real, double precision: what DuckDB's cast reads but ``1_000``; NaN as NaN (not
    -nan); a value out of the type's range (overflow to infinity, underflow to 0) is
    refused, as strtod's ERANGE is by float4in and float8in."""
    bad = refuse(x, column, pg_type)
    v = f"coalesce(TRY_CAST({x} AS {target}), {bad})"
    return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN contains({x}, '_') THEN {bad} "
            f"WHEN isfinite({v}) AND {v} != 0 THEN {v} "
            f"WHEN isnan({v}) THEN CAST('nan' AS {target}) "
            f"WHEN isinf({v}) AND NOT contains(lower({x}), 'inf') THEN {bad} "
            f"WHEN {v} = 0 AND regexp_matches({x}, '^[^eE]*[1-9]') THEN {bad} ELSE {v} END)")


def numeric_text(x: str, c: Column, f: Family) -> str:
    """A numeric kept as PostgreSQL's text (no precision, p > 38, a negative scale, or
    widened): its text as numeric_out writes it, rounded to no other value: more fraction
    digits than the scale, and exponents, are refused (see the module's docstring)."""
    t = _trim(x)
    mods = parse_type(c.type).mods
    p, s = (mods[0], mods[1] if len(mods) > 1 else 0) if mods else (None, 0)
    words = _NUMERIC_WORD if p is None else "nan"  # a typmod holds no infinity
    word = _match(t, words, "i")
    digits = f"ltrim({t}, '+-')"
    whole = f"coalesce(nullif(ltrim(split_part({digits}, '.', 1), '0'), ''), '0')"
    frac = f"split_part({digits}, '.', 2)"
    ok = _match(t, r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
    if p is not None:
        if s >= 0:
            frac = f"rpad({frac}, {s}, '0')"
            ok = f"({ok} AND length(split_part({digits}, '.', 2)) <= {s})"
        else:
            ok = f"({ok} AND ltrim({frac}, '0') = '' AND ({whole} = '0' OR " \
                 f"ends_with({whole}, {_lit('0' * -s)})))"
            frac = "''"
        ok = f"({ok} AND ({whole} = '0' OR length({whole}) <= {p - s}))"
    nonzero = f"regexp_matches({digits}, '[1-9]')"
    sign = f"(CASE WHEN starts_with({t}, '-') AND {nonzero} THEN '-' ELSE '' END)"
    number = f"({sign} || {whole} || CASE WHEN {frac} = '' THEN '' ELSE '.' || {frac} END)"
    if p is not None and p <= 38 and s >= 0:  # widened: DECIMAL reads it as numeric_in
        number = f"CAST(CAST({t} AS DECIMAL({p},{s})) AS VARCHAR)"
        ok = _match(t, _DECIMAL)
    value = (f"(CASE WHEN {_match(t, 'nan', 'i')} THEN 'NaN' WHEN {word} THEN "
             f"(CASE WHEN starts_with({t}, '-') THEN '-Infinity' ELSE 'Infinity' END) "
             f"ELSE {number} END)")
    slow = checked(x, f"({word} OR {ok})", value, c.name, f.pg_type)
    if p is not None:
        return slow
    # numeric_out's own text, as every export writes it, is the value as it is
    return f"(CASE WHEN {_match(x, _NUMERIC_OUT)} THEN {x} ELSE {slow} END)"


def is_nan(x: str) -> str:
    """Whether a numeric's text is NaN (numeric_in: any case, white space around)."""
    return _match(_trim(x), "nan", "i")


def boolean(x: str, column: str, pg_type: str = "boolean") -> str:
    """boolin: any prefix of true, false, yes, no, on/off from two letters, 1 and 0, in
    any case, with white space around."""
    t = f"lower({_trim(x)})"
    yes = ", ".join(_lit(v) for v in _BOOL_TRUE)
    no = ", ".join(_lit(v) for v in _BOOL_FALSE)
    return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN {x} = 't' THEN true WHEN {x} = 'f' "
            f"THEN false WHEN {t} IN ({yes}) THEN true WHEN {t} IN ({no}) THEN false "
            f"ELSE {refuse(x, column, pg_type)} END)")


def datetime(x: str, f: Family, e: str, target: str, column: str) -> str:
    """date, timestamp[tz], time[tz]: the ISO form PostgreSQL writes (at most p decimals of
    a second in a time(p) or timestamp(p), a zone offset within
    PostgreSQL's ±15:59:59, required with a zone, a year from 1 and within PostgreSQL's
    range, BC), ±infinity for the dates and timestamps; ``e`` is the checked text as
    DuckDB reads it. A valid timestamp after 294246 AD stays DuckDB's own error (exit 7)."""
    # without an offset PostgreSQL takes its session's zone (UTC), DuckDB the machine's
    zone = _ZONE if f.kind in ("timetz", "timestamptz") else f"{_ZONE}?"
    time = _TIME
    mods = parse_type(f.pg_type).mods
    if mods:  # time(p), timestamp(p): PostgreSQL rounds more decimals, no export writes them
        time = time.replace("{1,6}", f"{{1,{mods[0]}}}") if mods[0] else \
            time.replace(r"(\.[0-9]{1,6})?", "")
    if f.kind in ("time", "timetz"):
        return checked(x, _match(x, f"{time}{zone}"), _cast(e, target, x, column, f.pg_type),
                       column, f.pg_type)
    form = _DATE if f.kind == "date" else f"{_DATE}[ T]{time}{zone}"
    bad = refuse(x, column, f.pg_type)
    cast = f"coalesce(TRY_CAST({e} AS {target}), CASE WHEN regexp_matches({x}, " \
           f"'^[0-9]{{6,}}-') THEN CAST({e} AS {target}) ELSE {bad} END)"
    if f.kind == "date":  # 4714-11-24 BC to 5874897 AD
        beyond = f"(ends_with({x}, ' BC') AND {cast} < DATE '-4713-11-24') OR " \
                 f"(length(split_part({x}, '-', 1)) = 7 AND {cast} > DATE '5874897-12-31')"
    else:
        v = f"timezone('UTC', {cast})" if f.kind == "timestamptz" else cast
        beyond = f"ends_with({x}, ' BC') AND {v} < TIMESTAMP '-4713-11-24 00:00:00'"
    value = f"(CASE WHEN {beyond} THEN {bad} ELSE {cast} END)"
    return checked(x, _match(x, f"{_INFINITE}|{form}( BC)?"), value, column, f.pg_type)


def bytea(x: str, column: str) -> str:
    """bytea's hex form: pairs of hex digits, white space between pairs allowed."""
    spaced = _match(x, rf"\\x({_HEX_WS}*[0-9a-fA-F]{{2}})*{_HEX_WS}*")
    return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN {_match(x, _HEX)} THEN unhex(substr({x}, 3)) "
            f"WHEN {spaced} THEN unhex(regexp_replace(substr({x}, 3), {_lit(_HEX_WS)}, '', 'g')) "
            f"ELSE {refuse(x, column, 'bytea')} END)")


def text(x: str, c: Column, f: Family) -> str:
    """Text types: varchar(n) and char(n) hold at most n characters (spaces beyond n are
    cut, a char(n) is padded to n), a PostgreSQL enum one of its labels, a "char" one byte
    (the first of an ASCII text, or \\ooo above 127)."""
    p = parse_type(c.type)
    n = p.mods[0] if p.mods and not p.user and not p.dims else None
    ok, value = "true", x
    if f.kind == "enum" and c.enum is not None and p.user:  # (a MariaDB ENUM is text)
        labels = ", ".join(_lit(v) for v in c.enum) or "NULL"
        ok = f"{x} IN ({labels})"
    elif p.base in ("character varying", "character") and n is not None:
        ok = f"(length({x}) <= {n} OR length(rtrim({x}, ' ')) <= {n})"
        value = f"left({x}, {n})" if p.base == "character varying" else \
            f"rpad(left({x}, {n}), {n}, ' ')"
    elif c.type == '"char"':
        octal = _match(x, _CHAR_OCTAL)
        low = _match(x, _CHAR_OCTAL.replace("[23]", "[01]"))  # read as its byte: refused
        ok = f"({x} = '' OR {octal} OR (ascii({x}) < 128 AND NOT {low}))"
        value = f"(CASE WHEN {octal} THEN {x} ELSE left({x}, 1) END)"
    return checked(x, ok, value, c.name,
                    "an enum" if f.kind == "enum" else c.type)


def form_ok(x: str, r: Rule) -> str:
    """Whether ``x`` is in the form of the rule (textforms.py)."""
    ok = _match(x, r.pattern) if r.pattern else "true"
    if r.length is not None:
        ok = f"({ok} AND length({x}) = {r.length})"
    if r.longest is not None:
        ok = f"({ok} AND length({x}) <= {r.longest})"
    return ok


def _digits(x: str) -> str:
    """A float's text's significant digits (no sign, point, exponent, zeros around)."""
    return f"trim(replace(replace(split_part({x}, 'e', 1), '-', ''), '.', ''), '0')"


#: per float type: DuckDB's type, the digits any two of its normal values differ in
#: (FLT_DIG, DBL_DIG), its least normal value
_FLOATS = {"real": ("FLOAT", 6, "1.1754944e-38"),
           "double precision": ("DOUBLE", 15, "2.2250738585072014e-308")}


def _float_sql(x: str, pg_type: str) -> tuple[str, str, str]:
    """A float text's value, its number of significant digits, and the text's value
    rounded to one digit fewer read back (SQL)."""
    t = _FLOATS[pg_type][0]
    v, n = f"TRY_CAST({x} AS {t})", f"length({_digits(x)})"
    return v, n, f"TRY_CAST(printf('%.' || greatest({n} - 2, 0) || 'e', {v}) AS {t})"


def shortest(x: str, pg_type: str) -> str:
    """Whether a real's or double's text in its form (textforms.py) is within its type's
    range and its value rounded to as many digits, as float4out and float8out write it. A
    normal value's text of at most 6 digits (15 for a double) is the shortest: no other
    text so short reads as its value; a longer one, or a subnormal's, that one digit fewer
    also spells is checked before the load (:func:`fewer_too`, values.py)."""
    _, dig, least = _FLOATS[pg_type]
    v, n, _ = _float_sql(x, pg_type)
    rounded = _digits(f"printf('%.' || greatest({n} - 1, 0) || 'e', {v})")
    # (a CASE: DuckDB reads a branch only for the texts that reach it)
    return (f"(CASE WHEN {x} IN ('NaN', 'Infinity', '-Infinity', '0', '-0') THEN true "
            f"WHEN NOT coalesce(isfinite({v}) AND {v} != 0, false) THEN false "
            f"WHEN {n} <= {dig} AND abs({v}) >= {least} THEN true "
            f"ELSE coalesce({rounded} = {_digits(x)}, false) END)")


def fewer_too(x: str, pg_type: str) -> str:
    """Whether a float's text :func:`shortest` takes is one whose value a digit fewer
    also reads as: no shorter text (PostgreSQL's, when it is not halfway between two
    values: textparsed.py decides)."""
    _, dig, least = _FLOATS[pg_type]
    v, n, fewer = _float_sql(x, pg_type)
    return (f"(CASE WHEN {x} IN ('NaN', 'Infinity', '-Infinity', '0', '-0') THEN false "
            f"WHEN NOT coalesce(isfinite({v}) AND {v} != 0, false) THEN false "
            f"WHEN {n} <= 1 OR ({n} <= {dig} AND abs({v}) >= {least}) THEN false "
            f"ELSE coalesce({fewer} = {v}, false) END)")


def quoting(x: str, f: Family) -> str:
    """Whether the array text ``x`` quotes its elements as array_out does (textforms.py)."""
    box = f.element is not None and f.element.pg_type == "box"
    return _match(x, array_quoting(";" if box else ","))


def form(x: str, c: Column, f: Family) -> str | None:
    """A type kept as text (inet, money, a range...): its text as PostgreSQL's output
    function writes it, as it is, or the error; None for a type without a rule. An array of
    such a type kept as its text: each element of a one-dimensional value checked so (a
    multi-dimensional one is checked before the load: values.py)."""
    if f.kind == "array":
        r = element_rule(f.element.pg_type) if f.element is not None else None
        quoted = quoting(x, f)
        if r is None:
            return checked(x, quoted, x, c.name, f.pg_type)
        one = form_ok("topoff_e", r)
        if f.element is not None and f.element.kind == "float":
            one = f"({one} AND {shortest('topoff_e', f.element.pg_type)})"
        each = f"list_bool_and(list_transform(topoff_pg_array_trimmed({x}), lambda topoff_e: " \
               f"topoff_e IS NULL OR {one}))"
        ok = f"({quoted} AND (NOT topoff_pg_array_ok({x}) OR coalesce({each}, true)))"
        if f.element is not None and f.element.pg_type == "box":  # {(1,1),(0,0);NULL}
            boxes = f"(CASE WHEN {x} = '{{}}' THEN []::VARCHAR[] " \
                    f"ELSE string_split({x}[2:-2], ';') END)"
            each = f"list_bool_and(list_transform({boxes}, lambda topoff_e: " \
                   f"topoff_e = 'NULL' OR {one}))"
            ok = (f"({quoted} AND (starts_with({x}, '{{{{') OR starts_with({x}, '[') "
                  f"OR coalesce({each}, true)))")
        return checked(x, ok, x, c.name, f.pg_type)
    r = rule(c.type)
    test = None if r is None else form_ok(x, r)
    return None if test is None or test == "true" else checked(x, test, x, c.name, f.pg_type)
