"""What a source database offers an export: the contract between the exporter and an engine.

The exporter (topoff.export) and ``topoff verify`` talk to a :class:`Source` only; what an
engine can do is data (:class:`SourceCapabilities`) that they read to choose how to work,
never a check of the engine's name. PostgreSQL is the first implementation
(topoff.sources.pg_source); another engine adds a module and a line in
:func:`source_class`.

A source is opened once per export attempt: :meth:`Source.open` checks the server is a
replica (a primary only with ``allow_primary``) and starts one consistent snapshot, which
every table and every worker then reads. Rows come out as :class:`RowStream` objects in the
dataset's CSV text form (docs/dataset-format.md, "Data files"), header line first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from topoff.errors import ConfigError

if TYPE_CHECKING:
    from topoff.config import Config, TableConfig
    from topoff.dataset.bounds import Bounds
    from topoff.dataset.layout import Window
    from topoff.dataset.manifest import Column, Snapshot
    from topoff.targets.base import TableDef

T = TypeVar("T")

#: Rows are gathered into a bytearray of BLOCK bytes that starts with KEEP unused bytes:
#: emptying it (``del buf[KEEP:]``) then keeps its memory, as CPython gives a bytearray's
#: memory back only when it shrinks below half of it. A buffer emptied to zero bytes is
#: grown again from fresh pages for every block, whose page faults and mremap calls cost
#: ~0.6 s of system time per GB of CSV (measured on the benchmark's full export).
BLOCK = 1 << 20
KEEP = 3 << 19  # > half of (KEEP + BLOCK) * 1.125 (bytearray's over-allocation)

#: ``cs1``: the sha256 of a window's CSV data rows as exported, in (cursor, key) order,
#: taken while the files are written; any source can give it (see export/incremental.py)
STREAM_HASH = "cs1"


def algorithm_of(content_hash: str | None) -> str | None:
    """The algorithm a published content_hash was computed with (None: no hash; the first
    versions wrote PostgreSQL's md5 sums without a prefix)."""
    if content_hash is None:
        return None
    return content_hash.split(":", 1)[0] if ":" in content_hash else "md5"


def stream_hashable(t: SourceTable) -> bool:
    """Whether a window's ordered read gives its rows in one order only: (cursor, key)."""
    return bool(t.config.cursor and t.primary_key)


def comparable_algorithm(content_hash: str | None, t: SourceTable,
                         server_algorithm: str | None) -> str | None:
    """How to hash a window now to compare it with a published ``content_hash``: ``cs1``
    (the rows as exported), or the server's own algorithm if the hash was made with it;
    None when no comparable hash can be computed."""
    algorithm = algorithm_of(content_hash)
    if algorithm == STREAM_HASH:
        return STREAM_HASH if stream_hashable(t) else None
    return algorithm if algorithm == server_algorithm else None


def block_buffer() -> bytearray:
    """An empty block buffer: data goes after its first KEEP bytes (see KEEP)."""
    return bytearray(KEEP)


def rows_digest(stream: RowStream) -> tuple[int, str]:
    """Rows and sha256 of a stream's data rows (the header left out): what
    :class:`topoff.export.chunks.ChunkedWriter` computes while writing the files."""
    digest, buf, rows = hashlib.sha256(), block_buffer(), 0
    if stream.read_row() is None:  # the header
        return 0, digest.hexdigest()
    while not stream.done:
        rows += stream.read_into(buf, KEEP + BLOCK)
        with memoryview(buf)[KEEP:] as view:
            digest.update(view)
        del buf[KEEP:]
    return rows, digest.hexdigest()


@dataclass(frozen=True)
class SourceCapabilities:
    """What an engine's source can do; the exporter reads these to choose its way."""

    #: "postgresql", "mariadb" or "mysql": written as the manifest's ``source.engine``
    engine: str
    #: parallel workers read the coordinator's snapshot (else an export runs on one reader)
    exported_snapshot: bool
    #: a big table can be read as several parts in parallel (:meth:`Source.parts`)
    page_ranges: bool
    #: late rows can be found by the id of the transaction that wrote them
    #: (:meth:`SourceReader.changed_since`); without it the lookback re-check counts and
    #: hashes every day
    xmin_change_detection: bool
    #: content hashes the server computes (:meth:`SourceReader.count_hash`), preferred
    #: first; ``cs1`` (the exported rows' sha256) needs nothing from the server, and is
    #: what a source without any gets for tables with a key (others: no content hash)
    hash_algorithms: tuple[str, ...]
    #: a full export can carry DDL for a psql load (schema/pre-data.sql, post-data.sql)
    pre_data: bool
    #: tables are locked in share mode for the export (DDL then conflicts visibly)
    table_locks: bool


@dataclass
class SourceTable:
    """A configured table as the source describes it, read inside the export's snapshot.

    Engines keep what only they need in a subclass (PostgreSQL: topoff.sources.catalog).
    """

    config: TableConfig
    columns: list[Column]  # exported columns, in table order
    source_columns: list[str]  # every column on the source
    primary_key: list[str]
    cursor_type: str | None
    est_rows: float = 0.0
    #: the table's size on the source in bytes (an estimate: big tables start first)
    size: int = 0
    post_data: list[str] = field(default_factory=list)  # keys and indexes (DDL)
    foreign_keys: list[str] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return self.config.qualified


class SourceSnapshot(Protocol):
    """The snapshot an export reads, as :meth:`Source.open` found it."""

    #: the source's clock inside the snapshot
    time: datetime
    #: read from a replica (a standby), not a primary
    in_recovery: bool
    database: str

    def to_manifest(self) -> Snapshot:
        """The manifest's ``snapshot`` (engine-specific position included)."""
        ...

    def source_json(self, url: str) -> dict[str, Any]:
        """The manifest's ``source`` (no password; ``engine`` included)."""
        ...

    def replayed_until(self) -> datetime | None:
        """Up to which time of the primary the snapshot holds every commit (a primary:
        its own time); None when unknown."""
        ...

    def lag(self) -> tuple[str, str | None]:
        """Why :meth:`replayed_until` is behind, as a message suffix (may be empty), and a
        hint to give first (or None)."""
        ...


class RowStream(Protocol):
    """CSV rows of one read (header line first), whole rows at a time."""

    done: bool

    def read_row(self) -> memoryview | bytes | None:
        """The next row, or None at the end."""
        ...

    def read_into(self, buf: bytearray, until: int) -> int:
        """Append whole rows to ``buf`` until it holds ``until`` bytes or more, or the rows
        end; return how many rows."""
        ...


class SourceReader(Protocol):
    """One connection in the export's snapshot; used by one thread at a time."""

    def rows(self, table: SourceTable, window: Window | None = None, part: Any = None,
             ordered: bool = False) -> RowStream:
        """The exported columns of the table's rows (of a window, of a part), as CSV with
        a header; ``ordered``: in (cursor, key) order, so the same rows give the same bytes."""
        ...

    def count_hash(self, table: SourceTable, window: Window | None,
                   algorithm: str) -> tuple[int, str | None]:
        """count(*) and the content hash ``<algorithm>:<sum>`` of the rows (None: the
        server could not hash every row: the rows compare with no hash)."""
        ...

    def changed_since(self, table: SourceTable, window: Window, since: Snapshot,
                      now: SourceSnapshot) -> tuple[int, int] | None:
        """count(*) of the window, and how many of its rows were written after the snapshot
        ``since`` was taken; None when this cannot be told (the caller hashes instead)."""
        ...


class SourceVerifier(Protocol):
    """``topoff verify``'s view of a source: its tables hashed the way a replica holds them
    (topoff.canonical), in the source's snapshot."""

    def mismatch(self, table: TableDef) -> str | None:
        """Why the source's table cannot be compared with the replica's, or None."""
        ...

    def hash(self, table: TableDef, by_day: bool, since: datetime | date | None,
             window: Bounds | None, profile: str) -> dict[str | None, tuple[int, str]]:
        """count and canonical hash, of the whole table (key None) or per UTC day."""
        ...


class Source(Protocol):
    """A source database, opened for one export (or verify) attempt."""

    capabilities: SourceCapabilities
    url: str

    def open(self) -> SourceSnapshot:
        """Check the server (replica, or a primary when allowed) and start the snapshot."""
        ...

    def tables(self, config: Config) -> list[SourceTable]:
        """The configured tables, checked against the catalog (ConfigError on a mismatch)."""
        ...

    def lock(self, tables: list[SourceTable]) -> None:
        """Hold share locks on the tables for the export (when ``table_locks``)."""
        ...

    def reader(self) -> SourceReader:
        """The coordinator's own reader (in the snapshot)."""
        ...

    def share(self) -> None:
        """Make the snapshot available to workers; called once before :meth:`worker`."""
        ...

    def worker(self) -> SourceReader:
        """Another reader in the same snapshot (closed by :meth:`close`)."""
        ...

    def parts(self, table: SourceTable, jobs: int, split_bytes: int) -> list[Any]:
        """How to read a table: ``[None]`` (whole), or parts for :meth:`SourceReader.rows`."""
        ...

    def hash_algorithm(self) -> str | None:
        """The content hash this server computes (the first of ``hash_algorithms`` it can);
        None: none, the exporter hashes the rows it reads (``cs1``) where it can."""
        ...

    def pre_data_sql(self, tables: list[SourceTable]) -> str:
        ...

    def post_data_sql(self, tables: list[SourceTable]) -> str:
        ...

    def verifier(self) -> SourceVerifier:
        """What ``topoff verify`` reads the source's tables with."""
        ...

    def main_error(self, errors: list[BaseException]) -> BaseException:
        """Of the errors parallel readers raised, the one that caused the others."""
        ...

    def cancel_all(self) -> None:
        """Interrupt every worker's running read (another worker failed)."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> Source:
        ...

    def __exit__(self, *exc: object) -> None:
        ...


class SourceKind(Protocol):
    """A Source class: how to open one, and how to retry an attempt it interrupted."""

    capabilities: SourceCapabilities

    def __call__(self, url: str, allow_primary: bool,
                 application_name: str = ...) -> Source:
        ...

    def retry(self, run: Callable[[int], T], attempts: int, backoff: float, what: str,
              cleanup: Callable[[], None] | None = None) -> T:
        """Run ``run(attempt)`` again (a new snapshot) when the engine's transient failures
        interrupt it, up to ``attempts`` times."""
        ...


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,30})://")
_ENGINES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql",
            "mariadb": "mariadb"}


def engine_of(url: str) -> str:
    """The engine a source URL names; libpq's key=value form is PostgreSQL's."""
    m = _SCHEME.match(url)
    if m is None:
        return "postgresql"  # key=value, or anything libpq will judge
    scheme = m.group(1).lower()
    if scheme not in _ENGINES:
        raise ConfigError(f"unsupported source URL scheme {scheme!r}",
                          hint="use postgresql://user@host:port/dbname")
    return _ENGINES[scheme]


def source_class(url: str) -> SourceKind:
    """The Source class for a URL."""
    engine = engine_of(url)
    if engine == "postgresql":
        from topoff.sources.pg_source import PostgresSource
        return PostgresSource  # type: ignore[return-value]
    if engine in ("mariadb", "mysql"):
        from topoff.sources.mariadb.source import MariaSource
        return MariaSource
    raise ConfigError(f"{engine} sources are not supported by this version of topoff",
                      hint="use a PostgreSQL source (postgresql://...)")


def open_source(url: str, allow_primary: bool, application_name: str = "topoff export"
                ) -> Source:
    """A Source for the URL (not opened yet: use it as a context manager, then open())."""
    return source_class(url)(url, allow_primary, application_name)
