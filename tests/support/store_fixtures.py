"""Fixtures for stores: a moto S3 server for the session, and a fresh place to publish to."""

from __future__ import annotations

import subprocess
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
    #: rclone-crypt: the directory that holds the encrypted files
    encrypted_dir: Path | None = None


#: every kind of store the conformance suite covers (``published`` keeps the first three)
ALL_KINDS = ["local", "http", "s3", "rclone", "rclone-crypt"]
CRYPT_PASSWORD = "correct horse battery staple"


def rclone_remotes(monkeypatch: pytest.MonkeyPatch, encrypted_dir: Path) -> None:
    """Configure rclone through environment variables only: ``topofflocal:`` (the local
    disk) and ``topoffcrypt:`` (a crypt remote that keeps its files in ``encrypted_dir``)."""
    obscured = subprocess.run(["rclone", "obscure", CRYPT_PASSWORD], capture_output=True,
                              check=True, text=True).stdout.strip()
    monkeypatch.setenv("RCLONE_CONFIG", str(encrypted_dir.parent / "no-rclone.conf"))
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFLOCAL_TYPE", "local")
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFCRYPT_TYPE", "crypt")
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFCRYPT_REMOTE", f"topofflocal:{encrypted_dir}")
    monkeypatch.setenv("RCLONE_CONFIG_TOPOFFCRYPT_PASSWORD", obscured)


def make_published(kind: str, request: pytest.FixtureRequest,
                   tmp_path: Path) -> Iterator[Published]:
    if kind.startswith("rclone"):
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        encrypted = tmp_path / "encrypted"
        rclone_remotes(monkeypatch, encrypted)
        if kind == "rclone":
            directory = tmp_path / "published"
            url = f"rclone:topofflocal:{directory}"
            yield Published(kind, url, url, directory=directory)
        else:
            url = "rclone:topoffcrypt:datasets/demo"
            yield Published(kind, url, url, encrypted_dir=encrypted)
        return
    yield from _make_published(kind, request, tmp_path)


@pytest.fixture(params=["local", "http", "s3"])
def published(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Published]:
    """A fresh, empty place to publish to, for each store kind."""
    yield from _make_published(request.param, request, tmp_path)


def _make_published(kind: str, request: pytest.FixtureRequest,
                    tmp_path: Path) -> Iterator[Published]:
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
