"""Reading a published dataset back through a store, checking every file against its manifest.

Every helper here reads bytes through :class:`topoff.stores.Store` (so the same checks run
on local, HTTP and S3 stores), verifies each file's size and sha256 against the manifest,
decompresses it with zstandard and checks that it starts with the CSV header and holds the
number of rows the manifest says.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from topoff.dataset import layout
from topoff.dataset.index import Index, Publication, read_index, read_manifest
from topoff.dataset.manifest import DataFile, Manifest
from topoff.stores import Store


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decompress(raw: bytes) -> bytes:
    """One zstd frame (the writer streams, so the frame does not state its content size)."""
    return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


def checked_bytes(store: Store, manifest: Manifest, f: DataFile) -> bytes:
    """A file of a publication, after checking its size and sha256 against the manifest."""
    raw = store.read_bytes(layout.in_publication(manifest.publication, f.path))
    assert len(raw) == f.bytes, f"{f.path}: {len(raw)} bytes, manifest says {f.bytes}"
    assert sha256(raw) == f.sha256, f"{f.path}: sha256 differs from the manifest"
    return raw


@dataclass
class TableData:
    header: list[str]
    rows: list[list[str]]
    #: the rows of each data file, in the manifest's order
    files: list[list[list[str]]]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [r[i] for r in self.rows]


def read_table(store: Store, manifest: Manifest, table: str) -> TableData:
    """Every row of one table of a publication, with each file checked.

    A table that is unchanged since an earlier publication has no files here: the result
    is empty then (its ``rows`` count refers to the earlier publication).
    """
    entry = manifest.tables[table]
    header = [c.name for c in entry.columns]
    rows: list[list[str]] = []
    per_file = []
    for f in entry.files:
        text = decompress(checked_bytes(store, manifest, f)).decode()
        records = list(csv.reader(io.StringIO(text, newline="")))
        assert records, f"{f.path} is empty (not even a header)"
        assert records[0] == header, f"{f.path} does not start with the CSV header"
        assert len(records) - 1 == f.rows, f"{f.path}: {len(records) - 1} rows, manifest {f.rows}"
        rows.extend(records[1:])
        per_file.append(records[1:])
    if entry.unchanged_since is None:
        assert len(rows) == entry.rows, f"{table}: {len(rows)} rows in files, manifest {entry.rows}"
    return TableData(header, rows, per_file)


def check_schema_files(store: Store, manifest: Manifest) -> dict[str, str]:
    """The pre/post-data scripts of a full export (checked), by their manifest key."""
    return {k: checked_bytes(store, manifest, f).decode()
            for k, f in manifest.schema_files.items()}


def check_publication(store: Store, manifest: Manifest) -> dict[str, TableData]:
    """Check every file of a publication; the data of each table."""
    check_schema_files(store, manifest)
    return {name: read_table(store, manifest, name) for name in manifest.tables}


@dataclass
class Dataset:
    index: Index
    manifests: dict[str, Manifest]

    def ids(self) -> list[str]:
        return [p.id for p in self.index.publications]

    def pub(self, pub_id: str) -> Publication:
        found = self.index.get(pub_id)
        assert found is not None, f"{pub_id} is not published: {self.ids()}"
        return found


def read_dataset(store: Store, check_files: bool = True) -> Dataset:
    """index.json and every manifest (sha256 checked against the index), files checked too."""
    index = read_index(store)
    assert index is not None, f"nothing published at {store.url}"
    manifests = {}
    for p in index.publications:
        m = read_manifest(store, p)
        assert m.publication == p.id
        assert p.bytes == m.total_bytes
        if check_files:
            check_publication(store, m)
        manifests[p.id] = m
    return Dataset(index, manifests)


def files_under(directory: Path) -> list[str]:
    """Every file below ``directory`` (hidden temp files included), relative and sorted."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def index_ids(directory: Path) -> list[str]:
    return [p["id"] for p in json.loads((directory / layout.INDEX).read_text())["publications"]]


@contextmanager
def topoff_log() -> Iterator[None]:
    """Let topoff's log reach pytest's caplog (the CLI's setup_logging cuts it off) and put
    the logger back as it was afterwards."""
    logger = logging.getLogger("topoff")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    for h in saved[0]:
        logger.removeHandler(h)
    logger.propagate = True
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        for h in saved[0]:
            logger.addHandler(h)
        logger.propagate, logger.level = saved[1], saved[2]


# -- hostile datasets: a real publication, then changed the way an attacker would ----------

def rewrite_manifest(root: Path, pub_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change a publication's manifest.json with ``edit`` and list its new sha256 in the
    index, so that only the checks of the fields themselves can refuse it."""
    path = root / layout.manifest_name(pub_id)
    doc = json.loads(path.read_bytes())
    edit(doc)
    raw = (json.dumps(doc, indent=2) + "\n").encode()
    path.write_bytes(raw)
    rewrite_index(root, lambda ix: next(
        p for p in ix["publications"] if p["id"] == pub_id).update(manifest_sha256=sha256(raw)))


def rewrite_index(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = root / layout.INDEX
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def replace_data_file(root: Path, pub_id: str, table: str, data: bytes, n: int = 0,
                      **fields: Any) -> None:
    """Put ``data`` (already compressed) in place of a table's n-th data file, with its
    size and sha256 listed truly in the manifest, its uncompressed size not declared (and
    ``fields`` changed as given)."""
    def edit(doc: dict[str, Any]) -> None:
        f = doc["tables"][table]["files"][n]
        (root / pub_id / f["path"]).write_bytes(data)
        f.pop("uncompressed_bytes", None)  # a publisher that does not declare it
        f.update(bytes=len(data), sha256=sha256(data), **fields)
    rewrite_manifest(root, pub_id, edit)


def compress(text: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(text)
