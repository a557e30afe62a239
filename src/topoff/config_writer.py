"""A commented TOML configuration written from what the source has (``topoff init``).

The text is built by hand so it can carry comments; every name from the source goes
through :func:`toml_string` (or :func:`toml_key`), so quotes, backslashes, spaces, dots,
newlines and any other character in an identifier round-trip. :func:`render` parses its
own output again and checks it names exactly the tables and columns it was given.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter

from psycopg import conninfo as pg_conninfo
from psycopg import sql

from topoff.config import parse_config
from topoff.dataset import checks
from topoff.errors import ConfigError
from topoff.export.session import SnapshotSession
from topoff.pgtypes import is_type_name
from topoff.sources.discover import KINDS, FoundTable, discover, suggest

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}
#: column names that often hold personal data or secrets: suggested "private"
SENSITIVE = re.compile(
    r"passw|secret|token|api_?key|private|salt|certificate|signature|crypto|ssn|"
    r"credit_?card|iban|e_?mail|phone|address|(^|_)ip(_|$)|birth", re.I)

BANNER = """\
# =========================================================================================
#  REVIEW EVERY COLUMN BELOW BEFORE PUBLISHING ANYTHING EXPORTED WITH THIS FILE.
#
#  `topoff init` marked every column "public", except a few whose names look sensitive.
#  A "public" column is published in every export, to whoever can read the store (often
#  the whole world). Mark personal data, secrets and anything not meant for everyone
#  "private": private columns are never read, exported, or named in any published file.
#  `strict = true` stops an export when a column appears that this file does not classify.
# ========================================================================================="""


def toml_string(value: str) -> str:
    """A TOML basic string holding ``value`` exactly."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: object) -> str:
    """A TOML value: booleans, integers, strings and (nested) lists of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in value) + "]"
    return toml_string(str(value))


def toml_key(value: str) -> str:
    return value if _BARE.match(value) else toml_string(value)


def _comment(value: str) -> str:
    """A name or type inside a comment: control characters (a newline would end the
    comment) are written as escapes."""
    return "".join(f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                   for c in value)


def _is_maria(url: str) -> bool:
    from topoff.sources.base import engine_of

    return engine_of(url) != "postgresql"


def safe_source(url: str) -> str:
    """The connection string without any password (libpq takes those from PGPASSWORD or
    ~/.pgpass; MariaDB's client from MYSQL_PWD or an option file)."""
    if _is_maria(url):
        from topoff.sources.mariadb.discover import without_password

        return without_password(url)
    params = pg_conninfo.conninfo_to_dict(url)
    if not any("password" in k for k in params):
        return url
    return pg_conninfo.make_conninfo("", **{k: v for k, v in params.items()
                                         if "password" not in k})


def _ident(name: str) -> str:
    return name if _PLAIN.match(name) else sql.Identifier(name).as_string()


def _qualified(t: FoundTable) -> str:
    """schema.name as SQL writes it (quoted where needed), on one line for a comment."""
    return _comment(f"{_ident(t.schema)}.{_ident(t.name)}")


def _rows(est: float) -> str:
    return "not analyzed yet" if est < 0 else f"~{int(est):,} rows"


def _table(t: FoundTable, section: str) -> list[str]:
    s = suggest(t)
    pk = ", ".join(_comment(k) for k in t.primary_key) or "none"
    lines = [f"# {_qualified(t)}: {KINDS[t.relkind]}, {_rows(t.est_rows)}, "
             f"primary key: {pk}",
             f"# suggested {s.method}: {_comment(s.reason)}",
             f"[tables.{toml_key(section)}]",
             f"schema = {toml_string(t.schema)}"]
    if section != t.name:
        lines.append(f"name = {toml_string(t.name)}")
    lines.append(f"method = {toml_string(s.method)}")
    if s.cursor:
        lines.append(f"cursor = {toml_string(s.cursor)}")
        typ = dict(t.columns)[s.cursor]
        if "without time zone" in typ:
            lines.append('cursor_timezone = "UTC"  # the zone this cursor\'s values are written in')
    if t.primary_key:
        lines.append("key = [" + ", ".join(toml_string(k) for k in t.primary_key) + "]")
    lines += ["", f"[tables.{toml_key(section)}.columns]"]
    private = _private(t)
    for name, typ in t.columns:
        note = "; name looks sensitive" if name in private else ""
        if not _holdable(name):
            note = "; a dataset holds no name with a control character: kept private"
        if not is_type_name(typ):
            note += "; consumers refuse this type name: kept private (or export a view)"
        vis = "private" if name in private else "public"
        lines.append(f"{toml_key(name)} = \"{vis}\"  # {_comment(typ)}{note}")
    return lines


