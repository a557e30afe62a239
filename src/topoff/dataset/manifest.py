"""manifest.json: what one publication holds. The contract with consumers (docs/dataset-format.md).

``format_version`` changes only when a consumer written for the old version would misread
the new one; fields may be added within a version, and readers ignore fields they do not know.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from topoff.dataset.layout import Window
from topoff.errors import IntegrityError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    #: PostgreSQL type as format_type() prints it, domains resolved to their base type
    type: str
    nullable: bool = True
    #: labels of an enum type (or of the element type of an enum array)
    enum: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.enum is not None:
            d["enum"] = self.enum
        return d


@dataclass(frozen=True)
class DataFile:
    """One file of a publication; ``path`` is relative to the publication directory."""

    path: str
    bytes: int
    sha256: str
    rows: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}
        if self.rows is not None:
            d["rows"] = self.rows
        return d


@dataclass
class TableEntry:
    schema: str
    name: str
    method: str
    columns: list[Column]
    primary_key: list[str]
    cursor: str | None = None
    cursor_type: str | None = None
    cursor_timezone: str = "UTC"
    filtered: bool = False
    rows: int = 0
    #: order-independent hash of the rows (see topoff.canonical), when computed
    content_hash: str | None = None
    files: list[DataFile] = field(default_factory=list)
    #: a table whose content is the same as in that earlier publication (nothing to apply)
    unchanged_since: str | None = None
    #: full exports: keys, indexes and foreign keys of the table (post-data statements)
    post_data: list[str] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "method": self.method,
            "primary_key": self.primary_key,
            "cursor": self.cursor,
            "cursor_type": self.cursor_type,
            "cursor_timezone": self.cursor_timezone,
            "filtered": self.filtered,
            "rows": self.rows,
            "content_hash": self.content_hash,
            "unchanged_since": self.unchanged_since,
            "columns": [c.to_json() for c in self.columns],
            "files": [f.to_json() for f in self.files],
            **({"post_data": self.post_data} if self.post_data else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableEntry:
        return cls(
            schema=d["schema"],
            name=d["name"],
            method=d["method"],
            columns=[Column(c["name"], c["type"], c.get("nullable", True), c.get("enum"))
                     for c in d["columns"]],
            primary_key=list(d.get("primary_key") or []),
            cursor=d.get("cursor"),
            cursor_type=d.get("cursor_type"),
            cursor_timezone=d.get("cursor_timezone", "UTC"),
            filtered=d.get("filtered", False),
            rows=d.get("rows", 0),
            content_hash=d.get("content_hash"),
            files=[DataFile(f["path"], f["bytes"], f["sha256"], f.get("rows")) for f in d["files"]],
            unchanged_since=d.get("unchanged_since"),
            post_data=list(d.get("post_data") or []),
        )


@dataclass
class Snapshot:
    """Where in the source's history the publication was read."""

    time: str  # now() inside the export transaction (ISO 8601, UTC)
    lsn: str  # replay LSN on a standby, current WAL LSN on a primary
    replay_timestamp: str | None  # pg_last_xact_replay_timestamp() on a standby
    xmin: int  # pg_snapshot_xmin(pg_current_snapshot()), 64-bit
    xmax: int
    isolation: str
    in_recovery: bool


@dataclass
class Manifest:
    kind: str  # "full" or "incremental"
    publication: str
    dataset: str
    created_at: str
    tool_version: str
    source: dict[str, Any]
    snapshot: Snapshot
    tables: dict[str, TableEntry]
    window: Window | None = None
    revision: int | None = None
    previous_revision: str | None = None
    schema_files: dict[str, DataFile] = field(default_factory=dict)  # pre_data, post_data
    #: days re-checked by this run and how (see docs/late-rows.md)
    rechecked: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def files(self) -> list[DataFile]:
        out = list(self.schema_files.values())
        for t in self.tables.values():
            out.extend(t.files)
        return out

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files())

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "kind": self.kind,
            "publication": self.publication,
            "dataset": self.dataset,
            "created_at": self.created_at,
            "tool": {"name": "topoff", "version": self.tool_version},
            "source": self.source,
            "snapshot": asdict(self.snapshot),
            "window": self.window.to_json() if self.window else None,
            "revision": self.revision,
            "previous_revision": self.previous_revision,
            "schema_files": {k: v.to_json() for k, v in self.schema_files.items()},
            "rechecked": self.rechecked,
            "tables": {k: v.to_json() for k, v in self.tables.items()},
        }

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n").encode()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise IntegrityError(
                f"manifest {d.get('publication')} has format version {version}; this topoff "
                f"reads version {FORMAT_VERSION}",
                hint="upgrade topoff on this side (pip install -U topoff)",
            )
        return cls(
            kind=d["kind"],
            publication=d["publication"],
            dataset=d["dataset"],
            created_at=d["created_at"],
            tool_version=d["tool"]["version"],
            source=d["source"],
            snapshot=Snapshot(**d["snapshot"]),
            tables={k: TableEntry.from_json(v) for k, v in d["tables"].items()},
            window=Window.from_json(d["window"]) if d.get("window") else None,
            revision=d.get("revision"),
            previous_revision=d.get("previous_revision"),
            schema_files={k: DataFile(v["path"], v["bytes"], v["sha256"], v.get("rows"))
                          for k, v in d.get("schema_files", {}).items()},
            rechecked=d.get("rechecked", []),
        )

    @classmethod
    def loads(cls, raw: bytes, where: str) -> Manifest:
        try:
            return cls.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"manifest {where} cannot be read: {e}",
                                 hint="the publication is damaged; re-run the export") from None
