"""The S3 endpoint going away under an export (its connections cut, new ones refused):
exit 5 naming the endpoint, and, once it is back, the next export of the same program
(a library caller that runs exports one after another) publishes: the lock its failed
run could not release is no other run's."""

from __future__ import annotations

import pytest

from support.dataset import read_dataset, topoff_log
from support.pg import make_config
from support.replica import fill
from support.s3_server import CuttingProxy, S3Server
from topoff.errors import StoreError
from topoff.export.full import export_full
from topoff.stores import open_store


def test_the_s3_endpoint_gone_under_an_export(db, s3_server: S3Server,
                                              monkeypatch: pytest.MonkeyPatch):
    fill(db, days=2, per_day=500)
    bucket = s3_server.create_bucket()
    proxy = CuttingProxy(s3_server.endpoint_url)
    port = int(proxy.url.rsplit(":", 1)[1])
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    started: list[str] = []

    def hook(event: str, **kw: object) -> None:
        if event == "table_start":
            started.append(str(kw.get("table")))
            if len(started) == 2:
                proxy.down()

    config = make_config(db, jobs=1)
    url = f"s3://{bucket}/ds"
    with topoff_log(), pytest.raises(StoreError) as failed:
        export_full(config, open_store(url), hook=hook)
    assert failed.value.exit_code == 5
    assert f"cannot reach the S3 endpoint {proxy.url}" in failed.value.message
    assert "reachable" in (failed.value.hint or "")
    proxy = CuttingProxy(s3_server.endpoint_url, port)  # the endpoint is back
    with topoff_log():
        result = export_full(config, open_store(url))
    assert result.publications
    read_dataset(open_store(url))
