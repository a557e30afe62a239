"""Fixtures for stores: a moto S3 server for the session, and a fresh place to publish to."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.http_server import HttpServer
from support.s3_server import DUMMY_ENV, UNSET_ENV, S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 over HTTP on loopback; boto3's environment points at it for the session."""
    server = S3Server()
    patch = pytest.MonkeyPatch()
    for name in UNSET_ENV:
        patch.delenv(name, raising=False)
    for name, value in DUMMY_ENV.items():
        patch.setenv(name, value)
    patch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    try:
        yield server
    finally:
        patch.undo()
        server.stop()


@dataclass
class Published:
    """Where a test publishes (``write_url``) and where a consumer reads (``read_url``)."""

    kind: str
    write_url: str
    read_url: str
    http: HttpServer | None = None
    s3: S3Server | None = None
    directory: Path | None = None  # the published directory for local and http
    bucket: str | None = None


@pytest.fixture(params=["local", "http", "s3"])
def published(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Published]:
    """A fresh, empty place to publish to, for each store kind."""
    kind = request.param
    if kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        bucket = server.create_bucket()
        url = f"s3://{bucket}/datasets/demo"
        yield Published(kind, url, url, s3=server, bucket=bucket)
        return
    directory = tmp_path / "published"
    if kind == "local":
        yield Published(kind, str(directory), str(directory), directory=directory)
        return
    directory.mkdir()
    with HttpServer(directory) as http:
        yield Published(kind, str(directory), http.url, http=http, directory=directory)
