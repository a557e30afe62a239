"""What an incremental export builds on: the publications of the dataset it follows."""

from __future__ import annotations

from topoff.dataset import layout
from topoff.dataset.index import Index, read_manifest
from topoff.dataset.layout import Window
from topoff.dataset.manifest import Manifest, TableEntry
from topoff.stores.base import Store


def previous_entry(index: Index | None, store: Store, window: Window,
                   cache: dict[str, Manifest]) -> tuple[str | None, int, Manifest | None]:
    """The newest revision of a window: (publication id, revision number, manifest)."""
    pub = index.latest_revision(window) if index else None
    # Numbers go on past revisions that retention removed: a name is never published twice.
    pruned = max((_revision_of(r["id"]) for r in (index.removed if index else [])
                  if r.get("label") == window.label), default=0)
    if pub is None:
        return None, pruned, None
    if pub.id not in cache:
        cache[pub.id] = read_manifest(store, pub)
    return pub.id, max(pub.revision or 0, pruned), cache[pub.id]


def _revision_of(pub_id: str) -> int:
    try:
        return layout.parse_id(pub_id)[2] or 0
    except ValueError:
        return 0


def latest_table_entry(index: Index | None, store: Store, qualified: str,
                       cache: dict[str, Manifest]) -> tuple[str | None, TableEntry | None]:
    """The newest publication holding a table (for snapshot tables), and its entry."""
    if index is None:
        return None, None
    for pub in reversed(index.publications):
        if pub.id not in cache:
            cache[pub.id] = read_manifest(store, pub)
        entry = cache[pub.id].tables.get(qualified)
        if entry is not None:
            return pub.id, entry
    return None, None
