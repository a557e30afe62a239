"""topoff systemd --print: units that systemd itself accepts (systemd-analyze verify)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.cli import error_lines, run_cli
from topoff.backup.systemd import KINDS, UnitSettings, units

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def _split(text: str) -> dict[str, str]:
    files: dict[str, str] = {}
    current = None
    for line in text.splitlines(keepends=True):
        if line.startswith("# /etc/systemd/system/"):
            current = line.split("/")[-1].strip()
            files[current] = ""
        elif current:
            files[current] += line
    return files


@needs_systemd
@pytest.mark.parametrize("kind", KINDS)
def test_units_verify(kind: str, tmp_path: Path) -> None:
    result = run_cli("systemd", "--print", kind, "--user", "root", "--topoff", "/bin/true",
                     "--store", "/srv/backups/50% $HOME", "--unit-config", "/etc/50% $HOME")
    assert result.exit_code == 0, result.stderr
    files = _split(result.stdout)
    assert sorted(files) == [f"topoff-{kind}.service", f"topoff-{kind}.timer"]
    service, timer = files[f"topoff-{kind}.service"], files[f"topoff-{kind}.timer"]
    assert "RandomizedDelaySec=" in timer and "Persistent=true" in timer
    assert "flock --nonblock" in service and "StandardOutput=journal" in service
    assert "50%% $$HOME" in service  # specifiers and variables escaped
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    check = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            *(str(tmp_path / n) for n in files)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "ignoring" not in check.stderr and "Failed" not in check.stderr, check.stderr


def test_bad_input(tmp_path: Path) -> None:
    result = run_cli("systemd", "--print", "backup", "--store", "a\nExecStartPre=/bin/evil")
    assert result.exit_code == 2 and "line break" in error_lines(result)[0]
    assert run_cli("systemd", "--print", "nope").exit_code == 2


def test_replicate_unit_runs_replicate_once():
    service, timer = units("replicate", UnitSettings(config="/etc/topoff/replica.toml"))
    exec_start = next(ln for ln in service.splitlines() if ln.startswith("ExecStart="))
    assert exec_start.endswith("replicate --config /etc/topoff/replica.toml --once")
    assert "OnCalendar=*:0/15" in timer


@needs_systemd
def test_odd_paths_reach_topoff_as_given(tmp_path: Path) -> None:
    """Quotes, backslashes, spaces, % and $ in a path: ExecStart is written in systemd's own
    quoting (the shell's ``'it'"'"'s'`` is not systemd's, and systemd reads C escapes in
    a word: ``a\\nb`` became a line break)."""
    store, target = "https://x/it's \"q\" 50% $HOME", "/var/lib/a\\nb\\x41 c.duckdb"
    result = run_cli("systemd", "--print", "sync", "--user", "root", "--topoff", "/bin/true",
                     "--store", store, "--target", target)
    assert result.exit_code == 0, result.stderr
    files = _split(result.stdout)
    exec_start = next(ln for ln in files["topoff-sync.service"].splitlines()
                      if ln.startswith("ExecStart="))
    assert exec_start.endswith(' "https://x/it\'s \\"q\\" 50%% $$HOME" '
                               '"/var/lib/a\\\\nb\\\\x41 c.duckdb"'), exec_start
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    check = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            *(str(tmp_path / n) for n in files)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "ignoring" not in check.stderr, check.stderr


def test_a_user_systemd_would_refuse_is_exit_2() -> None:
    for user in ("top off", "", "a:b", "x" * 40):
        result = run_cli("systemd", "--print", "backup", "--user", user)
        assert result.exit_code == 2, (user, result.stdout)
        assert "is no user name systemd takes" in error_lines(result)[0]
    assert run_cli("systemd", "--print", "backup", "--user", "1001").exit_code == 0

