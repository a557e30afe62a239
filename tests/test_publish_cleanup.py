"""Files left by killed exports: found and removed by prune once older than the grace period,
never a published file, the index, index.html, the lock, or anything new."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.cli import run_cli, write_config
from support.dataset import files_under, read_dataset
from topoff.dataset import layout
from topoff.dataset.cleanup import find_orphans
from topoff.dataset.index import Index, read_index
from topoff.dataset.layout import Window
from topoff.dataset.retention import prune
from topoff.demo import sample
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.stores import StoreOptions, open_store

SRC = str(Path(__file__).resolve().parents[1] / "src")


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("TOPOFF_")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    return e


def kill_mid_way(args: list[str], dest: Path, files: int = 3) -> None:
    """Start ``topoff ARGS`` and SIGKILL it once it has written ``files`` data files."""
    proc = subprocess.Popen([sys.executable, "-m", "topoff", *args], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(dest.glob("full/*/data/*"))) >= files:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the export ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_a_killed_full_export_is_cleaned_up_by_prune(datanommer, tmp_path):
    dest = tmp_path / "published"
    store = open_store(str(dest))
    day = yesterday()
    export_incremental(sample_config(datanommer), store, Window.day(day))
    published = {p: (dest / p).read_bytes() for p in files_under(dest)}
    conf = write_config(tmp_path / "t.toml", sample.example_config())
    # small chunks: many files, so the kill lands mid-way
    kill_mid_way(["export", "full", "--config", conf, "--source", datanommer.standby_url,
                  "--to", str(dest), "--chunk-size", "2kB", "-j", "1", "--quiet"], dest)
    assert [p.kind for p in read_index(store).publications] == ["incremental"]
    left = [p for p in files_under(dest) if p not in published and p != layout.LOCK]
    assert [p for p in left if p.startswith("full/")], left  # what the kill left behind
    assert (dest / layout.LOCK).exists()  # and its lock (its process is gone: stale)
    # a temp file inside a published directory, and files that are not topoff's
    pub_dir = dest / layout.incremental_id(Window.day(day), 1)
    (pub_dir / "data" / ".public.messages.csv.zst.tmp-0badc0de").write_bytes(b"half")
    (dest / "robots.txt").write_bytes(b"User-agent: *\n")
    (dest / "notes").mkdir()
    (dest / "notes" / "old.txt").write_bytes(b"mine")

    # the default grace (6 hours) protects files this new: nothing is removed
    keep = ["--to", str(dest), "--keep-days", "30"]
    first = run_cli("prune", *keep)
    assert first.exit_code == 0, first.stderr
    assert "unpublished" not in first.stdout
    assert [p for p in files_under(dest) if p not in published] != []

    time.sleep(1.2)
    dry = run_cli("prune", *keep, "--grace", "1s", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    full_dir = next(p for p in left if p.startswith("full/")).split("/")[1]
    assert f"would remove {len([p for p in left if p.startswith('full/')])} unpublished " \
        f"files in full/{full_dir}" in dry.stdout.splitlines()
    assert "would remove 1 unpublished files in " \
        f"{layout.incremental_id(Window.day(day), 1)}" in dry.stdout.splitlines()
    assert (dest / "full" / full_dir).exists()

    done = run_cli("prune", *keep, "--grace", "1s")
    assert done.exit_code == 0, done.stderr
    assert f"removed {len(left) + 1} unpublished files (" in done.stdout
    assert "older than 1 s" in done.stdout
    after = set(files_under(dest))
    assert after == set(published) | {"robots.txt", "notes/old.txt"}
    assert {p: (dest / p).read_bytes() for p in published if p != layout.INDEX_HTML} == {
        p: b for p, b in published.items() if p != layout.INDEX_HTML}
    assert not (dest / "full").exists()  # emptied directories go too
    read_dataset(store)
    # nothing left to remove: a second prune reports nothing
    again = run_cli("prune", *keep, "--grace", "1s")
    assert "unpublished" not in again.stdout


def test_root_files_and_listed_files_are_never_orphans(tmp_path):
    dest = tmp_path / "published"
    store = open_store(str(dest))
    for name in (layout.INDEX, layout.INDEX_HTML, layout.LOCK, "full/2026-11-20T021500Z/x",
                 ".index.json.tmp-00ff", ".other.tmp-00ff"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(b"{}")
    later = datetime.now(UTC) + timedelta(days=1)
    # without index.json nothing is an orphan: a lost index is no reason to delete a dataset
    assert find_orphans(store, None, timedelta(hours=6), later).files == []
    found = {f.name for f in find_orphans(store, Index("d"), timedelta(hours=6), later).files}
    # the full directory is listed by no index here, the index temp file is topoff's own
    assert found == {"full/2026-11-20T021500Z/x", ".index.json.tmp-00ff"}


def test_s3_unfinished_uploads_and_unlisted_objects(datanommer, s3_server):
    bucket = s3_server.create_bucket()
    store = open_store(f"s3://{bucket}/ds", StoreOptions(retries=2, backoff=0.01))
    day = yesterday()
    export_incremental(sample_config(datanommer), store, Window.day(day))
    listed = {f.name for f in store.list()}
    store.write_bytes("full/2026-11-20T021500Z/data/public.messages.00001.csv.zst", b"x")
    client = s3_server.client()
    upload = client.create_multipart_upload(
        Bucket=bucket, Key="ds/full/2026-11-20T021500Z/data/public.messages.00002.csv.zst")
    result = prune(store, "datanommer", keep_days=30, grace=timedelta(0),
                   now=datetime.now(UTC) + timedelta(seconds=5))
    assert [f.name for f in result.orphans.files] == [
        "full/2026-11-20T021500Z/data/public.messages.00001.csv.zst"]
    assert [u for _, u in result.orphans.uploads] == [upload["UploadId"]]
    assert {f.name for f in store.list()} == listed
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    read_dataset(store)


def sample_config(db):
    from support.pg import make_config

    return make_config(db, lookback_days=0)
