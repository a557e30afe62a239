"""The ``topoff`` command: a thin shell over the library (each command module calls it)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

import click

from topoff import __version__
from topoff.errors import TopoffError

log = logging.getLogger("topoff")

INTERNAL_ERROR = 70


def report(error: TopoffError) -> None:
    click.echo(f"error: {error.message}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)


class TopoffGroup(click.Group):
    """Turns TopoffError into one line of error and one of hint, and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TopoffError as e:
            report(e)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug: say so plainly, with the traceback on request
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            click.echo(f"error: internal error: {first}", err=True)
            click.echo("hint: this is a bug in topoff; set TOPOFF_DEBUG=1 for the traceback "
                       "and report it", err=True)
            if _debug():
                traceback.print_exc()
            ctx.exit(INTERNAL_ERROR)


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
    Backups:   topoff backup | restore | backups list|drill|check|prune | systemd
    Try it:    topoff demo
    """


def _register() -> None:
    from topoff.cli import backup, datasets, demo, export, init, sync

    init.register(cli)
    export.register(cli)
    cli.add_command(datasets.prune_cmd)
    cli.add_command(datasets.list_cmd)
    sync.register(cli)
    demo.register(cli)
    backup.register(cli)


_register()


def main() -> None:
    cli.main(prog_name="topoff")


if __name__ == "__main__":
    sys.exit(main())
