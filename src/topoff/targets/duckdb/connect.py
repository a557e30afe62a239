"""Opening a DuckDB replica file under a catalog name of topoff's own.

DuckDB names a database it opens after its file (``public.duckdb`` is the catalog
``public``), and a two-part name ``a.b`` whose ``a`` is both a catalog and a schema is an
error ("Ambiguous reference to catalog or schema"). A replica named ``topoff.duckdb``, or
named like one of its schemas (``public.duckdb``, ``--schema nommer`` in
``nommer.duckdb``), could not be written at all. The file is therefore attached under
:data:`CATALOG`, made the default, and the in-memory database DuckDB starts with is
detached: the catalogs left are ``CATALOG``, ``system`` and ``temp``, and no replica schema
may take those names (:mod:`topoff.targets.names`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import duckdb

from topoff.errors import OPEN_FILES_HINT, LockedError, NoReplicaError, TargetError
from topoff.targets.names import DUCKDB_CATALOG as CATALOG

#: the error of a file this process has attached already (DuckDB's newer releases; the
#: older ones say so in the message of another class)
_IN_USE: tuple[type[Exception], ...] = tuple(
    c for c in (getattr(duckdb, "ResourceInUseException", None),) if c is not None)


#: the first blocks of a DuckDB file (its main header and two database headers): a file
#: shorter than this holds no database
_HEADERS = 3 * 4096


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect(database: str, config: dict[str, Any], path: Path,
            read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the file ``database`` attached as
    :data:`CATALOG` (``:memory:``: an empty, unsaved database as it is). ``read_only``
    (status, verify): attached read-only, beside other readers (a writer still keeps it)."""
    con = duckdb.connect(":memory:", config=config)
    if database == ":memory:":
        return con
    mode = " (READ_ONLY)" if read_only else ""
    new = not path.exists()
    try:
        con.execute(f"ATTACH {_literal(database)} AS {CATALOG}{mode}")
    except duckdb.IOException as e:
        con.close()
        first = str(e).splitlines()[0]
        if "no space left on device" in first.lower() or "disk quota" in first.lower():
            if new:
                _remove_headless(path)
            raise TargetError(f"the disk of DuckDB replica {path} is full",
                              hint="free some space or move the replica to a larger disk, "
                              "then run the same command again") from None
        if read_only and "not a valid DuckDB database file" in first:  # status, verify
            raise NoReplicaError(f"{path} holds no topoff replica: it is not a DuckDB "
                                 "database file", hint="check the path") from None
        hint = ("another process (a running sync, or a notebook) has it open; close it and "
                "try again") if "lock" in first.lower() else OPEN_FILES_HINT \
            if "too many open files" in first.lower() else "check the path and permissions"
        raise TargetError(f"cannot open DuckDB replica {path}: {first}", hint=hint) from None
    except duckdb.Error as e:
        con.close()
        if not isinstance(e, _IN_USE) and "already attached" not in str(e):
            raise
        # this process has the file open already: a connection of the program's own, or a
        # topoff call on it running in another thread (DuckDB opens a file once a process)
        raise LockedError(f"cannot open DuckDB replica {path}: this process has it open "
                          "already", hint="this process holds a connection to it, or a sync, "
                          "status or verify of it runs in another thread: close it or wait "
                          "for that call, then try again") from None
    except BaseException:
        con.close()
        raise
    con.execute(f"USE {CATALOG}")
    con.execute("DETACH memory")
    return con


def _remove_headless(path: Path) -> None:
    """Remove the file (and write-ahead log) DuckDB began on a full disk without writing its
    headers: any later open would take it for a damaged database."""
    with contextlib.suppress(OSError):
        if path.stat().st_size < _HEADERS:
            path.unlink()
            path.with_name(path.name + ".wal").unlink(missing_ok=True)
