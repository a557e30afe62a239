"""What a fresh machine needs: ./run installs every program the project's files call.

`./run fresh-check` proves the README's two commands in a minimal Debian 12 chroot (too
slow for the suite; see README.md). These tests keep the cheap part of that promise: the
dataset README's loader only calls programs that ./run installs or that every Debian has,
and ./run finds this machine's Debian mirror the way apt does.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from topoff.dataset.manifest import Column, DataFile, Manifest, Snapshot, TableEntry
from topoff.dataset.readme import full_readme

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "run"

#: Programs of Debian's essential set (and sh's own builtins): on every Debian system.
ESSENTIAL = {"sh", "set", "cd", "export", "sha256sum", "cat", "echo", "test", "["}


def installed_by_run() -> set[str]:
    """Programs ./run checks for with `command -v` before installing their package."""
    return set(re.findall(r"command -v (\S+) >/dev/null \|\| missing\+=", RUN.read_text()))


def readme_commands(readme: str) -> set[str]:
    [block] = re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M)
    commands: set[str] = set()
    heredoc = None
    quoted = False
    for line in block.splitlines():
        if heredoc:
            heredoc = None if line == heredoc else heredoc
            continue
        if quoted:  # inside a multi-line single-quoted word (the awk program)
            quoted = line.count("'") % 2 == 0
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.match(r"^\w+='", line):  # an assignment of a quoted word
            quoted = line.count("'") % 2 == 1
            continue
        here = re.search(r"<<'(\w+)'", line)
        if here:
            heredoc = here.group(1)
        # first word of each command of a pipeline (quoted words removed first)
        bare = re.sub(r"'[^']*'|\"[^\"]*\"", "''", line)
        for part in re.split(r"\||&&|;|<\(|\$\(|`", bare):
            words = part.split()
            if words:
                commands.add(words[0])
    return commands


def sample_manifest() -> Manifest:
    snapshot = Snapshot("2026-11-20T02:15:00+00:00", "0/0", None, 1, 2,
                        "repeatable read, read only", True)
    files = [DataFile("data/public.t.00001.csv.zst", 10, "ab" * 32, 1)]
    table = TableEntry("public", "t", "snapshot", [Column("id", "integer", False)], ["id"],
                       files=files)
    m = Manifest("full", "full/2026-11-20T021500Z", "d", "now", "0", {}, snapshot,
                 {"public.t": table})
    m.schema_files = {"pre_data": DataFile("schema/pre-data.sql", 1, "cd" * 32),
                      "post_data": DataFile("schema/post-data.sql", 1, "ef" * 32)}
    return m


def test_the_dataset_readme_calls_only_what_run_installs():
    commands = readme_commands(full_readme(sample_manifest()))
    missing = commands - ESSENTIAL - installed_by_run()
    assert not missing, f"the dataset README calls {missing}, which ./run does not install"
    assert {"psql", "zstd", "sha256sum"} <= commands


def test_the_readme_block_is_posix_sh():
    block = re.findall(r"^```sh\n(.*?)^```", full_readme(sample_manifest()), re.S | re.M)[0]
    for bashism in ("<(", "[[", "pipefail", "$'", "function "):
        assert bashism not in block.replace("function put", "").replace(
            "function esc", "").replace("function begin_field", "").replace(
            "function end_field", ""), bashism
    # dash (Debian's sh) parses it
    res = subprocess.run(["sh", "-n"], input=block, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def apt_mirror(etc: Path, suite: str) -> str:
    script = f'source <(sed -n "/^apt_mirror()/,/^}}/p" {RUN}); apt_mirror "$1" "$2"'
    res = subprocess.run(["bash", "-c", script, "-", suite, str(etc)], capture_output=True,
                         text=True, check=True)
    return res.stdout.strip()


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_fresh_check_finds_the_mirror_in_deb822_sources(etc):
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n")
    (etc / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://third.party/apt\nSuites: nodistro\n")
    assert apt_mirror(etc, "bookworm") == "http://mirror.example/debian"
    assert apt_mirror(etc, "bookworm-security") == "http://security.example/debian-security"
    assert apt_mirror(etc, "trixie") == ""


def test_fresh_check_finds_the_mirror_in_one_line_lists(etc):
    (etc / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://one.example/debian "
        "bookworm main\n")
    assert apt_mirror(etc, "bookworm") == "http://one.example/debian"
    assert apt_mirror(etc / "nowhere", "bookworm") == ""


def test_run_documents_fresh_check():
    usage = subprocess.run([str(RUN)], capture_output=True, text=True)
    assert usage.returncode == 2
    assert "./run fresh-check" in usage.stdout
    assert "./run fresh-check" in (ROOT / "README.md").read_text()


def test_run_test_without_an_index_leaves_the_duckdb_iceberg_reader_out(tmp_path):
    """./run test makes .venv-duckdb-iceberg; where no index can be reached it says so,
    goes on (exit 0), and the test of DuckDB's Iceberg reader skips, saying why."""
    import os
    import sys

    from test_iceberg_duckdb_scan import reader_python

    (tmp_path / "run").write_bytes(RUN.read_bytes())
    (tmp_path / ".venv").symlink_to(sys.prefix)  # the suite's own: its uv and pip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", UV_NO_CONFIG="1")
    script = ('set -euo pipefail; VENV=.venv; '
              'source <(sed -n "/^say()/,/^# --- fresh-check/p" run); ensure_iceberg_venv')
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "the DuckDB iceberg test will skip" in out.stderr
    assert not (tmp_path / ".venv-duckdb-iceberg").exists()
    with pytest.raises(pytest.skip.Exception, match=r"could not install duckdb==1\.4\.4"):
        reader_python(tmp_path / ".venv-duckdb-iceberg")
