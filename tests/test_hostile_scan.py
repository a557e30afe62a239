"""The pass that bounds a data file before a target reads it: its record count agrees
with a CSV parser whatever the quotes, newlines and block boundaries."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest
import zstandard

from topoff.dataset.manifest import DataFile
from topoff.errors import IntegrityError
from topoff.sync import scan


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_records_match_a_csv_parser_across_block_boundaries(tmp_path: Path, monkeypatch,
                                                            block: int):
    monkeypatch.setattr(scan, "BLOCK", block)
    rnd = random.Random(block)
    pieces = ["", "a", '"', '""', "\n", "x\ny", 'say "hi"\n', ",", "\r\n", "{\"k\": 1}"]
    rows = [["id", "v", "w"]] + [[str(i), "".join(rnd.choices(pieces, k=rnd.randint(0, 6))),
                                  rnd.choice(pieces)] for i in range(300)]
    text = _csv(rows)
    assert len(list(csv.reader(io.StringIO(text.decode(), newline="")))) == 301
    path = tmp_path / "f.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(text))
    f = DataFile("data/a.b.00001.csv.zst", path.stat().st_size, "0" * 64, 300, len(text))
    assert scan.scan(path, f, "f") == (len(text), 300)
    with pytest.raises(IntegrityError, match="holds 300 rows, its manifest says 301"):
        scan.scan(path, DataFile(f.path, f.bytes, f.sha256, 301), "f")
    with pytest.raises(IntegrityError, match="more than the 299 rows"):
        scan.scan(path, DataFile(f.path, f.bytes, f.sha256, 299), "f")


def test_a_file_that_is_not_zstd_is_refused(tmp_path: Path):
    path = tmp_path / "f.csv.zst"
    path.write_bytes(b"id\n1\n")
    with pytest.raises(IntegrityError, match="not a valid zstd file"):
        scan.scan(path, DataFile("data/a.b.00001.csv.zst", 5, "0" * 64, 1), "f")


def test_a_last_record_without_its_newline_counts(tmp_path: Path):
    path = tmp_path / "f.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'id,v\n1,"a\nb"'))
    assert scan.scan(path, DataFile("data/a.b.00001.csv.zst", 1, "0" * 64, 1), "f")[1] == 1
