"""What a failure of the replica's engine means for the person running topoff.

DuckDB and PostgreSQL report the same situations (a full disk, a permission refused, a
malformed CSV file, Ctrl-C in the middle of a statement) with their own exception classes
and texts. :func:`classify` turns them into the :class:`~topoff.errors.TopoffError` kind
with one line of message and one of hint, so that every command (sync, status, verify)
reports the same failure with the same exit code. Anything it does not recognise is left
alone: it is a bug in topoff, and the CLI says so (exit 70).
"""

from __future__ import annotations

import contextlib
import errno
import re
from collections.abc import Callable, Iterator

from topoff.errors import IntegrityError, Interrupted, SourceError, TargetError, TopoffError

#: (publication id, file name in the dataset) for a data file the engine names by path
FileNamer = Callable[[str], "tuple[str | None, str | None]"]

INTERRUPTED_HINT = ("what was committed is kept and the rest rolled back; run the same "
                    "command again to resume")
MALFORMED_HINT = ("the publication holds a file the replica cannot read although its checksum "
                  "matches: ask the publisher to republish it (nothing of it was applied)")
NUL_HINT = ("the data are fine: put that table in a DuckDB or Iceberg replica, which keep "
            "it, leave it out (--tables, or exclude the column), or remove the NUL on the "
            "source (docs/targets.md)")
JSON_HINT = ("the data are fine: put that table in a DuckDB or Iceberg replica, which keep "
             "the text, leave it out (--tables, or exclude the column), or rewrite the value "
             "on the source (docs/mariadb.md)")
_DISK_FULL = ("no space left on device", "disk full", "could not extend file", "out of disk",
              "not enough space")
