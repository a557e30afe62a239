"""A configured table's columns checked against the columns the source has.

One set of rules and messages for every engine: a column the config names must exist,
``--strict`` refuses columns the config does not classify (otherwise they are exported,
with a warning), and a table with no column to export (none at all, or all private) is
an error. Every name exported must be one a dataset holds (dataset/checks.py): MariaDB's
may be 64 characters of up to 4 bytes, a dataset's (PostgreSQL's) 63 bytes at most.
"""

from __future__ import annotations

import difflib
import logging

from topoff.config import TableConfig
from topoff.dataset import checks
from topoff.errors import ConfigError
from topoff.pgtypes import is_type_name

log = logging.getLogger("topoff")


def near(name: str, choices: list[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def exported_columns(tc: TableConfig, names: list[str], strict: bool) -> list[str]:
    """The columns of ``names`` (the source table's, in order) that an export reads."""
    where = f"[tables.{tc.name}]"
    if not names:  # CREATE TABLE t (): legal, and nothing a replica can hold
        raise ConfigError(f"{tc.qualified} has no columns; nothing to export",
                          hint=f"remove {where} from the config")
    for col in list(tc.columns) + [c for c in (tc.cursor, *(tc.key or ())) if c]:
        if col not in names:
            raise ConfigError(f"{where} names column {col!r}, which {tc.qualified} does not "
                              f"have{near(col, names)}",
                              hint=f"columns of {tc.qualified}: {', '.join(names)}")
    unclassified = [n for n in names if n not in tc.columns]
    if unclassified and strict:
        raise ConfigError(
            f"column {unclassified[0]} of {tc.qualified} is not classified public or private "
            "(--strict)",
            hint=f"add {unclassified[0]} = \"public\" or \"private\" under "
                 f"[tables.{tc.name}.columns]")
    if unclassified and tc.columns:
        log.warning("%s: columns %s are not classified in the config; they are exported as "
                    "public (use --strict to refuse)", tc.qualified, ", ".join(unclassified))
    private = tc.private_columns()
    kept = [n for n in names if n not in private]
    if not kept:
        raise ConfigError(f"every column of {tc.qualified} is private; nothing to export",
                          hint=f"remove [tables.{tc.name}] or make a column public")
    return kept


def check_names(tc: TableConfig, columns: list[str]) -> None:
    """ConfigError for the table's schema or name, or an exported column's name, that a
    dataset cannot hold (1 to 63 bytes, no control characters), before anything is read."""
    for what, value in (("schema", tc.schema), ("table name", tc.name),
                        *(("column", c) for c in columns)):
        try:
            checks.name(value, what)
        except checks.Invalid:
            hint = (f'leave it out: {value!r} = "private" under [tables.{tc.name}.columns], '
                    "or rename it on the source") if what == "column" else \
                "rename it on the source, or leave the table out of the config"
            raise ConfigError(f"{tc.qualified}: {what} {value!r:.80} is not a name a dataset "
                              f"holds (1 to 63 bytes, no control characters; it has "
                              f"{len(value.encode())} bytes)", hint=hint) from None


def check_types(tc: TableConfig, columns: list[tuple[str, str]]) -> None:
    """ConfigError for an exported column (name, type) whose type no consumer creates (its
    manifest would be refused whole), before anything is read; check-config says the same."""
    for name, typ in columns:
        if not is_type_name(typ):
            raise ConfigError(f"column {name} of {tc.qualified} has type {typ!r:.80}, which "
                              "consumers refuse to create",
                              hint=f'leave it out: {name!r} = "private" under '
                              f"[tables.{tc.name}.columns], or export a view that casts it "
                              "to text")
