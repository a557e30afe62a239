"""Syncing over HTTP: downloads that break midway resume with a Range request, a ``.part``
left in the cache by a killed run is continued, and a damaged file is refused."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from support.pg import Database
from support.replica import (
    add_messages,
    assert_no_duplicates,
    cli,
    day,
    end_state,
    fill,
    nommer_config,
    publish_day,
    publish_standard,
)
from support.store_fixtures import Published
from topoff.dataset.index import read_index, read_manifest
from topoff.dataset.manifest import DataFile, Manifest
from topoff.errors import IntegrityError
from topoff.stores import StoreOptions, open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]
http_only = pytest.mark.parametrize("published", ["http"], indirect=True)
FAST = StoreOptions(retries=3, backoff=0.01, http_timeout=10)


def manifests(published: Published) -> dict[str, Manifest]:
    with open_store(published.write_url) as store:
        index = read_index(store)
        assert index is not None
        return {p.id: read_manifest(store, p) for p in index.publications}


def data_files(m: Manifest) -> list[DataFile]:
    return [f for e in m.tables.values() for f in e.files]


def url_path(pub_id: str, f: DataFile) -> str:
    return f"/{pub_id}/{f.path}"


def gets(published: Published) -> Counter[str]:
    assert published.http is not None
    return Counter(p for m, p, _ in published.http.log if m == "GET" and ".csv.zst" in p)


def assert_equal(replica: str, db: Database) -> None:
    report = verify(replica, db.standby_url)
    assert report.equal, json.dumps(report.to_json(), default=str)


@pytest.fixture
def setup(db, published: Published) -> dict[str, Manifest]:
    fill(db)
    publish_standard(nommer_config(db, chunk_bytes=16 * 1024), published.write_url)
    return manifests(published)


@http_only
def test_a_broken_download_resumes_with_a_range(db, published, setup, replica, tmp_path):
    http = published.http
    assert http is not None
    full, first, _ = setup
    cuts = [(full, setup[full].tables["public.messages"].files[1]),
            (first, setup[first].tables["public.messages"].files[0])]
    for pub_id, f in cuts:
        assert f.bytes > 1000
        http.cut_after(url_path(pub_id, f), f.bytes // 2)
    cache = tmp_path / "cache"
    downloads: dict[str, list[int]] = {}  # name -> [announced total, bytes counted]
    steps: dict[str, list[int]] = {}

    def on_download(name: str, total: int):
        downloads[name] = [total, 0]
        return lambda n: downloads[name].__setitem__(1, downloads[name][1] + n)

    def on_step(what: str, total: int):
        steps[what] = [total, 0]
        return lambda n: steps[what].__setitem__(1, steps[what][1] + n)

    result = sync(published.read_url, replica, SyncOptions(
        cache_dir=cache, store_options=FAST, download_progress=on_download,
        step_progress=on_step))
    assert result.base_loaded == full and len(result.applied) == 2
    # progress: every file announced with its size and counted to the end, resumed or not
    assert len(downloads) == sum(len(data_files(m)) for m in setup.values())
    assert all(total == counted > 0 for total, counted in downloads.values())
    assert steps == {"loading the full export": [len(data_files(setup[full]))] * 2,
                     "applying partitions": [2, 2]}
    for pub_id, f in cuts:
        assert http.ranges(url_path(pub_id, f)) == [f"bytes={f.bytes // 2}-"]
    # every file was fetched once (the cut ones twice: a start and a resume), no more
    every = [(p, f) for p, m in setup.items() for f in data_files(m)]
    cut_paths = {url_path(p, f) for p, f in cuts}
    assert gets(published) == Counter(
        {url_path(p, f): 2 if url_path(p, f) in cut_paths else 1 for p, f in every})
    assert result.downloaded_bytes == sum(f.bytes for _, f in every)
    assert list(cache.iterdir()) == []
    assert_no_duplicates(replica)
    assert_equal(replica, db)


def _part(cache: Path, f: DataFile) -> Path:
    return cache / f"{f.sha256}.csv.zst.part"


@http_only
def test_a_part_file_left_in_the_cache_is_continued(db, published, setup, replica,
                                                     tmp_path):
    http = published.http
    assert http is not None and published.directory is not None
    full = next(iter(setup))
    f = setup[full].tables["public.messages"].files[2]
    cache = tmp_path / "cache"
    cache.mkdir()
    half = f.bytes // 3
    _part(cache, f).write_bytes((published.directory / full / f.path).read_bytes()[:half])

    sync(published.read_url, replica, SyncOptions(cache_dir=cache, store_options=FAST))
    assert http.ranges(url_path(full, f)) == [f"bytes={half}-"]
    assert gets(published)[url_path(full, f)] == 1
    assert list(cache.iterdir()) == []
    assert_equal(replica, db)


@http_only
@pytest.mark.parametrize("garbage", ["prefix", "whole"])
def test_a_damaged_part_file_is_downloaded_again(db, published, setup, replica, tmp_path,
                                                 garbage):
    """A ``.part`` is only trusted as far as the file's sha256 confirms it: one that is
    not a prefix of the file (a crash can leave zeros) is dropped and fetched whole."""
    http = published.http
    assert http is not None
    full = next(iter(setup))
    f = setup[full].tables["public.messages"].files[0]
    cache = tmp_path / "cache"
    cache.mkdir()
    size = f.bytes // 2 if garbage == "prefix" else f.bytes
    _part(cache, f).write_bytes(b"\0" * size)

    sync(published.read_url, replica, SyncOptions(cache_dir=cache, store_options=FAST))
    assert http.ranges(url_path(full, f)) == [f"bytes={size}-"]
    assert gets(published)[url_path(full, f)] == 2  # the resume, then the whole file
    assert list(cache.iterdir()) == []
    assert_equal(replica, db)


@http_only
def test_a_damaged_file_in_the_cache_is_downloaded_again(db, published, setup, replica,
                                                          tmp_path):
    """A complete file in the cache that no longer matches its sha256 (a crash, a bad
    disk) is the cache's fault: it is dropped and fetched again, the sync succeeds."""
    full = next(iter(setup))
    f = setup[full].tables["public.messages"].files[0]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{f.sha256}.csv.zst").write_bytes(b"\0" * f.bytes)

    sync(published.read_url, replica, SyncOptions(cache_dir=cache, store_options=FAST))
    assert gets(published)[url_path(full, f)] == 1
    assert list(cache.iterdir()) == []
    assert_equal(replica, db)


