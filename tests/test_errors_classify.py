"""The classification of failures without a server: replica locations, engine and OS
exceptions, and the error line (text or JSON) the CLI prints."""

from __future__ import annotations

import errno
import json

import click
import duckdb
import psycopg
import pytest
from click.testing import CliRunner

from topoff.cli import report
from topoff.errors import (
    ConfigError,
    IntegrityError,
    Interrupted,
    NotPublishedError,
    StoreError,
    TargetError,
)
from topoff.targets import duckdb_path, target_kind
from topoff.targets.errors import classify


@pytest.mark.parametrize("location, kind", [
    ("postgresql://u@h/db", "postgresql"),
    ("postgres://h/db", "postgresql"),
    ("host=db.example.org dbname=replica", "postgresql"),
    ("dbname=replica", "postgresql"),
    ("service=analytics", "postgresql"),
    ("replica.duckdb", "duckdb"),
    ("/srv/data/my replica.duckdb", "duckdb"),
    ("duckdb://odd=name.duckdb", "duckdb"),
])
def test_replica_locations(location, kind):
    assert target_kind(location) == kind


@pytest.mark.parametrize("location", ["replica=1.duckdb", "host=x dbname", "a=b c=d",
                                      "mysql://u@h/db"])
def test_locations_that_are_neither(location):
    """A replica location no engine takes is a usage error (exit 2), as an invalid
    connection string is, the hint naming the kinds of location."""
    with pytest.raises(ConfigError) as e:
        target_kind(location)
    assert e.value.hint and e.value.exit_code == 2
    assert "postgresql://" in e.value.hint or "host=" in e.value.hint


def test_a_duckdb_path_with_an_equals_sign_needs_the_prefix():
    assert str(duckdb_path("duckdb://odd=name.duckdb")) == "odd=name.duckdb"


@pytest.mark.parametrize("exc, kind, words", [
    (OSError(errno.ENOSPC, "No space left on device", "/cache/x"), TargetError, "no space"),
    (OSError(errno.EACCES, "Permission denied", "/srv/r.duckdb"), TargetError,
     "permission denied: /srv/r.duckdb"),
    (duckdb.IOException('Could not write file "r.duckdb.wal": No space left on device'),
     TargetError, "is full"),
    (duckdb.TransactionException("Failed to commit: Could not write file \"x.wal\": No space "
                                 "left on device"), TargetError, "is full"),
    (duckdb.IOException("Cannot open file \"r.duckdb\": Permission denied"), TargetError,
     "permission denied"),
    (duckdb.InvalidInputException("Invalid Input Error: CSV Error on Line: 3\n\n  file = "
                                  "/cache/abc.csv.zst\n"), IntegrityError, "is malformed"),
    (psycopg.errors.BadCopyFileFormat("unterminated CSV quoted field"), IntegrityError,
     "is malformed"),
    (psycopg.errors.InvalidTextRepresentation("invalid input syntax for type integer"),
     IntegrityError, "is malformed"),
    (psycopg.errors.InsufficientPrivilege("permission denied for database r"), TargetError,
     "may not"),
    (psycopg.errors.DiskFull("could not extend file"), TargetError, "out of disk space"),
    (psycopg.errors.AdminShutdown("terminating connection"), TargetError, "lost the connection"),
    (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), TargetError, "read-only"),
    (KeyboardInterrupt(), Interrupted, "interrupted"),
])
def test_engine_failures_are_classified(exc, kind, words):
    found = classify(exc, "r.duckdb", publication="full/x")
    assert type(found) is kind, found
    assert words in found.message and found.hint


def test_a_full_temporary_file_of_replicate_names_the_way_out_replicate_has():
    """A temporary file (replicate's overlap spool under TMPDIR) has no name in the error
    its write raises: the failure names the temporary directory, not the table again, and
    no option of sync's."""
    exc = OSError(errno.ENOSPC, "No space left on device")
    found = classify(exc, "app.public.ev", replicating=True)
    assert isinstance(found, TargetError)
    assert found.message == "no space left on the temporary directory's disk"
    assert "TMPDIR" in (found.hint or "") and "--cache-dir" not in (found.hint or "")


def test_a_malformed_file_is_named_by_its_place_in_the_dataset():
    exc = duckdb.InvalidInputException("CSV Error on Line: 3\n  file = /cache/abc.csv.zst\n")
    found = classify(exc, "r.duckdb", "full/x",
                     name_file=lambda path: ("full/x", "public.users/0001.csv.zst"))
    assert found is not None
    assert found.message.startswith("file public.users/0001.csv.zst of publication full/x is "
                                    "malformed (CSV Error on Line: 3)")


def test_what_is_not_recognised_stays_a_bug():
    assert classify(ValueError("boom"), "r.duckdb") is None
    assert classify(duckdb.BinderException("Referenced column x not found"), "r") is None
    assert classify(psycopg.errors.UndefinedColumn("column x does not exist"), "r") is None


def _printed(error, fmt: str) -> str:
    @click.command()
    def show() -> None:
        report(error, fmt)

    return CliRunner().invoke(show).stderr


def test_the_error_line_as_text_and_as_json():
    error = NotPublishedError("nothing is published at s3://b/p (no index.json)",
                              hint="publish with `topoff export full`")
    assert _printed(error, "text") == ("error: nothing is published at s3://b/p (no index.json)"
                                       "\nhint: publish with `topoff export full`\n")
    doc = json.loads(_printed(error, "json"))
    assert doc == {"level": "error", "error": "not_published", "message": error.message,
                   "hint": error.hint, "exit_code": 5}
    secret = StoreError("cannot read postgresql://u:hunter2@h/db", hint=None)
    doc = json.loads(_printed(secret, "json"))
    assert "hunter2" not in json.dumps(doc) and doc["hint"] is None and doc["error"] == "store"


def test_every_error_has_a_documented_kind():
    from topoff.cli import _kind
    from topoff.stores.base import FileMissing
    from topoff.sync.apply import SchemaChangeError

    assert _kind(SchemaChangeError("x")) == "target"
    assert _kind(FileMissing("x")) == "store"
    assert _kind(NotPublishedError("x")) == "not_published"
    assert _kind(Interrupted("x")) == "interrupted"


def test_library_warnings_keep_json_logs_json():
    """psycopg warns on stderr when a rollback fails after Ctrl-C cancelled a query: with
    --log-format json that line is JSON too (and shown only with -v)."""
    import logging

    from support.replica import keep_logger
    from topoff.cli.options import common_options

    @click.command()
    @common_options
    def warn(config_path: str | None) -> None:
        logging.getLogger("psycopg").warning("error ignored in rollback")

    lib = logging.getLogger("psycopg")
    saved = (list(lib.handlers), lib.propagate, lib.level)
    for args, shown in ((["--log-format", "json", "-v"], True), (["--log-format", "json"], False)):
        try:
            with keep_logger():
                stderr = CliRunner().invoke(warn, args).stderr
        finally:
            lib.handlers, lib.propagate = saved[0], saved[1]
            lib.setLevel(saved[2])
        lines = stderr.splitlines()
        assert bool(lines) is shown, stderr
        for line in lines:
            assert json.loads(line)["message"] == "error ignored in rollback"
