"""moto's S3 server over real HTTP on loopback, plus a TCP proxy that can break a response."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
import uuid
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

#: environment that points boto3 at nothing real (the fixture adds AWS_ENDPOINT_URL)
DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/topoff-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/topoff-test-aws-credentials",
}
#: variables that could send boto3 to a real account; the fixture removes them
UNSET_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


_WRITES = threading.Lock()


def _atomic_conditional_writes() -> None:
    """S3 decides a conditional write (``If-None-Match: *``) atomically: of two writers of
    one new name, one gets 412. moto checks and then stores in two steps, on a thread per
    request, so both could win; its PUT and its multipart completion are made one step
    each here (the server is in this process), as S3's are."""
    from moto.s3.responses import S3Response

    for name in ("put_object", "_key_response_post"):
        method = getattr(S3Response, name)
        if getattr(method, "_topoff_atomic", False):
            continue

        def atomic(self: Any, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with _WRITES:
                return _method(self, *args, **kwargs)
        atomic._topoff_atomic = True  # type: ignore[attr-defined]
        setattr(S3Response, name, atomic)


class S3Server:
    """A moto S3 server on 127.0.0.1 with a free port; ``endpoint_url`` is where it listens."""

    def __init__(self) -> None:
        _atomic_conditional_writes()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._client: Any = None

    def client(self) -> Any:
        """A boto3 client with explicit dummy credentials (independent of the environment)."""
        if self._client is None:  # creating a client is slow; one is safe to share
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def create_bucket(self, name: str | None = None, *, object_lock: bool = False,
                      versioned: bool = False, expire_noncurrent_days: int | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name.

        ``object_lock`` buckets are versioned too (S3 requires it); ``expire_noncurrent_days``
        adds a lifecycle rule that expires noncurrent versions."""
        name = name or f"topoff-{uuid.uuid4().hex[:16]}"
        args: dict[str, Any] = {"Bucket": name}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True
        self.client().create_bucket(**args)
        if versioned:
            self.client().put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if expire_noncurrent_days is not None:
            self.client().put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [{
                    "ID": "old-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": expire_noncurrent_days},
                }]})
        return name

    def stop(self) -> None:
        self._server.stop()


class CuttingProxy:
    """Forwards TCP to ``target_port``; after ``cut_after(n)`` the next n response bytes
    (counted from then on, headers included) are passed and then both sockets are closed.
    With ``pace`` set, responses pass 16 KiB at a time, ``pace`` seconds apart (a slow
    link: a reader is mid-way for seconds); with ``trickle`` set, the first response's
    headers pass at once and everything after them one byte every ``trickle`` seconds;
    ``sent`` counts the response bytes passed."""

    def __init__(self, target_url: str, port: int = 0) -> None:
        match = re.fullmatch(r"http://([\d.]+):(\d+)", target_url)
        assert match, target_url
        self._target = (match[1], int(match[2]))
        self._listener = socket.create_server(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._budget: int | None = None
        self._lock = threading.Lock()
        #: Range headers seen in requests passing through (lower-cased header values)
        self.ranges: list[str] = []
        self.pace: float | None = None
        self.trickle: float | None = None
        self.sent = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, nbytes: int) -> None:
        with self._lock:
            self._budget = nbytes

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()

    def down(self) -> None:
        """As the server stopping: the connections open now are cut, new ones refused (a
        new proxy on the same port, ``CuttingProxy(target, port)``, is it back)."""
        self.cut_after(0)
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _send(self, dst: socket.socket, data: bytes) -> None:
        step = 16384 if self.pace else len(data)
        for i in range(0, len(data), step):
            if self.pace and i:
                time.sleep(self.pace)
            dst.sendall(data[i: i + step])
            self.sent += len(data[i: i + step])

    def _pump(self, src: socket.socket, dst: socket.socket, response: bool) -> None:
        head, through = b"", False
        try:
            while data := src.recv(65536):
                if response and self.trickle:
                    if not through:
                        end = (head + data).find(b"\r\n\r\n")
                        if end < 0:
                            head += data
                            dst.sendall(data)
                            continue
                        cut, through = end + 4 - len(head), True
                        dst.sendall(data[:cut])
                        data = data[cut:]
                    for i in range(len(data)):
                        time.sleep(self.trickle)
                        dst.sendall(data[i: i + 1])
                    continue
                if not response:
                    found = re.findall(rb"(?im)^range:\s*(.+?)\r$", data)
                    self.ranges += [r.decode() for r in found]
                    dst.sendall(data)
                    continue
                with self._lock:
                    budget = self._budget
                    if budget is not None:
                        self._budget = None if len(data) >= budget else budget - len(data)
                if budget is not None and len(data) >= budget:
                    dst.sendall(data[:budget])
                    return  # the finally clause drops both connections mid-response
                self._send(dst, data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
