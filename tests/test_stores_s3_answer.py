"""An S3 store bounds the whole wait for an answer, as the HTTP store does: a server that
trickles its status line and headers (each byte well within http_timeout, botocore's bound
of each read) is given up on at once, not asked again, instead of keeping a request busy
for days."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from support.hostile_http import HostileServer, trickled_headers
from support.s3_server import DUMMY_ENV, UNSET_ENV
from topoff.errors import StoreError
from topoff.stores import StoreOptions
from topoff.stores.s3 import S3Store

#: the trickle ends after 6 s of headers: without a bound on the whole answer, a read ends
#: with the 3 bytes after it instead of failing
PAD = 20


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DUMMY_ENV.items():
        monkeypatch.setenv(key, value)
    for key in (*UNSET_ENV, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_trickled_headers_are_given_up_on(tmp_path: Path, aws_env: None, method: str) -> None:
    stop = threading.Event()
    with HostileServer(tmp_path) as server:
        server.answers["/bkt/p/slow.bin"] = trickled_headers(stop, pad=PAD)
        options = StoreOptions(s3_endpoint_url=server.url, retries=2, backoff=0.01,
                               http_timeout=2, http_answer_timeout=1.0)
        store = S3Store("bkt", "p", options)
        try:
            with pytest.raises(StoreError) as err:
                if method == "GET":
                    store.read_bytes("slow.bin")
                elif method == "HEAD":
                    store.stat("slow.bin")
                else:
                    store.write_bytes("slow.bin", b"abc")
        finally:
            stop.set()
            store.close()
    assert err.value.exit_code == 5
    assert err.value.message.startswith(f"the S3 endpoint {server.url} sent no complete "
                                         "answer (status line and headers) within 1 s")
    assert "s3://bkt/p/slow.bin" in err.value.message
    assert "http_answer_timeout" in (err.value.hint or "")
    # given up on, not asked again (botocore retries a broken connection): a slow server
    # stays slow
    assert [m for m, p, _ in server.log if p == "/bkt/p/slow.bin"] == [method]


def test_no_bound_with_zero(tmp_path: Path, aws_env: None) -> None:
    """http_answer_timeout = 0: only each read is bounded, so a slow answer is waited for."""
    stop = threading.Event()
    with HostileServer(tmp_path) as server:
        server.answers["/bkt/slow.bin"] = trickled_headers(stop, pad=5)
        options = StoreOptions(s3_endpoint_url=server.url, retries=0, http_timeout=2,
                               http_answer_timeout=0)
        with S3Store("bkt", "", options) as store:
            assert store.read_bytes("slow.bin") == b"abc"
