"""What the backup commands print: the catalog as a table."""

from __future__ import annotations

import click

from topoff.backup.catalog import Entry
from topoff.backup.retention import PruneOutcome
from topoff.cli.output import size
from topoff.cli.stderr import echo_warning


def echo_catalog(where: str, entries: list[Entry]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not entries:
        click.echo(f"no backups in {where}")
        return
    table = Table(title=f"backups in {where}", title_justify="left")
    widest = max(len(e.name) for e in entries)
    table.add_column("name", min_width=widest, no_wrap=True)  # names are never cut
    for col, justify in (("status", "left"), ("started", "left"), ("ended", "left"),
                         ("size", "right"), ("drill", "left")):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for e in entries:
        d = e.last_drill
        drill = "" if d is None else ("ok " if d.get("ok") is True else "FAILED ") + \
            _when(str(d.get("time", "")))
        cells = (e.name, e.status, _when(e.start_time), _when(e.end_time or ""),
                 "" if e.size is None else size(e.size), drill)
        table.add_row(*[Text(str(c)) for c in cells])
    Console(width=max(120, widest + 100)).print(table)


def _when(text: str) -> str:
    """A time from the catalog, to the second; its control characters (an escape
    sequence written into the catalog by anyone who can write to the store) as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in text[:19]).replace("T", " ")


def echo_prune(out: PruneOutcome) -> None:
    verb = "would remove" if out.dry_run else "removed"
    if out.warning:
        echo_warning(out.warning)
    for name in out.removed:
        click.echo(f"{verb} {name}")
    for name, until in out.retained:
        click.echo(f"retained {name} until {until} (object lock)")
    click.echo(f"{verb} {len(out.removed)} backups, {len(out.retained)} retained by a lock, "
               f"kept {len(out.kept)}")
