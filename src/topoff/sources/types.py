"""The user-defined types exported tables depend on, as pre-data statements.

Walks the catalog from the types of a table's exported columns to every enum, composite,
range (with its multirange) and domain they use, through arrays, domain base types,
composite attributes and range subtypes, and returns them in dependency order (a type
after the types it uses). Names are quoted with ``sql.Identifier`` from their catalog
parts; only ``format_type()`` of built-in types and the source's own deparsed expressions
(domain defaults and CHECK constraints, as ``pg_get_constraintdef`` prints them) are
written as the catalog gives them. Types that belong to an extension become
``CREATE EXTENSION IF NOT EXISTS``. Runs with ``search_path = pg_catalog`` (set by
``catalog.introspect``), so every name the catalog prints is qualified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

log = logging.getLogger("topoff")

_BUILTIN_SCHEMAS = ("pg_catalog", "information_schema")

_TYPE_Q = """
SELECT t.oid, n.nspname, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype,
       t.typtypmod, t.typnotnull, pg_get_expr(t.typdefaultbin, 0), t.typrelid, t.typcollation,
       (SELECT x.extname FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
         WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
           AND d.refclassid = 'pg_extension'::regclass),
       (SELECT xn.nspname FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
         JOIN pg_namespace xn ON xn.oid = x.extnamespace
         WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
           AND d.refclassid = 'pg_extension'::regclass)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid = %s
"""
_ENUM_Q = "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder"
_ATTRS_Q = """
SELECT a.attname, a.atttypid, a.atttypmod, a.attndims, c.relkind
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.oid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_RANGE_Q = """
SELECT r.rngsubtype, mt.typname, mn.nspname,
       CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation
            THEN cn.nspname END, co.collname,
       CASE WHEN NOT oc.opcdefault THEN ocn.nspname END, oc.opcname,
       CASE WHEN r.rngsubdiff <> 0 AND fn.nspname = 'pg_catalog' THEN f.proname END
FROM pg_range r
JOIN pg_type st ON st.oid = r.rngsubtype
JOIN pg_type mt ON mt.oid = r.rngmultitypid JOIN pg_namespace mn ON mn.oid = mt.typnamespace
JOIN pg_opclass oc ON oc.oid = r.rngsubopc JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
LEFT JOIN pg_collation co ON co.oid = r.rngcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
LEFT JOIN pg_proc f ON f.oid = r.rngsubdiff LEFT JOIN pg_namespace fn ON fn.oid = f.pronamespace
WHERE r.rngtypid = %s
"""
_DOMAIN_COLLATION_Q = """
SELECT cn.nspname, co.collname FROM pg_type t JOIN pg_type b ON b.oid = t.typbasetype
JOIN pg_collation co ON co.oid = t.typcollation JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE t.oid = %s AND t.typcollation <> b.typcollation
"""
_DOMAIN_CHECKS_Q = """
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
WHERE contypid = %s AND contype = 'c' ORDER BY conname
"""


@dataclass(frozen=True)
class TypeDef:
    """One statement of pre-data that a table's columns need."""

    key: tuple[str, ...]  # ("type", oid) or ("extension", name): the same object once
    schema: str | None  # the schema it lives in (created first)
    statement: str
    #: for post-data, after the rows are loaded (a domain's NOT VALID constraints)
    post_data: tuple[str, ...] = ()


