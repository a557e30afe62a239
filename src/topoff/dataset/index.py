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

from topoff.dataset import checks as ck
from topoff.dataset import layout
from topoff.dataset.layout import Window
from topoff.dataset.manifest import FORMAT_VERSION, KINDS, Manifest
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

    @classmethod
    def from_json(cls, d: Any, n: int) -> Publication:
        what = f"publication #{n}"
        d = ck.obj(d, what)
        kind = ck.one_of(d.get("kind"), KINDS, f"{what} kind")
        pub_id = ck.publication_id(d.get("id"), f"{what} id", kind)
        what = f"publication {pub_id}"
        _, window, revision = layout.parse_id(pub_id)
        if d.get("manifest") != layout.manifest_name(pub_id):
            raise ck.Invalid(f"{what} manifest must be {layout.manifest_name(pub_id)}")
        if d.get("revision") != revision:
            raise ck.Invalid(f"{what} revision differs from its id")
        w = d.get("window")
        if window is not None:
            w = ck.obj(w, f"{what} window")
            if w.get("label") != window.label:
                raise ck.Invalid(f"{what} window label differs from its id")
            w = window.to_json()
        elif w is not None:
            raise ck.Invalid(f"{what} is a full export with a window")
        return cls(
            id=pub_id, sequence=ck.count(d.get("sequence"), f"{what} sequence", 1), kind=kind,
            manifest=layout.manifest_name(pub_id),
            manifest_sha256=ck.sha256(d.get("manifest_sha256"), f"{what} manifest_sha256"),
            bytes=ck.count(d.get("bytes"), f"{what} bytes"),
            created_at=ck.text(d.get("created_at"), f"{what} created_at", 100),
            snapshot_time=ck.text(d.get("snapshot_time"), f"{what} snapshot_time", 100),
            window=w, revision=revision)


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
    def from_json(cls, d: Any) -> Index:
        d = ck.obj(d, "index.json")
        if d.get("format_version") != FORMAT_VERSION:
            raise IntegrityError(
                f"index.json has format version {str(d.get('format_version'))[:20]}; this "
                f"topoff reads version {FORMAT_VERSION}", hint="upgrade topoff")
        pubs = [Publication.from_json(p, n) for n, p in
                enumerate(ck.items(d.get("publications"), "publications"), 1)]
        next_sequence = ck.count(d.get("next_sequence"), "next_sequence", 1)
        seqs = [p.sequence for p in pubs]
        if seqs != sorted(set(seqs)) or (seqs and seqs[-1] >= next_sequence) or \
                len({p.id for p in pubs}) != len(pubs):
            raise ck.Invalid("publications are not in growing sequence order below "
                             "next_sequence, or an id is listed twice")
        removed = []
        for r in ck.items(d.get("removed") or [], "removed"):
            r = ck.obj(r, "removed publication")
            kind = ck.one_of(r.get("kind"), KINDS, "removed publication kind")
            label = r.get("label")
            removed.append({
                "id": ck.publication_id(r.get("id"), "removed publication id", kind),
                "sequence": ck.count(r.get("sequence"), "removed publication sequence", 1),
                "kind": kind,
                "label": None if label is None else ck.label(label, "removed label")})
        return cls(
            dataset=ck.dataset_name(d.get("dataset")),
            publications=pubs,
            next_sequence=next_sequence,
            updated_at=ck.optional(d.get("updated_at"), str, "updated_at"),
            removed=removed,
        )


def read_index(store: Store, dataset: str | None = None) -> Index | None:
    """The store's index, or None when nothing has been published there yet."""
    try:
        raw = read_capped(store, layout.INDEX, ck.MAX_INDEX_BYTES)
    except FileMissing:
        return None
    try:
        index = Index.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise IntegrityError(f"{store.url}/{layout.INDEX} cannot be read: {e}",
                             hint="the index is damaged; restore it or publish a new full export"
                             ) from None
    if dataset is not None and index.dataset != dataset:
        raise IntegrityError(
            f"{store.url} holds dataset {index.dataset!r}, not {dataset!r}",
            hint="publish each dataset to its own location, or fix `dataset` in the config")
    return index


def read_capped(store: Store, name: str, cap: int) -> bytes:
    """A small file (the index, a manifest), refused once it passes ``cap`` bytes."""
    blocks, size = [], 0
    with store.open_read(name) as f:
        while size <= cap and (block := f.read(min(1 << 20, cap + 1 - size))):
            blocks.append(block)
            size += len(block)
    raw = b"".join(blocks)
    if size > cap:
        raise IntegrityError(
            f"{store.url}/{name} is larger than {cap >> 20} MiB; topoff reads no larger "
            f"{'index' if name == layout.INDEX else 'manifest'}",
            hint="the dataset is damaged, or not a topoff dataset")
    return raw


def read_manifest(store: Store, pub: Publication, verify: bool = True) -> Manifest:
    raw = read_capped(store, pub.manifest, ck.MAX_MANIFEST_BYTES)
    if verify and hashlib.sha256(raw).hexdigest() != pub.manifest_sha256:
        raise IntegrityError(
            f"{pub.manifest} does not match the sha256 listed in index.json",
            hint="the publication was changed or damaged after it was published",
        )
    manifest = Manifest.loads(raw, pub.manifest)
    if (manifest.publication, manifest.kind) != (pub.id, pub.kind):
        raise IntegrityError(f"{pub.manifest} describes {manifest.publication}, not {pub.id}",
                             hint="the publication is damaged; re-run the export")
    return manifest
