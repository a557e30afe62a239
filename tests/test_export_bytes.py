"""The bytes an export writes are pinned: reading COPY faster must not change one of them.

A fixed table (quoted newlines, quotes, commas, non-ASCII text, NULLs and empty strings,
rows of very different widths) is exported; its files' paths, rows, uncompressed sizes and
sha256, and the day's ``cs1`` hash, are compared with the values this version of topoff
wrote before the COPY reader was rewritten. Consumers compare these hashes between runs, so
they must not move for the same data.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
import zstandard

from support.dataset import read_table
from support.pg import make_config
from topoff.dataset import layout
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.stores import open_store

DAY = date(2026, 11, 1)
# ~3.5 MB of CSV: several 1 MiB buffers per file and files cut in the middle of one
ROWS = 20000
CHUNK = 1_250_000
TABLE = f"""
CREATE TABLE pinned (id integer PRIMARY KEY, t timestamptz NOT NULL, body text, note text);
INSERT INTO pinned
SELECT g, '{DAY} 00:00:00+00'::timestamptz + g * interval '1 second',
       CASE WHEN g % 7 = 0 THEN NULL
            WHEN g % 11 = 0 THEN ''
            WHEN g % 13 = 0 THEN E'two\\nlines, "quoted" ' || g
            WHEN g % 17 = 0 THEN 'übung ' || repeat('ß€', g % 50)
            ELSE repeat(md5(g::text), 1 + g % 5) END,
       CASE WHEN g % 1000 = 0 THEN repeat(E'x\\r\\n"y",', 3000) ELSE 'n' || g END
FROM generate_series(1, {ROWS}) g;
"""
CONFIG = '[tables.pinned]\ncursor = "t"\n'

# (path, rows, uncompressed bytes, sha256) of each file of a full export
FULL_FILES = [
    ("data/public.pinned.00001.csv.zst", 9412, 1250096,
     "836c22e086594fb317567d3ae3a61e481378bafad36ca57d64751483a829c489"),
    ("data/public.pinned.00002.csv.zst", 9213, 1250024,
     "2be0240daa62b44e6498cb349a8c7095ff9ab6cb3f5be1eea06abc938de442f5"),
    ("data/public.pinned.00003.csv.zst", 1375, 204018,
     "352a89bdd382a4f2045aaed8e0b82dfe31332081da45cc86808f1bed3f0a9c48"),
]
# the files and the cs1 content hash of the day's incremental export
DAY_FILES = [
    ("data/public.pinned.2026-11-01.00001.csv.zst", 9407, 1250067,
     "5e5a4790594bad6d40f2816fb8490a402c406e4054a8dcfc1678983a77cd5a98"),
    ("data/public.pinned.2026-11-01.00002.csv.zst", 9217, 1250176,
     "80b76f651b4edfff2bcbd2142b421f75026878c02460c641d9548ac8b8508d0b"),
    ("data/public.pinned.2026-11-01.00003.csv.zst", 1376, 203895,
     "9be6142635eb420e80ad5bf9a8af9bec84cb1df207ce3e79ea9b6080b86e27e5"),
]
DAY_HASH = "cs1:a482a6a5d810895fba80ed9cd7eb95dc48c5314099ed1fb5e81f5650c94c05dd"


def _files(m, name: str) -> list[tuple[str, int, int, str]]:  # type: ignore[no-untyped-def]
    return [(f.path, f.rows, f.uncompressed_bytes, f.sha256) for f in m.tables[name].files]


@pytest.fixture
def pinned(db):  # type: ignore[no-untyped-def]
    db.execute(TABLE)
    db.sync()
    return db


@pytest.mark.parametrize("jobs", [1, 2])
def test_full_export_bytes_are_pinned(pinned, dest, jobs):
    config = make_config(pinned, CONFIG, chunk_bytes=CHUNK, jobs=jobs)
    store = open_store(str(dest))
    [m] = export_full(config, store).manifests
    files = _files(m, "public.pinned")
    data = read_table(store, m, "public.pinned")  # each file's header and row count
    assert len(data.rows) == ROWS
    dctx = zstandard.ZstdDecompressor()
    for path, _rows, size, sha in files:
        raw = store.read_bytes(layout.in_publication(m.publication, path))
        assert hashlib.sha256(raw).hexdigest() == sha
        assert len(dctx.decompressobj().decompress(raw)) == size
    assert files == FULL_FILES, files


def test_incremental_bytes_and_cs1_are_pinned(pinned, dest):
    config = make_config(pinned, CONFIG, chunk_bytes=CHUNK, lookback_days=0, jobs=1)
    store = open_store(str(dest))
    [m] = export_incremental(config, store, layout.Window.day(DAY)).manifests
    entry = m.tables["public.pinned"]
    assert entry.rows == ROWS
    assert (_files(m, "public.pinned"), entry.content_hash) == (DAY_FILES, DAY_HASH), (
        _files(m, "public.pinned"), entry.content_hash)
