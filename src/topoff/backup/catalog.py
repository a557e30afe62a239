"""The backup catalog: immutable JSON objects in the store beside the backups.

``catalog/<name>/started.json`` is written before the dump starts, then exactly one of
``finished.json`` (size, sha256, files, per-table rows and hashes) or ``failed.json``;
each drill adds ``drill-<stamp>.json``. Nothing is ever overwritten, so a bucket under
object lock never blocks the catalog. A backup's status follows from which objects
exist: finished, failed, or - with only started.json - ongoing while its process can
still be alive (same host and boot, that pid with the same start time; on another host,
younger than :data:`MAX_ONGOING`), else failed ("died"). An entry whose objects a prune
removes while the catalog is read is left out, as if read after the prune.

Catalog objects are read as untrusted input: every field is type-checked, and a name
that is not a valid backup name is skipped. One read of the catalog lists at most
:data:`MAX_CATALOG_OBJECTS` objects and reads at most :data:`MAX_CATALOG_BYTES` (a store
holding more was not filled by topoff backups: refused, exit 6), and keeps of each entry
the summary that listing, checking and pruning need; a restore or a drill reads its one
backup's entry again, whole.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from topoff.backup.names import CATALOG, catalog_key, is_valid
from topoff.backup.owner import MAX_ONGOING as MAX_ONGOING
from topoff.backup.owner import OWNER as OWNER
from topoff.backup.owner import alive as alive
from topoff.backup.owner import parse_time as parse_time
from topoff.backup.owner import process_marker as process_marker
from topoff.backup.owner import work_directory as work_directory
from topoff.errors import IntegrityError
from topoff.redact import redact
from topoff.stores.base import FileMissing, ObjectOptions, Store

log = logging.getLogger("topoff")

MAX_OBJECT = 16 * 1024 * 1024  # a catalog object larger than this is refused
#: the most catalog objects one read of the catalog lists: a backup writes two, and one
#: per drill (ten years of nightly backups, weekly drills: under 10,000)
MAX_CATALOG_OBJECTS = 100_000
#: the most bytes of catalog objects one read of the catalog reads
MAX_CATALOG_BYTES = 1 << 30
#: the longest text an entry's summary keeps of a field (an error, a source)
MAX_TEXT = 2000
def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_object(store: Store, name: str, leaf: str, body: dict[str, Any],
                 options: ObjectOptions | None = None) -> None:
    data = redact(json.dumps(body, indent=2, sort_keys=True)).encode() + b"\n"
    with store.write(catalog_key(name, leaf), options=options) as f:
        f.write(data)


@dataclass
class Entry:
    name: str
    status: str  # finished | failed | ongoing
    started: dict[str, Any]
    finished: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None
    drills: list[dict[str, Any]] = field(default_factory=list)
    #: the most a restore decompresses when the entry declares no ``plain_size``: the
    #: operator's ``--max-plain-size``, never a value from the store
    max_plain: int | None = None
    #: the tables finished.json records, in a summary that no longer holds them
    table_count: int | None = None

    @property
    def start_time(self) -> str:
        return _s(self.started.get("started"))

    @property
    def end_time(self) -> str | None:
        end = (self.finished or self.failed or {}).get("ended")
        return end if isinstance(end, str) else None

    @property
    def size(self) -> int | None:
        return _count((self.finished or {}).get("size"))

    @property
    def plain_size(self) -> int | None:
        """The bytes the object decompresses to (pg_dump's tar stream, mariadb-dump's
        SQL text), as the backup counted them; None in entries that predate it."""
        return _count((self.finished or {}).get("plain_size"))

    @property
    def files(self) -> int | None:
        """The files the backup's tar holds (the most a restore creates)."""
        return _count((self.finished or {}).get("files"))

    @property
    def plain_limit(self) -> int:
        """The most a restore decompresses: ``plain_size``, else ``max_plain``; an entry
        with neither is refused (a forged old-style entry bounds nothing)."""
        plain = self.plain_size if self.plain_size is not None else self.max_plain
        if plain is None:
            raise IntegrityError(
                f"the catalog entry of backup {self.name} declares no plain_size (the size "
                "its dump decompresses to), so nothing bounds what a restore writes",
                hint="a backup taken before topoff recorded plain_size (or an entry changed "
                "in the store): pass --max-plain-size SIZE, the most it may decompress to")
        return plain

    @property
    def sha256(self) -> str | None:
        v = (self.finished or {}).get("sha256")
        return v if isinstance(v, str) and len(v) == 64 else None

    @property
    def engine(self) -> str:
        """``mariadb`` for a mariadb-dump backup; ``postgresql`` (entries from before
        the field existed included) otherwise."""
        return "mariadb" if self.started.get("engine") == "mariadb" else "postgresql"

    @property
    def last_drill(self) -> dict[str, Any] | None:
        return self.drills[-1] if self.drills else None

    def to_json(self) -> dict[str, Any]:
        d = self.last_drill
        return {"name": self.name, "engine": self.engine, "status": self.status,
                "started": self.start_time,
                "ended": self.end_time, "size": self.size, "sha256": self.sha256,
                "source": _s(self.started.get("source")),
                "error": _s((self.failed or {}).get("error")) or None,
                "tables": self.table_count if self.table_count is not None
                else len(_dict((self.finished or {}).get("tables"))),
                "drill": None if d is None else {"ok": d.get("ok") is True,
                                                 "time": _s(d.get("time"))}}


