"""The documentation keeps up with the code: every command has a page with a real example,
the README's two commands are what CI runs, and the dataset format page names every
manifest field the code writes."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from topoff.cli import cli
from topoff.dataset.manifest import Manifest, Snapshot, TableEntry

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix} {name}".strip()
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, full))
        else:
            out.append((full, cmd))
    return out


COMMANDS = _commands(cli)


def test_every_command_is_listed() -> None:
    names = [n for n, _ in COMMANDS]
    for expected in ("export full", "export incremental", "prune", "list", "sync", "status",
                     "verify", "demo"):
        assert expected in names


@pytest.mark.parametrize("name,command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_command_has_a_page_with_real_output(name: str, command: click.Command) -> None:
    page = DOCS / "commands" / (name.replace(" ", "-") + ".md")
    assert page.exists(), f"docs/commands/{page.name} is missing (run docs/generate.py)"
    text = page.read_text()
    assert f"# topoff {name}" in text
    assert re.search(rf"^\$ topoff {re.escape(name)}\b", text, re.M), "no example command"
    for option in command.params:
        for opt in getattr(option, "opts", []):
            if opt.startswith("--") and opt != "--help":
                assert opt in text, f"{opt} of `topoff {name}` is not on its page"


def test_command_help_has_an_example() -> None:
    for name, command in COMMANDS:
        assert "Example" in (command.help or ""), f"`topoff {name} --help` has no example"


def test_readme_two_commands_and_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./run demo" in readme and "./run test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./run test" in ci


def test_dataset_format_names_every_manifest_field() -> None:
    text = (DOCS / "dataset-format.md").read_text()
    snapshot = Snapshot("t", "0/0", None, 1, 2, "repeatable read, read only", True)
    m = Manifest("full", "full/x", "d", "now", "0", {}, snapshot,
                 {"s.t": TableEntry("s", "t", "append", [], [])})
    fields = set(m.to_json()) | set(m.to_json()["snapshot"]) | \
        set(m.tables["s.t"].to_json())
    missing = sorted(f for f in fields if f"`{f}" not in text and f'"{f}"' not in text)
    assert not missing, f"docs/dataset-format.md does not mention {missing}"


def test_configuration_keys_example_is_accepted() -> None:
    """docs/configuration.md's "Keys" block, copied into a file as it is, is a valid config
    (every key it shows is accepted), and its values are the ones the parser keeps."""
    import tomllib

    from topoff.config import parse_config

    text = (DOCS / "configuration.md").read_text()
    block = text.split("## Keys", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    c = parse_config(tomllib.loads(block))
    assert (c.dataset, c.strict, c.export.jobs, c.retention.keep_days) == (
        "datanommer", True, 4, 15)
    assert (c.store.retries, c.store.http_timeout, c.store.http_min_rate) == (5, 30.0, 1024)
    messages = c.table("public.messages")
    assert (messages.method, messages.cursor, messages.private_columns()) == (
        "append", "timestamp", {"certificate"})


def _anchors(page: Path) -> set[str]:
    """The GitHub anchors of a page's headings (code blocks left out)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+\s+(.*)$", text, re.M)}


def test_every_link_between_pages_resolves() -> None:
    """A relative link of the README or docs/ names a file that exists and, with #anchor,
    a heading of that page."""
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("commands/*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists() or (anchor and target.suffix == ".md"
                                       and anchor not in _anchors(target)):
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert not broken, broken
