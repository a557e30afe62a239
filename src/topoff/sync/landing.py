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
from topoff.targets.names import reserved_schema

_HINT = "sync into another schema with --schema NAME, or leave the table out with --tables"


def check_schema_option(target: Target, schema: str | None) -> None:
    """``--schema``, before the target is changed."""
    why = reserved_schema(schema, target.folds_case) if schema is not None else None
    if why:
        raise ConfigError(f"--schema {schema} cannot hold a replica's tables: {why}",
                          hint="choose another schema name")


def check_landing(target: Target, new: Iterable[TableDef]) -> None:
    """The tables about to be made may be made where they would land."""
    for d in new:
        why = reserved_schema(d.target.schema, target.folds_case)
        if why:
            raise TargetError(f"table {d.source} of the dataset would land in schema "
                              f"{d.target.schema} of {target.url}: {why}", hint=_HINT)