class TypeWalker:
    """Collects the definitions of user types, each after the ones it uses."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._done: dict[int, list[TypeDef]] = {}  # oid -> its closure, in order
        self._rows: dict[int, tuple] = {}
        self._formatted: dict[tuple[int, int], str] = {}

    def _row(self, oid: int) -> tuple:
        if oid not in self._rows:
            row = self.conn.execute(_TYPE_Q, (oid,)).fetchone()
            assert row is not None, f"type {oid} vanished inside the snapshot"
            self._rows[oid] = row
        return self._rows[oid]

    def ref(self, oid: int, typmod: int = -1, ndims: int = 0) -> str:
        """How a column or attribute of this type is declared (names quoted)."""
        (_, nsp, name, _typtype, category, elem, *_rest) = self._row(oid)
        extra = "[]" * max(ndims - 1, 0)  # format_type() prints integer[][] as integer[]
        if category == "A" and elem and nsp not in _BUILTIN_SCHEMAS:
            return self.ref(elem, typmod) + "[]" + extra
        if nsp in _BUILTIN_SCHEMAS or typmod >= 0:
            # built-in names, or a modifier only the type's own output function can print
            if (oid, typmod) not in self._formatted:
                (self._formatted[oid, typmod],) = self.conn.execute(
                    "SELECT format_type(%s, %s)", (oid, typmod)).fetchone()  # type: ignore[misc]
            return self._formatted[oid, typmod] + extra
        return sql.Identifier(nsp, name).as_string() + extra

    def needs(self, oid: int) -> list[TypeDef]:
        """Definitions for this type and everything it uses, dependencies first."""
        if oid in self._done:
            return self._done[oid]
        self._done[oid] = []  # a cycle (not possible in PostgreSQL) ends here
        out: list[TypeDef] = []
        (_, nsp, name, typtype, category, elem, base, typmod, notnull, default, relid,
         _coll, ext, ext_schema) = self._row(oid)
        ident = sql.Identifier(nsp, name).as_string()
        if nsp in _BUILTIN_SCHEMAS:
            pass
        elif category == "A" and elem:
            out += self.needs(elem)
        elif ext:
            out.append(TypeDef(("extension", ext), ext_schema,
                               sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};").format(
                                   sql.Identifier(ext), sql.Identifier(ext_schema)).as_string()))
        elif typtype == "e":
            labels = [r[0] for r in self.conn.execute(_ENUM_Q, (oid,)).fetchall()]
            values = ", ".join(sql.Literal(v).as_string() for v in labels)
            out.append(TypeDef(("type", str(oid)), nsp, f"CREATE TYPE {ident} AS ENUM ({values});"))
        elif typtype == "d":
            out += self.needs(base)
            out.append(self._domain(oid, nsp, ident, base, typmod, notnull, default))
        elif typtype == "c":
            out += self._composite(oid, nsp, ident, relid)
        elif typtype == "r":
            out += self._range(oid, nsp, ident)
        elif typtype == "m":
            (rng,) = self.conn.execute("SELECT rngtypid FROM pg_range WHERE rngmultitypid = %s",
                                       (oid,)).fetchone()  # type: ignore[misc]
            out += self.needs(rng)
        else:
            log.warning("pre-data cannot create type %s.%s (a base type outside an "
                        "extension): create it in the target database before loading", nsp, name)
        self._done[oid] = _unique(out)
        return self._done[oid]

    def _domain(self, oid: int, nsp: str, ident: str, base: int, typmod: int, notnull: bool,
                default: str | None) -> TypeDef:
        parts = [f"CREATE DOMAIN {ident} AS {self.ref(base, typmod)}"]
        coll = self.conn.execute(_DOMAIN_COLLATION_Q, (oid,)).fetchone()
        if coll:
            parts.append(f"COLLATE {sql.Identifier(*coll).as_string()}")
        if default is not None:
            parts.append(f"DEFAULT {default}")
        if notnull:
            parts.append("NOT NULL")
        later = []
        for conname, condef, valid in self.conn.execute(_DOMAIN_CHECKS_Q, (oid,)).fetchall():
            con = f"CONSTRAINT {sql.Identifier(conname).as_string()} {condef}"
            if valid:
                parts.append(con)
            else:  # NOT VALID (pg_get_constraintdef says so): rows may break it, add it last
                later.append(f"ALTER DOMAIN {ident} ADD {con};")
        return TypeDef(("type", str(oid)), nsp, "\n    ".join(parts) + ";", tuple(later))

    def _composite(self, oid: int, nsp: str, ident: str, relid: int) -> list[TypeDef]:
        attrs = self.conn.execute(_ATTRS_Q, (relid,)).fetchall()
        if attrs and attrs[0][4] != "c":
            log.warning("pre-data cannot create %s: a column has the row type of a table; "
                        "create that table in the target database first", ident)
            return []
        out: list[TypeDef] = []
        fields = []
        for attname, atttypid, atttypmod, attndims, _ in attrs:
            out += self.needs(atttypid)
            fields.append(f"{sql.Identifier(attname).as_string()} "
                          f"{self.ref(atttypid, atttypmod, attndims)}")
        out.append(TypeDef(("type", str(oid)), nsp,
                           f"CREATE TYPE {ident} AS ({', '.join(fields)});"))
        return out

    def _range(self, oid: int, nsp: str, ident: str) -> list[TypeDef]:
        (sub, mname, mnsp, collnsp, collname, opcnsp, opcname, diff) = self.conn.execute(
            _RANGE_Q, (oid,)).fetchone()  # type: ignore[misc]
        out = list(self.needs(sub))
        opts = [f"SUBTYPE = {self.ref(sub)}",
                f"MULTIRANGE_TYPE_NAME = {sql.Identifier(mnsp, mname).as_string()}"]
        if opcnsp:
            opts.append(f"SUBTYPE_OPCLASS = {sql.Identifier(opcnsp, opcname).as_string()}")
        if collnsp:
            opts.append(f"COLLATION = {sql.Identifier(collnsp, collname).as_string()}")
        if diff:
            opts.append(f"SUBTYPE_DIFF = {sql.Identifier('pg_catalog', diff).as_string()}")
        out.append(TypeDef(("type", str(oid)), nsp,
                           f"CREATE TYPE {ident} AS RANGE ({', '.join(opts)});"))
        return out


def _unique(defs: list[TypeDef]) -> list[TypeDef]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for d in defs:
        if d.key not in seen:
            seen.add(d.key)
            out.append(d)
    return out


def merge(lists: list[list[TypeDef]]) -> list[TypeDef]:
    """One list from several closed, ordered ones; still dependencies first."""
    return _unique([d for defs in lists for d in defs])
