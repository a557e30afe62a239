"""The ``topoff`` command: a thin shell over the library (each command module calls it)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from typing import Any

import click

from topoff import __version__
from topoff.cli.stdout import CLOSED_PIPE, OutputFailed, discard, watch
from topoff.errors import (
    INTERNAL_ERROR,
    ConfigError,
    IntegrityError,
    Interrupted,
    LockedError,
    NoReplicaError,
    NotPublishedError,
    OutputError,
    SafetyError,
    SourceError,
    StoreError,
    TargetError,
    TopoffError,
)
from topoff.log import one_line
from topoff.redact import redact

log = logging.getLogger("topoff")

__all__ = ["INTERNAL_ERROR", "cli", "main", "report"]


def report(error: TopoffError, fmt: str = "text") -> None:
    """``error: ...`` and ``hint: ...`` on stderr; one JSON object with ``--log-format json``
    (fields: error (the kind), message, hint, exit_code). A stderr that cannot be written
    (a closed pipe, a full disk) loses the lines, not the exit code."""
    with contextlib.suppress(OSError):
        _report(error, fmt)


def _report(error: TopoffError, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"level": "error", "error": _kind(error),
                               "message": error.message, "hint": error.hint,
                               "exit_code": error.exit_code}), err=True)
        return
    click.echo(f"error: {one_line(error.message)}", err=True)
    if error.hint:
        click.echo(f"hint: {one_line(error.hint)}", err=True)


def _kind(error: TopoffError) -> str:
    """The error's kind for scripts, as docs/exit-codes.md lists them (``target``,
    ``not_published``, ``internal``...): the nearest documented class."""
    for cls in type(error).__mro__:
        if cls in _KINDS:
            return _KINDS[cls]
    return "error"


class _Internal(TopoffError):
    exit_code = INTERNAL_ERROR


_KINDS: dict[type, str] = {
    _Internal: "internal", Interrupted: "interrupted", NotPublishedError: "not_published",
    NoReplicaError: "no_replica", LockedError: "locked", OutputError: "output",
    SafetyError: "safety", SourceError: "source", ConfigError: "config", StoreError: "store",
    IntegrityError: "integrity", TargetError: "target", TopoffError: "error",
}


def _interrupted() -> Interrupted:
    from topoff.targets.errors import INTERRUPTED_HINT

    return Interrupted("interrupted", hint=INTERRUPTED_HINT)


#: the command modules, and the commands each adds: a command's module is imported when
#: the command runs (``topoff replicate`` does not import the backup modules); a name not
#: listed here, help and ``commands`` import them all, so a stale entry only costs time
_MODULES: dict[str, tuple[str, ...]] = {
    "init": ("init", "check-config"), "export": ("export",), "datasets": ("prune", "list"),
    "sync": ("sync", "status", "verify"), "replicate": ("replicate",), "demo": ("demo",),
    "backup": ("backup", "restore", "systemd", "backups"), "iceberg": ("iceberg",),
}


def _load(group: click.Group, module: str) -> None:
    import importlib

    mod = importlib.import_module(f"topoff.cli.{module}")
    if module == "datasets":
        group.add_command(mod.prune_cmd)
        group.add_command(mod.list_cmd)
    else:
        mod.register(group)


class TopoffGroup(click.Group):
    """Turns TopoffError into one line of error and one of hint, and a non-zero exit.
    Imports its command modules lazily (see ``_MODULES``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loaded: set[str] = set()
        self._lazy = False
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:  # every command, for help and docs
        if self._lazy:
            for module in _MODULES:
                self._load_module(module)
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def _load_module(self, module: str) -> None:
        if module not in self._loaded:
            self._loaded.add(module)
            _load(self, module)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        assert name is not None
        self._commands[name] = cmd

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._commands and self._lazy:
            for module, names in _MODULES.items():
                if cmd_name in names:
                    self._load_module(module)
        if cmd_name not in self._commands:
            return self.commands.get(cmd_name)  # not in _MODULES: load them all
        return self._commands[cmd_name]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:  # `topoff --bogus`
            report(_usage(e), _asked(args))
            raise click.exceptions.Exit(ConfigError.exit_code) from None
        except OutputFailed as e:  # `topoff --help` or `--version` into a closed pipe
            raise click.exceptions.Exit(_output_failed(e, _asked(args))) from None

    def invoke(self, ctx: click.Context) -> Any:
        from topoff.cli.signals import is_program, term_as_interrupt
        from topoff.log import logging_kept

        # SIGTERM stops every command as Ctrl-C does; the signals after the first neither
        # cut its cleanup short nor the report of the stop (cli/signals.py). Run inside
        # another program, the command leaves that program's logging as it found it.
        with term_as_interrupt(), \
                contextlib.nullcontext() if is_program() else logging_kept():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        ctx.ensure_object(dict)  # the command's options (--log-format) are kept in it
        args = [*ctx._protected_args, *ctx.args]  # for a usage error's --log-format
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # what print() left buffered fails here, not at exit
            return result
        except OutputFailed as e:
            ctx.exit(_output_failed(e, _format(ctx)))
        except TopoffError as e:
            report(e, _format(ctx))
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            report(_interrupted(), _format(ctx))
            ctx.exit(Interrupted.exit_code)
        except click.exceptions.NoArgsIsHelpError:
            raise  # `topoff export`: the group's help, exit 2
        except click.UsageError as e:  # reported as every error is, exit 2
            report(_usage(e), _format(ctx) if ctx.obj.get("log_format") else _asked(args))
            ctx.exit(ConfigError.exit_code)
        except click.ClickException as e:
            # usage errors echo the values given (the attribute is Final only in the stubs)
            object.__setattr__(e, "message", redact(e.message))
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # a bug: say so plainly, with the traceback on request
            from topoff.targets.errors import is_interrupt

            if is_interrupt(e):  # Ctrl-C inside an engine's statement
                report(_interrupted(), _format(ctx))
                ctx.exit(Interrupted.exit_code)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            report(_Internal(f"internal error: {redact(first)}",
                             hint="this is a bug in topoff; set TOPOFF_DEBUG=1 for the "
                             "traceback and report it"), _format(ctx))
            if _debug():
                traceback.print_exc()
            ctx.exit(INTERNAL_ERROR)


def _output_failed(e: OutputFailed, fmt: str) -> int:
    """The exit status when standard output failed: the output's pipe was closed
    (``| head``): quietly 141, as a program killed by SIGPIPE; another failure (a full
    disk) is reported, with exit status 74."""
    discard()
    if e.closed_pipe:
        return CLOSED_PIPE
    report(OutputError(f"cannot write the output: {e.error.strerror or e.error}",
                       hint="check where standard output goes (a full disk?), or send it "
                       "elsewhere"), fmt)
    return OutputError.exit_code


def _usage(e: click.UsageError) -> ConfigError:
    """A usage error (an unknown option, a value out of range) as a ``config`` error."""
    path = e.ctx.command_path.split(" ", 1)[1:] if e.ctx else []  # without the program's name
    # a usage error echoes the values given: a URL's password is not shown
    return ConfigError(redact(e.format_message()),
                       hint=f"see `{' '.join(['topoff', *path])} --help`")


def _asked(args: list[str]) -> str:
    """The --log-format of a command line that could not be parsed."""
    for n, arg in enumerate(args):
        if arg == "--":
            break
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1]
        if arg == "--log-format" and n + 1 < len(args):
            return args[n + 1]
    return "text"


def _format(ctx: click.Context) -> str:
    return str((ctx.obj or {}).get("log_format", "text"))


def _debug() -> bool:
    return os.environ.get("TOPOFF_DEBUG", "") not in ("", "0")


@click.group(cls=TopoffGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "max_content_width": 100})
@click.version_option(__version__, prog_name="topoff")
def cli() -> None:
    """Consistent exports from a PostgreSQL hot standby, and replicas that top off from them.

    \b
    Producer:  topoff init | check-config | export full | export incremental | prune
    Consumer:  topoff sync | status | verify
    Replicas:  topoff replicate (live tables, straight from a standby)
    Backups:   topoff backup | restore | backups list|drill|check|prune | systemd
    Try it:    topoff demo
    """


cli._lazy = True


def main() -> None:
    watch()  # a closed pipe or a full disk on stdout is reported as such (cli/stdout.py)
    cli.main(prog_name="topoff")


if __name__ == "__main__":
    main()
