"""Stores: one conformance suite for every kind, then what is specific to each kind."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.http_server import HttpServer
from support.s3_server import CuttingProxy, S3Server
from support.store_fixtures import ALL_KINDS, Published, make_published
from topoff.errors import ConfigError, IntegrityError, StoreError
from topoff.stores import FileInfo, FileMissing, Store, StoreOptions, open_store
from topoff.stores.base import FileExists, ObjectOptions
from topoff.stores.download import fetch_to_file
from topoff.stores.http import HttpStore
from topoff.stores.local import LocalStore
from topoff.stores.s3 import PART_SIZE, S3Store

FAST = StoreOptions(retries=3, backoff=0.01, http_timeout=5)
MiB = 1024 * 1024


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def files_under(directory: Path) -> list[str]:
    """Every file and directory below ``directory`` (temp files included), sorted."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def multipart_uploads(published: Published) -> list[dict]:
    assert published.s3 and published.bucket
    response = published.s3.client().list_multipart_uploads(Bucket=published.bucket)
    return response.get("Uploads", [])


@pytest.fixture(params=[k for k in ALL_KINDS if k != "rclone-crypt"])
def published(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Published]:
    """Every kind of store; rclone's crypt remote for the tests marked ``also_crypt``."""
    yield from make_published(request.param, request, tmp_path)


#: the tests where rclone's crypt remote differs from its local one (names, sizes and
#: offsets it translates); each rclone call through it derives its keys again, so the
#: rest of the suite (the same topoff code) runs on the local remote only
also_crypt = pytest.mark.parametrize("published", ALL_KINDS, indirect=True)
#: the same, the crypt remote's run among the slow scenarios (rclone derives its keys
#: again at every call: 5 to 15 s a test)
also_crypt_slow = pytest.mark.parametrize(
    "published", [pytest.param(k, marks=[pytest.mark.slow] * (k == "rclone-crypt"))
                  for k in ALL_KINDS], indirect=True)


@pytest.fixture
def stores(published: Published) -> Iterator[tuple[Store, Store]]:
    """(writer, reader): where an exporter publishes, and how a consumer reads it back."""
    writer = open_store(published.write_url, FAST)
    reader = open_store(published.read_url, FAST)
    yield writer, reader
    writer.close()
    reader.close()


# -- conformance: every store kind -------------------------------------------------------


