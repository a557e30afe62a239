"""``topoff demo``: the whole story on a throwaway cluster of its own, kept small."""

from __future__ import annotations

from topoff.demo.run import ANALYTICS_QUERY, run_demo


def test_the_demo_verifies_and_queries_the_replica(tmp_path):
    said = []
    report = run_demo(days=2, per_day=200, keep=tmp_path / "kept", say=said.append)
    assert report.verified_equal is True
    assert said == report.steps and len(report.steps) == 10
    assert report.steps[0].what.startswith("started PostgreSQL")
    assert "applied" in report.steps[7].what and "equal" in report.steps[8].what
    assert report.query == ANALYTICS_QUERY
    assert report.query_columns == ["category", "messages", "users", "newest"]
    # the last three days: the two sample days and the new day (the late rows are older)
    assert sum(r[1] for r in report.query_rows) == 3 * 200
    assert [r[1] for r in report.query_rows] == sorted((r[1] for r in report.query_rows),
                                                       reverse=True)
    kept = report.kept
    assert kept == tmp_path / "kept"
    assert (kept / "replica.duckdb").is_file() and (kept / "published" / "index.json").is_file()