_PERMISSION = ("permission denied", "read-only file system", "operation not permitted")
_FILE_IN_MESSAGE = re.compile(r"^\s*file\s*=\s*(?P<path>.+?)\s*$", re.MULTILINE)
#: the context of a COPY ... FROM that refused a row: the replica's side of a replicate
_COPY_IN = re.compile(r"^COPY [^,]+, line \d+(?:, column (?P<column>[^:]+))?")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from or during, newest first."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, however the engine reported it: KeyboardInterrupt, DuckDB's "Query
    interrupted" (and the "transaction is aborted" that follows it), a cancelled query."""
    for e in _chain(exc):
        if isinstance(e, KeyboardInterrupt | Interrupted):
            return True
        name = type(e).__name__
        if name == "InterruptException":
            return True
        if isinstance(e, RuntimeError) and "query interrupted" in str(e).lower():
            return True
        if _is_duckdb(e) and "KeyboardInterrupt" in str(e):
            return True  # Ctrl-C inside a Python object DuckDB was reading (an Arrow stream)
    return False


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _is_duckdb(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb")


def _is_psycopg(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "psycopg"


def _os_error(exc: OSError, where: str, replicating: bool) -> TopoffError | None:
    path = exc.filename or where
    if (exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT) and replicating:
        # a file of no name is a temporary one (the overlap's spool, under TMPDIR)
        on = f"the device of {exc.filename}" if exc.filename else "the temporary directory's disk"
        return TargetError(f"no space left on {on}", hint="free some space (or point TMPDIR at "
                           "a larger disk), then run the same command again; what was "
                           "committed is kept")
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return TargetError(f"no space left on the device of {path}",
                           hint="free some space (or give --cache-dir on a larger disk), then "
                           "run the same command again; what was committed is kept")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TargetError(f"permission denied: {path}",
                           hint="run as a user that may write there, or choose another path")
    return None


def _malformed(detail: str, publication: str | None, file: str | None,
               table: str | None) -> IntegrityError:
    what = f"file {file}" if file else (f"a data file of {table}" if table else "a data file")
    of = f" of publication {publication}" if publication else ""
    return IntegrityError(f"{what}{of} is malformed ({detail})", hint=MALFORMED_HINT)


def _duckdb(exc: BaseException, where: str, publication: str | None,
            name_file: FileNamer | None) -> TopoffError | None:
    name = type(exc).__name__
    text = str(exc)
    low = text.lower()
    if name == "InvalidInputException" and ("csv" in low or "file =" in low):
        found = _FILE_IN_MESSAGE.search(text)
        pub, file = (None, None)
        if found and name_file:
            pub, file = name_file(found.group("path"))
        elif found:
            file = found.group("path")
        detail = " ".join(ln.strip() for ln in text.splitlines()[:1]
                          if ln.strip()).removeprefix("Invalid Input Error: ")
        return _malformed(detail, pub or publication, file, None)
    if name == "CatalogException" and "already exists" in low:  # "T" and "t": one name
        return TargetError(f"DuckDB replica {where}: {_first_line(exc)}", hint="DuckDB's "
                           "names ignore the case of letters: leave one of the two tables "
                           "(or the table) out (--tables), or use a PostgreSQL or Iceberg "
                           "replica")
    if any(s in low for s in _DISK_FULL + _PERMISSION) or name in (
            "IOException", "OutOfMemoryException", "PermissionException", "FatalException"):
        if any(s in low for s in _DISK_FULL):
            return TargetError(f"the disk of DuckDB replica {where} is full",
                               hint="free some space or move the replica to a larger disk, then "
                               "run the same command again; what was committed is kept")
        if any(s in low for s in _PERMISSION):
            return TargetError(f"cannot write DuckDB replica {where}: permission denied",
                               hint="run as a user that may write the file and its directory, "
                               "or choose another path")
        if name == "OutOfMemoryException":
            return TargetError(f"DuckDB ran out of memory in {where}: {_first_line(exc)}",
                               hint="set memory_limit lower or free memory, then run again")
        if name == "FatalException":
            return TargetError(f"DuckDB replica {where} failed: {_first_line(exc)}",
                               hint="the file may be damaged: run the same command again, or "
                               "sync into a new file")
    return None


#: the text interval_out writes for the least interval (-2^31 months and days, -2^63
#: microseconds), which no PostgreSQL reads back
LEAST_INTERVAL = "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775808"


def _refused_value(detail: str, where: str, context: list[str]) -> TopoffError:
    """A value PostgreSQL refused while ``topoff replicate`` moved rows (it reads no data
    file: nothing to republish). A COPY into a table is the replica's side; any other
    statement is the source's (the replica's merges move values between tables alike)."""
    copy_in = _COPY_IN.match(context[-1]) if context else None
    if copy_in:
        column = f", column {copy_in['column']}" if copy_in["column"] else ""
        if LEAST_INTERVAL in detail:  # interval_out's text, which interval_in refuses
            return TargetError(
                f"the replica refused a value of {where}{column}: {detail}: the least "
                "interval, whose text PostgreSQL itself cannot read",
                hint="leave such rows out with the table's `where`; the rows of a table "
                "of built-in types only move in binary, which carries it (docs/replicate.md)")
        return TargetError(
            f"the replica refused a value of {where}{column}: {detail}",
            hint="the replica's column cannot hold a value the source has (was the column "
            f"changed in the replica?): `topoff replicate --resync {where}` rebuilds it")
    return SourceError(
        f"a statement on the source failed on a value of {where}: {detail}",
        hint="a row of the source breaks a statement topoff runs there: check the table's "
        "where condition, cursor and column types (docs/replicate.md)")


def _psycopg(exc: BaseException, where: str, publication: str | None,
             replicating: bool = False) -> TopoffError | None:
    state = _sqlstate(exc) or ""
    diag = getattr(exc, "diag", None)
    detail = _first_line(exc)
    context = (getattr(diag, "context", None) or "").strip().splitlines()
    copying = bool(context) and context[-1].startswith("COPY ")
    if state in ("22P04", "22P02", "22007", "22008", "22009", "22003", "22021", "22P05",
                 "22025", "22026", "22004", "22001") or (state == "22023" and copying) or (
                     replicating and state.startswith("22")):
        # 22001: longer than a varchar(n); 22023 in a COPY: a bytea of odd hex digits;
        # 22009: a time zone offset beyond ±15:59
        table = None
        if context and context[-1].startswith("COPY "):
            table = context[-1].removeprefix("COPY ").split(",")[0].strip()
        more = getattr(diag, "message_detail", None) or ""
        if (state == "22021" and "0x00" in detail) or (state == "22P05" and "\\u0000" in more):
            # valid in the source (MariaDB text, JSON's \u0000), not storable in PostgreSQL
            of = f" of {table}" if table else ""
            return TargetError(f"a value{of} holds a NUL character, which PostgreSQL cannot "
                               "store in text or jsonb; nothing of it was applied",
                               hint=NUL_HINT)
        if state == "22P02" and "type json" in detail:
            # MariaDB's JSON accepts texts PostgreSQL's json refuses ([1.], "\a", [-])
            of = f" of {table}" if table else ""
            return TargetError(f"a value{of} is JSON that PostgreSQL's json type refuses "
                               f"({more or detail}); nothing of it was applied",
                               hint=JSON_HINT)
        if replicating:
            return _refused_value(detail, where, context)
        return _malformed(detail, publication, None, table)
    if state in ("23505", "21000") and not replicating:
        # two rows of one key: a dataset whose rows break the key its manifest declares
        # (a unique index refused them, or an upsert met one key twice)
        table = getattr(diag, "table_name", None)
        what = f"rows of {table}" if table else "rows"
        of = f" of publication {publication}" if publication else ""
        return IntegrityError(f"{what}{of} break the key the dataset declares ({detail})",
                              hint="its checksum matches, but its rows are not what its "
                              "manifest says: ask the publisher to republish it")
    if state == "42501":
        return TargetError(
            f"the role may not do this in {where}: {detail}",
            hint="grant the role CREATE on the database and on the schemas the replica uses "
            "(GRANT CREATE ON DATABASE ...; GRANT CREATE ON SCHEMA ...), or use another role")
    # replicating, ``where`` is the table (the run names it first): the server is the target
    server = "the PostgreSQL target" if replicating else f"the PostgreSQL replica {where}"
    if state == "53100":
        return TargetError(f"{server} is out of disk space"
                           + (f" ({detail})" if replicating else ""),
                           hint="free space on the database server, then run the same command "
                           "again; what was committed is kept")
    if state.startswith("53"):
        return TargetError(f"{server} ran out of resources: {detail}",
                           hint="ask the DBA to check the server, then run the command again")
    if state == "57014":
        return TargetError(f"a statement on {where} was cancelled: {detail}",
                           hint="a statement_timeout or an administrator cancelled it; run the "
                           "same command again")
    if state.startswith(("08", "57P")) or type(exc).__name__ == "OperationalError":
        return TargetError(f"lost the connection to {where}: {detail}",
                           hint="check that the server is running and reachable, then run the "
                           "same command again; what was committed is kept")
    if state in ("40001", "40P01", "55P03"):
        return TargetError(f"{where} is busy: {detail}",
                           hint="another session holds what topoff needs; run the command again")
    if state == "25006":
        return TargetError(f"{where} is read-only: {detail}",
                           hint="give the URL of a database you can write to")
    return None


def classify(exc: BaseException, where: str, publication: str | None = None,
             name_file: FileNamer | None = None, replicating: bool = False
             ) -> TopoffError | None:
    """The TopoffError an engine exception means, or None when it is not one we know
    (a TopoffError is returned as it is, an interrupt becomes :class:`Interrupted`).
    ``replicating``: ``topoff replicate`` moving rows from a source, where a refused value
    is the replica's or the source's, never a malformed data file."""
    if is_interrupt(exc):
        return Interrupted("interrupted", hint=INTERRUPTED_HINT)
    if isinstance(exc, TopoffError):
        return exc
    for e in _chain(exc):
        found: TopoffError | None = None
        if isinstance(e, OSError) and not _is_duckdb(e) and not _is_psycopg(e):
            found = _os_error(e, where, replicating)
        elif _is_duckdb(e) and replicating and (
                type(e).__name__ == "ConversionException"
                or (type(e).__name__ == "InvalidInputException"
                    and " is not a value PostgreSQL reads as " in _first_line(e))):
            # a value of the source's the DuckDB replica cannot hold (docs/targets.md), or
            # whose text PostgreSQL's own input refuses (the least interval), which the
            # load's checks (duckdb/checked.py) refuse too
            detail = _first_line(e).removeprefix("Conversion Error: ")
            found = TargetError(f"the DuckDB replica cannot hold a value of {where}: "
                                f"{detail.removeprefix('Invalid Input Error: ')}",
                                hint="DuckDB's ranges are narrower than PostgreSQL's for some "
                                "types (docs/targets.md): leave such rows out with the table's "
                                "`where`, or replicate it into PostgreSQL or Iceberg")
        elif _is_duckdb(e):
            found = _duckdb(e, where, publication, name_file)
        elif _is_psycopg(e):
            found = _psycopg(e, where, publication, replicating)
        elif type(e).__module__.startswith("sqlalchemy."):  # an Iceberg SQL catalog's
            from topoff.targets.iceberg.config import catalog_failure

            found = catalog_failure(e, None)
        if found is not None:
            return found
    return None


@contextlib.contextmanager
def engine_errors(where: str, publication: str | None = None,
                  name_file: FileNamer | None = None) -> Iterator[None]:
    """Raise what an engine failure inside the block means, as a TopoffError (an engine's
    report of Ctrl-C becomes :class:`Interrupted`; a KeyboardInterrupt goes through)."""
    try:
        yield
    except (TopoffError, KeyboardInterrupt):  # Ctrl-C stays Ctrl-C for library callers
        raise
    except BaseException as e:
        found = classify(e, where, publication, name_file)
        if found is None:
            raise
        raise found from e
