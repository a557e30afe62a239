"""What commands print on stdout: short plain lines (tables where a listing is asked for)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich import filesize  # light: the console and tables load only when a listing is drawn

if TYPE_CHECKING:  # types only: `topoff sync` loads no export module through this one
    from rich.text import Text

    from topoff.dataset.index import Index
    from topoff.dataset.retention import PruneResult
    from topoff.dataset.roots import FoundDataset
    from topoff.export.full import ExportResult


def size(n: int) -> str:
    return filesize.decimal(n)


def echo_export(result: ExportResult, where: str) -> None:
    for m in result.manifests:
        exported = [t for t in m.tables.values() if not t.unchanged_since]
        rows = sum(t.rows for t in exported)
        files = sum(len(t.files) for t in exported)
        same = len(m.tables) - len(exported)
        tail = f", {same} unchanged" if same else ""
        click.echo(f"published {m.publication}: {len(exported)} tables{tail}, {rows:,} rows, "
                   f"{files} files, {size(m.total_bytes)}")
    for label in result.unchanged:
        click.echo(f"unchanged {label}: already published, nothing new")
    click.echo(f"done in {result.seconds:.1f}s -> {where}")


def echo_prune(result: PruneResult) -> None:
    verb = "would remove" if result.dry_run else "removed"
    for p in result.removed:
        click.echo(f"{verb} {p.id}")
    click.echo(f"{verb} {len(result.removed)} publications ({result.files} files, "
               f"{size(result.bytes)}); kept {len(result.kept)}")
    orphans = result.orphans
    seconds = result.grace.total_seconds()
    age = (f"{seconds / 3600:g} h" if seconds >= 3600 else
           f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s")
    for where, count in orphans.groups():
        click.echo(f"{verb} {count} unpublished files in {where}")
    for name, _upload in orphans.uploads:
        click.echo(f"{verb} an unfinished upload of {name}")
    if orphans.files or orphans.uploads:
        click.echo(f"{verb} {len(orphans.files)} unpublished files ({size(orphans.bytes)}) and "
                   f"{len(orphans.uploads)} unfinished uploads older than {age}")


def echo_index(index: Index) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dataset {index.dataset}", title_justify="left")
    for col, justify in (("seq", "right"), ("publication", "left"), ("snapshot", "left"),
                         ("size", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in index.publications:
        table.add_row(*_plain(p.sequence, p.id, str(p.snapshot_time)[:19].replace("T", " "),
                              size(p.bytes)))
    Console(width=100).print(table)


def _plain(*values: object) -> list[Text]:
    """Table cells shown as they are: names from a dataset are never read as rich markup."""
    from rich.text import Text

    return [Text(str(v)) for v in values]


def echo_datasets(where: str, found: list[FoundDataset]) -> None:
    """The datasets under a store root, each with its newest publication."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"datasets in {where}", title_justify="left")
    for col, justify in (("location", "left"), ("dataset", "left"), ("publications", "right"),
                         ("newest", "left"), ("snapshot", "left"), ("size", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for d in found:
        if d.index is None:
            table.add_row(*_plain(d.path, "?", "", d.problem or "", "", ""))
            continue
        pubs = d.index.publications
        newest = pubs[-1] if pubs else None
        try:
            total = size(sum(int(p.bytes) for p in pubs))
        except (TypeError, ValueError):
            total = "?"
        table.add_row(*_plain(d.path, d.index.dataset, len(pubs), newest.id if newest else "",
                              str(newest.snapshot_time)[:19].replace("T", " ") if newest else "",
                              total))
    Console(width=120).print(table)
