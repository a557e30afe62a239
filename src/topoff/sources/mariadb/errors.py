"""A failed read of a MariaDB source as the SourceError it is.

InnoDB's consistent snapshot does not hold a table's definition: a table altered in a way
that rebuilds it (MODIFY of a column's type, TRUNCATE...) after the snapshot began cannot
be read in it (error 1412, "Table definition has changed"), and a table dropped or renamed
is gone (1146). A migration on the primary did that; the hint says what to do about it
rather than point at the connection or the user's privileges.

Other server errors whose cause is known get a message and hint of their own
(:data:`KNOWN`): the connection lost, a lock wait that timed out, a deadlock, the query
stopped by the server's statement time limit or a ``KILL QUERY``, SELECT denied on a
table or column.
"""

from __future__ import annotations

from typing import Any

from mysql.connector import errors as my_errors

from topoff.errors import SchemaChanged, SourceError

#: ER_TABLE_DEF_CHANGED: the table was rebuilt after the transaction's snapshot began
TABLE_DEF_CHANGED = 1412
#: ER_NO_SUCH_TABLE
NO_SUCH_TABLE = 1146

SCHEMA_CHANGED_HINT = ("run it again: a schema change on the source (a migration's ALTER "
                       "TABLE, TRUNCATE...) landed while topoff read it, and the next run "
                       "reads the table as it is now")


_AGAIN = "run it again"

#: errno -> (what happened, hint), for failures with a cause topoff can name
KNOWN: dict[int, tuple[str, str]] = {
    **dict.fromkeys((2006, 2013, 2055), (
        "the connection to the source was lost",
        "check that the server is up and reachable (a restart, a failover, a KILL of the "
        "session, a network or proxy timeout end it), then " + _AGAIN)),
    1205: ("a lock wait timed out on the source",
           "another session held a lock on the table past lock_wait_timeout (LOCK TABLES, "
           "FLUSH TABLES WITH READ LOCK, a migration's ALTER TABLE): " + _AGAIN + " once it "
           "is released, or raise the server's lock_wait_timeout"),
    1213: ("the source chose this query as the victim of a deadlock", _AGAIN),
    1969: ("the source stopped the query at its statement time limit "
           "(max_statement_time)",
           "topoff lifts max_statement_time for its sessions: lift the limit that still "
           "applies to the user (GRANT ... WITH MAX_STATEMENT_TIME 0, or a proxy's "
           "query timeout), then " + _AGAIN),
    1317: ("the query was interrupted on the source (KILL QUERY, or the server "
           "shutting down)",
           "check who stopped it (an operator's or a watchdog's KILL, a restart), then "
           + _AGAIN),
    **dict.fromkeys((1142, 1143), (
        "the user may not SELECT it on the source",
        "grant SELECT on the table (every exported column) to the user topoff connects "
        "as; privileges revoked while topoff read it take effect at once")),
}


def schema_changed(e: Any) -> bool:
    """Whether a MariaDB error is a table changed or gone under the snapshot."""
    return getattr(e, "errno", None) in (TABLE_DEF_CHANGED, NO_SUCH_TABLE)


def read_failed(what: str, e: Any, hint: str) -> SourceError:
    """``what`` (naming the table) failed with the driver's error ``e``; ``hint`` is for
    failures that are not a schema change."""
    msg = (getattr(e, "msg", None) or str(e)).strip()
    first = msg.splitlines()[0] if msg else type(e).__name__
    errno = getattr(e, "errno", None)
    if errno == TABLE_DEF_CHANGED:
        return SchemaChanged(f"{what} failed: the table's definition changed on the source "
                           f"after the snapshot began ({first})", hint=SCHEMA_CHANGED_HINT)
    if errno == NO_SUCH_TABLE:
        return SourceError(f"{what} failed: the table no longer exists on the source, "
                           f"dropped or renamed while topoff read it ({first})",
                           hint="if a migration dropped or renamed it, fix the config "
                           "(its new name, or leave it out); otherwise run it again")
    if errno in (None, -1) and isinstance(e, my_errors.OperationalError):
        errno = 2006  # the driver found the connection gone before sending anything
    if errno in KNOWN:
        cause, known_hint = KNOWN[errno]
        return SourceError(f"{what} failed: {cause} ({first})", hint=known_hint)
    return SourceError(f"{what} failed: {first}", hint=hint)
