"""ChunkedWriter on its own: files end at row ends, and the rows' hash only when asked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import zstandard

from topoff.export.chunks import ChunkedWriter, compressor
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


def test_a_shared_compressor_writes_the_same_bytes(tmp_path: Path) -> None:
    """One compressor serves a worker's units one after another, even after one of them
    was dropped in the middle of a frame: every file is as from a compressor of its own."""
    alone = _write(tmp_path / "alone", hash_content=False)
    cctx = compressor(3)
    dropped = ChunkedWriter(LocalStore(tmp_path / "dropped"), lambda n: (f"d.{n}", f"d.{n}"),
                            1 << 30, hash_content=False, cctx=cctx)
    dropped.write_rows([HEADER, *ROWS * 100])  # ~2.5 MB: part of it went to the compressor
    dropped.abort(RuntimeError("the server went away"))
    assert dropped.files == [] and not list((tmp_path / "dropped").rglob("d.*"))
    store = LocalStore(tmp_path / "shared")
    shared = ChunkedWriter(store, lambda n: (f"t.{n}.csv.zst", f"t.{n}.csv.zst"), 1 << 16,
                           hash_content=False, cctx=cctx)
    shared.write_rows([HEADER, *ROWS])
    shared.close()
    assert [(f.path, f.sha256, f.rows) for f in shared.files] == [
        (f.path, f.sha256, f.rows) for f in alone.files]


def test_a_table_with_no_rows_gets_one_file_and_a_full_file_no_empty_one(tmp_path: Path) -> None:
    empty = ChunkedWriter(LocalStore(tmp_path / "e"), lambda n: (f"e.{n}", f"e.{n}"), 100)
    empty.write_rows([HEADER])
    [f] = empty.close()
    assert (f.rows, f.uncompressed_bytes) == (0, len(HEADER))
    # rows that fill the last file exactly: no header-only file after it
    rows = [b"%04d\n" % i for i in range(40)]
    exact = ChunkedWriter(LocalStore(tmp_path / "x"), lambda n: (f"x.{n}", f"x.{n}"), 100)
    exact.write_rows([HEADER, *rows])
    files = exact.close()
    assert [f.rows for f in files] == [20, 20]
    assert _text(tmp_path / "x", exact) == [HEADER + b"".join(rows[:20]),
                                            HEADER + b"".join(rows[20:])]
