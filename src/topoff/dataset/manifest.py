"""manifest.json: what one publication holds. The contract with consumers (docs/dataset-format.md).

``format_version`` changes only when a consumer written for the old version would misread
the new one; fields may be added within a version, and readers ignore fields they do not know.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from topoff.dataset import checks as ck
from topoff.dataset import layout
from topoff.dataset.columns import Column
from topoff.dataset.layout import Window
from topoff.errors import IntegrityError
from topoff.pgtypes import canonical_type, is_time_cursor

__all__ = ["Column", "DataFile", "Manifest", "Snapshot", "TableEntry"]

FORMAT_VERSION = 1
KINDS = (layout.FULL, layout.INCREMENTAL)
METHODS = ("append", "upsert", "snapshot")
#: the source engines a manifest's ``source.engine`` names
ENGINES = ("postgresql", "mariadb", "mysql")


@dataclass(frozen=True)
class DataFile:
    """One file of a publication; ``path`` is relative to the publication directory."""

    path: str
    bytes: int
    sha256: str
    rows: int | None = None
    #: size of the decompressed CSV (written by newer exporters; readers bound by it)
    uncompressed_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}
        if self.rows is not None:
            d["rows"] = self.rows
        if self.uncompressed_bytes is not None:
            d["uncompressed_bytes"] = self.uncompressed_bytes
        return d

    @classmethod
    def from_json(cls, d: Any, what: str, schema_key: str | None = None) -> DataFile:
        d = ck.obj(d, what)
        if schema_key is None:
            path = ck.data_file_path(d.get("path"), f"{what} path")
            rows: int | None = ck.count(d.get("rows"), f"{what} rows")
        else:
            path = ck.schema_file_path(schema_key, d.get("path"), what)
            rows = None
        size = d.get("uncompressed_bytes")
        return cls(path, ck.count(d.get("bytes"), f"{what} bytes"),
                   ck.sha256(d.get("sha256"), f"{what} sha256"), rows,
                   None if size is None else ck.count(size, f"{what} uncompressed_bytes"))


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
    def from_json(cls, key: str, d: Any) -> TableEntry:
        what = f"table {key!r:.80}"
        d = ck.obj(d, what)
        schema, name = ck.name(d.get("schema"), f"{what} schema"), ck.name(d.get("name"),
                                                                           f"{what} name")
        if key != f"{schema}.{name}":
            raise ck.Invalid(f"{what} is listed under another name than {schema}.{name}")
        columns = [Column.from_json(c, f"{what} column")
                   for c in ck.items(d.get("columns"), f"{what} columns")]
        by_name = {c.name: c for c in columns}
        if not columns or len(by_name) != len(columns):
            raise ck.Invalid(f"{what} has no columns, or a column twice")
        keys = [ck.name(k, f"{what} primary_key") for k in
                ck.items(d.get("primary_key") or [], f"{what} primary_key")]
        cursor = ck.optional(d.get("cursor"), str, f"{what} cursor")
        cursor_type = ck.optional(d.get("cursor_type"), str, f"{what} cursor_type")
        if cursor_type is not None:  # spelled as its column's type may be (columns.py)
            cursor_type = canonical_type(cursor_type)
        method = ck.one_of(d.get("method"), METHODS, f"{what} method")
        if any(k not in by_name for k in keys) or len(set(keys)) != len(keys):
            raise ck.Invalid(f"{what} primary_key names a column it does not have")
        if cursor is not None and (cursor not in by_name or cursor_type != by_name[cursor].type
                                   or not is_time_cursor(cursor_type)):
            raise ck.Invalid(f"{what} cursor is not one of its time columns, or cursor_type "
                             "differs from that column's type")
        if (cursor is None and (cursor_type is not None or method != "snapshot")) or \
                (method == "upsert" and not keys):
            raise ck.Invalid(f"{what} method {method} needs a cursor (and upsert a key)")
        files = [DataFile.from_json(f, f"{what} file") for f in ck.items(d.get("files"),
                                                                         f"{what} files")]
        unchanged = d.get("unchanged_since")
        return cls(
            schema=schema, name=name, method=method, columns=columns, primary_key=keys,
            cursor=cursor, cursor_type=cursor_type,
            cursor_timezone=ck.time_zone(d.get("cursor_timezone", "UTC"),
                                         f"{what} cursor_timezone"),
            filtered=ck.typed(d.get("filtered", False), bool, f"{what} filtered"),
            rows=ck.count(d.get("rows", 0), f"{what} rows"),
            content_hash=ck.optional(d.get("content_hash"), str, f"{what} content_hash"),
            files=files,
            unchanged_since=None if unchanged is None else ck.publication_id(
                unchanged, f"{what} unchanged_since"),
            post_data=[ck.typed(x, str, f"{what} post_data") for x in
                       ck.items(d.get("post_data") or [], f"{what} post_data")],
        )

    def check_counts(self) -> None:
        """The files' rows add up to the table's (a table unchanged since an earlier
        publication counts that one's rows and has no files)."""
        if self.unchanged_since is not None:
            if self.files:
                raise ck.Invalid(f"table {self.qualified} is unchanged but lists files")
            return
        total = sum(f.rows or 0 for f in self.files)
        if total != self.rows:
            raise ck.Invalid(f"table {self.qualified}: its files hold {total} rows, the "
                             f"table {self.rows}")


@dataclass
class Snapshot:
    """Where in the source's history the publication was read."""

    time: str  # the source's clock inside the export transaction (ISO 8601, UTC)
    #: PostgreSQL: replay LSN on a standby, current WAL LSN on a primary (None: other engines)
    lsn: str | None
    replay_timestamp: str | None  # pg_last_xact_replay_timestamp() on a standby
    #: PostgreSQL: pg_snapshot_xmin/xmax(pg_current_snapshot()), 64-bit (None: other engines)
    xmin: int | None
    xmax: int | None
    isolation: str
    in_recovery: bool
    #: the engine's own position, for engines other than PostgreSQL (MariaDB: binlog file and
    #: position, GTID): an object of short strings and integers
    position: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.position is None:
            del d["position"]
        return d

    @classmethod
    def from_json(cls, value: Any, engine: str) -> Snapshot:
        snap = ck.obj(value, "snapshot")
        pg = engine == "postgresql"  # its position fields are required
        lsn, xmin, xmax = snap.get("lsn"), snap.get("xmin"), snap.get("xmax")
        return cls(
            time=ck.text(snap.get("time"), "snapshot time", 100),
            lsn=ck.text(lsn, "snapshot lsn", 100) if pg or lsn is not None else None,
            replay_timestamp=ck.optional(snap.get("replay_timestamp"), str,
                                         "snapshot replay_timestamp"),
            xmin=ck.count(xmin, "snapshot xmin") if pg or xmin is not None else None,
            xmax=ck.count(xmax, "snapshot xmax") if pg or xmax is not None else None,
            isolation=ck.text(snap.get("isolation"), "snapshot isolation", 100),
            in_recovery=ck.typed(snap.get("in_recovery"), bool, "snapshot in_recovery"),
            position=None if snap.get("position") is None else _position(snap["position"]))


def _position(value: Any) -> dict[str, Any]:
    d = ck.obj(value, "snapshot position")
    if len(d) > 20:
        raise ck.Invalid("snapshot position has too many fields")
    for k, v in d.items():
        ck.text(k, "snapshot position field", 100)
        if not (isinstance(v, str) and len(v) <= 1000 and v.isprintable()) and not (
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= ck.MAX_INT):
            raise ck.Invalid(f"snapshot position {str(k)[:40]!r} is not a short text or a "
                             "count")
    return d


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
            "snapshot": self.snapshot.to_json(),
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
    def from_json(cls, d: Any) -> Manifest:
        d = ck.obj(d, "the manifest")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise IntegrityError(
                f"manifest {str(d.get('publication'))[:80]!r} has format version "
                f"{str(version)[:20]}; this topoff reads version {FORMAT_VERSION}",
                hint="upgrade topoff on this side (pip install -U topoff)",
            )
        kind = ck.one_of(d.get("kind"), KINDS, "kind")
        pub = ck.publication_id(d.get("publication"), "publication", kind)
        _, window, revision = layout.parse_id(pub)
        if window is not None:
            w = ck.obj(d.get("window"), "window")
            try:
                found = Window.from_json(w)
            except (ValueError, TypeError, KeyError, AttributeError):
                raise ck.Invalid("window is not a [start, end) of two ISO times") from None
            if found != window or w.get("label", window.label) != window.label or \
                    d.get("revision") != revision:
                raise ck.Invalid(f"window or revision differ from the publication id {pub}")
        elif d.get("window") is not None or d.get("revision") is not None:
            raise ck.Invalid("a full export has no window or revision")
        previous = d.get("previous_revision")
        source = _source(d.get("source"))
        tables = {ck.text(k, "table name", 200): TableEntry.from_json(k, v)
                  for k, v in ck.obj(d.get("tables"), "tables").items()}
        for t in tables.values():
            t.check_counts()
        return cls(
            kind=kind,
            publication=pub,
            dataset=ck.dataset_name(d.get("dataset")),
            created_at=ck.text(d.get("created_at"), "created_at", 100),
            tool_version=ck.text(ck.obj(d.get("tool"), "tool").get("version"), "tool version",
                                 100),
            source=source,
            snapshot=Snapshot.from_json(d.get("snapshot"), source.get("engine", "postgresql")),
            tables=tables,
            window=window,
            revision=revision,
            previous_revision=None if previous is None else ck.publication_id(
                previous, "previous_revision", layout.INCREMENTAL),
            schema_files={k: DataFile.from_json(v, f"schema file {k!r:.40}", schema_key=k)
                          for k, v in ck.obj(d.get("schema_files") or {}, "schema_files"
                                             ).items()},
            rechecked=[ck.obj(r, "rechecked") for r in ck.items(d.get("rechecked") or [],
                                                                 "rechecked")],
        )

    @property
    def engine(self) -> str:
        """The source's engine (manifests written before engines were named: PostgreSQL)."""
        return str(self.source.get("engine", "postgresql"))

    @classmethod
    def loads(cls, raw: bytes, where: str) -> Manifest:
        try:
            return cls.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise IntegrityError(f"manifest {where} cannot be read: {e}",
                                 hint="the publication is damaged; re-run the export") from None


def _source(value: Any) -> dict[str, Any]:
    source = ck.obj(value, "source")
    if "engine" in source:
        ck.one_of(source["engine"], ENGINES, "source engine")
    return source
