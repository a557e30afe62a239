"""``topoff iceberg remove-orphans``: delete the files under a table's location that no
metadata of the table refers to.

A run killed after writing data files and before its commit (or a commit that failed)
leaves files no snapshot refers to: orphans. A file under the table's location (local
directory or S3 prefix) is one when no snapshot refers to it (its manifest list, the
manifests that list names, any file an entry of them names, live or deleted:
reachable.py), it is neither the current metadata file nor one the metadata log keeps,
nor a statistics file, and it is older than the given age: a younger file may belong to a
commit in progress, which refers to it only once done. The table is read after its files
are listed, so a commit made meanwhile counts (and read again when an expiry deleted files
of the snapshots read meanwhile). Files outside the table's location, and
the tables' of other tools under other locations, are never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from topoff.errors import ConfigError, TargetError
from topoff.targets.iceberg.config import open_catalog, read_settings
from topoff.targets.iceberg.reachable import Reader
from topoff.targets.iceberg.replica import replicated_tables
from topoff.targets.iceberg.table import replica_tables

#: younger files may belong to a commit in progress
MIN_AGE = timedelta(hours=1)


@dataclass
class Orphans:
    table: str
    files: int
    bytes: int
    failed: int = 0


def _referred(table: Any) -> set[str]:
    """The paths (as the file system lists them) of every file the table's metadata names."""
    io, meta = table.io, table.metadata
    names = set(Reader(io).referred(meta.snapshots, live_only=False).paths)
    names.add(table.metadata_location)
    names |= {e.metadata_file for e in meta.metadata_log}
    names |= {s.statistics_path for s in meta.statistics}
    names |= {s.statistics_path for s in getattr(meta, "partition_statistics", [])}
    return {io.parse_location(n)[2] for n in names if n}


def table_orphans(table: Any, older_than: timedelta, now: datetime,
                  dry_run: bool) -> tuple[int, int, int]:
    """(files, bytes, not deleted) of the orphans of one table (see above)."""
    from pyarrow.fs import FileSelector, FileType

    scheme, netloc, root = table.io.parse_location(table.metadata.location)
    fs = table.io.fs_by_scheme(scheme, netloc)
    listed = fs.get_file_info(FileSelector(root.rstrip("/"), recursive=True,
                                           allow_not_found=True))
    referred: set[str] | None = None
    for _ in range(3):
        table.refresh()  # after the listing: a file a commit names meanwhile is referred to
        try:
            referred = _referred(table)
            break
        except FileNotFoundError:  # an expiry deleted files of the snapshots just read
            continue
    if referred is None:
        raise TargetError(f"{'.'.join(table.name())}: a file its metadata names is missing",
                          hint="if no expiry runs, the warehouse lost it: restore it, or "
                          "rebuild the table; nothing was deleted")
    try:
        cutoff = now - older_than
    except OverflowError:  # an age beyond the calendar: no file is that old
        cutoff = datetime.min.replace(tzinfo=UTC)
    found = [f for f in listed if f.type == FileType.File and f.path not in referred
             and f.mtime is not None and f.mtime.astimezone(UTC) < cutoff]
    failed = 0
    if not dry_run:
        for f in found:
            try:
                fs.delete_file(f.path)
            except FileNotFoundError:
                pass
            except OSError:
                failed += 1
    return len(found), sum(f.size or 0 for f in found), failed


def remove_orphans(location: str, older_than: timedelta,
                   dry_run: bool = False) -> list[Orphans]:
    """The orphans of every table topoff made (see above), deleted unless ``dry_run``."""
    if older_than < MIN_AGE:
        raise ConfigError("--older-than is under an hour: a file written in the last hour "
                          "may belong to a commit in progress",
                          hint="use an age of an hour or more (the default is 3d)")
    settings = read_settings(location)
    catalog = open_catalog(settings, create=False)
    if catalog is None:
        return []
    now = datetime.now(UTC)
    found = [(s, t) for s, (t, _) in replica_tables(catalog, settings.namespace).items()]
    found += replicated_tables(catalog)
    out = []
    for source, table in sorted(found, key=lambda f: f[0]):
        files, size, failed = table_orphans(table, older_than, now, dry_run)
        out.append(Orphans(source, files, size, failed))
    return out
