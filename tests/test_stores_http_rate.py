"""An HTTP or S3 store's downloads have a minimum average rate: a server that trickles a byte now
and then (each read well within http_timeout) is given up on after one window, not read
for days; a link at a normal rate is not disturbed."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from support.hostile_http import Answer, HostileServer
from support.s3_server import CuttingProxy, S3Server
from topoff.errors import StoreError
from topoff.stores import StoreOptions
from topoff.stores.download import fetch_to_file
from topoff.stores.http import HttpStore
from topoff.stores.s3 import S3Store

#: a window of one second at 1000 bytes a second: the test takes a few seconds
TIGHT = StoreOptions(retries=3, backoff=0.01, http_timeout=5, http_min_rate=1000,
                     http_rate_window=1.0)


def trickle(stop: threading.Event, chunked: bool = False) -> Answer:
    """200 announcing 100 kB (or chunked), then one byte every 0.2 s."""
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            while not stop.is_set():
                handler.wfile.write(b"1\r\nx\r\n" if chunked else b"x")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass
    return answer


@pytest.mark.parametrize("chunked", [False, True])
def test_a_trickling_server_is_given_up_on(tmp_path: Path, chunked: bool) -> None:
    stop = threading.Event()
    with HostileServer(tmp_path) as server:
        server.answers["/slow.bin"] = trickle(stop, chunked)
        try:
            with HttpStore(server.url, TIGHT) as store, pytest.raises(StoreError) as err:
                fetch_to_file(store, "slow.bin", tmp_path / "slow.bin")
        finally:
            stop.set()
    assert err.value.exit_code == 5
    assert err.value.message == (f"{server.url}/slow.bin arrived at less than 1000 bytes a "
                                 "second over 1 s; topoff stopped reading it")
    assert "http_min_rate" in (err.value.hint or "")
    # given up on, not asked again: a slow server stays slow
    assert [m for m, p, _ in server.log if p == "/slow.bin"] == ["GET"]


def test_a_normal_rate_passes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 12000  # 3 MB
    (tmp_path / "fast.bin").write_bytes(data)
    with HostileServer(tmp_path) as server, HttpStore(server.url, TIGHT) as store:
        size, _ = fetch_to_file(store, "fast.bin", tmp_path / "copy.bin")
    assert size == len(data) and (tmp_path / "copy.bin").read_bytes() == data


def test_the_rate_check_can_be_turned_off() -> None:
    assert StoreOptions().http_min_rate > 0
    assert StoreOptions(http_min_rate=0).http_min_rate == 0


def test_a_trickling_s3_server_is_given_up_on(s3_server: S3Server, tmp_path: Path) -> None:
    """moto behind a proxy that passes the answer's headers, then a byte every 0.2 s."""
    bucket = s3_server.create_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="x/slow.bin", Body=b"y" * 100000)
    proxy = CuttingProxy(s3_server.endpoint_url)
    proxy.trickle = 0.2
    options = replace(TIGHT, s3_endpoint_url=proxy.url)
    try:
        with S3Store(bucket, "x", options) as store, pytest.raises(StoreError) as err:
            fetch_to_file(store, "slow.bin", tmp_path / "slow.bin")
    finally:
        proxy.stop()
    assert err.value.exit_code == 5
    assert err.value.message == (f"s3://{bucket}/x/slow.bin arrived at less than 1000 bytes "
                                 "a second over 1 s; topoff stopped reading it")
    assert "http_min_rate" in (err.value.hint or "")
    assert not (tmp_path / "slow.bin").exists()


def test_a_normal_rate_passes_on_s3(s3_server: S3Server, tmp_path: Path) -> None:
    data = bytes(range(256)) * 12000  # 3 MB, through botocore's checksum of the object
    bucket = s3_server.create_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="fast.bin", Body=data,
                                  ChecksumAlgorithm="SHA256")
    with S3Store(bucket, "", TIGHT) as store:
        size, _ = fetch_to_file(store, "fast.bin", tmp_path / "copy.bin")
    assert size == len(data) and (tmp_path / "copy.bin").read_bytes() == data


def test_the_config_sets_the_rate_and_the_timeout(tmp_path: Path) -> None:
    """[store] http_min_rate, http_rate_window and http_timeout (docs/stores.md) are config
    keys: a sync given them gives a trickling server up after their window, and the hint
    names the key to change."""
    from support.cli import error_lines, run_cli, write_config

    config = write_config(tmp_path / "c.toml", '[store]\nretries = 0\nhttp_min_rate = 1000\n'
                          'http_rate_window = "1s"\nhttp_timeout = "5s"\n')
    stop = threading.Event()
    with HostileServer(tmp_path) as server:
        server.answers["/d/index.json"] = trickle(stop)
        try:
            result = run_cli("sync", f"{server.url}/d", str(tmp_path / "r.duckdb"),
                             "--config", config)
        finally:
            stop.set()
    assert result.exit_code == 5, result.stderr
    error, hint = error_lines(result)
    assert "arrived at less than 1000 bytes a second over 1 s" in error
    assert "[store] http_min_rate" in hint