@http_only
def test_a_damaged_file_over_http_changes_nothing(db, published, setup, replica, tmp_path):
    assert published.directory is not None
    url = published.read_url
    cache = tmp_path / "cache"
    opts = SyncOptions(cache_dir=cache, store_options=FAST)
    sync(url, replica, opts)
    add_messages(db, day(2), 20, tag="late")
    add_messages(db, day(1), 40)
    new = publish_day(nommer_config(db, chunk_bytes=16 * 1024), published.write_url, day(1))
    pub = new.manifests[0]
    damaged = pub.tables["public.users_messages"].files[0]
    name = f"{pub.publication}/{damaged.path}"
    on_disk = published.directory / name
    good = on_disk.read_bytes()
    on_disk.write_bytes(good[:10] + bytes([good[10] ^ 1]) + good[11:])
    before = end_state(replica)

    with pytest.raises(IntegrityError, match=name) as e:
        sync(url, replica, opts)
    assert url in e.value.message and "republish" in (e.value.hint or "")
    assert end_state(replica) == before
    # the damaged download is dropped; the good ones wait in the cache for the next run
    cached = {p.name for p in cache.iterdir()}
    assert f"{damaged.sha256}.csv.zst" not in cached
    assert f"{pub.tables['public.messages'].files[0].sha256}.csv.zst" in cached
    result = cli("sync", url, replica, "--cache-dir", str(cache))
    assert result.exit_code == 6 and name in result.stderr
    assert end_state(replica) == before

    on_disk.write_bytes(good)
    fetched = gets(published)
    result = sync(url, replica, opts)
    assert result.applied == [m.publication for m in new.manifests]
    again = gets(published) - fetched
    messages_file = url_path(pub.publication, pub.tables["public.messages"].files[0])
    assert again[url_path(pub.publication, damaged)] == 1
    assert messages_file not in again  # verified in the cache, not fetched twice
    assert list(cache.iterdir()) == []
    assert_no_duplicates(replica)
    assert_equal(replica, db)


def test_store_retries_setting_bounds_the_attempts(tmp_path: Path):
    """[store] retries = 1: a web server answering 503 is asked twice, then the sync stops
    with exit 5 and the hint names the setting."""
    from support.cli import error_lines, run_cli, write_config
    from support.hostile_http import HostileServer

    def unavailable(handler) -> None:
        handler.send_response(503)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    (tmp_path / "www").mkdir()
    config = write_config(tmp_path / "topoff.toml",
                          '[store]\nretries = 1\nretry_backoff = "10ms"\n')
    with HostileServer(tmp_path / "www") as server:
        server.answers["/data/index.json"] = unavailable
        r = run_cli("sync", f"{server.url}/data", str(tmp_path / "r.duckdb"),
                    "--config", config)
        asked = [entry for entry in server.log if entry[1] == "/data/index.json"]
    assert r.exit_code == 5, r.output
    assert len(asked) == 2, asked
    message, _hint = error_lines(r)
    assert "503" in message or "unavailable" in message.lower(), message


@http_only
def test_two_syncs_at_once_share_the_download_cache(db, published, setup, tmp_path):
    """Two syncs of one dataset into two replicas at once, through one download cache (the
    default one of the user: two cron jobs, or two threads of a program as here): a file is
    downloaded by one of them at a time, and removed once neither needs it. They appended
    to one ``.part`` (a file "malformed" although its checksum matched: exit 6 blaming the
    publisher), or one removed a file the other was loading ("cannot write ....part")."""
    cache = tmp_path / "cache"
    targets = [str(tmp_path / f"r{n}.duckdb") for n in range(2)]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(target: str) -> None:
        try:
            start.wait(30)
            sync(published.read_url, target, SyncOptions(cache_dir=cache, store_options=FAST))
        except BaseException as e:  # reported from the test's thread
            failures.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not failures, failures
    for target in targets:
        assert_equal(target, db)
    assert list(cache.iterdir()) == []