def _private(t: FoundTable) -> set[str]:
    """Columns suggested private: sensitive-looking names, never a key or the cursor."""
    s = suggest(t)
    keep_public = set(t.primary_key) | ({s.cursor} if s.cursor else set())
    return {n for n, typ in t.columns
            if (SENSITIVE.search(n) or not _holdable(n) or not is_type_name(typ))
            and n not in keep_public}


def _holdable(name: str) -> bool:
    """Whether a dataset may hold the column's name (the export refuses the others)."""
    try:
        checks.name(name, "column")
    except checks.Invalid:
        return False
    return True


def listed(found: list[FoundTable]) -> tuple[list[FoundTable], list[tuple[FoundTable, str]]]:
    """The tables a config from ``init`` lists, and the others with the reason why not."""
    tables, skipped = [], []
    for t in found:
        why = (KINDS[t.relkind] if not t.is_table
               else "no SELECT privilege" if not t.readable
               else "unlogged: a standby holds none of its rows" if t.unlogged
               else "no columns" if not t.columns
               else "every column looks sensitive" if len(_private(t)) == len(t.columns)
               else None)
        if why:
            skipped.append((t, why))
        else:
            tables.append(t)
    return tables, skipped


def render(found: list[FoundTable], dataset: str, source_url: str, database: str) -> str:
    """The configuration text for the given tables (views and unreadable tables are listed
    in comments only)."""
    tables, skipped = listed(found)
    counts = Counter(t.name for t in tables)
    out = [BANNER, "#", f"# Written by `topoff init` from database {_comment(database)}.",
           "# Every key is described in docs/configuration.md.", "",
           f"dataset = {toml_string(dataset)}",
           "strict = true   # refuse a source column this file does not classify", "",
           "[source]",
           *(["# A replica. --source and TOPOFF_SOURCE_URL override it; a password is never",
              "# written here: topoff reads MYSQL_PWD or ~/.my.cnf (docs/mariadb.md)."]
             if _is_maria(source_url) else
             ["# A hot standby. --source and TOPOFF_SOURCE_URL override it; a password is "
              "never", "# written here: libpq reads PGPASSWORD or ~/.pgpass."]),
           f"url = {toml_string(safe_source(source_url))}",
           "allow_primary = false", "",
           "[export]", "jobs = 2", 'chunk_size = "256MiB"', "lookback_days = 3", ""]
    if skipped:
        out.append("# Not listed (add a [tables.NAME] section to export one):")
        for t, why in skipped:
            out.append(f"#   {_qualified(t)} ({why})")
        out.append("")
    out.append("# One section per table. method: append (rows are only inserted; a day's rows are")
    out.append("# found by the cursor), upsert (rows change; the cursor is an updated-at column),")
    out.append("# snapshot (exported whole, skipped when unchanged).")
    used: set[str] = set()
    for t in tables:
        section = t.name if counts[t.name] == 1 else t.qualified
        while section in used:  # a table literally named like another's schema.name
            section += "_"
        used.add(section)
        out += ["", *_table(t, section)]
    if not tables:
        raise ConfigError(f"{database} has no table to list in "
                          + (", ".join(sorted({t.schema for t in found})) or "these schemas")
                          + ("; not listed: " + ", ".join(f"{_qualified(t)} ({why})"
                                                          for t, why in skipped[:5])
                             + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
                             if skipped else ""),
                          hint="check --source and --schema (views are not listed: add them "
                          "by hand)")
    text = "\n".join(out) + "\n"
    _check_round_trip(text, tables)
    return text


def _check_round_trip(text: str, tables: list[FoundTable]) -> None:
    config = parse_config(tomllib.loads(text))
    got = {(t.schema, t.name): list(t.columns) for t in config.tables}
    want = {(t.schema, t.name): [c for c, _ in t.columns] for t in tables}
    if got != want:
        raise AssertionError("the written configuration does not name the source's tables")


def read_source(url: str, allow_primary: bool, only: list[str] | None = None,
                application_name: str = "topoff init") -> tuple[str, list[FoundTable]]:
    """The database's name and its tables, read like an export reads: a standby unless
    ``allow_primary``, in one read-only transaction."""
    if _is_maria(url):
        from topoff.sources.mariadb.discover import read_source as read_maria

        return read_maria(url, allow_primary, only, application_name)
    with SnapshotSession(url, allow_primary, application_name) as session:
        info = session.open()
        assert session.conn is not None
        return info.database, discover(session.conn, only)
