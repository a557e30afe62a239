"""One window of a big table read by several workers at once.

An incremental export reads a table's window in (cursor, key) order, in one
``COPY (SELECT ... ORDER BY cursor, key)``: the server formats every row of it in one
backend, the slowest step of a big day (datanommer's 400,000 messages: ~2 s of one core).
With ``jobs`` > 1 and a window of at least :data:`SPLIT_ROWS` rows (counted in the export's
own snapshot, so the same rows always split the same way), the window is read as ``jobs``
consecutive sub-windows of equal length, one COPY each, in parallel.

Nothing a consumer sees changes but the file numbers: the parts' rows, in part order, are
the window's rows in (cursor, key) order, and part ``i``'s files are numbered from
``i * PART_STRIDE + 1`` so that the files sort in that order. The ``cs1`` content hash is
the one a single read gives: the first part hashes its rows as it writes them; each later
part keeps its data rows in a temporary file (disk, not memory: about the window's CSV
size times (jobs - 1) / jobs), which is hashed after the parts before it, then removed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence

from topoff.dataset import layout
from topoff.dataset.bounds import cursor_bounds
from topoff.dataset.layout import Window
from topoff.errors import ConfigError
from topoff.export.runner import CopyResult
from topoff.sources.base import BLOCK, Source, SourceTable, stream_hashable

#: a window with fewer rows is read in one COPY
SPLIT_ROWS = 100_000
#: part i's files are numbered from i * PART_STRIDE + 1 (five digits: at most 9 parts)
PART_STRIDE = 10_000
MAX_PARTS = 9


def count_rows(source: Source, t: SourceTable, window: Window) -> int | None:
    """count(*) of the window in the export's snapshot; None when the source cannot say
    cheaply (the window is then read in one COPY)."""
    count = getattr(source.reader(), "count", None)
    return int(count(t, window)) if count is not None else None


def window_counts(source: Source, tables: Sequence[SourceTable], window: Window,
                  jobs: int) -> dict[str, int | None]:
    """Rows of ``window`` per table that could be split (none with one worker)."""
    return {t.qualified: count_rows(source, t, window) for t in tables
            if jobs > 1 and stream_hashable(t)}


def sub_windows(t: SourceTable, window: Window, rows: int | None, jobs: int) -> list[Window]:
    """The consecutive sub-windows to read ``window`` of ``t`` in: ``[window]`` when it is
    not split (one worker, few rows, no (cursor, key) order, a date cursor, or wall-clock
    bounds that would not follow each other, as around a daylight-saving change)."""
    parts = min(jobs, MAX_PARTS)
    if parts < 2 or rows is None or rows < SPLIT_ROWS or not stream_hashable(t) \
            or not t.cursor_type:
        return [window]
    step = (window.end - window.start) / parts
    edges = [window.start + step * i for i in range(parts)] + [window.end]
    try:
        subs = [Window(a, b) for a, b in itertools.pairwise(edges)]
        bounds = [cursor_bounds(t.cursor_type, t.config.cursor_timezone, w) for w in subs]
    except (ValueError, ConfigError):  # too short to cut; a date cursor (days only)
        return [window]
    if not all(b.lo < b.hi for b in bounds):
        return [window]
    return subs


def part_namer(pub_id: str, t: SourceTable, window: Window,
               part: int) -> Callable[[int], tuple[str, str]]:
    """File names of one part: part * PART_STRIDE + the part's own chunk number."""

    def name_for(chunk: int) -> tuple[str, str]:
        if chunk >= PART_STRIDE:
            raise ConfigError(f"{t.qualified}: one part of {window.label} needs more than "
                              f"{PART_STRIDE - 1} files",
                              hint="raise [export] chunk_size, or export with --jobs 1")
        rel = layout.data_file(t.config.schema, t.config.name, part * PART_STRIDE + chunk,
                               window)
        return layout.in_publication(pub_id, rel), rel

    return name_for


class Joiner:
    """Continues the first part's hash over each later part's spool as soon as the parts
    before it are done (:attr:`CopyUnit.then`, on the worker that finished last), so that
    little is left to hash once every part is read."""

    def __init__(self, parts: int) -> None:
        self._done: list[CopyResult | None] = [None] * parts
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self, part: int, result: CopyResult) -> None:
        with self._lock:
            self._done[part] = result
            while self._next < len(self._done) and self._done[self._next] is not None:
                if self._next > 0:
                    _feed(self._done[0], self._done[self._next])  # type: ignore[arg-type]
                self._next += 1


def _feed(first: CopyResult, later: CopyResult) -> None:
    """Hash a later part's spooled rows into the first part's running sha256."""
    assert first.digest is not None, "the first part hashes its rows"
    if later.joined:
        return
    assert later.spool is not None, "a later part spools its rows"
    with later.spool as f:
        f.seek(0)
        while block := f.read(BLOCK):
            first.digest.update(block)
    later.joined = True


def joined_sha256(copies: Sequence[CopyResult]) -> str:
    """The ``cs1`` sha256 of a window read in parts (in part order): the first part's
    running hash, continued over each later part's spooled data rows."""
    for c in copies[1:]:
        _feed(copies[0], c)
    return str(copies[0].digest.hexdigest())


def close_spools(copies: Sequence[CopyResult]) -> None:
    for c in copies:
        if c.spool is not None:
            c.spool.close()
