"""index.html: what a person sees when they open a dataset's address in a web browser
(a real headless Chromium, over the loopback HTTP server)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.http_server import HttpServer
from support.pg import make_config
from topoff.dataset.html import render
from topoff.dataset.index import Index, Publication
from topoff.dataset.layout import Window
from topoff.dataset.retention import prune
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.stores import open_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (./run installs the Debian package)")


def browse(url: str, profile: Path) -> str:
    """The DOM Chromium builds for ``url`` (after parsing, as a person's browser would)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def visible_text(dom: str) -> str:
    """The text a person reads: no style, no tags, entities decoded, spaces collapsed."""
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


@needs_chromium
def test_the_page_shows_what_is_published(datanommer, tmp_path):
    dest = tmp_path / "published"
    store = open_store(str(dest))
    config = make_config(datanommer, lookback_days=0)
    [full] = export_full(config, store).publications
    [inc] = export_incremental(config, store, Window.day(yesterday())).publications
    with HttpServer(dest) as site:
        dom = browse(f"{site.url}/index.html", tmp_path / "profile")
        text = visible_text(dom)
        assert "Dataset datanommer" in text
        assert "2 publications" in text
        assert "topoff sync URL replica.duckdb" in text
        assert "address of this page without the final index.html" in text
        for p in (full, inc):
            assert p.id in text
            assert p.snapshot_time[:19].replace("T", " ") in text
        assert yesterday().isoformat() in text and "r1" in text
        # the links lead to each publication's manifest and README, served by the site
        for p in (full, inc):
            assert f'href="{p.id}/manifest.json"' in dom
            assert f'href="{p.id}/README.md"' in dom
        assert "<script" not in dom.lower()
        # prune rewrites it, with the retention it applied
        prune(store, "datanommer", keep_days=30, keep_full=2, lookback_days=0)
        text = visible_text(browse(f"{site.url}/index.html", tmp_path / "profile"))
        assert "incremental days are kept 30 days, the newest 2 full export(s)" in text
        assert "2 publications" in text


@needs_chromium
def test_hostile_names_are_shown_as_text(tmp_path):
    """A dataset name or publication id is untrusted: it is escaped, and an id that is not
    a publication id is never made a link (no javascript: URL, no path out of the site)."""
    evil = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
    pubs = [Publication("javascript:alert(1)//", 1, "full", "x", "0" * 64, 10, "t", "t"),
            Publication("incremental/2026-11-20/r1", 2, "incremental<b>",
                        "incremental/2026-11-20/r1/manifest.json", "0" * 64, 5,
                        "2026-11-21T02:15:58+00:00", "2026-11-21T02:15:58+00:00",
                        Window.from_label("2026-11-20").to_json(), 1)]
    index = Index(evil, pubs, next_sequence=3, updated_at="2026-11-21T02:16:03+00:00",
                  removed=[{"id": "<i>gone</i>", "sequence": 0}])
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "index.html").write_bytes(render(index, retention="keep <all>"))
    with HttpServer(site_dir) as site:
        dom = browse(f"{site.url}/index.html", tmp_path / "profile")
    text = visible_text(dom)
    assert f"Dataset {evil}" in text  # shown literally
    assert "javascript:alert(1)//" in text and "incremental<b>" in text
    assert "keep <all>" in text and "<i>gone</i>" in text
    assert "<script>" not in dom and "<img" not in dom
    assert 'href="javascript' not in dom
    assert 'href="incremental/2026-11-20/r1/manifest.json"' in dom
