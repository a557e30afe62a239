"""An error the PostgreSQL server reports while topoff reads a source (a view or ``filter``
failing on some row, a server out of room for a sort, an administrator's cancel), as a
SourceError with the server's words: a fault of the source, not of topoff."""

from __future__ import annotations

from topoff.errors import SourceError
from topoff.redact import redact
from topoff.safety import is_connection_lost, is_recovery_conflict, row_security_refusal

HINT = ("the source server raised it while topoff read a table: check what it names (a "
        "view or `filter` failing on some rows, the role's privileges) and the server's "
        "log, then run the command again")


def server_error(e: BaseException, what: str) -> SourceError | None:
    """The SourceError for ``e`` when the server reported it (it carries an SQLSTATE)
    while ``what`` read the source; None for what callers handle otherwise: a conflict
    with recovery, a lost connection, an interruption (Ctrl-C), an error of the client. A
    read a row-level security policy refused says so (safety.row_security_refusal)."""
    from topoff.targets.errors import is_interrupt  # an export loads no target module

    if getattr(e, "sqlstate", None) is None or is_recovery_conflict(e) or \
            is_connection_lost(e) or is_interrupt(e):
        return None
    refused = row_security_refusal(e)  # with its own way out
    if refused is not None:
        return refused
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return SourceError(f"{what} failed on the source: {redact(first)}", hint=HINT)
