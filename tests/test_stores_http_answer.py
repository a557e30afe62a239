"""An HTTP store bounds the whole wait for an answer: a server that trickles its status line
and headers (each byte well within http_timeout) is given up on, and so is one that keeps a
redirect's body or a chain of redirects going, instead of keeping a read busy for days."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from support.hostile_http import Answer, HostileServer, redirect, trickled_headers
from topoff.errors import StoreError
from topoff.stores import StoreOptions
from topoff.stores.download import fetch_to_file
from topoff.stores.http import HttpStore

#: each read may wait 2 s, the whole answer 1 s: a byte every 0.1 s passes every read
TIGHT = StoreOptions(retries=2, backoff=0.01, http_timeout=2, http_answer_timeout=1.0)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_trickled_headers_are_given_up_on(tmp_path: Path, method: str) -> None:
    stop = threading.Event()
    with HostileServer(tmp_path) as server:
        server.answers["/slow.bin"] = trickled_headers(stop)
        try:
            with HttpStore(server.url, TIGHT) as store, pytest.raises(StoreError) as err:
                if method == "GET":
                    fetch_to_file(store, "slow.bin", tmp_path / "slow.bin")
                else:
                    store.stat("slow.bin")
        finally:
            stop.set()
    assert err.value.exit_code == 5
    assert err.value.message == (f"{server.url}/slow.bin sent no complete answer (status "
                                 "line and headers) within 1 s; topoff stopped waiting")
    assert "http_answer_timeout" in (err.value.hint or "")
    # given up on, not asked again: a slow server stays slow
    assert [m for m, p, _ in server.log if p == "/slow.bin"] == [method]
    assert not (tmp_path / "slow.bin").exists()


def test_a_chain_of_redirects_counts_as_one_answer(tmp_path: Path) -> None:
    """Each hop answers in 0.4 s: every answer is quick, the chain is not."""
    def slow_hop(n: int) -> Answer:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            time.sleep(0.4)
            redirect(f"/hop{n + 1}")(handler)
        return answer

    with HostileServer(tmp_path) as server:
        for n in range(20):
            server.answers[f"/hop{n}"] = slow_hop(n)
        with HttpStore(server.url, TIGHT) as store, pytest.raises(StoreError) as err:
            store.open_read("hop0")
    assert err.value.exit_code == 5
    assert "sent no complete answer" in err.value.message
    assert len([p for _, p, _ in server.log if p.startswith("/hop")]) < 6


def test_a_redirect_body_is_not_read(tmp_path: Path) -> None:
    """A redirect whose body trickles without end: the redirect is followed at once, its
    body never read (requests read it whole, without any bound)."""
    followed = threading.Event()
    sent_whole = threading.Event()

    def moved(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "/real.bin")
        handler.end_headers()  # no length: the body runs until the connection closes
        try:
            for _ in range(100):  # 10 s at most, so that the old code ends too
                if followed.is_set():
                    return
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            return
        sent_whole.set()
        handler.close_connection = True

    def real(handler: BaseHTTPRequestHandler) -> None:
        followed.set()
        data = b"payload"
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    with HostileServer(tmp_path) as server:
        server.answers["/moved.bin"] = moved
        server.answers["/real.bin"] = real
        with HttpStore(server.url, TIGHT) as store:
            assert store.read_bytes("moved.bin") == b"payload"
    assert followed.is_set() and not sent_whole.is_set()


def test_a_redirect_loop_is_a_store_error(tmp_path: Path) -> None:
    with HostileServer(tmp_path) as server:
        server.answers["/a"] = redirect("/b")
        server.answers["/b"] = redirect("/a")
        with HttpStore(server.url, StoreOptions(retries=0)) as store:
            with pytest.raises(StoreError) as err:
                store.open_read("a")
            assert err.value.exit_code == 5
            assert err.value.message == f"{server.url}/a redirected more than 10 times"
            with pytest.raises(StoreError) as err:
                store.stat("a")
            assert err.value.message == f"{server.url}/a redirected more than 10 times"
