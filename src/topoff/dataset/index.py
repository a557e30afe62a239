"""index.json: the list of every publication in a dataset, in the order they were published.

The index is the only file that is ever replaced; everything else is written once. A
publication exists for readers once it is listed here, so the index is written last.
Sequence numbers only grow (``next_sequence`` survives pruning), so a consumer that has
applied up to sequence N and finds N+1 missing knows retention removed something it needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from topoff.dataset import layout
from topoff.dataset.layout import Window
from topoff.dataset.manifest import FORMAT_VERSION, Manifest
from topoff.errors import IntegrityError
from topoff.stores.base import FileMissing, Store


@dataclass
class Publication:
    id: str
    sequence: int
    kind: str
    manifest: str
    manifest_sha256: str
    bytes: int
    created_at: str
    snapshot_time: str
    window: dict[str, str] | None = None
    revision: int | None = None

    @property
    def window_obj(self) -> Window | None:
        return Window.from_json(self.window) if self.window else None

    @property
    def label(self) -> str | None:
        return self.window["label"] if self.window else None


@dataclass
class Index:
    dataset: str
    publications: list[Publication] = field(default_factory=list)
    next_sequence: int = 1
    updated_at: str | None = None
    #: publications removed by retention, newest last: {id, sequence, kind, label}
    removed: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    #: how many removed publications the index remembers
    REMEMBER_REMOVED = 5000

    # -- queries ---------------------------------------------------------------------------
    def fulls(self) -> list[Publication]:
        return [p for p in self.publications if p.kind == layout.FULL]

    def newest_full(self) -> Publication | None:
        fulls = self.fulls()
        return fulls[-1] if fulls else None

    def revisions(self, window: Window) -> list[Publication]:
        return [p for p in self.publications if p.window and p.window["label"] == window.label]

    def latest_revision(self, window: Window) -> Publication | None:
        revs = self.revisions(window)
        return max(revs, key=lambda p: p.revision or 0) if revs else None

    def get(self, pub_id: str) -> Publication | None:
        return next((p for p in self.publications if p.id == pub_id), None)

    # -- changes ---------------------------------------------------------------------------
    def add(self, manifest: Manifest, manifest_sha256: str) -> Publication:
        pub = Publication(
            id=manifest.publication,
            sequence=self.next_sequence,
            kind=manifest.kind,
            manifest=layout.manifest_name(manifest.publication),
            manifest_sha256=manifest_sha256,
            bytes=manifest.total_bytes,
            created_at=manifest.created_at,
            snapshot_time=manifest.snapshot.time,
            window=manifest.window.to_json() if manifest.window else None,
            revision=manifest.revision,
        )
        self.publications.append(pub)
        self.next_sequence += 1
        return pub

    def remove(self, pub_ids: set[str]) -> None:
        for p in self.publications:
            if p.id in pub_ids:
                self.removed.append({"id": p.id, "sequence": p.sequence, "kind": p.kind,
                                     "label": p.label})
        self.removed = self.removed[-self.REMEMBER_REMOVED:]
        self.publications = [p for p in self.publications if p.id not in pub_ids]

    def removed_entry(self, sequence: int) -> dict[str, Any] | None:
        return next((r for r in self.removed if r["sequence"] == sequence), None)

    def dumps(self) -> bytes:
        self.updated_at = datetime.now(UTC).isoformat()
        d = {
            "format_version": self.format_version,
            "dataset": self.dataset,
            "updated_at": self.updated_at,
            "next_sequence": self.next_sequence,
            "publications": [asdict(p) for p in self.publications],
            "removed": self.removed,
        }
        return (json.dumps(d, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Index:
        if d.get("format_version") != FORMAT_VERSION:
            raise IntegrityError(
                f"index.json has format version {d.get('format_version')}; this topoff reads "
                f"version {FORMAT_VERSION}", hint="upgrade topoff")
        return cls(
            dataset=d["dataset"],
            publications=[Publication(**p) for p in d["publications"]],
            next_sequence=d["next_sequence"],
            updated_at=d.get("updated_at"),
            removed=list(d.get("removed") or []),
        )


def read_index(store: Store, dataset: str | None = None) -> Index | None:
    """The store's index, or None when nothing has been published there yet."""
    try:
        raw = store.read_bytes(layout.INDEX)
    except FileMissing:
        return None
    try:
        index = Index.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{store.url}/{layout.INDEX} cannot be read: {e}",
                             hint="the index is damaged; restore it or publish a new full export"
                             ) from None
    if dataset is not None and index.dataset != dataset:
        raise IntegrityError(
            f"{store.url} holds dataset {index.dataset!r}, not {dataset!r}",
            hint="publish each dataset to its own location, or fix `dataset` in the config")
    return index


def read_manifest(store: Store, pub: Publication, verify: bool = True) -> Manifest:
    raw = store.read_bytes(pub.manifest)
    if verify and hashlib.sha256(raw).hexdigest() != pub.manifest_sha256:
        raise IntegrityError(
            f"{pub.manifest} does not match the sha256 listed in index.json",
            hint="the publication was changed or damaged after it was published",
        )
    return Manifest.loads(raw, pub.manifest)
