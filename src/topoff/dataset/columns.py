"""A column of a manifest's table: name, PostgreSQL type, nullability, enum labels, and the
neutral ``logical`` type with the source's ``native`` spelling (docs/dataset-format.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from topoff.dataset import checks as ck
from topoff.dataset.logical import Logical, LogicalError, check_agrees, check_native, from_pg_type
from topoff.pgtypes import TypeNameError, canonical_type, parse_type


@dataclass(frozen=True)
class Column:
    name: str
    #: PostgreSQL type as format_type() prints it, domains resolved to their base type: the
    #: type whose text form the data files hold
    type: str
    nullable: bool = True
    #: labels of an enum type (or of the element type of an enum array)
    enum: list[str] | None = None
    #: the neutral type (dataset/logical.py); derived from ``type`` when not given
    logical: Logical = None  # type: ignore[assignment]
    #: the source engine's own spelling of the type (an annotation: never used in SQL)
    native: str | None = None

    def __post_init__(self) -> None:
        if self.logical is None:
            object.__setattr__(self, "logical", from_pg_type(self.type, self.enum))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.enum is not None:
            d["enum"] = self.enum
        d["logical"] = self.logical.to_json()
        if self.native is not None:
            d["native"] = self.native
        return d

    @classmethod
    def from_json(cls, d: Any, what: str) -> Column:
        d = ck.obj(d, what)
        name = ck.name(d.get("name"), f"{what} name")
        what = f"{what} {name!r}"
        # another spelling of a built-in type (int4[], _int4, varchar(3)) is that type
        type_ = canonical_type(ck.text(d.get("type"), f"{what} type", 200))
        try:
            parsed = parse_type(type_)
            logical = None if d.get("logical") is None else Logical.from_json(
                d["logical"], f"{what} logical")
            native = check_native(d.get("native"), what)
        except (TypeNameError, LogicalError) as e:
            raise ck.Invalid(f"{what}: {e}" if isinstance(e, TypeNameError) else str(e)
                             ) from None
        enum = d.get("enum")
        if enum is not None:
            # a source without enum types (MariaDB) holds them in text, saying so in logical:
            # its labels are any text ('' or longer than a PostgreSQL name included)
            text_enum = logical is not None and "enum" in (
                logical.kind, logical.element.kind if logical.element else None) \
                and not parsed.user and parsed.base in ("text", "character varying")
            # (a PostgreSQL enum's label is at most 63 bytes, and may be '')
            labels = [ck.text(v, f"{what} enum label") if text_enum or v == "" else
                      ck.name(v, f"{what} enum label", printed=False)
                      for v in ck.items(enum, f"{what} enum")]
            if not (parsed.user or text_enum) or len(set(labels)) != len(labels):
                raise ck.Invalid(f"{what}: enum labels on a built-in type, or repeated labels")
            enum = labels
        if logical is not None:
            try:
                check_agrees(logical, type_, enum, what)
            except LogicalError as e:
                raise ck.Invalid(str(e)) from None
        return cls(name, type_, ck.typed(d.get("nullable", True), bool, f"{what} nullable"),
                   enum, cast(Logical, logical), native)  # None: derived from type_
