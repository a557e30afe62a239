"""The dataset's neutral column types (``logical`` in manifest.json, docs/dataset-format.md).

A column's ``logical`` type says what a value is without naming a database engine, so that a
consumer maps types without knowing the source; the column's ``type`` stays the PostgreSQL
type whose text form the data files hold, and ``native`` the source engine's own spelling.
Manifests written before ``logical`` existed get it derived from ``type``
(:func:`from_pg_type`), so readers always see one.

A manifest is untrusted: :meth:`Logical.from_json` accepts known kinds with their own fields
only, each bounded, and :func:`check_agrees` refuses a ``logical`` that says another kind of
value than ``type`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topoff.pgtypes import LENGTH, PgType, TypeNameError, family, parse_type

KINDS = ("bool", "int", "float", "decimal", "text", "bytes", "bits", "date", "time",
         "timestamp", "interval", "json", "uuid", "enum", "set", "array", "other")
#: the fields each kind may have besides ``kind`` (and which of them it must have)
FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "int": (frozenset({"bits", "unsigned"}), frozenset({"bits"})),
    "float": (frozenset({"bits"}), frozenset({"bits"})),
    "decimal": (frozenset({"precision", "scale"}), frozenset()),
    "text": (frozenset({"length"}), frozenset()),
    "bits": (frozenset({"length", "varying"}), frozenset({"varying"})),
    "time": (frozenset({"precision", "zone"}), frozenset()),
    "timestamp": (frozenset({"precision", "zone"}), frozenset()),
    "set": (frozenset({"labels"}), frozenset({"labels"})),
    "array": (frozenset({"element"}), frozenset({"element"})),
}
INT_BITS = (8, 16, 32, 64)
FLOAT_BITS = (32, 64)
MAX_DECIMAL_PRECISION = 1000
MAX_TIME_PRECISION = 6
MAX_TEXT_LENGTH = (1 << 31) - 1
MAX_BITS_LENGTH = LENGTH["bit"]
#: MariaDB's SET has at most 64 members
MAX_SET_LABELS = 64
MAX_LABEL_CHARS = 255
MAX_NATIVE_CHARS = 200


class LogicalError(ValueError):
    """A ``logical`` or ``native`` field outside the vocabulary, or not agreeing with ``type``."""


@dataclass(frozen=True)
class Logical:
    kind: str
    bits: int | None = None
    unsigned: bool | None = None
    precision: int | None = None
    scale: int | None = None
    length: int | None = None
    varying: bool | None = None
    zone: bool | None = None
    labels: tuple[str, ...] | None = None
    element: Logical | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        for name in ("bits", "unsigned", "precision", "scale", "length", "varying", "zone"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.labels is not None:
            d["labels"] = list(self.labels)
        if self.element is not None:
            d["element"] = self.element.to_json()
        return d

    @classmethod
    def from_json(cls, d: Any, what: str, in_array: bool = False) -> Logical:
        if not isinstance(d, dict):
            raise LogicalError(f"{what} must be an object")
        kind = d.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            raise LogicalError(f"{what} kind {str(kind)[:40]!r} is not one of {', '.join(KINDS)}")
        if kind == "array" and in_array:
            raise LogicalError(f"{what}: an array's element cannot be an array")
        allowed, required = FIELDS.get(kind, (frozenset(), frozenset()))
        extra = set(d) - allowed - {"kind"}
        if extra:
            raise LogicalError(f"{what} ({kind}) has unknown field(s) "
                               f"{', '.join(sorted(str(k)[:40] for k in extra))}")
        missing = required - set(d)
        if missing:
            raise LogicalError(f"{what} ({kind}) needs {', '.join(sorted(missing))}")
        out = cls(
            kind,
            bits=_int(d, "bits", what, INT_BITS if kind == "int" else FLOAT_BITS),
            unsigned=_bool(d, "unsigned", what),
            precision=_int(d, "precision", what, range(
                0 if kind in ("time", "timestamp") else 1,
                (MAX_TIME_PRECISION if kind in ("time", "timestamp")
                 else MAX_DECIMAL_PRECISION) + 1)),
            scale=_int(d, "scale", what, range(0, MAX_DECIMAL_PRECISION + 1)),
            length=_int(d, "length", what, range(1, (
                MAX_BITS_LENGTH if kind == "bits" else MAX_TEXT_LENGTH) + 1)),
            varying=_bool(d, "varying", what),
            zone=_bool(d, "zone", what),
            labels=_labels(d.get("labels"), what) if "labels" in d else None,
            element=cls.from_json(d["element"], f"{what} element", True)
            if "element" in d else None,
        )
        if out.scale is not None and (out.precision is None or out.scale > out.precision):
            raise LogicalError(f"{what}: scale needs a precision at least as large")
        return out


def _int(d: dict[str, Any], name: str, what: str, allowed: Any) -> int | None:
    if name not in d:
        return None
    value = d[name]
    if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
        raise LogicalError(f"{what} {name} {str(value)[:20]} is out of range")
    return value


def _bool(d: dict[str, Any], name: str, what: str) -> bool | None:
    if name not in d:
        return None
    if not isinstance(d[name], bool):
        raise LogicalError(f"{what} {name} must be true or false")
    return bool(d[name])


def _labels(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SET_LABELS:
        raise LogicalError(f"{what} labels must be a list of 1 to {MAX_SET_LABELS} labels")
    for label in value:
        if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS or "," in label \
                or not label.isprintable():
            raise LogicalError(f"{what} labels: {str(label)[:40]!r} is not a set label "
                               "(printable text without commas)")
    if len(set(value)) != len(value):
        raise LogicalError(f"{what} labels: a label is repeated")
    return tuple(value)


def check_native(value: Any, what: str) -> str | None:
    """A ``native`` annotation: short printable text, never used in SQL or paths."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NATIVE_CHARS \
            or not value.isprintable():
        raise LogicalError(f"{what} native must be printable text of 1 to {MAX_NATIVE_CHARS} "
                           "characters")
    return value


