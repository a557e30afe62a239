"""``topoff iceberg compact``: rewrite the small data files of each partition into fewer.

Each top-off adds a few small Parquet files per table; compaction reads the small files of
one partition at a time (streamed as Arrow batches, one file at a time, deletes applied),
writes the same rows as files of up to the target size, and swaps old for new in ONE
overwrite commit per table. The table properties (the ledger the next sync reads) are not
touched, and the commit's summary repeats the current snapshot's ``topoff.*`` properties,
so a sync after compaction resumes exactly where it was. Tables ``topoff replicate`` made
are compacted the same way: their state is in the table properties, which stay as they
are, and they take no commit retries, so a refresh committing meanwhile fails one of the
two whole (the refresh says "locked", the compaction asks to be run again). pyiceberg 0.12
has no rewrite-data-files action of its own: this is built on its overwrite snapshot
producer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from topoff.errors import ConfigError, TargetError, TopoffError
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.reachable import current_files_present
from topoff.targets.iceberg.read import batches
from topoff.targets.iceberg.replica import replicated_tables
from topoff.targets.iceberg.rows import gathered
from topoff.targets.iceberg.table import P, replica_tables
from topoff.targets.iceberg.txn import transaction
from topoff.targets.iceberg.write import committing

#: the default size of a compacted file (Arrow bytes gathered per file written)
DEFAULT_TARGET = 128 << 20


@dataclass
class Compacted:
    table: str
    files_before: int
    files_after: int
    rows: int  # rows rewritten


def _groups(tasks: list[Any], target: int) -> list[list[Any]]:
    """The tasks of each partition that compaction rewrites: its files smaller than the
    target, when there are at least two of them (or a file carries deletes)."""
    by_partition: dict[tuple, list[Any]] = {}
    for task in tasks:
        f = task.file
        key = (f.spec_id, repr(f.partition))
        by_partition.setdefault(key, []).append(task)
    out = []
    for _, group in sorted(by_partition.items()):
        small = [t for t in group if t.file.file_size_in_bytes < target or t.delete_files]
        if len(small) >= 2 or any(t.delete_files for t in small):
            out.append(small)
    return out


def compact_table(table: Any, target: int, dry_run: bool = False) -> tuple[int, int, int]:
    """(files before, files after, rows rewritten) of one table, in one commit."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0, 0, 0
    tasks = list(table.scan().plan_files())
    groups = _groups(tasks, target)
    if not groups or dry_run:
        return len(tasks), len(tasks) - sum(len(g) - 1 for g in groups), 0
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    props = {k: v for k, v in summary.items() if k.startswith(P)} | {P + "compacted": "true"}
    rows = written = 0
    names = itertools.count()  # one counter for the snapshot: its files' names are unique
    with transaction(table) as txn, \
            txn.update_snapshot(snapshot_properties=props).overwrite() as snap:
        for group in groups:
            before = sum(t.file.record_count for t in group)
            done = 0
            for part in gathered(batches(table, group), target):
                done += part.num_rows
                for f in _dataframe_to_data_files(table_metadata=txn.table_metadata,
                                                  write_uuid=snap.commit_uuid, df=part,
                                                  io=table.io, counter=names):
                    snap.append_data_file(f)
                    written += 1
            has_deletes = any(t.delete_files for t in group)
            if done != before and not has_deletes:
                raise TargetError(f"compacting {table.name()}: read {done} rows of files "
                                  f"that hold {before}; nothing was committed",
                                  hint="check the warehouse's files; the table is as it "
                                       "was")
            for t in group:
                snap.delete_data_file(t.file)
            rows += done
    return len(tasks), len(tasks) - sum(len(g) for g in groups) + written, rows


def compact(location: str, tables: list[str] | None = None, target: int = DEFAULT_TARGET,
            dry_run: bool = False,
            on_table: Callable[[Compacted], None] | None = None) -> list[Compacted]:
    """Compact every table topoff made: by sync (named by their source names such as
    ``public.messages``, or their Iceberg names) and by replicate (``source.schema.table``,
    or ``namespace.table``); or only those of ``tables``.

    Each table is its own commit: one that fails (another writer, a damaged file) leaves
    that table as it was and the others are compacted all the same; ``on_table`` hears of
    each table done as it is, and the failures are raised together at the end."""
    settings = read_settings(location)
    catalog = open_catalog(settings, create=False)  # nothing to make: no table, no work
    synced = replica_tables(catalog, settings.namespace)
    held = {s: t for s, (t, _) in synced.items()}
    names = {lg.definition.target.name: s for s, (_, lg) in synced.items()}
    for source, table in replicated_tables(catalog):
        held[source] = table
        names[".".join(table.name()[-2:])] = source
    chosen = sorted(held)
    if tables:
        unknown = [t for t in tables if t not in held and t not in names]
        if unknown:
            raise ConfigError(f"no table {', '.join(unknown)} in {settings.url}",
                              hint="tables here: " + ", ".join(sorted(held)) if held else
                              "no table topoff made is here: build one with `topoff sync` "
                              "or `topoff replicate`")
        chosen = sorted({names.get(t, t) for t in tables})
    done: list[Compacted] = []
    failed: list[TopoffError] = []
    for source in chosen:
        try:
            one = compact_one(source, held[source], target, dry_run)
        except TopoffError as e:
            failed.append(e)
            continue
        done.append(one)
        if on_table is not None:
            on_table(one)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        first = failed[0]
        raise type(first)(
            f"{len(failed)} of {len(chosen)} tables were not compacted: "
            + "; ".join(e.message for e in failed), hint=first.hint)
    return done


def compact_one(source: str, table: Any, target: int, dry_run: bool = False) -> Compacted:
    """:func:`compact_table` with pyiceberg's refusals as topoff's errors: a sync that
    committed meanwhile removing or rewriting files this compaction read makes it fail
    (pyiceberg retries the commit only when the files it replaces are all still there)."""
    def conflict() -> TargetError:
        return TargetError(f"another writer changed {source} while it was compacted; "
                           "nothing of its compaction was committed",
                           hint="run the compaction again")

    planned = table.current_snapshot()
    with committing(conflict,
                    lambda why: TargetError(f"compacting {source} failed ({why}); nothing of "
                                            "its compaction was committed",
                                            hint="fix the warehouse, then run the compaction "
                                            "again")):
        try:
            before, after, rows = compact_table(table, target, dry_run)
        except FileNotFoundError:  # gone with an expired snapshot, or lost
            if _replaced_meanwhile(table, planned):
                raise conflict() from None
            raise
    return Compacted(source, before, after, rows)


def _replaced_meanwhile(table: Any, planned: Any) -> bool:
    """Whether a file the compaction found missing was one another writer replaced since
    ``planned`` (a sync's new revision of a day) and an expiry deleted: the table has a new
    current snapshot, whose files are all there."""
    table.refresh()
    current = table.current_snapshot()
    return (current is not None and planned is not None
            and current.snapshot_id != planned.snapshot_id and current_files_present(table))
