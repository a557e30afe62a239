"""PostgreSQL column types: a closed grammar, parsed into parts, and sorted into families.

The input is a column's type as ``format_type()`` prints it (domains resolved), plus its
enum labels when it is an enum. A manifest is untrusted, so its type names are never
written into SQL as they are: :func:`parse_type` accepts only the built-in names below
(with validated integer modifiers and ``[]`` suffixes) and plain qualified identifiers
(a user-defined or extension type), and :meth:`PgType.ddl` rebuilds the name from the
fixed tables of this module. Everything that maps types (the targets, the canonical row
hash) starts from :func:`family`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INTS = {"smallint": "SMALLINT", "integer": "INTEGER", "bigint": "BIGINT", "oid": "BIGINT"}
FLOATS = {"real": "FLOAT", "double precision": "DOUBLE"}
TEXTS = ("text", "character varying", "name", "citext", '"char"')

#: built-in types without modifiers, as format_type() prints them (the reg* types are left
#: out on purpose: their values name objects of the source, so replicas keep them as text)
PLAIN = frozenset({
    "smallint", "integer", "bigint", "real", "double precision", "boolean", "text", "name",
    '"char"', "bytea", "date", "uuid", "json", "jsonb", "inet", "cidr", "macaddr",
    "macaddr8", "money", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle",
    "tsvector", "tsquery", "oid", "xid", "xid8", "cid", "tid", "pg_lsn", "jsonpath",
    "txid_snapshot", "pg_snapshot", "int4range", "int8range", "numrange", "tsrange",
    "tstzrange", "daterange",
    "int4multirange", "int8multirange", "nummultirange", "tsmultirange", "tstzmultirange",
    "datemultirange",
})
#: built-in types with an optional length modifier (n), and the largest n PostgreSQL allows
LENGTH = {"character varying": 10485760, "character": 10485760, "bit": 83886080,
          "bit varying": 83886080}
#: the field forms of interval (those that end in "second" take a precision)
INTERVAL_FIELDS = frozenset({
    "year", "month", "day", "hour", "minute", "second", "year to month", "day to hour",
    "day to minute", "day to second", "hour to minute", "hour to second", "minute to second",
})
ZONES = ("with time zone", "without time zone")
MAX_DIMS = 6  # PostgreSQL's MAXDIM
NAMEDATALEN = 63

_TYPMOD = re.compile(r"^(?P<base>[a-z ]+?)\((?P<a>\d{1,8})(?:, ?(?P<b>-?\d{1,4}))?\)(?P<rest>.*)$")
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"\x00-\x1f]|"")+")'
_USER = re.compile(rf"^{_IDENT}(?:\.{_IDENT})?$")


class TypeNameError(ValueError):
    """A type name outside the grammar topoff accepts."""


@dataclass(frozen=True)
class PgType:
    """A parsed column type.

    ``base`` is a key of the fixed tables above (``numeric``, ``time``, ``timestamp`` and
    ``interval`` included), or the user-defined type's name when ``user`` is set.
    """

    base: str
    mods: tuple[int, ...] = ()
    #: "with time zone" / "without time zone", or an interval's fields
    suffix: str = ""
    dims: int = 0
    user: bool = False

    @property
    def element(self) -> PgType:
        return PgType(self.base, self.mods, self.suffix, 0, self.user)

    def ddl(self) -> str:
        """The type for CREATE TABLE, built from this module's constants and integers only;
        user-defined types have no DDL here (the target decides: text, or its own enum)."""
        if self.user:
            raise TypeNameError("a user-defined type has no built-in DDL")
        base = _constant(self.base)
        mods = f"({','.join(str(int(m)) for m in self.mods)})" if self.mods else ""
        if self.base in ("time", "timestamp"):
            text = f"{base}{mods} {_constant(self.suffix)}"
        elif self.base == "interval" and self.suffix:
            text = f"{base} {_constant(self.suffix)}{mods}"
        else:
            text = f"{base}{mods}"
        return text + "[]" * self.dims


_CONSTANTS = {n: n for n in (*PLAIN, *LENGTH, *INTERVAL_FIELDS, *ZONES, "numeric", "time",
                             "timestamp", "interval")}


def _constant(name: str) -> str:
    return _CONSTANTS[name]  # a KeyError here is a bug: parse_type admitted an unknown name


def parse_type(text: str) -> PgType:
    """Parse a type name from a manifest; :class:`TypeNameError` for anything else."""
    if not isinstance(text, str) or not text or len(text) > 2 * NAMEDATALEN + 40:
        raise TypeNameError(f"not a type name: {text!r}")
    t, dims = text, 0
    while t.endswith("[]"):
        t, dims = t[:-2], dims + 1
    if dims > MAX_DIMS:
        raise TypeNameError(f"too many array dimensions: {text!r}")
    parsed = _parse_scalar(t)
    if parsed is None:
        if not _USER.match(t) or any(len(p) > NAMEDATALEN + 2 for p in t.split(".")):
            raise TypeNameError(f"not a PostgreSQL type name topoff can load: {text!r}")
        return PgType(t, dims=dims, user=True)
    return PgType(parsed.base, parsed.mods, parsed.suffix, dims)


def _parse_scalar(t: str) -> PgType | None:
    if t in PLAIN or t in LENGTH or t in ("numeric", "interval"):
        return PgType(t)
    for zone in ZONES:
        if t in (f"time {zone}", f"timestamp {zone}"):
            return PgType(t.split(" ", 1)[0], suffix=zone)
    if t.startswith("interval ") and t[9:] in INTERVAL_FIELDS:
        return PgType("interval", suffix=t[9:])
    m = _TYPMOD.match(t)
    if m is None:
        return None
    base, a, b, rest = m["base"], int(m["a"]), m["b"], m["rest"]
    if base == "numeric" and not rest:
        s = int(b) if b is not None else None
        if not 1 <= a <= 1000 or (s is not None and not -1000 <= s <= 1000):
            raise TypeNameError(f"numeric modifiers out of range: {t!r}")
        return PgType("numeric", (a,) if s is None else (a, s))
    if b is not None:
        return None
    if base in LENGTH and not rest:
        if not 1 <= a <= LENGTH[base]:
            raise TypeNameError(f"length out of range: {t!r}")
        return PgType(base, (a,))
    if base in ("time", "timestamp") and rest[1:] in ZONES and rest[:1] == " " and a <= 6:
        return PgType(base, (a,), rest[1:])
    if base == "interval" and not rest and a <= 6:
        return PgType("interval", (a,))
    if base.startswith("interval ") and base[9:].endswith("second") and not rest and a <= 6 \
            and base[9:] in INTERVAL_FIELDS:
        return PgType("interval", (a,), base[9:])
    return None


#: PostgreSQL's other names of built-in types (its grammar's and pg_type's), and the name
#: format_type() prints for each; ``bpchar`` only with a length (without one it is no
#: character(n), format_type() prints it ``bpchar``)
ALIASES = {"int2": "smallint", "int4": "integer", "int": "integer", "int8": "bigint",
           "float4": "real", "float8": "double precision", "float": "double precision",
           "bool": "boolean", "varchar": "character varying", "varbit": "bit varying",
           "decimal": "numeric", "char": "character", "timestamptz": "timestamp with time zone",
           "timestamp": "timestamp without time zone", "timetz": "time with time zone",
           "time": "time without time zone"}
_ALIAS_MOD = re.compile(r"^(?P<base>[a-z0-9]+)\((?P<a>\d{1,8})(?:, ?(?P<b>-?\d{1,4}))?\)$")


def canonical_type(text: str) -> str:
    """``text`` as format_type() prints the type when it is another spelling PostgreSQL
    reads as a built-in type (``int4[]``, ``_int4``, ``varchar(3)[]``, ``float8``,
    ``timestamptz(3)``, ``decimal(5, 2)``, ``varbit(4)``), else ``text`` as it is: the
    type decides a column's kind (docs/dataset-format.md), never its spelling. A built-in
    type's name qualified by pg_catalog (``pg_catalog.box[]``: format_type() qualifies it
    where a user type of its name comes first in the search_path) is that type too."""
    for prefix in ("pg_catalog.", '"pg_catalog".'):
        if text.startswith(prefix):
            rest = canonical_type(text[len(prefix):])
            try:
                return rest if not parse_type(rest).user else text
            except TypeNameError:
                return text
    t, dims = text, ""
    while t.endswith("[]"):
        t, dims = t[:-2], dims + "[]"
    if t.startswith("_") and t != "_":  # pg_type's name of the array of t[1:]
        element = '"char"' if t == "_char" else canonical_type(t[1:])
        try:
            built_in = not (p := parse_type(element)).user and not p.dims
        except TypeNameError:
            built_in = False
        return element + "[]" + dims if built_in else text
    if t in ALIASES:
        return ALIASES[t] + dims
    m = _ALIAS_MOD.match(t)
    if m is None:
        return text
    base, a, b = m["base"], m["a"], m["b"]
    if base in ("numeric", "decimal"):
        return f"numeric({a}{'' if b is None else ',' + b})" + dims
    if b is not None:
        return text
    if base in ("varchar", "char", "bpchar", "varbit"):
        return f"{ALIASES.get(base, 'character')}({a})" + dims
    if base == "float" and 1 <= int(a) <= 53:
        return ("real" if int(a) <= 24 else "double precision") + dims
    if base in ("timestamp", "timestamptz", "time", "timetz"):
        zone = "with" if base.endswith("tz") else "without"
        return f"{base.removesuffix('tz')}({a}) {zone} time zone" + dims
    return text


def is_type_name(text: str) -> bool:
    try:
        parse_type(text)
    except TypeNameError:
        return False
    return True


@dataclass(frozen=True)
class Family:
    """What kind of value a column holds; ``element`` is set for one-dimensional arrays."""

    kind: str  # int float numeric numeric_any bool text bpchar json timestamptz timestamp
    #            date time timetz interval bytea uuid enum other array
    pg_type: str
    precision: int | None = None
    scale: int | None = None
    element: Family | None = None


def family(pg_type: str, enum: list[str] | None = None) -> Family:
    t = pg_type.strip()
    try:
        parsed = parse_type(t)
    except TypeNameError:
        return Family("other", t)
    if parsed.dims:
        if parsed.dims > 1:  # arrays of arrays are not distinguished by PostgreSQL
            return Family("other", t)
        return Family("array", t, element=family(t[:-2], enum))
    if enum is not None:
        return Family("enum", t)
    if parsed.user:
        return Family("text", t) if t == "citext" else Family("other", t)
    return _scalar_family(parsed, t)


_SIMPLE_KINDS = {"boolean": "bool", "json": "json", "jsonb": "json", "date": "date",
                 "bytea": "bytea", "uuid": "uuid", "interval": "interval"}


def _scalar_family(p: PgType, t: str) -> Family:
    b = p.base
    if b in INTS:
        return Family("int", t)
    if b in FLOATS:
        return Family("float", t)
    if b == "numeric":
        if not p.mods:
            return Family("numeric_any", t)
        prec, scale = p.mods[0], (p.mods[1] if len(p.mods) > 1 else 0)
        return Family("numeric", t, precision=prec, scale=scale) if prec <= 38 and \
            0 <= scale <= prec else Family("numeric_any", t)
    if b in TEXTS:
        return Family("text", t)
    if b == "character":
        return Family("bpchar", t)
    if b == "timestamp":
        return Family("timestamptz" if p.suffix == ZONES[0] else "timestamp", t)
    if b == "time":
        return Family("timetz" if p.suffix == ZONES[0] else "time", t)
    return Family(_SIMPLE_KINDS.get(b, "other"), t)


def is_time_cursor(pg_type: str) -> bool:
    return family(pg_type).kind in ("timestamptz", "timestamp", "date")
