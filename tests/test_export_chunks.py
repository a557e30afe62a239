"""ChunkedWriter on its own: files end at row ends, and the rows' hash only when asked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import zstandard

from topoff.export.chunks import ChunkedWriter
from topoff.stores.local import LocalStore

HEADER = b"id,body\n"
# A quoted field holding newlines: a row end is known only from COPY, not from b"\n".
ROWS = [b'%d,"line one\nline two %d"\n' % (i, i) for i in range(5000)]


def _write(tmp_path: Path, hash_content: bool, chunk_bytes: int = 1 << 16) -> ChunkedWriter:
    store = LocalStore(tmp_path)
    writer = ChunkedWriter(store, lambda n: (f"t.{n}.csv.zst", f"t.{n}.csv.zst"), chunk_bytes,
                           hash_content=hash_content)
    writer.write_rows([HEADER, *ROWS])
    writer.close()
    return writer


def _text(tmp_path: Path, writer: ChunkedWriter) -> list[bytes]:
    dctx = zstandard.ZstdDecompressor()
    return [dctx.decompressobj().decompress((tmp_path / f.path).read_bytes())
            for f in writer.files]


def test_rows_hash_only_when_asked(tmp_path: Path) -> None:
    hashed = _write(tmp_path / "a", hash_content=True)
    plain = _write(tmp_path / "b", hash_content=False)
    assert hashed.content_sha256 == hashlib.sha256(b"".join(ROWS)).hexdigest()
    assert plain.content_sha256 == ""  # a full export does not pay for a hash nobody reads
    # The files themselves are the same, byte for byte, with or without the rows' hash.
    assert [(f.path, f.sha256, f.rows, f.uncompressed_bytes) for f in hashed.files] == [
        (f.path, f.sha256, f.rows, f.uncompressed_bytes) for f in plain.files]


def test_files_end_at_row_ends(tmp_path: Path) -> None:
    writer = _write(tmp_path, hash_content=False, chunk_bytes=10_000)
    texts = _text(tmp_path, writer)
    assert len(texts) > 10
    assert sum(f.rows for f in writer.files) == writer.rows == len(ROWS)
    rows = iter(ROWS)
    for i, (f, text) in enumerate(zip(writer.files, texts, strict=True)):
        mine = [next(rows) for _ in range(f.rows)]
        assert text == HEADER + b"".join(mine)
        assert len(text) == f.uncompressed_bytes
        csv = f.uncompressed_bytes - len(HEADER)
        if i + 1 < len(texts):  # a file ends with the first row that takes it to the limit
            assert csv >= 10_000 > csv - len(mine[-1])
        assert hashlib.sha256((tmp_path / f.path).read_bytes()).hexdigest() == f.sha256
