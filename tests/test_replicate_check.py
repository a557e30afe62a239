"""Freshness check of replicated tables: Nagios lines and codes, Prometheus textfile."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from topoff.errors import ConfigError
from topoff.replicate.check import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    TableFreshness,
    evaluate,
    metrics_text,
    parse_age,
    write_prometheus,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WARN, CRIT = 3600.0, 7200.0


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def check(*tables: TableFreshness, **kw):
    return evaluate(list(tables), WARN, CRIT, now=NOW, **kw)


def test_fresh_tables_are_ok_with_perfdata():
    r = check(TableFreshness("matomo.log_visit", ago(300), lag_seconds=12.5),
              TableFreshness("meta.users", ago(1200)))
    assert r.code == OK
    assert r.line.startswith("REPLICATE OK - 2 tables fresh, oldest meta.users 20m ago | ")
    assert "'matomo.log_visit_age'=300s;3600;7200;0" in r.line
    assert r.details == ["matomo.log_visit: OK, last success 5m ago, lag 12s",
                         "meta.users: OK, last success 20m ago"]


def test_plain_tuples_are_records(tmp_path: Path):
    tables = [("a", ago(10), False, None), ("b", ago(4000), True, 3.0)]
    r = evaluate(tables, WARN, CRIT, now=NOW)
    assert r.code == WARNING and r.details[1] == "b: WARNING, paused, last success 67m ago, lag 3s"
    write_prometheus(tmp_path / "m.prom", tables, r)
    assert 'topoff_replicate_paused{table="b"} 1.0' in (tmp_path / "m.prom").read_text()


def test_warning_critical_and_never():
    assert check(TableFreshness("a", ago(3601))).code == WARNING
    r = check(TableFreshness("a", ago(100)), TableFreshness("b", ago(7201)),
              TableFreshness("c", ago(4000)))
    assert r.code == CRITICAL
    assert r.line.startswith("REPLICATE CRITICAL - 2 of 3 tables stale: b last success 2.0h "
                             "ago (limit 2.0h); c last success 67m ago (limit 60m) |")
    r = check(TableFreshness("new", None))
    assert r.code == CRITICAL and "new never succeeded" in r.line


def test_paused_tables_are_reported_never_critical():
    r = check(TableFreshness("p", ago(10 * 86400), paused=True))
    assert r.code == WARNING and "p paused, last success 10.0d ago" in r.line
    assert check(TableFreshness("p", None, paused=True)).code == WARNING
    r = check(TableFreshness("p", ago(60), paused=True), TableFreshness("q", ago(60)))
    assert r.code == OK and r.line.startswith("REPLICATE OK - 2 tables fresh, oldest q 60s "
                                              "ago, 1 paused")
    assert r.details[0] == "p: OK, paused, last success 60s ago"


def test_lag_limits_only_when_given():
    t = TableFreshness("a", ago(10), lag_seconds=9000)
    assert check(t).code == OK
    assert check(t, lag_warn=600, lag_crit=3600).code == CRITICAL
    assert check(TableFreshness("a", ago(10), True, 9000), lag_warn=600,
                 lag_crit=3600).code == WARNING
    with pytest.raises(ConfigError):
        check(t, lag_warn=600)


def test_unknown_and_bad_limits():
    assert check().code == UNKNOWN and check().line.startswith("REPLICATE UNKNOWN - no ")
    naive = TableFreshness("a", datetime(2026, 1, 1))
    r = check(naive)
    assert r.code == UNKNOWN and "time zone" in r.line
    with pytest.raises(ConfigError) as info:
        evaluate([], 7200, 3600)
    assert "above" in info.value.message and info.value.hint
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            evaluate([], bad, 3600)
    assert parse_age("90m") == 5400 and parse_age("2h") == 7200 and parse_age("30") == 30
    assert parse_age("1.5d", "--crit") == 129600
    for bad in ("", "5 weeks", "-1h", "0", "1e3", "h"):
        with pytest.raises(ConfigError) as info:
            parse_age(bad, "--crit")
        assert "--crit" in info.value.message and info.value.hint


def test_future_success_counts_as_now():
    r = check(TableFreshness("a", NOW + timedelta(hours=1)))
    assert r.code == OK and "'a_age'=0s" in r.line


def test_prometheus_textfile_one_family_per_fact(tmp_path: Path):
    tables = [TableFreshness('odd "name"\\x', ago(60), lag_seconds=1.5),
              TableFreshness("never", None, paused=True)]
    r = check(*tables)
    out = tmp_path / "topoff_replicate.prom"
    out.write_text("old\n")
    write_prometheus(out, tables, r)
    text = out.read_text()
    assert text == metrics_text(tables, r)
    assert sorted(os.listdir(tmp_path)) == ["topoff_replicate.prom"]  # no temp file left
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    lines = text.splitlines()
    for family in ("last_success_timestamp_seconds", "lag_seconds", "paused", "check_status"):
        assert lines.count(f"# TYPE topoff_replicate_{family} gauge") == 1
    stamp = ago(60).timestamp()
    assert (f'topoff_replicate_last_success_timestamp_seconds{{table="odd \\"name\\"\\\\x"}} '
            f"{stamp!r}") in lines
    assert not any(x.startswith("topoff_replicate_last_success_timestamp_seconds{table=\"never")
                   for x in lines)
    assert 'topoff_replicate_lag_seconds{table="odd \\"name\\"\\\\x"} 1.5' in lines
    assert 'topoff_replicate_paused{table="never"} 1.0' in lines
    assert "topoff_replicate_check_status 1.0" in lines


def test_prometheus_file_in_a_missing_directory(tmp_path: Path):
    r = check(TableFreshness("a", ago(1)))
    with pytest.raises(ConfigError) as info:
        write_prometheus(tmp_path / "nope" / "x.prom", [TableFreshness("a", ago(1))], r)
    assert "cannot write" in info.value.message and info.value.hint
