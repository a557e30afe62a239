"""Errors that topoff reports to people: one line of message and one line of hint.

Every failure a user can cause or fix (bad config, unreachable source, a primary where a
standby was expected, a failing store) is raised as a :class:`TopoffError` subclass. The
CLI prints ``error: <message>`` and ``hint: <hint>`` and exits non-zero; library callers
can catch the class they care about.
"""

from __future__ import annotations

from topoff.redact import redact, redact_opt


class TopoffError(Exception):
    """A failure with a one-line message and a one-line hint on what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.hint = redact_opt(hint)

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(TopoffError):
    """The configuration or the command line is wrong."""

    exit_code = 2


class SourceError(TopoffError):
    """The source database cannot be reached or read."""

    exit_code = 3


class SchemaChanged(SourceError):
    """A table read in a snapshot changed on the source after the snapshot began (a
    migration rebuilt, truncated or altered it): a new snapshot reads it as it is now."""

    exit_code = 3


class SafetyError(SourceError):
    """A safety rule refused the operation (a primary where a standby was expected, an open day)."""

    exit_code = 4


def primary_hint(command: str) -> tuple[str, str]:
    """How ``command`` (the application name it connects with, "topoff verify") is pointed
    at its source, and how it is told to read a primary: each names its own options."""
    if command == "topoff verify":
        return "--against", "pass --allow-primary"
    if command == "topoff init":  # no config file yet
        return "--source (or TOPOFF_SOURCE_URL)", "pass --allow-primary"
    if command in ("topoff replicate", "topoff reconcile"):
        return ("the url of its [replicate.sources.NAME] in the config",
                "set allow_primary = true in that section")
    return ("--source (or TOPOFF_SOURCE_URL, [source] url)",
            "pass --allow-primary (or set [source] allow_primary = true)")


class StoreError(TopoffError):
    """A store could not list, read, write or delete a file."""

    exit_code = 5


#: the way out of the process's limit on open files (EMFILE), whichever descriptor ran out:
#: a store's file or a connection's socket (exit 5), a DuckDB replica's file (exit 7)
OPEN_FILES_HINT = ("raise the limit on open files of the user running topoff (ulimit -n, "
                   "LimitNOFILE= in a systemd unit; or fewer --jobs, where the command takes "
                   "them), then run again")


class NotPublishedError(StoreError):
    """The location holds no dataset: no index.json (nothing published there, or a wrong path).

    Every command that reads a dataset (sync, status, list, prune) raises this one, so the
    same situation has the same exit code everywhere.
    """

    exit_code = 5


class IntegrityError(TopoffError):
    """Published data does not match its manifest (wrong checksum, size or row count)."""

    exit_code = 6


class TargetError(TopoffError):
    """The replica (target) cannot be written, or is not in a state the dataset can apply to."""

    exit_code = 7


class NoReplicaError(TargetError):
    """The target holds no topoff replica (status or verify of an empty database or path)."""

    exit_code = 7


class LockedError(TargetError):
    """Another process is writing the same replica (a sync already running)."""

    exit_code = 7


class Interrupted(TopoffError):
    """The run was interrupted (Ctrl-C, SIGINT, SIGTERM); what was committed stays, the rest
    is rolled back and the next run resumes."""

    exit_code = 130


class OutputError(TopoffError):
    """The command's output (standard output) cannot be written: a full disk, an I/O error.
    A closed pipe is not one: the command exits quietly with status 141, as on SIGPIPE."""

    exit_code = 74


#: the exit code of a bug in topoff (an exception no rule classified); never of bad input
INTERNAL_ERROR = 70
#: ``topoff verify`` found differences between the replica and the source
DIFFERENCES = 1