@also_crypt
def test_round_trip(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    data = payload(100_000)
    writer.write_bytes("full/2024-01-01/t1.csv.zst", data)
    writer.write_bytes("empty", b"")
    assert reader.read_bytes("full/2024-01-01/t1.csv.zst") == data
    assert reader.read_bytes("empty") == b""
    name = "full/2024-01-01/t1.csv.zst"
    assert reader.stat(name) == FileInfo(name, 100_000)
    assert reader.stat("empty") == FileInfo("empty", 0)
    # writing a name again replaces the whole file only when asked to
    writer.write_bytes("empty", b"now with content", replace=True)
    assert reader.read_bytes("empty") == b"now with content"


def test_large_file_written_in_small_pieces(
    stores: tuple[Store, Store], published: Published
) -> None:
    writer, reader = stores
    data = payload(20 * MiB + 12_345)
    view = memoryview(data)
    with writer.write("big.bin") as f:
        for start in range(0, len(data), 64 * 1024):
            f.write(view[start : start + 64 * 1024])
    digest = hashlib.sha256()
    with reader.open_read("big.bin") as f:
        while block := f.read(MiB):
            digest.update(block)
    assert digest.hexdigest() == sha256(data)
    assert reader.stat("big.bin") == FileInfo("big.bin", len(data))
    if published.kind == "s3":
        # a multipart ETag ends in "-<number of parts>": 20 MiB in 8 MiB parts is 3 parts
        head = published.s3.client().head_object(
            Bucket=published.bucket, Key="datasets/demo/big.bin"
        )
        assert head["ETag"].strip('"').endswith(f"-{-(-len(data) // PART_SIZE)}")
        assert multipart_uploads(published) == []
    if published.directory:
        assert files_under(published.directory) == ["big.bin"]


@also_crypt
def test_open_read_from_offset(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    data = payload(300_000)
    writer.write_bytes("data.bin", data)
    for offset in (0, 1, 123_456, len(data) - 1, len(data)):
        with reader.open_read("data.bin", offset=offset) as f:
            assert f.read() == data[offset:], offset


@also_crypt_slow
def test_list_by_prefix_sorted(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    names = ["b.txt", "a/2.txt", "a/1.txt", "a/sub/x", "ab.txt", "index.json"]
    for i, name in enumerate(names):
        writer.write_bytes(name, b"x" * i)
    everything = writer.list()
    assert [i.name for i in everything] == sorted(names)
    assert FileInfo("a/sub/x", 3) in everything
    assert [i.name for i in writer.list("a/")] == ["a/1.txt", "a/2.txt", "a/sub/x"]
    assert [i.name for i in writer.list("a")] == ["a/1.txt", "a/2.txt", "a/sub/x", "ab.txt"]
    assert [i.name for i in writer.list("a/s")] == ["a/sub/x"]
    assert writer.list("zzz") == []
    if reader.read_only:
        with pytest.raises(StoreError) as err:
            reader.list()
        assert "index.json" in (err.value.hint or "")
    else:
        assert reader.list("a/") == writer.list("a/")


@also_crypt_slow
def test_missing_files(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    writer.write_bytes("present", b"1")
    for store in (writer, reader):
        assert store.stat("absent") is None
        assert store.stat("present/deeper") is None
        with pytest.raises(FileMissing) as err:
            store.open_read("absent")
        assert err.value.hint
        with pytest.raises(FileMissing):
            store.read_bytes("dir/absent")


def test_delete(stores: tuple[Store, Store], published: Published) -> None:
    writer, reader = stores
    writer.write_bytes("inc/2024-01-02/t.csv", b"rows")
    writer.write_bytes("keep", b"k")
    writer.delete("inc/2024-01-02/t.csv")
    assert writer.stat("inc/2024-01-02/t.csv") is None
    assert reader.stat("inc/2024-01-02/t.csv") is None
    with pytest.raises(FileMissing):
        reader.open_read("inc/2024-01-02/t.csv")
    writer.delete("inc/2024-01-02/t.csv")  # deleting a missing file is fine
    writer.delete("never/existed")
    assert [i.name for i in writer.list()] == ["keep"]
    if published.directory:
        assert files_under(published.directory) == ["keep"]  # emptied directories pruned


@pytest.mark.parametrize("size", [1000, 10 * MiB], ids=["small", "multipart"])
def test_failed_write_leaves_nothing(
    stores: tuple[Store, Store], published: Published, size: int
) -> None:
    writer, reader = stores
    with pytest.raises(RuntimeError, match="exporter failed"), writer.write("d/part.bin") as f:
        f.write(payload(size))
        assert writer.stat("d/part.bin") is None  # not visible before the block ends
        raise RuntimeError("exporter failed")
    assert writer.stat("d/part.bin") is None
    assert reader.stat("d/part.bin") is None
    assert writer.list() == []
    if published.directory:
        assert files_under(published.directory) == []
    if published.kind == "s3":
        assert multipart_uploads(published) == []


@also_crypt
def test_written_file_appears_only_at_the_end(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    writer.write_bytes("name", b"old")
    with writer.write("name", replace=True) as f:
        f.write(b"new content")
        assert reader.read_bytes("name") == b"old"
        assert [i.name for i in writer.list()] == ["name"]  # no temp file listed
    assert reader.read_bytes("name") == b"new content"


@pytest.mark.parametrize("size", [1000, 10 * MiB], ids=["small", "multipart"])
def test_a_written_name_is_never_overwritten(
    stores: tuple[Store, Store], published: Published, size: int
) -> None:
    """A published file never changes: writing its name again fails and leaves it whole."""
    writer, reader = stores
    first, second = payload(size, seed=1), payload(size, seed=2)
    writer.write_bytes("full/x/data.bin", first)
    with pytest.raises(FileExists) as err:
        writer.write_bytes("full/x/data.bin", second)
    assert err.value.hint and "already exists" in err.value.message
    assert sha256(reader.read_bytes("full/x/data.bin")) == sha256(first)
    assert [i.name for i in writer.list_all()] == ["full/x/data.bin"]  # no temp file left
    if published.kind == "s3":
        assert multipart_uploads(published) == []
    writer.write_bytes("full/x/data.bin", second, replace=True)
    assert sha256(reader.read_bytes("full/x/data.bin")) == sha256(second)


def test_racing_writers_of_one_name_one_wins(stores: tuple[Store, Store]) -> None:
    """Two writers finish the same new name at the same moment: exactly one succeeds and
    the file is whole, its bytes."""
    import threading

    writer, reader = stores
    # an rclone write claims its name through several rclone processes: fewer rounds
    rounds = 4 if writer.url.startswith("rclone:") else 10
    for round_ in range(rounds):
        name = f"incremental/d/r{round_ + 1}/data.bin"
        barrier = threading.Barrier(2)
        outcome: dict[int, str] = {}

        def write(i: int, name: str = name, barrier: threading.Barrier = barrier,
                  outcome: dict[int, str] = outcome) -> None:
            data = payload(50_000, seed=i)
            try:
                with writer.write(name) as f:
                    f.write(data)
                    barrier.wait()
                outcome[i] = "won"
            except FileExists:
                outcome[i] = "lost"

        threads = [threading.Thread(target=write, args=(i,)) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcome.values()) == ["lost", "won"]
        winner = next(i for i, v in outcome.items() if v == "won")
        assert reader.read_bytes(name) == payload(50_000, seed=winner)


@also_crypt_slow
def test_swap_bytes_compares_then_swaps(stores: tuple[Store, Store]) -> None:
    writer, reader = stores
    assert writer.swap_bytes("lock.json", b"a", b"b") is False  # missing: nothing to swap
    assert writer.stat("lock.json") is None
    writer.write_bytes("lock.json", b"a")
    assert writer.swap_bytes("lock.json", b"other", b"b") is False
    assert reader.read_bytes("lock.json") == b"a"
    assert writer.swap_bytes("lock.json", b"a", b"b") is True
    assert reader.read_bytes("lock.json") == b"b"
    assert writer.swap_bytes("lock.json", b"a", None) is False
    assert writer.swap_bytes("lock.json", b"b", None) is True
    assert writer.stat("lock.json") is None


def test_listings_tell_when_files_changed(stores: tuple[Store, Store]) -> None:
    writer, _ = stores
    before = time.time()
    writer.write_bytes("a/b.bin", b"x")
    [info] = writer.list_all()
    assert info.modified is not None and before - 5 <= info.modified <= time.time() + 5


@pytest.mark.parametrize("name", ["", "/abs", "../up", "a/../b", "a//b", "./a", "a/"])
def test_invalid_names_refused(stores: tuple[Store, Store], name: str) -> None:
    writer, reader = stores
    for store in (writer, reader):
        with pytest.raises(StoreError, match="invalid file name"):
            store.open_read(name)
        with pytest.raises(StoreError, match="invalid file name"):
            store.stat(name)
    with pytest.raises(StoreError, match="invalid file name"), writer.write(name) as f:
        f.write(b"x")
    with pytest.raises(StoreError, match="invalid file name"):
        writer.delete(name)
    assert writer.list() == []


@also_crypt
def test_fetch_to_file_from_every_store(stores: tuple[Store, Store], tmp_path: Path) -> None:
    writer, reader = stores
    data = payload(2 * MiB + 7)
    writer.write_bytes("f/data.bin", data)
    dest = tmp_path / "download" / "data.bin"
    seen: list[int] = []
    result = fetch_to_file(
        reader, "f/data.bin", dest, expected_size=len(data), on_bytes=seen.append
    )
    assert result == (len(data), sha256(data))
    assert dest.read_bytes() == data
    assert sum(seen) == len(data)
    assert not dest.with_name("data.bin.part").exists()
    with pytest.raises(IntegrityError):
        fetch_to_file(reader, "f/data.bin", tmp_path / "again.bin", expected_size=len(data) + 1)
    assert not (tmp_path / "again.bin.part").exists()
    assert not (tmp_path / "again.bin").exists()


# -- HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Iterator[HttpServer]:
    directory = tmp_path / "site"
    directory.mkdir()
    with HttpServer(directory) as server:
        yield server


def test_http_is_read_only(site: HttpServer) -> None:
    store = open_store(site.url + "/", FAST)
    assert isinstance(store, HttpStore) and store.read_only
    for attempt in (lambda: store.write("x"), lambda: store.delete("x")):
        with pytest.raises(StoreError, match="read-only") as err:
            attempt()
        assert "publish to a local directory" in (err.value.hint or "")
    with pytest.raises(StoreError) as err:
        store.list()
    assert "index.json" in (err.value.hint or "")


def test_http_resumes_a_cut_body(site: HttpServer) -> None:
    data = payload(3 * MiB)
    (site.directory / "data.bin").write_bytes(data)
    site.cut_after("/data.bin", 1_000_000)
    with HttpStore(site.url, FAST) as store, store.open_read("data.bin") as f:
        assert f.read() == data
    assert site.ranges("/data.bin") == ["bytes=1000000-"]


def test_http_resume_from_offset_and_twice(site: HttpServer) -> None:
    data = payload(3 * MiB)
    (site.directory / "data.bin").write_bytes(data)
    site.cut_after("/data.bin", 500_000, times=2)
    with HttpStore(site.url, FAST) as store, store.open_read("data.bin", offset=100) as f:
        assert f.read() == data[100:]
    assert site.ranges("/data.bin") == ["bytes=100-", "bytes=500100-", "bytes=1000100-"]


def test_http_resume_when_server_ignores_ranges(site: HttpServer) -> None:
    data = payload(2 * MiB)
    (site.directory / "data.bin").write_bytes(data)
    site.ignore_range = True
    site.cut_after("/data.bin", 700_000)
    with HttpStore(site.url, FAST) as store, store.open_read("data.bin") as f:
        assert f.read() == data  # the repeated first 700,000 bytes were skipped, not kept
    assert site.ranges("/data.bin") == ["bytes=700000-"]


def test_http_file_changed_mid_read(site: HttpServer) -> None:
    path = site.directory / "data.bin"
    path.write_bytes(payload(3 * MiB))
    site.cut_after("/data.bin", MiB)
    with HttpStore(site.url, FAST) as store, store.open_read("data.bin") as f:
        assert len(f.read(100_000)) == 100_000
        # republished under the same name (a new file, so the old one keeps streaming)
        replacement = site.directory / "new.bin"
        replacement.write_bytes(payload(3 * MiB, seed=2))
        os.utime(replacement, (time.time() + 10, time.time() + 10))
        os.replace(replacement, path)
        with pytest.raises(StoreError, match="changed"):
            f.read()
    assert len(site.ranges("/data.bin")) == 1


def test_http_missing_and_stat(site: HttpServer) -> None:
    (site.directory / "sub").mkdir()
    (site.directory / "sub" / "f.txt").write_bytes(b"12345")
    with HttpStore(site.url, FAST) as store:
        assert store.stat("sub/f.txt") == FileInfo("sub/f.txt", 5)
        assert store.stat("sub/nope") is None
        with pytest.raises(FileMissing, match="not found"):
            store.open_read("sub/nope")
    assert ("HEAD", "/sub/f.txt", None) in site.log


def test_http_connection_refused_is_a_store_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/datasets"
    store = HttpStore(url, StoreOptions(retries=1, backoff=0.01, http_timeout=2))
    for attempt in (lambda: store.open_read("index.json"), lambda: store.stat("index.json")):
        with pytest.raises(StoreError, match="cannot connect") as err:
            attempt()
        assert not isinstance(err.value, FileMissing)
        assert "web server" in (err.value.hint or "")


def test_http_url_credentials_are_not_shown(site: HttpServer) -> None:
    (site.directory / "f").write_bytes(b"ok")
    secret_url = site.url.replace("http://", "http://user:s3cret@")
    store = open_store(secret_url, FAST)
    assert store.read_bytes("f") == b"ok"
    assert "s3cret" not in store.url and "s3cret" not in repr(store)
    with pytest.raises(FileMissing) as err:
        store.open_read("missing")
    assert "s3cret" not in str(err.value)


def test_fetch_to_file_resumes_a_part_file(site: HttpServer, tmp_path: Path) -> None:
    data = payload(3 * MiB)
    (site.directory / "data.bin").write_bytes(data)
    dest = tmp_path / "out" / "data.bin"
    dest.parent.mkdir()
    dest.with_name("data.bin.part").write_bytes(data[: 3 * MiB // 2])  # a killed earlier run
    seen: list[int] = []
    with HttpStore(site.url, FAST) as store:
        size = len(data)
        result = fetch_to_file(store, "data.bin", dest, expected_size=size, on_bytes=seen.append)
    assert result == (len(data), sha256(data))
    assert dest.read_bytes() == data
    assert not dest.with_name("data.bin.part").exists()
    assert site.ranges("/data.bin") == [f"bytes={3 * MiB // 2}-"]
    assert seen[0] == 3 * MiB // 2 and sum(seen) == len(data)


def test_fetch_to_file_restarts_an_oversized_part(site: HttpServer, tmp_path: Path) -> None:
    data = payload(100_000)
    (site.directory / "data.bin").write_bytes(data)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(b"\0" * 100_001)
    with HttpStore(site.url, FAST) as store:
        assert fetch_to_file(store, "data.bin", dest, expected_size=len(data)) == (
            len(data),
            sha256(data),
        )
    assert site.ranges("/data.bin") == []


def test_fetch_to_file_with_a_complete_part(site: HttpServer, tmp_path: Path) -> None:
    data = payload(100_000)
    (site.directory / "data.bin").write_bytes(data)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(data)
    with HttpStore(site.url, FAST) as store:
        assert fetch_to_file(store, "data.bin", dest, expected_size=len(data)) == (
            len(data),
            sha256(data),
        )
    assert dest.read_bytes() == data
    assert site.ranges("/data.bin") == ["bytes=100000-"]  # answered 416: nothing left


# -- S3 -------------------------------------------------------------------------------------


def test_s3_keys_under_the_prefix(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    with open_store(f"s3://{bucket}/datasets/demo/", FAST) as store:
        assert isinstance(store, S3Store) and store.url == f"s3://{bucket}/datasets/demo"
        store.write_bytes("full/index.json", b"{}")
    with open_store(f"s3://{bucket}", FAST) as root:
        root.write_bytes("top", b"t")
        assert [i.name for i in root.list()] == ["datasets/demo/full/index.json", "top"]
    keys = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(k["Key"] for k in keys) == ["datasets/demo/full/index.json", "top"]


def test_s3_objects_have_a_content_type(s3_server: S3Server) -> None:
    """A bucket served as a web site shows index.html as a page, not as a download."""
    bucket = s3_server.create_bucket()
    store = S3Store(bucket, "ds", FAST)
    for name, data in (("index.html", b"<p>x</p>"), ("index.json", b"{}"),
                       ("full/x/README.md", b"# x"), ("full/x/data/t.csv.zst", b"z")):
        store.write_bytes(name, data)
    client = s3_server.client()
    types = {n: client.head_object(Bucket=bucket, Key=f"ds/{n}")["ContentType"]
             for n in ("index.html", "index.json", "full/x/README.md", "full/x/data/t.csv.zst")}
    assert types == {"index.html": "text/html; charset=utf-8", "index.json": "application/json",
                     "full/x/README.md": "text/markdown; charset=utf-8",
                     "full/x/data/t.csv.zst": "application/zstd"}


def test_s3_missing_bucket(s3_server: S3Server) -> None:
    with open_store("s3://topoff-no-such-bucket/x", FAST) as store:
        for attempt in (
            store.list,
            lambda: store.write_bytes("f", b"1"),
            lambda: store.open_read("f"),
        ):
            with pytest.raises(StoreError, match="does not exist") as err:
                attempt()
            assert not isinstance(err.value, FileMissing)
            assert "create it" in (err.value.hint or "")


def test_s3_unreachable_endpoint_fails_fast() -> None:
    options = StoreOptions(
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}", retries=0, http_timeout=2
    )
    store = S3Store("bucket", "prefix", options)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach") as err:
        store.list()
    assert time.monotonic() - started < 5
    assert "AWS_ENDPOINT_URL" in (err.value.hint or "")


def test_s3_without_credentials(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    bucket = s3_server.create_bucket()
    with pytest.raises(StoreError, match="no AWS credentials") as err:
        S3Store(bucket, "p", FAST).list()
    assert "AWS_ACCESS_KEY_ID" in (err.value.hint or "")


def test_s3_resumes_a_broken_body(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    proxy = CuttingProxy(s3_server.endpoint_url)
    data = payload(3 * MiB)
    try:
        options = StoreOptions(s3_endpoint_url=proxy.url, retries=3, backoff=0.01, http_timeout=5)
        with S3Store(bucket, "p", options) as store:
            store.write_bytes("data.bin", data)
            proxy.cut_after(MiB)
            with store.open_read("data.bin") as f:
                assert f.read() == data
    finally:
        proxy.stop()
    resumed = [r for r in proxy.ranges if r.startswith("bytes=") and r != "bytes=0-"]
    assert len(resumed) == 1 and 0 < int(resumed[0][6:-1]) < MiB


def test_s3_bucket_with_object_lock(s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket(object_lock=True)
    with S3Store(bucket, "locked", FAST) as store:
        store.write_bytes("index.json", b'{"datasets": []}')
        with store.write("big.bin") as f:
            f.write(payload(PART_SIZE + 10))
        assert store.read_bytes("index.json") == b'{"datasets": []}'
        assert store.stat("big.bin") == FileInfo("big.bin", PART_SIZE + 10)


# -- local ------------------------------------------------------------------------------------


def test_local_list_all_shows_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("full/x/a.bin", b"a")
    (tmp_path / "full" / "x" / ".b.bin.tmp-0123abcd").write_bytes(b"left by a killed run")
    assert [i.name for i in store.list()] == ["full/x/a.bin"]
    assert [i.name for i in store.list_all()] == ["full/x/.b.bin.tmp-0123abcd", "full/x/a.bin"]


def test_local_refuses_a_lock(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(StoreError) as err, store.write(
            "a/b.bin", options=ObjectOptions(lock_days=30)) as f:
        f.write(b"never stored")
    assert "a local directory cannot lock objects" in err.value.message
    assert "Object Lock" in (err.value.hint or "")
    assert files_under(tmp_path) == []
    # a content type is simply not recorded on disk
    with store.write("c.html", options=ObjectOptions(content_type="text/html")) as f:
        f.write(b"<p>")
    assert (tmp_path / "root" / "c.html").read_bytes() == b"<p>"


def test_local_missing_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "not" / "yet")
    assert store.list() == []
    assert store.stat("x") is None
    with pytest.raises(FileMissing):
        store.open_read("x")
    store.write_bytes("a/b", b"1")
    assert files_under(tmp_path / "not") == ["yet", "yet/a", "yet/a/b"]


def test_local_failed_write_removes_directories_it_created(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    (tmp_path / "existing").mkdir()
    with pytest.raises(ValueError, match="boom"), store.write("existing/new/deeper/f") as f:
        f.write(b"x")
        raise ValueError("boom")
    assert files_under(tmp_path) == ["existing"]


def test_local_callers_own_os_errors_pass_through(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(FileNotFoundError), store.write("f") as f:
        f.write(b"x")
        open(tmp_path / "no" / "such" / "input")  # noqa: SIM115 - fails before any handle
    assert files_under(tmp_path) == []


def test_local_write_over_a_file_path(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("a", b"file")
    with pytest.raises(StoreError, match="cannot write") as err:
        store.write_bytes("a/b", b"1")
    assert err.value.hint
    assert files_under(tmp_path) == ["a"]


def test_local_file_url_and_plain_path(tmp_path: Path) -> None:
    for location in (f"file://{tmp_path}", str(tmp_path)):
        store = open_store(location)
        assert isinstance(store, LocalStore) and store.root == tmp_path


def test_open_store_refuses_unknown_locations() -> None:
    """A location no store takes is a usage error, exit 2, the hint naming the kinds."""
    for location in ("ftp://host/x", "foo:bar", "s3://", "file://otherhost/x", "http:///nohost",
                     ""):
        with pytest.raises(ConfigError) as err:
            open_store(location)
        assert err.value.exit_code == 2
        assert "s3://" in (err.value.hint or "") or "file:///" in (err.value.hint or "")
    with pytest.raises(ConfigError) as err:
        open_store("ftp://host/x")
    assert err.value.message == "unsupported store location 'ftp://host/x'"
    assert err.value.hint == ("use s3://bucket/prefix, http(s)://host/path, rclone:remote:path, "
                              "file:///path or a plain path")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_local_disk_full(tiny_disk: Path) -> None:
    store = LocalStore(tiny_disk / "store")
    with pytest.raises(StoreError, match="disk full") as err, store.write("dataset/big.bin") as f:
        for _ in range(16):
            f.write(payload(64 * 1024))
    assert "free space" in (err.value.hint or "")
    assert files_under(tiny_disk / "store") == []
    store.write_bytes("small", b"still works")  # the space was given back
    assert store.read_bytes("small") == b"still works"
