"""The files an Iceberg table's snapshots refer to, and those only expired snapshots did.

A snapshot refers to its manifest list, the manifests it lists and the data (or delete)
files their entries name. A file is *live* in a snapshot when an entry of one of its
manifests names it as added or existing; an entry marked deleted records that the snapshot
removed the file, which it no longer holds. After snapshots are expired, the files to
delete are those any of them referred to that no remaining snapshot refers to as live,
and no remaining snapshot's manifest or manifest list: a reader of a remaining snapshot
never opens one of them. Files no snapshot ever referred to (written by a run killed
before its commit) are not among them: the engines' orphan-file removal finds those
(docs/iceberg.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pyiceberg.manifest import ManifestEntryStatus


@dataclass
class Files:
    """File locations and the bytes of those whose size the metadata gives."""

    paths: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)

    def add(self, path: str | None, size: int | None = None) -> None:
        if path:
            self.paths.add(path)
            if size is not None:
                self.sizes[path] = int(size)


class Reader:
    """Reads each manifest once however many snapshots list it."""

    def __init__(self, io: Any) -> None:
        self.io = io
        self._entries: dict[str, list[tuple[str, int, bool]]] = {}

    def entries(self, manifest: Any) -> list[tuple[str, int, bool]]:
        """(file, bytes, live) of each entry of ``manifest``."""
        path = manifest.manifest_path
        if path not in self._entries:
            self._entries[path] = [
                (e.data_file.file_path, e.data_file.file_size_in_bytes,
                 e.status != ManifestEntryStatus.DELETED)
                for e in manifest.fetch_manifest_entry(self.io, discard_deleted=False)]
        return self._entries[path]

    def referred(self, snapshots: Iterable[Any], live_only: bool) -> Files:
        """Every file ``snapshots`` refer to (only the live data files if ``live_only``)."""
        out = Files()
        for snapshot in snapshots:
            out.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(self.io):
                out.add(manifest.manifest_path, manifest.manifest_length)
                for path, size, live in self.entries(manifest):
                    if live or not live_only:
                        out.add(path, size)
        return out


def only_expired(io: Any, expired: Iterable[Any], remaining: Iterable[Any]) -> Files:
    """The files ``expired`` snapshots referred to that none of ``remaining`` does (above)."""
    reader = Reader(io)
    kept = reader.referred(remaining, live_only=True)
    gone = reader.referred(expired, live_only=False)
    paths = gone.paths - kept.paths
    return Files(paths, {p: s for p, s in gone.sizes.items() if p in paths})


def current_files_present(table: Any) -> bool:
    """Whether every data file the table's current snapshot reads is there (a file missing
    that it does not read was replaced, then deleted by an expire, by another writer)."""
    from pyarrow.fs import FileType

    snapshot = table.current_snapshot()
    if snapshot is None:
        return True
    live = Reader(table.io).referred([snapshot], live_only=True).paths
    scheme, netloc, _ = table.io.parse_location(table.metadata.location)
    fs = table.io.fs_by_scheme(scheme, netloc)
    infos = fs.get_file_info([table.io.parse_location(p)[2] for p in sorted(live)])
    return all(i.type == FileType.File for i in infos)
