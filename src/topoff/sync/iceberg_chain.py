"""The streams of one commit of an Iceberg first build read by one thread: the full
export's files, then each partition merged into the commit (sync/iceberg.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from topoff.dataset.index import Publication
from topoff.dataset.manifest import DataFile, Manifest, TableEntry
from topoff.readahead import ahead_each
from topoff.sync.fetch import Fetcher
from topoff.sync.iceberg_apply import check_columns, full_rows, publication_rows
from topoff.targets.iceberg.table import TableLedger


def _locator(fetcher: Fetcher, pub: Publication) -> Callable[[DataFile], Path]:
    return lambda f: fetcher.locate(pub.id, f)


class Chain:
    """The streams of one commit of a first build (the full export's files, then each
    partition merged into it) read by one thread, which goes on to the next stream while
    the rows it handed over last are written (readahead.ahead_each): a partition of one
    batch is read while the batch before it is written, no longer read, then written.
    Used when no merged partition adds a column or marks the table unchanged (their
    streams are made as the commit applies them, as before: the chain is then empty)."""

    def __init__(self, fetcher: Fetcher, schema: Any,
                 merged: list[tuple[Publication, Manifest, TableEntry]] | None) -> None:
        self.fetcher, self.schema, self.merged = fetcher, schema, merged
        self.each: Iterator[Iterator[Any]] | None = None
        self.made: Iterator[list[Path]] = iter(())

    def first(self, entry: TableEntry, group: list[tuple[int, DataFile]], base: Publication,
              replaced: Any) -> tuple[Iterator[Any], list[Path]] | None:
        if self.merged is None:
            return None
        merged, fetcher, schema = self.merged, self.fetcher, self.schema
        made: list[list[Path]] = [[] for _ in range(len(merged) + 1)]
        self.made = iter(made[1:])

        def streams() -> Iterator[Iterator[Any]]:  # made in the reading thread, in order
            yield full_rows(entry, group, _locator(fetcher, base), base, schema, replaced,
                            made[0])
            for (p, _, e), paths in zip(merged, made[1:], strict=True):
                yield publication_rows(e, _locator(fetcher, p), p, schema, paths)

        self.each = ahead_each(streams())
        return next(self.each), made[0]

    def next(self) -> tuple[Iterator[Any], list[Path]] | None:
        if self.each is None:
            return None
        return next(self.each), next(self.made)

    def close(self) -> None:
        if self.each is not None:
            close = getattr(self.each, "close", None)
            if close is not None:
                close()


def chained(ledger: TableLedger, q: str, merged: list[tuple[Publication, Manifest]],
             schema: Any, fetcher: Fetcher) -> Chain:
    """The chain of a first build's commit merging ``merged`` into table ``q``."""
    if not merged:
        return Chain(fetcher, schema, None)
    entries = [(p, m, m.tables[q]) for p, m in merged]
    plain = all(not e.unchanged_since and not check_columns(ledger, e, p)
                for p, _, e in entries)
    return Chain(fetcher, schema, entries if plain else None)
