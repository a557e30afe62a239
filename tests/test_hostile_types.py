"""Column types from a manifest: a closed grammar, and DDL rebuilt from the parsed parts."""

from __future__ import annotations

import pytest

from topoff.dataset.manifest import Column
from topoff.pgtypes import TypeNameError, canonical_type, family, parse_type
from topoff.targets.postgres.target import column_type, enum_name

BUILT_IN = [
    "smallint", "integer", "bigint", "real", "double precision", "numeric", "numeric(10,2)",
    "numeric(5)", "numeric(3,-2)", "boolean", "text", "character varying",
    "character varying(10)", "character(5)", '"char"', "name", "bytea", "date",
    "time without time zone", "time(3) with time zone", "timestamp without time zone",
    "timestamp(6) with time zone", "interval", "interval(3)", "interval year to month",
    "interval day to second(2)", "interval second", "uuid", "json", "jsonb", "inet", "cidr",
    "macaddr", "macaddr8", "money", "bit(3)", "bit varying(8)", "xml", "point", "polygon",
    "circle", "tsvector", "tsquery", "oid", "pg_lsn", "int4range", "tstzmultirange",
    "integer[]", "text[][]", "timestamp(3) with time zone[]", "numeric(10,2)[]",
]


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_built_in_type_is_rebuilt_from_its_parts(name):
    t = parse_type(name)
    assert not t.user and t.ddl() == name


@pytest.mark.parametrize("name", [
    "integer references users", "integer references public.users on delete cascade",
    "text default 'x'", "text not null", "text collate \"C\"", "integer check (true)",
    "text); drop table x; --", "integer[] references users", "numeric(10,2) primary key",
    "character varying(0)", "numeric(1001)", "timestamp(7) with time zone",
    "interval fortnight", "integer" + "[]" * 7, "", " integer", "integer ", "INTEGER;",
    "public.users(3)", 'public."a"b"', "a.b.c", "x" * 200, "int\x00eger",
])
def test_anything_else_is_refused(name):
    with pytest.raises(TypeNameError):
        parse_type(name)
    if name == name.strip():  # family() reads the stripped name
        assert family(name).kind == "other"


@pytest.mark.parametrize("name", ["public.users", "public.mood[]", 'public."My Type"', "citext",
                                  "regclass", "ext.hstore"])
def test_a_named_type_is_loaded_as_text_never_pasted(name):
    assert parse_type(name).user
    assert column_type(Column("c", name)).as_string(None) == "text"  # type: ignore[union-attr]


def test_an_enum_gets_a_name_the_target_chooses():
    c = Column("c", 'public."Mood; DROP TABLE x"[]', enum=["a", "b"])
    assert column_type(c) is None  # the target creates its own enum type
    name = enum_name(c)
    assert name.startswith("Mood; DROP TABLE x_") and len(name.encode()) <= 63
    assert enum_name(Column("c", "public.m", enum=["a"])) != \
        enum_name(Column("c", "public.m", enum=["a", "b"]))


@pytest.mark.parametrize(("spelling", "name"), [
    ("_int4", "integer[]"), ("int4[]", "integer[]"), ("int", "integer"),
    ("varchar(3)[]", "character varying(3)[]"), ("_varchar", "character varying[]"),
    ("float8", "double precision"), ("_float4", "real[]"), ("float(24)", "real"),
    ("timestamptz(3)[]", "timestamp(3) with time zone[]"),
    ("timestamp", "timestamp without time zone"), ("timetz", "time with time zone"),
    ("decimal(5, 2)[]", "numeric(5,2)[]"), ("numeric(5, 2)", "numeric(5,2)"),
    ("varbit(4)[]", "bit varying(4)[]"), ("bpchar(3)", "character(3)"), ("char", "character"),
    ("_char", '"char"[]'), ("_int4[]", "integer[][]"), ("_interval", "interval[]"),
    # kept as they are: a named type, bpchar without a length (no character(n)), no type
    ("bpchar", "bpchar"), ("_bpchar", "_bpchar"), ("public.int4", "public.int4"),
    ("_mood", "_mood"), ("_", "_"), ("INT4", "INT4"),
])
def test_another_spelling_of_a_built_in_type_is_read_as_format_type_prints_it(spelling, name):
    c = Column.from_json({"name": "c", "type": spelling}, "column")
    assert c.type == name
    assert family(name).kind == family(c.type).kind


@pytest.mark.parametrize("spelling", ["timestamptz", "timestamp with time zone"])
def test_a_cursor_type_may_be_spelled_as_its_column_s(spelling):
    """A table whose cursor column is ``timestamptz`` (cursor_type too, or as format_type()
    prints it) has the cursor type ``timestamp with time zone``; it was refused."""
    from topoff.dataset.manifest import TableEntry

    entry = TableEntry.from_json("public.t", {
        "schema": "public", "name": "t", "method": "append", "cursor": "ts",
        "cursor_type": spelling, "files": [],
        "columns": [{"name": "ts", "type": "timestamptz"}]})
    assert entry.cursor_type == entry.columns[0].type == "timestamp with time zone"


@pytest.mark.parametrize(("spelling", "name"), [
    ("pg_catalog.box[]", "box[]"), ("pg_catalog.date", "date"), ('pg_catalog."char"', '"char"'),
    ('"pg_catalog".text', "text"), ("pg_catalog.int4", "integer"),
    ("pg_catalog.mood", "pg_catalog.mood"), ("public.box", "public.box"),
])
def test_a_built_in_type_qualified_by_pg_catalog_is_that_type(spelling, name):
    assert canonical_type(spelling) == name