# -- derived from a PostgreSQL type --------------------------------------------------------

_PG_INTS = {"smallint": (16, False), "integer": (32, False), "bigint": (64, False),
            "oid": (32, True)}
_PG_SIMPLE = {"boolean": "bool", "bytea": "bytes", "date": "date", "interval": "interval",
              "json": "json", "jsonb": "json", "uuid": "uuid"}
_PG_TEXTS = ("text", "character varying", "character", "name", '"char"')


def from_pg_type(pg_type: str, enum: list[str] | None = None) -> Logical:
    """The logical type of a PostgreSQL column type (a manifest's ``type``)."""
    try:
        parsed = parse_type(pg_type.strip())
    except TypeNameError:
        return Logical("other")
    if parsed.dims > 1:
        return Logical("other")
    if parsed.dims == 1:
        return Logical("array", element=_scalar(parsed.element, enum))
    return _scalar(parsed, enum)


def _scalar(p: PgType, enum: list[str] | None) -> Logical:
    if enum is not None:
        return Logical("enum")
    if p.user:
        return Logical("text") if p.base == "citext" else Logical("other")
    b = p.base
    if b in _PG_INTS:
        bits, unsigned = _PG_INTS[b]
        return Logical("int", bits=bits, unsigned=unsigned)
    if b in ("real", "double precision"):
        return Logical("float", bits=32 if b == "real" else 64)
    if b == "numeric":
        if p.mods and 1 <= p.mods[0] <= MAX_DECIMAL_PRECISION and \
                0 <= (scale := (p.mods[1] if len(p.mods) > 1 else 0)) <= p.mods[0]:
            return Logical("decimal", precision=p.mods[0], scale=scale)
        return Logical("decimal")
    if b in _PG_TEXTS:
        return Logical("text", length=p.mods[0] if p.mods else (1 if b == "character"
                                                                else None))
    if b in ("bit", "bit varying"):
        varying = b == "bit varying"
        return Logical("bits", length=p.mods[0] if p.mods else (None if varying else 1),
                       varying=varying)
    if b in ("time", "timestamp"):
        return Logical(b, precision=p.mods[0] if p.mods else None,
                       zone=p.suffix == "with time zone")
    if b in _PG_SIMPLE:
        return Logical(_PG_SIMPLE[b])
    return Logical("other")


# -- agreement with the column's PostgreSQL type -------------------------------------------

#: the pgtypes.family kinds each logical kind may be held in
_FAMILIES = {
    "bool": {"bool"}, "int": {"int", "numeric", "numeric_any"}, "float": {"float"},
    # an enum's values are text too: a consumer may load them as text
    "decimal": {"numeric", "numeric_any"}, "text": {"text", "bpchar", "enum"},
    "bytes": {"bytea"},
    "date": {"date"}, "time": {"time", "timetz"}, "timestamp": {"timestamp", "timestamptz"},
    "interval": {"interval"}, "json": {"json"}, "uuid": {"uuid"}, "enum": {"enum"},
    "set": {"text"}, "array": {"array"},
}
#: decimal digits of the largest int of (bits, unsigned)
_DIGITS = {(8, False): 3, (16, False): 5, (32, False): 10, (64, False): 19,
           (8, True): 3, (16, True): 5, (32, True): 10, (64, True): 20}


def check_agrees(logical: Logical, pg_type: str, enum: list[str] | None, what: str) -> None:
    """Refuse a logical type that is not a kind of value ``pg_type`` holds exactly."""
    if logical.kind == "other":
        return  # consumers load it as text, whatever the type
    f = family(pg_type, enum)
    try:
        parsed = parse_type(pg_type.strip())
    except TypeNameError:
        parsed = PgType("")
    if logical.kind == "array":
        assert logical.element is not None
        if f.kind != "array" or parsed.dims != 1:
            raise LogicalError(f"{what}: logical array but type {pg_type} is not a "
                               "one-dimensional array")
        check_agrees(logical.element, pg_type[:-2], enum, what)
        return
    if logical.kind == "bits":
        ok = parsed.base == ("bit varying" if logical.varying else "bit") and not parsed.dims \
            and (logical.length is None or logical.length == (
                parsed.mods[0] if parsed.mods else (None if logical.varying else 1)))
    else:
        ok = f.kind in _FAMILIES[logical.kind] and _fits(logical, parsed)
    if not ok:
        raise LogicalError(f"{what}: logical type {logical.kind} does not agree with type "
                           f"{pg_type[:80]}")


def _fits(lg: Logical, p: PgType) -> bool:
    """The finer checks: the type holds every value of the logical type."""
    k = lg.kind
    if k == "int":
        assert lg.bits is not None
        if p.base == "numeric":
            return not p.mods or (p.mods[0] >= _DIGITS[(lg.bits, bool(lg.unsigned))]
                                  and (len(p.mods) < 2 or p.mods[1] == 0))
        bits, unsigned = _PG_INTS[p.base]
        return lg.bits < bits if lg.unsigned and not unsigned else lg.bits <= bits and (
            unsigned == bool(lg.unsigned) or not unsigned)
    if k == "float":
        return lg.bits == (32 if p.base == "real" else 64)
    if k == "decimal" and lg.precision is not None:
        return p.mods == (lg.precision, lg.scale or 0) or (
            p.mods == (lg.precision,) and not lg.scale)
    if k in ("time", "timestamp"):
        if (lg.zone or False) != (p.suffix == "with time zone"):
            return False
        return lg.precision is None or not p.mods or lg.precision == p.mods[0]
    return True
