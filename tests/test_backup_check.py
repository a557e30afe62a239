"""topoff backups check: Nagios codes and Prometheus metrics from the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.backup import entry
from support.cli import error_lines, run_cli


def check(store: Path, *args: str) -> tuple[int, str]:
    result = run_cli("backups", "check", str(store), *args)
    return result.exit_code, result.stdout.strip()


def test_no_backup_is_critical(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    assert check(tmp_path / "s") == (2, "BACKUP CRITICAL - no finished backup")
    entry(tmp_path / "s", "dump.a", 1, failed=True)
    assert check(tmp_path / "s")[0] == 2


def test_fresh_backup_ok_with_metrics(tmp_path: Path) -> None:
    store = tmp_path / "s"
    entry(store, "dump.a", 30, 1000)
    entry(store, "dump.b", 2, 1100, drill_ok=True)
    prom = tmp_path / "prom" / "topoff.prom"
    prom.parent.mkdir()
    code, line = check(store, "--max-age", "26h", "--max-size-change", "15%",
                       "--prometheus", str(prom))
    assert code == 0, line
    assert line.startswith("BACKUP OK - dump.b finished") and "(+10.0%)" in line
    text = prom.read_text()
    assert 'topoff_backup_check_status{store="' in text
    assert "topoff_backup_last_size_bytes" in text and " 1100.0\n" in text
    assert "topoff_backup_drill_success" in text and "topoff_backup_last_duration_seconds" in text
    assert [p.name for p in prom.parent.iterdir()] == ["topoff.prom"]  # no temp file left


@pytest.mark.parametrize("setup,args,code,words", [
    (lambda s: entry(s, "dump.a", 30), ["--max-age", "26h"], 2, "h old (limit 26.0h)"),
    (lambda s: entry(s, "dump.a", 30), ["--max-age", "2d"], 0, "OK"),
    (lambda s: entry(s, "dump.a", 1, 10), ["--min-size", "1kB"], 2, "below the minimum"),
    (lambda s: (entry(s, "dump.a", 30, 1000), entry(s, "dump.b", 1, 1200)),
     ["--max-size-change", "15%"], 1, "size changed +20.0%"),
    (lambda s: (entry(s, "dump.a", 30, 1000), entry(s, "dump.b", 1, 700)),
     ["--max-size-change", "15%"], 1, "size changed -30.0%"),
    (lambda s: entry(s, "dump.a", 1, drill_ok=False), [], 1, "drill (of dump.a) failed"),
    (lambda s: (entry(s, "dump.a", 3), entry(s, "dump.b", 1, failed=True)), [], 1,
     "dump.b failed after dump.a"),
])
def test_limits(tmp_path: Path, setup: object, args: list[str], code: int, words: str) -> None:
    setup(tmp_path / "s")  # type: ignore[operator]
    got, line = check(tmp_path / "s", *args)
    assert got == code and words in line, line


def test_bad_limits_are_refused(tmp_path: Path) -> None:
    result = run_cli("backups", "check", str(tmp_path), "--max-age", "soon")
    assert result.exit_code == 2 and "invalid --max-age" in error_lines(result)[0]
    result = run_cli("backups", "check", str(tmp_path), "--max-size-change", "lots")
    assert result.exit_code == 2


def test_unreadable_catalog_is_critical(s3_server: object, tmp_path: Path) -> None:
    prom = tmp_path / "t.prom"
    result = run_cli("backups", "check", "s3://no-such-bucket/backups", "--prometheus",
                     str(prom))
    assert result.exit_code == 2, result.output
    assert result.stdout.startswith("BACKUP CRITICAL - cannot read the catalog")
    assert "topoff_backup_check_status" in prom.read_text() and " 2.0\n" in prom.read_text()


def test_an_end_in_the_future_is_not_fresh(tmp_path: Path) -> None:
    """A finished backup that ended in the future (its host's clock, a forged entry) does
    not count: the real newest one decides, and the check says why."""
    store = tmp_path / "s"
    entry(store, "dump.a", 24 * 5)
    entry(store, "dump.b", -24 * 365 * 10)  # started ten years from now
    code, line = check(store, "--max-age", "26h")
    assert code == 2, line
    assert "dump.a is " in line and "dump.b ended in the future" in line
    entry(store, "dump.c", 1)
    code, line = check(store, "--max-age", "26h")
    assert code == 1 and "dump.b ended in the future" in line, line


def test_a_drill_dated_in_the_future_does_not_hide_the_newest_one(tmp_path: Path) -> None:
    """A passed drill dated years ahead (a wrong clock, a forged object) would stay the
    newest for ever, and a failed drill after it would never be reported."""
    store = tmp_path / "s"
    entry(store, "dump.a", 30)
    entry(store, "dump.b", 2, drill_ok=False)
    (store / "catalog" / "dump.a" / "drill-9.json").write_text(
        json.dumps({"ok": True, "time": "2999-01-01T00:00:00+00:00"}))
    code, line = check(store, "--max-age", "26h")
    assert code == 1 and "drill (of dump.b) failed" in line, line
