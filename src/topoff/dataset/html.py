"""index.html: what a dataset holds, for a person who opens its address in a web browser.

Written next to ``index.json`` each time the index is written (by an export and by
``topoff prune``). A static page, no JavaScript: it cannot know its own address, so the
command to consume the dataset shows a placeholder, ``URL``, explained on the page. Every
value comes from the index and is escaped; links are built only from publication ids that
have the shape ``layout`` gives them (anything else is shown as text, never linked).
"""

from __future__ import annotations

import logging
from html import escape
from urllib.parse import quote

from rich.filesize import decimal

from topoff.dataset import layout
from topoff.dataset.index import Index, Publication
from topoff.errors import StoreError
from topoff.stores.base import Store

log = logging.getLogger("topoff")

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;
text-align:left}td.n{text-align:right}code,pre{background:#f4f4f4;padding:.2em .4em}"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _link(pub: Publication, relative: str, text: str) -> str:
    try:
        layout.parse_id(pub.id)
    except ValueError:
        return _e(text)
    href = quote(layout.in_publication(pub.id, relative))
    return f'<a href="{_e(href)}">{_e(text)}</a>'


def _row(p: Publication) -> str:
    window = p.label or ""
    revision = f"r{p.revision}" if p.revision else ""
    cells = [
        f'<td class="n">{_e(p.sequence)}</td>',
        f"<td>{_link(p, layout.MANIFEST, p.id)}</td>",
        f"<td>{_e(p.kind)}</td>",
        f"<td>{_e(window)}</td>",
        f"<td>{_e(revision)}</td>",
        f"<td>{_e(str(p.snapshot_time)[:19].replace('T', ' '))} UTC</td>",
        f'<td class="n">{_e(decimal(int(p.bytes)))}</td>',
        f"<td>{_link(p, layout.README, 'README')}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render(index: Index, retention: str | None = None) -> bytes:
    """The page for ``index``; ``retention`` describes the limits when they are known."""
    pubs = index.publications
    total = sum(int(p.bytes) for p in pubs)
    newest_full = index.newest_full()
    policy = retention or "Old days and old full exports are removed by the producer."
    head = ["seq", "publication (manifest)", "kind", "window", "revision", "snapshot",
            "size", "how to load"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(index.dataset)}: topoff dataset</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Dataset {_e(index.dataset)}</h1>",
        f"<p>{len(pubs)} publications, {_e(decimal(total))} in all; updated "
        f"{_e(str(index.updated_at or '')[:19].replace('T', ' '))} UTC.",
    ]
    if newest_full is not None:
        parts.append(f" Newest full export: {_e(newest_full.id)}.")
    parts.append("</p>")
    parts += [
        "<h2>Use it</h2>",
        "<p>Build a replica (a DuckDB file) from the newest full export, and run the same "
        "command again later to top it off with the new days:</p>",
        "<pre>topoff sync URL replica.duckdb</pre>",
        "<p>where <code>URL</code> is the address of this page without the final "
        "<code>index.html</code>. Each publication's README tells how to load it with "
        "psql alone. The machine-readable list is <a href=\"index.json\">index.json</a>.</p>",
        "<h2>Publications</h2>",
        "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>",
        *(_row(p) for p in reversed(pubs)),
        "</tbody></table>",
        "<h2>Retention</h2>",
        f"<p>{_e(policy)}",
    ]
    if index.removed:
        parts.append(f" {len(index.removed)} publications have been removed so far (the "
                     f"newest removed: {_e(index.removed[-1].get('id', '?'))}).")
    parts += ["</p>", "<p>Published with topoff. Files listed here never change; "
              "only index.json and this page are rewritten.</p>", "</body></html>", ""]
    return "\n".join(parts).encode()


def write_html(store: Store, index: Index, retention: str | None = None) -> None:
    """Rewrite index.html; a failure is logged, not raised (index.json is what counts)."""
    try:
        store.write_bytes(layout.INDEX_HTML, render(index, retention), replace=True)
    except StoreError as exc:
        log.warning("could not write %s: %s", layout.INDEX_HTML, exc.message)
