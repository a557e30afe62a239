"""A consumer's sync while the producer's ``topoff export full`` and ``topoff prune`` (real
processes) remove the full export it is loading: the sync stops saying that publication
was removed meanwhile (exit 7), not that the dataset is damaged (it was exit 6, "republish
the dataset"); what it committed is kept, the next run says how to rebuild, and --rebase
makes the replica equal to the source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.pg import Database
from support.replica import (
    Replicas,
    cli,
    end_state,
    fill,
    nommer_config,
    publish_standard,
    wait_for_next_second,
)
from test_iceberg_sync import assert_same, catalog_file
from topoff.demo import sample
from topoff.errors import TargetError
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

CHUNK = 16 * 1024  # several files per table: the load is stopped between two of them


def producer(db: Database, tmp_path: Path, url: str) -> None:
    """The producer's night: a new full export, then prune keeping one full export."""
    config = tmp_path / "topoff.toml"
    config.write_text(sample.example_config())
    wait_for_next_second()  # full exports are named by their second
    for args in (["export", "full", "--config", str(config), "--source", db.standby_url,
                  "--to", url, "--chunk-size", "16KiB"],
                 ["prune", "--config", str(config), "--to", url, "--keep-days", "30",
                  "--keep-full", "1", "--grace", "0s"]):
        done = subprocess.run([sys.executable, "-m", "topoff", *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr


def pruned_meanwhile(db: Database, tmp_path: Path, url: str, target: str) -> None:
    """A sync whose first loaded file lets the producer run: it stops as it should."""
    calls: list[str] = []

    def hook(name: str, **info: object) -> None:
        if name == "file_loaded" and not calls:
            calls.append(str(info["publication"]))
            producer(db, tmp_path, url)

    with pytest.raises(TargetError) as e:
        sync(url, target, SyncOptions(hook=hook))
    assert calls and f"{calls[0]} was removed from {url} while this sync read it" \
        in e.value.message, e.value.message
    assert "republish" not in (e.value.hint or "") and "run the sync again" in \
        (e.value.hint or "")


@pytest.mark.parametrize("kind", ["duckdb", "postgresql", "iceberg"])
def test_a_full_export_pruned_while_it_is_loaded(db, tmp_path, cluster, kind):
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    replicas = Replicas(kind, tmp_path, cluster)
    try:
        target = catalog_file(tmp_path) if kind == "iceberg" else replicas.new()
        pruned_meanwhile(db, tmp_path, url, target)
        before = None if kind == "iceberg" else end_state(target)
        again = cli("sync", url, target)
        assert again.exit_code == 7 and "no longer has" in again.stderr, again.stderr
        assert "--rebase" in again.stderr
        if before is not None:
            assert end_state(target) == before
        rebuilt = cli("sync", url, target, "--rebase")
        assert rebuilt.exit_code == 0, rebuilt.stderr
        if kind == "iceberg":
            assert_same(target, db, through_duckdb=False)
        else:
            assert verify(target, db.standby_url).equal
    finally:
        replicas.close()


@pytest.mark.slow
def test_pruned_on_s3_while_it_is_loaded(db, tmp_path, s3_server):
    fill(db)
    url = f"s3://{s3_server.create_bucket()}/datanommer"
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    target = str(tmp_path / "replica.duckdb")
    pruned_meanwhile(db, tmp_path, url, target)
    assert cli("sync", url, target, "--rebase").exit_code == 0
    assert verify(target, db.standby_url).equal
