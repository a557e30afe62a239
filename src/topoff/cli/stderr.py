"""Lines a command writes on stderr besides its log and its final error: a problem among
several, a hint after a result, a warning. With ``--log-format json`` each is one JSON
object, as the log lines and the error are (docs/exit-codes.md), so a script reads every
line of stderr as JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from topoff.log import one_line
from topoff.redact import redact, redact_opt


def json_stderr() -> bool:
    """Whether the running command was given ``--log-format json``."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and (ctx.obj or {}).get("log_format") == "json"


def echo_problem(message: str, hint: str | None, kind: str = "config",
                 exit_code: int = 2) -> None:
    """One problem of several (``error: ...``, ``hint: ...``), written as the error that
    ends the command is: JSON fields level, error (the kind), message, hint, exit_code."""
    message, hint = redact(message), redact_opt(hint)
    if json_stderr():
        click.echo(json.dumps({"level": "error", "error": kind, "message": message,
                               "hint": hint, "exit_code": exit_code}), err=True)
        return
    click.echo(f"error: {one_line(message)}", err=True)
    if hint:
        click.echo(f"hint: {one_line(hint)}", err=True)


def echo_hint(hint: str, about: str, **fields: Any) -> None:
    """``hint: ...`` after a result (``about`` says what it is about: the JSON message)."""
    if json_stderr():
        click.echo(json.dumps({"level": "warning", "message": redact(about),
                               "hint": redact(hint), **fields}), err=True)
        return
    click.echo(f"hint: {one_line(redact(hint))}", err=True)


def echo_warning(message: str) -> None:
    """``warning: ...``, as a log line's JSON object with ``--log-format json``."""
    if json_stderr():
        click.echo(json.dumps({"level": "warning", "message": redact(message)}), err=True)
        return
    click.echo(f"warning: {one_line(redact(message))}", err=True)
