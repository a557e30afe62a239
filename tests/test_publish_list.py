"""``topoff list`` at a store root: the datasets below it, each with its newest publication."""

from __future__ import annotations

import json

from support.cli import error_lines, run_cli
from support.http_server import HttpServer
from support.pg import make_config
from topoff.dataset.layout import Window
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.stores import open_store


def test_list_at_a_store_root_lists_its_datasets(datanommer, tmp_path):
    root = tmp_path / "dumps"
    config = make_config(datanommer, lookback_days=0)
    day = Window.day(yesterday())
    [pub] = export_incremental(config, open_store(str(root / "datanommer")), day).publications
    hostile = config.with_overrides(dataset="[bold red]evil[/] <b>x</b>")
    export_incremental(hostile, open_store(str(root / "team" / "other")), day)
    (root / "broken").mkdir()
    (root / "broken" / "index.json").write_text("{not json")
    (root / "a" / "b" / "c").mkdir(parents=True)  # three levels down: not looked at
    (root / "a" / "b" / "c" / "index.json").write_text(json.dumps({"format_version": 1}))

    result = run_cli("list", str(root))
    assert result.exit_code == 0, result.stderr
    rows = result.stdout.splitlines()
    line = next(r for r in rows if "│ datanommer " in r)
    assert pub.id in line and "datanommer" in line
    # names from a dataset are shown as they are, never read as markup
    assert any("team/other" in r and "[bold red]evil[/]" in r for r in rows), result.stdout
    assert any("broken" in r and "cannot be read" in r for r in rows)
    assert not any("a/b/c" in r for r in rows)

    # a dataset's own location still lists its publications
    one = run_cli("list", str(root / "datanommer"))
    assert one.exit_code == 0 and "dataset datanommer" in one.stdout and pub.id in one.stdout


def test_list_where_nothing_is_published(tmp_path):
    (tmp_path / "empty" / "deep").mkdir(parents=True)
    for where in (tmp_path / "empty", tmp_path / "missing"):
        result = run_cli("list", str(where))
        assert result.exit_code == 5, result.stderr
        error, hint = error_lines(result)
        assert "nothing is published at" in error and "export full" in hint
    with HttpServer(tmp_path / "empty") as site:
        result = run_cli("list", site.url)
        assert result.exit_code == 5
        error, hint = error_lines(result)
        assert "cannot be listed" in error and f"{site.url}/NAME" in hint
