"""The first build of an Iceberg replica: a full export's files are read, checked, converted
and written by two threads, several files of a table in one commit; each file is checked
(size, sha256, rows, decompressed bytes) in the same pass that reads it. A damaged file among
several in flight commits nothing of its table; a failure or kill in the middle of a commit
resumes with nothing twice and nothing missing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import zstandard

from support.replica import fill, nommer_config, publish_standard
from test_iceberg_sync import CHUNK, Crash, assert_same, catalog_file, iceberg_table
from topoff.dataset.logical import from_pg_type
from topoff.dataset.manifest import Column, DataFile
from topoff.errors import IntegrityError, TargetError
from topoff.readahead import ahead, ahead_each
from topoff.sync import SyncOptions, iceberg_apply, sync
from topoff.sync.iceberg_apply import checked
from topoff.targets.iceberg.rows import batches
from topoff.targets.iceberg.table import schema_of


@pytest.fixture
def standard(db, tmp_path):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    return db, url


def message_files(url: str) -> list[Path]:
    full = next(Path(url, "full").iterdir())
    return sorted((full / "data").glob("public.messages.*.csv.zst"))


def test_a_table_s_files_are_one_commit(standard, tmp_path):
    db, url = standard
    assert len(message_files(url)) >= 4
    target = catalog_file(tmp_path)
    result = sync(url, target)
    assert result.base_loaded
    msgs = iceberg_table(target, "public.messages")
    props = [s.summary.additional_properties for s in msgs.metadata.snapshots]
    # the whole full export in one commit (one snapshot), then the partitions
    assert props[0]["topoff.step"] == "ready"
    assert props[0]["topoff.publication"] == result.base_loaded
    assert [p["topoff.publication"] for p in props].count(result.base_loaded) == 1
    # ... and its partitions in the same commit (one metadata file after the table's
    # creation), each snapshot naming its publication; the rows of the windows they
    # replace were not written by the full export's snapshot
    assert len(msgs.metadata.metadata_log) == 1
    assert [p["topoff.publication"] for p in props if p.get("added-records")][1:] == \
        result.applied
    windows = sum(int(p.get("added-records", 0)) for p in props[1:])
    assert int(props[0]["added-records"]) + windows == int(props[-1]["total-records"])
    assert not any(p.get("deleted-records") for p in props)
    assert_same(target, db)


def test_a_failure_between_commit_groups_resumes_exactly(standard, tmp_path, monkeypatch):
    db, url = standard
    files = message_files(url)
    # two files a commit
    monkeypatch.setattr(iceberg_apply, "COMMIT_BYTES", files[0].stat().st_size * 2 + 1)
    target = catalog_file(tmp_path)
    seen: list[str] = []

    def hook(name: str, **info: object) -> None:
        if name == "file_loaded" and info["table"] == "public.messages":
            seen.append(str(info["file"]))
            if len(seen) == 3:  # in the second commit: it is not made
                raise Crash()

    with pytest.raises(Crash):
        sync(url, target, SyncOptions(hook=hook))
    msgs = iceberg_table(target, "public.messages")
    assert msgs.properties["topoff.step"] == "file:2"
    assert len(msgs.metadata.snapshots) == 1
    assert sum(1 for _ in msgs.scan().to_arrow().to_pylist()) > 0
    result = sync(url, target)
    assert result.base_loaded and len(result.applied) == 2
    assert_same(target, db)  # nothing twice, nothing missing


def test_small_write_batches_keep_every_row(standard, tmp_path, monkeypatch):
    """Each batch written on its own (many data files of one day partition in one
    snapshot): their names must not clash, or a file would overwrite another."""
    db, url = standard
    monkeypatch.setattr(iceberg_apply, "WRITE_BYTES", 1)
    target = catalog_file(tmp_path)
    sync(url, target)
    msgs = iceberg_table(target, "public.messages")
    paths = [t.file.file_path for t in msgs.scan().plan_files()]
    assert len(paths) == len(set(paths)) and len(paths) > 4
    assert_same(target, db)


def test_a_damaged_file_among_several_commits_nothing_of_its_table(standard, tmp_path):
    db, url = standard
    files = message_files(url)
    victim = files[len(files) // 2 + 1]
    original = victim.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x55
    victim.write_bytes(bytes(data))
    target = catalog_file(tmp_path)
    with pytest.raises(IntegrityError, match="does not match the size and sha256"):
        sync(url, target)
    msgs = iceberg_table(target, "public.messages")
    assert msgs.current_snapshot() is None and msgs.properties["topoff.step"] == "schema"
    victim.write_bytes(original)
    result = sync(url, target)
    assert result.base_loaded and len(result.applied) == 2
    assert_same(target, db)



def test_a_damaged_file_of_a_merged_partition_commits_nothing_of_its_table(standard, tmp_path):
    """The partitions merged into a first build's commit are read by the thread that read
    the full export: a damaged file of the last one is refused in the publication's order
    (after the rows before it were written) and nothing of the table is committed."""
    db, url = standard
    result = sync(url, str(tmp_path / "probe.duckdb"))
    last = result.applied[-1]
    victim = next(Path(url, last, "data").glob("public.messages.*.csv.zst"))
    original = victim.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x55
    victim.write_bytes(bytes(data))
    target = catalog_file(tmp_path)
    with pytest.raises(IntegrityError, match=last):
        sync(url, target)
    msgs = iceberg_table(target, "public.messages")
    assert msgs.current_snapshot() is None and msgs.properties["topoff.step"] == "schema"
    victim.write_bytes(original)
    assert sync(url, target).applied == result.applied
    assert_same(target, db)

# -- one file, checked while it is read --------------------------------------------------

COLUMNS = [Column("id", "bigint", logical=from_pg_type("bigint")),
           Column("d", "date", logical=from_pg_type("date"))]


def _file(tmp_path: Path, body: bytes) -> tuple[Path, DataFile]:
    data = zstandard.ZstdCompressor().compress(body)
    path = tmp_path / "f.csv.zst"
    path.write_bytes(data)
    rows = body.count(b"\n") - 1
    return path, DataFile("f.csv.zst", len(data), hashlib.sha256(data).hexdigest(), rows,
                          len(body))


def _read(path: Path, f: DataFile) -> int:
    return sum(b.num_rows for b in batches(path, "f", COLUMNS, schema_of(COLUMNS),
                                           checked("f", f)))


BODY = b"id,d\n" + b"".join(b"%d,2026-01-%02d\n" % (i, i % 28 + 1) for i in range(50_000))


def test_a_file_that_matches_its_manifest_is_read(tmp_path):
    path, f = _file(tmp_path, BODY)
    assert _read(path, f) == 50_000


@pytest.mark.parametrize("change", ["sha256", "bytes", "fewer rows", "more rows",
                                    "uncompressed", "cap"])
def test_a_file_unlike_its_manifest_is_refused(tmp_path, change):
    path, f = _file(tmp_path, BODY)
    bad = {"sha256": DataFile(f.path, f.bytes, "0" * 64, f.rows, f.uncompressed_bytes),
           "bytes": DataFile(f.path, f.bytes + 1, f.sha256, f.rows, f.uncompressed_bytes),
           "fewer rows": DataFile(f.path, f.bytes, f.sha256, 49_999, f.uncompressed_bytes),
           "more rows": DataFile(f.path, f.bytes, f.sha256, 50_001, f.uncompressed_bytes),
           "uncompressed": DataFile(f.path, f.bytes, f.sha256, f.rows, len(BODY) + 1),
           "cap": DataFile(f.path, f.bytes, f.sha256, None, 4096)}[change]
    with pytest.raises(IntegrityError):
        _read(path, bad)


def test_a_zstd_bomb_stops_at_the_manifest_s_bound(tmp_path):
    body = b"id,d\n" + b"1,2026-01-01\n" * 5_000_000  # 65 MB of text in a few KB
    path, f = _file(tmp_path, body)
    small = DataFile(f.path, f.bytes, f.sha256, None, 1 << 20)
    with pytest.raises(IntegrityError, match="decompresses to more than 1,048,576 bytes"):
        _read(path, small)


def test_damage_is_reported_as_damage_not_as_a_value(tmp_path):
    """A damaged file whose damage reads as a bad value (or bad CSV) is refused for its
    sha256 (exit 6), not as a value the column cannot hold (exit 7)."""
    path, f = _file(tmp_path, BODY)
    forged = b"id,d\n1,0044-03-15 BC\n" + BODY[5:]
    path.write_bytes(zstandard.ZstdCompressor().compress(forged))
    with pytest.raises(IntegrityError, match="sha256"):
        _read(path, f)
    # the same value in a file that is what its manifest says: refused as a value
    path, f = _file(tmp_path, forged)
    with pytest.raises(TargetError, match="0044-03-15 BC"):
        _read(path, f)


@pytest.mark.parametrize("column", ["text", "bigint"])
@pytest.mark.parametrize("where", ["first block", "later block"])
def test_a_text_that_is_not_utf8_is_refused_as_damage(tmp_path, column, where):
    """A byte sequence no UTF-8 text has (COPY writes UTF-8) is refused as a malformed
    file, exit 6, in a text column as in any other, in the first block read or later."""
    columns = [Column("id", "bigint", logical=from_pg_type("bigint")),
               Column("t", column, logical=from_pg_type(column))]
    bad = b"1,x\xff\xfey\n" if column == "text" else b"1\xff,7\n"
    good = b"".join(b"%d,%d\n" % (i, i) for i in range(2, 2_000_000 if where == "later block"
                                                         else 3))
    body = b"id,t\n" + (bad + good if where == "first block" else good + bad)
    path, f = _file(tmp_path, body)
    with pytest.raises(IntegrityError, match=r"(?i)utf-?8"):
        sum(b.num_rows for b in batches(path, "f", columns, schema_of(columns),
                                        checked("f", f)))


def test_read_ahead_keeps_the_order_and_raises_the_producer_s_error():
    assert list(ahead(iter(range(1000)), 2)) == list(range(1000))

    def failing():
        yield 1
        raise IntegrityError("broken", hint="h")

    got = []
    with pytest.raises(IntegrityError, match="broken"):
        for x in ahead(failing()):
            got.append(x)
    assert got == [1]


def test_read_ahead_stops_its_producer_when_the_caller_stops():
    produced = []

    def many():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = ahead(many(), 1)
    assert next(it) == 0
    it.close()  # the producer is stopped and joined
    assert len(produced) < 10



def test_read_ahead_of_several_streams_keeps_each_and_stops_when_closed():
    """ahead_each: one thread for streams consumed in order, each to its end; a stream's
    error is raised in its turn; closing the result stops the thread and every stream
    not yet made is never made."""
    made: list[int] = []

    def stream(n: int):
        made.append(n)
        yield from range(n * 10, n * 10 + 3)
        if n == 2:
            raise IntegrityError("broken", hint="h")

    def streams():
        for n in range(5):
            yield stream(n)

    each = ahead_each(streams())
    assert list(next(each)) == [0, 1, 2]
    assert list(next(each)) == [10, 11, 12]
    got = []
    with pytest.raises(IntegrityError, match="broken"):
        for x in next(each):
            got.append(x)
    assert got == [20, 21, 22]
    each.close()  # the thread is stopped and joined
    assert made == [0, 1, 2]

def test_a_partition_is_read_while_the_rows_before_it_are_written(standard, tmp_path,
                                                                    monkeypatch):
    """In a first build's commit, the reading thread goes on to the first partition's
    files as soon as it has handed over the full export's last rows, while those are
    written (each partition's read began only once the rows before it were written: a
    publication of one batch was read, then written, never both at once)."""
    import threading

    db, url = standard
    started = threading.Event()
    waited: list[bool] = []
    read, write = iceberg_apply.batches, iceberg_apply.append

    def reading(path, name, *args, **kwargs):
        if name.startswith("incremental/") and "/public.messages." in name:
            started.set()
        return read(path, name, *args, **kwargs)

    def writing(txn, table, tables, props):
        rows = write(txn, table, tables, props)
        if table.name()[-1] == "messages" and props["topoff.publication"].startswith(
                "full/"):
            waited.append(started.wait(timeout=60))  # its rows all taken
        return rows

    monkeypatch.setattr(iceberg_apply, "batches", reading)
    monkeypatch.setattr(iceberg_apply, "append", writing)
    target = catalog_file(tmp_path)
    result = sync(url, target)
    assert result.applied and waited == [True]
    assert_same(target, db)
