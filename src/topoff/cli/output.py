"""What commands print on stdout: short plain lines (tables where a listing is asked for)."""

from __future__ import annotations

import click
from rich import filesize  # light: the console and tables load only when a listing is drawn

from topoff.dataset.index import Index
from topoff.dataset.retention import PruneResult
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


def echo_index(index: Index) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dataset {index.dataset}", title_justify="left")
    for col, justify in (("seq", "right"), ("publication", "left"), ("snapshot", "left"),
                         ("size", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in index.publications:
        table.add_row(str(p.sequence), p.id, p.snapshot_time[:19].replace("T", " "), size(p.bytes))
    Console(width=100).print(table)
