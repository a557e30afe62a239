"""Datasets under a store root: ``topoff list`` at ``/srv/dumps`` finds ``datanommer/``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from topoff.dataset import layout
from topoff.dataset.index import Index
from topoff.errors import IntegrityError, StoreError
from topoff.stores.base import Store

#: how many directory levels below the root are searched for index.json
DEPTH = 2


@dataclass
class FoundDataset:
    path: str  # the dataset's directory, relative to the root
    index: Index | None
    problem: str | None = None  # why its index.json could not be read


def find_datasets(store: Store) -> list[FoundDataset]:
    """Every ``index.json`` one or two directories below the root, read (untrusted)."""
    if store.read_only:
        raise StoreError(
            f"nothing is published at {store.url} (no index.json), and an HTTP site cannot "
            f"be listed to look for datasets below it",
            hint=f"give the address of a dataset itself, e.g. {store.url.rstrip('/')}/NAME")
    found: list[FoundDataset] = []
    for f in store.list():
        parts = f.name.split("/")
        if parts[-1] != layout.INDEX or not 2 <= len(parts) <= DEPTH + 1:
            continue
        path = "/".join(parts[:-1])
        # a dataset's own publications are never datasets: skip index.json inside them
        if parts[0] in (layout.FULL, layout.INCREMENTAL) or any(
                d.path and path.startswith(d.path + "/") for d in found):
            continue
        try:
            index = Index.from_json(json.loads(store.read_bytes(f.name)))
            found.append(FoundDataset(path, index))
        except (ValueError, KeyError, TypeError, AttributeError, IntegrityError) as exc:
            problem = exc.message if isinstance(exc, IntegrityError) else type(exc).__name__
            found.append(FoundDataset(path, None, f"index.json cannot be read: {problem}"))
    return found
