"""A failed read of a MariaDB source as the SourceError it is.

InnoDB's consistent snapshot does not hold a table's definition: a table altered in a way
that rebuilds it (MODIFY of a column's type, TRUNCATE...) after the snapshot began cannot
be read in it (error 1412, "Table definition has changed"), and a table dropped or renamed
is gone (1146). A migration on the primary did that; the hint says what to do about it
rather than point at the connection or the user's privileges.
"""

from __future__ import annotations

from typing import Any

from topoff.errors import SourceError

#: ER_TABLE_DEF_CHANGED: the table was rebuilt after the transaction's snapshot began
TABLE_DEF_CHANGED = 1412
#: ER_NO_SUCH_TABLE
NO_SUCH_TABLE = 1146

SCHEMA_CHANGED_HINT = ("run it again: a schema change on the source (a migration's ALTER "
                       "TABLE, TRUNCATE...) landed while topoff read it, and the next run "
                       "reads the table as it is now")


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
        return SourceError(f"{what} failed: the table's definition changed on the source "
                           f"after the snapshot began ({first})", hint=SCHEMA_CHANGED_HINT)
    if errno == NO_SUCH_TABLE:
        return SourceError(f"{what} failed: the table no longer exists on the source, "
                           f"dropped or renamed while topoff read it ({first})",
                           hint="if a migration dropped or renamed it, fix the config "
                           "(its new name, or leave it out); otherwise run it again")
    return SourceError(f"{what} failed: {first}", hint=hint)
