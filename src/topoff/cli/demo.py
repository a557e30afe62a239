"""``topoff demo``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from topoff.cli.options import common_options


@click.command("demo")
@common_options
@click.option("--days", type=click.IntRange(2, 60), default=6, show_default=True,
              help="Days of sample data before the demo's new day.")
@click.option("--per-day", type=click.IntRange(10), default=20000, show_default=True,
              help="Messages per day.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Copy the published dataset and the replica here before cleaning up.")
def demo_cmd(config_path: str | None, days: int, per_day: int, keep: Path | None) -> None:
    """Run the whole story on a throwaway PostgreSQL primary + standby, then clean up.

    Exports a datanommer-shaped database from the standby (a full export and a few days),
    builds a DuckDB replica from them, writes a new day and late rows, exports and tops
    the replica off, verifies it against the standby and runs an analytics query on it.

    \b
    Example:
      topoff demo --per-day 5000 --keep ./demo-output
    """
    obj = click.get_current_context().obj
    if not obj.get("verbose"):  # the demo prints its own steps; the log adds detail on -v
        logging.getLogger("topoff").setLevel(logging.WARNING)
    from rich.console import Console
    from rich.table import Table

    from topoff.demo.run import Step, run_demo  # duckdb and the consumer side, only here

    console = Console()
    n = [0]

    def say(step: Step) -> None:
        n[0] += 1
        console.print(f"{n[0]:>2}. {step.what}  [dim]{step.seconds:.1f}s[/dim]",
                      highlight=False, soft_wrap=True)

    console.print("topoff demo: everything runs in a temp dir and is removed at the end\n")
    report = run_demo(days, per_day, keep, say)
    table = Table(title="\n" + report.query.strip(), title_justify="left", title_style="dim")
    for c in report.query_columns:
        table.add_column(c)
    for row in report.query_rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    console.print(table)
    total = sum(s.seconds for s in report.steps)
    console.print(f"\ndone in {total:.1f}s" + (f"; dataset and replica kept in {report.kept}"
                                                  if report.kept else "; cleaned up"))
    if not report.verified_equal:
        raise click.ClickException("the replica does not match the source")


def register(group: Any) -> None:
    group.add_command(demo_cmd)
