"""Every file name in a dataset is built here, and only here.

A dataset root holds::

    index.json                                         every publication, newest last
    full/2026-11-20T021500Z/manifest.json              a full export
    full/2026-11-20T021500Z/README.md                  how to load it with psql alone
    full/2026-11-20T021500Z/schema/pre-data.sql        tables (and enum types)
    full/2026-11-20T021500Z/schema/post-data.sql       primary keys, indexes, foreign keys
    full/2026-11-20T021500Z/data/public.messages.00001.csv.zst
    incremental/2026-11-20/r1/manifest.json            one day, first revision
    incremental/2026-11-20/r1/data/public.messages.2026-11-20.00001.csv.zst
    incremental/2026-11-20/r2/...                      the same day republished (late rows)
    incremental/2026-11-20T060000Z--2026-11-20T120000Z/r1/...   a window given by --since/--until

A publication id is the directory of its manifest (``full/2026-11-20T021500Z``,
``incremental/2026-11-20/r2``). Names inside a manifest are relative to that directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

INDEX = "index.json"
INDEX_HTML = "index.html"                  # the same list, for people with a web browser
LOCK = "lock.json"                         # held by the one export (or prune) that may publish
MANIFEST = "manifest.json"
README = "README.md"
PRE_DATA = "schema/pre-data.sql"
POST_DATA = "schema/post-data.sql"
FULL = "full"
INCREMENTAL = "incremental"

_SAFE = re.compile(r"[^A-Za-z0-9_\-]")
_FULL_ID = re.compile(r"^full/(\d{4}-\d{2}-\d{2}T\d{6}Z)$")
_INC_ID = re.compile(r"^incremental/([0-9TZ\-]+)/r([1-9]\d*)$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SPAN = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{6}Z)--(\d{4}-\d{2}-\d{2}T\d{6}Z)$")


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H%M%SZ")


def _parse_stamp(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H%M%SZ").replace(tzinfo=UTC)


def _safe(part: str) -> str:
    """A schema or table name as a file-name part: unusual characters become %XX."""
    return _SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), part)


@dataclass(frozen=True)
class Window:
    """A half-open interval [start, end) of UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if not self.start < self.end:
            raise ValueError("window start must be before its end")

    @classmethod
    def day(cls, d: date) -> Window:
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))

    @property
    def is_day(self) -> bool:
        s = self.start.astimezone(UTC)
        return (s.hour, s.minute, s.second, s.microsecond) == (0, 0, 0, 0) and (
            self.end - self.start == timedelta(days=1)
        )

    @property
    def label(self) -> str:
        """The name of the window in the dataset: the date for a UTC day, else the span."""
        if self.is_day:
            return self.start.astimezone(UTC).date().isoformat()
        return f"{_stamp(self.start)}--{_stamp(self.end)}"

    @classmethod
    def from_label(cls, label: str) -> Window:
        if _DAY.match(label):
            return cls.day(date.fromisoformat(label))
        m = _SPAN.match(label)
        if not m:
            raise ValueError(f"not a window label: {label!r}")
        return cls(_parse_stamp(m.group(1)), _parse_stamp(m.group(2)))

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.astimezone(UTC).isoformat(),
                "end": self.end.astimezone(UTC).isoformat(), "label": self.label}

    @classmethod
    def from_json(cls, d: dict[str, str]) -> Window:
        return cls(datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"]))


def full_id(snapshot_time: datetime) -> str:
    return f"{FULL}/{_stamp(snapshot_time)}"


def full_time(pub_id: str) -> datetime:
    """The snapshot time a full export's id carries."""
    m = _FULL_ID.match(pub_id)
    if not m:
        raise ValueError(f"not a full export id: {pub_id!r}")
    return _parse_stamp(m.group(1))


def incremental_id(window: Window, revision: int) -> str:
    return f"{INCREMENTAL}/{window.label}/r{revision}"


def window_prefix(window: Window) -> str:
    """Prefix under which every revision of a window lives."""
    return f"{INCREMENTAL}/{window.label}/"


def parse_id(pub_id: str) -> tuple[str, Window | None, int | None]:
    """('full', None, None) or ('incremental', window, revision); ValueError otherwise."""
    if _FULL_ID.match(pub_id):
        return FULL, None, None
    m = _INC_ID.match(pub_id)
    if m:
        return INCREMENTAL, Window.from_label(m.group(1)), int(m.group(2))
    raise ValueError(f"not a publication id: {pub_id!r}")


def in_publication(pub_id: str, relative: str) -> str:
    """Store name of a file given relative to its publication directory."""
    return f"{pub_id}/{relative}"


def manifest_name(pub_id: str) -> str:
    return in_publication(pub_id, MANIFEST)


def data_file(schema: str, table: str, chunk: int, window: Window | None = None) -> str:
    """Relative name of a table's data file: chunk numbers start at 1."""
    label = f".{window.label}" if window is not None else ""
    return f"data/{_safe(schema)}.{_safe(table)}{label}.{chunk:05d}.csv.zst"


def publication_of(name: str) -> str | None:
    """The publication id a store name belongs to, or None for top-level files."""
    parts = name.split("/")
    if parts[0] == FULL and len(parts) >= 3:
        return "/".join(parts[:2])
    if parts[0] == INCREMENTAL and len(parts) >= 4:
        return "/".join(parts[:3])
    return None