def _count(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


class _Budget:
    """What one read of the catalog may still read (:data:`MAX_CATALOG_BYTES`)."""

    def __init__(self, store: Store) -> None:
        self.store, self.left = store, MAX_CATALOG_BYTES

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise too_large(self.store, f"more than {MAX_CATALOG_BYTES} bytes")


def too_large(store: Store, what: str) -> IntegrityError:
    return IntegrityError(f"the catalog in {store.url} holds {what}, more than topoff "
                          "backups write there", hint="check the location (the one "
                          "`topoff backup --to` names); what topoff did not write under its "
                          "catalog/ must be removed with the store's own tools")


def _read_at_most(store: Store, key: str, limit: int, budget: _Budget) -> bytes | None:
    """The object, or None when it holds more than ``limit`` bytes (read no further)."""
    chunks: list[bytes] = []
    total = 0
    with store.open_read(key) as f:
        while total <= limit and (data := f.read(min(1 << 20, limit + 1 - total))):
            budget.spend(len(data))
            chunks.append(data)
            total += len(data)
    return None if total > limit else b"".join(chunks)


def _load(store: Store, key: str, size: int, budget: _Budget) -> dict[str, Any] | None:
    # the listing's size first, then the bytes read: the object may have been replaced
    data = None if size > MAX_OBJECT else _read_at_most(store, key, MAX_OBJECT, budget)
    if data is None:
        log.warning("catalog object %s is larger than %d bytes, too large for a catalog "
                    "object; ignored", key, MAX_OBJECT)
        return None
    try:
        body = json.loads(data)
    except ValueError:
        log.warning("catalog object %s is not JSON; ignored", key)
        return None
    return body if isinstance(body, dict) else None


def _listing(store: Store, prefix: str = CATALOG) -> dict[str, dict[str, int]]:
    """One listing of the catalog: backup name -> {leaf: size}; refused past
    MAX_CATALOG_OBJECTS objects, or when those it would read hold more than
    MAX_CATALOG_BYTES, before any is read."""
    found: dict[str, dict[str, int]] = {}
    readable = 0
    for listed, info in enumerate(store.scan(prefix), 1):
        if listed > MAX_CATALOG_OBJECTS:
            raise too_large(store, f"more than {MAX_CATALOG_OBJECTS} objects")
        parts = info.name[len(CATALOG):].split("/")
        if len(parts) == 2 and is_valid(parts[0]):
            found.setdefault(parts[0], {})[parts[1]] = info.size
            readable += info.size if info.size <= MAX_OBJECT else 0
    if readable > MAX_CATALOG_BYTES:
        raise too_large(store, f"more than {MAX_CATALOG_BYTES} bytes")
    return found


def names(store: Store) -> list[str]:
    return sorted(_listing(store))


def read_entry(store: Store, name: str, leaves: dict[str, int] | None = None,
               budget: _Budget | None = None) -> Entry | None:
    """The entry ``name`` (None when it has no started.json). An object listed but gone
    when read was removed by a prune at the same moment (a backup never removes its
    own): the entry is being removed, and is left out."""
    if leaves is None:
        leaves = _listing(store, catalog_key(name, "")).get(name, {})
    try:
        return _entry(store, name, leaves, budget or _Budget(store))
    except FileMissing:
        log.debug("backup %s was removed while the catalog was read", name)
        return None


def _entry(store: Store, name: str, leaves: dict[str, int], budget: _Budget) -> Entry | None:

    def load(leaf: str) -> dict[str, Any] | None:
        return _load(store, catalog_key(name, leaf), leaves[leaf], budget) \
            if leaf in leaves else None

    started = load("started.json")
    if started is None:
        return None
    finished, failed = load("finished.json"), load("failed.json")
    drills = []
    for leaf in sorted(x for x in leaves if x.startswith("drill-") and x.endswith(".json")):
        d = load(leaf)
        if d is not None:
            drills.append(d)
    entry = Entry(name, "ongoing", started, finished, failed, drills)
    if "finished.json" in leaves and (entry.size is None or entry.sha256 is None):
        entry.finished = None
        entry.failed = failed or {"error": "finished.json is not a valid catalog object"}
    if entry.finished is not None and entry.failed is None:
        entry.status = "finished"
    elif entry.failed is not None or not alive(started):
        entry.status = "failed"
    if entry.status == "failed" and entry.failed is None:
        entry.failed = {"error": "the backup process died before it finished "
                                 "(no finished.json)"}
    return entry


def read_catalog(store: Store) -> list[Entry]:
    """Every backup in the store, oldest first by its start read as a time (those whose
    start is no time with a zone first), each as its :func:`summary`."""
    listing, budget = _listing(store), _Budget(store)
    entries = [summary(e) for n in sorted(listing)
               if (e := read_entry(store, n, listing[n], budget)) is not None]
    return sorted(entries, key=_start_order)


def summary(e: Entry) -> Entry:
    """What listing, checking and pruning read of an entry: its times, sizes, status,
    error and drills' results (not the tables' records, a drill's details or any text
    longer than MAX_TEXT), so the catalog in memory stays small however large its
    objects are."""
    fin = e.finished
    return replace(
        e, started=_pick(e.started, "started", "source", "engine"),
        finished=None if fin is None else _pick(fin, "ended", "size", "sha256",
                                                "plain_size", "files", "seconds"),
        failed=None if e.failed is None else _pick(e.failed, "ended", "error"),
        drills=[_pick(d, "ok", "time") for d in e.drills],
        table_count=len(_dict((fin or {}).get("tables"))))


def _pick(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v[:MAX_TEXT] if isinstance(v, str) else v for k in keys
            if k in body and isinstance(v := body[k], str | int | float | bool)}


def _start_order(e: Entry) -> tuple[bool, float, str, str]:
    t = parse_time(e.start_time)
    return (t is not None, t.timestamp() if t is not None else 0.0, e.start_time, e.name)


def finished_by_start(entries: list[Entry], now: datetime | None = None) -> list[Entry]:
    """The finished backups that may count as the newest, oldest first, by their start
    read as a time: one whose start is no time with a zone, or lies in the future (a
    wrong clock, a forged entry), is left out. Prune, restore --latest and the drill
    follow this one rule."""
    now = now or datetime.now(UTC)
    dated = sorted((t, e.name, e) for e in entries if e.status == "finished"
                   and (t := parse_time(e.start_time)) is not None and t <= now)
    return [e for _, _, e in dated]


def latest_finished(store: Store) -> Entry | None:
    """The newest finished backup, its entry read whole (the drill compares its tables)."""
    for e in reversed(finished_by_start(read_catalog(store))):
        whole = read_entry(store, e.name)
        if whole is not None and whole.status == "finished":
            return whole
    return None
