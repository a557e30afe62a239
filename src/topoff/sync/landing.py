"""Where a dataset's tables land in a SQL target, checked before anything is made.

The manifest names each table's schema (untrusted: a publisher can name any), and
``--schema`` puts every table into one. A table may not land in a schema topoff or the
engine keeps for itself (topoff.targets.names): a dataset table ``topoff.replicate_tables``
would have become replicate's state.
"""

from __future__ import annotations

from collections.abc import Iterable

from topoff.errors import ConfigError, TargetError
from topoff.targets.base import TableDef, Target
from topoff.targets.names import fold, reserved_schema

_HINT = "sync into another schema with --schema NAME, or leave the table out with --tables"


def check_schema_option(target: Target, schema: str | None) -> None:
    """``--schema``, before the target is changed."""
    why = reserved_schema(schema, target.folds_case) if schema is not None else None
    if why:
        raise ConfigError(f"--schema {schema} cannot hold a replica's tables: {why}",
                          hint="choose another schema name")


def check_landing(target: Target, new: Iterable[TableDef],
                  held: Iterable[TableDef] = ()) -> None:
    """The tables about to be made may be made where they would land: not in a reserved
    schema, not two of them (or one and a table the replica ``held``) in one table, and
    not where a table exists (another dataset's, replicate's, anyone's)."""
    def key(d: TableDef) -> tuple[str, str]:
        return fold(d.target.schema, target.folds_case), fold(d.target.name, target.folds_case)

    seen = {key(d): d for d in held}
    new = list(new)
    existing = target.existing_tables(d.target for d in new)
    for d in new:
        why = reserved_schema(d.target.schema, target.folds_case)
        if why:
            raise TargetError(f"table {d.source} of the dataset would land in schema "
                              f"{d.target.schema} of {target.url}: {why}", hint=_HINT)
        other = seen.setdefault(key(d), d)
        if other is not d:
            case = other.target != d.target
            raise TargetError(
                f"tables {other.source} and {d.source} of the dataset would both land in "
                f"{d.target}",
                hint="DuckDB's names ignore the case of letters: leave one of them out with "
                "--tables, or use a PostgreSQL or Iceberg replica" if case else
                "leave one of them out with --tables, or sync without --schema")
        if d.target in existing:
            raise TargetError(f"table {d.target} already exists in {target.url} and is not "
                              "part of this replica",
                              hint="drop it, or sync into another schema with --schema")
