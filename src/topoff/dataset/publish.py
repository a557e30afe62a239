"""Making publications visible: data files, then each manifest, then index.json.

Until index.json lists a publication, readers do not know it exists; the index is written
last and replaced as a whole (atomically on every store), so a reader sees either the old
list or the new one, never a half-written publication.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterable

from topoff.dataset import layout
from topoff.dataset.html import write_html
from topoff.dataset.index import Index, Publication, read_index
from topoff.dataset.manifest import DataFile, Manifest
from topoff.errors import IntegrityError
from topoff.stores.base import Store

log = logging.getLogger("topoff")


def write_file(store: Store, pub_id: str, relative: str, data: bytes) -> DataFile:
    """Write a small file of a publication and describe it for the manifest."""
    store.write_bytes(layout.in_publication(pub_id, relative), data)
    return DataFile(relative, len(data), hashlib.sha256(data).hexdigest())


def publish(store: Store, dataset: str, manifests: Iterable[Manifest]) -> list[Publication]:
    """Write the manifests, then list them all in the index in one replacement of it.

    Data files must already be in the store. Publications are added in the order given.
    """
    manifests = list(manifests)
    # Refuse a name that is taken before writing anything: writing this manifest over the
    # published one would break that publication.
    _check_free(store, read_index(store, dataset), manifests)
    shas: list[str] = []
    mine: list[str] = []  # manifests this call wrote (a name may be another run's)
    try:
        for m in manifests:
            raw = m.dumps()
            store.write_bytes(layout.manifest_name(m.publication), raw)
            mine.append(layout.manifest_name(m.publication))
            shas.append(hashlib.sha256(raw).hexdigest())
        # Read the index as late as possible: another run may have published meanwhile.
        index = read_index(store, dataset) or Index(dataset=dataset)
        _check_free(store, index, manifests)
        added = [index.add(m, sha) for m, sha in zip(manifests, shas, strict=True)]
        _write_index(store, dataset, index, added)
    except BaseException:
        remove_files(store, mine)  # keeps any that an index lists
        raise
    write_html(store, index)
    for p in added:
        log.info("published %s (%d bytes, sequence %d)", p.id, p.bytes, p.sequence)
    return added


def _write_index(store: Store, dataset: str, index: Index, added: list[Publication]) -> None:
    try:
        store.write_bytes(layout.INDEX, index.dumps(), replace=True)
    except Exception:
        # A write can fail after the store took it (a timeout on the reply): if the index
        # lists the new publications, they are published and their files must stay.
        again = read_index(store, dataset)
        if again is None or any(again.get(p.id) is None for p in added):
            raise


def _check_free(store: Store, index: Index | None, manifests: list[Manifest]) -> None:
    for m in manifests:
        if index is not None and index.get(m.publication) is not None:
            raise IntegrityError(
                f"{m.publication} is already published in {store.url}",
                hint="another export ran at the same time; run this one again")


def remove_files(store: Store, names: Iterable[str]) -> None:
    """Best-effort removal of files of a publication that did not complete.

    Files of a publication that index.json lists are kept: the same name published by
    another run (or by this one, just before it failed) must not lose its files.
    """
    names = list(names)
    try:
        index = read_index(store)
    except Exception:
        index = None
    listed = {p.id for p in index.publications} if index else set()
    for name in names:
        if layout.publication_of(name) in listed:
            continue
        with contextlib.suppress(Exception):
            store.delete(name)
