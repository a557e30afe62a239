"""Names in a dataset, export windows and daylight-saving rules (no database needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from topoff.dataset import layout
from topoff.dataset.bounds import cursor_bounds, wall_clock
from topoff.dataset.layout import Window
from topoff.errors import ConfigError
from topoff.export.windows import (
    choose_window,
    closing_instant,
    days_back,
    parse_instant,
    yesterday,
)

NAIVE = "timestamp without time zone"
AWARE = "timestamp with time zone"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- layout ------------------------------------------------------------------------------


def test_publication_ids_and_file_names():
    t = datetime(2026, 11, 20, 3, 15, 0, 999, tzinfo=timezone(timedelta(hours=1)))
    assert layout.full_id(t) == "full/2026-11-20T021500Z"
    day = Window.day(date(2026, 11, 20))
    assert layout.incremental_id(day, 2) == "incremental/2026-11-20/r2"
    assert layout.window_prefix(day) == "incremental/2026-11-20/"
    full = "full/2026-11-20T021500Z"
    assert layout.manifest_name(full) == f"{full}/manifest.json"
    assert layout.data_file("public", "messages", 1) == "data/public.messages.00001.csv.zst"
    assert (layout.data_file("public", "messages", 12, day)
            == "data/public.messages.2026-11-20.00012.csv.zst")
    # unusual characters cannot make a path escape or collide with the separators
    assert layout.data_file("my schema", "a/b.c", 1) == "data/my%20schema.a%2Fb%2Ec.00001.csv.zst"
    assert layout.data_file("s", "é", 1) == "data/s.%C3%A9.00001.csv.zst"


def test_parse_id_and_publication_of():
    assert layout.parse_id("full/2026-11-20T021500Z") == ("full", None, None)
    kind, window, rev = layout.parse_id("incremental/2026-11-20/r3")
    assert (kind, window, rev) == ("incremental", Window.day(date(2026, 11, 20)), 3)
    kind, window, rev = layout.parse_id(
        "incremental/2026-11-20T060000Z--2026-11-20T120000Z/r1")
    assert window == Window(utc(2026, 11, 20, 6), utc(2026, 11, 20, 12)) and rev == 1
    for bad in ("full/2026-11-20", "incremental/2026-11-20/r0", "incremental/2026-11-20",
                "other/x", "full/2026-11-20T021500Z/data"):
        with pytest.raises(ValueError):
            layout.parse_id(bad)
    assert layout.publication_of("full/2026-11-20T021500Z/data/x.csv.zst") == \
        "full/2026-11-20T021500Z"
    assert layout.publication_of("incremental/2026-11-20/r2/manifest.json") == \
        "incremental/2026-11-20/r2"
    assert layout.publication_of("index.json") is None
    assert layout.publication_of("incremental/2026-11-20") is None


def test_window_labels_and_round_trips():
    day = Window.day(date(2026, 2, 28))
    assert day.is_day and day.label == "2026-02-28"
    assert day.end == utc(2026, 3, 1)
    span = Window(utc(2026, 11, 20, 6), utc(2026, 11, 20, 12, 30))
    assert not span.is_day
    assert span.label == "2026-11-20T060000Z--2026-11-20T123000Z"
    # a day-long window that does not start at midnight UTC is a span, not a day
    shifted = Window(utc(2026, 11, 20, 1), utc(2026, 11, 21, 1))
    assert not shifted.is_day and "--" in shifted.label
    # a UTC day given with another offset is still that day
    paris = timezone(timedelta(hours=1))
    assert Window(datetime(2026, 11, 20, 1, tzinfo=paris),
                  datetime(2026, 11, 21, 1, tzinfo=paris)).label == "2026-11-20"
    for w in (day, span, shifted):
        assert Window.from_label(w.label) == w
        assert Window.from_json(w.to_json()) == w
        assert w.to_json()["label"] == w.label
    with pytest.raises(ValueError):
        Window.from_label("yesterday")


def test_window_refuses_naive_or_empty_bounds():
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="before its end"):
        Window(utc(2026, 1, 2), utc(2026, 1, 2))
    with pytest.raises(ValueError, match="before its end"):
        Window(utc(2026, 1, 3), utc(2026, 1, 2))


# -- choosing a window ---------------------------------------------------------------------


def test_choose_window_defaults_to_yesterday_utc():
    # 00:30 in Paris on the 21st is still the 20th in UTC: yesterday is the 19th
    now = datetime(2026, 11, 21, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert yesterday(now) == date(2026, 11, 19)
    assert choose_window(None, None, None, now=now) == Window.day(date(2026, 11, 19))
    assert choose_window("2026-10-25", None, None).label == "2026-10-25"


def test_choose_window_span_and_offsets():
    w = choose_window(None, "2026-11-20T06:00", "2026-11-20T08:00+01:00")
    assert w == Window(utc(2026, 11, 20, 6), utc(2026, 11, 20, 7))
    assert choose_window(None, "2026-11-20Z", "2026-11-21T00:00:00Z").is_day
    assert parse_instant("2026-11-20T06:00").tzinfo is not None


@pytest.mark.parametrize("day, since, until, words", [
    ("2026-13-01", None, None, "invalid date '2026-13-01'"),
    ("2026-02-30", None, None, "invalid date"),
    ("yesterday", None, None, "invalid date"),
    ("2026-11-20", "2026-11-20", None, "cannot be combined"),
    (None, "2026-11-20T06:00", None, "go together"),
    (None, None, "2026-11-20T06:00", "go together"),
    (None, "2026-11-20T08:00", "2026-11-20T06:00", "is not before"),
    (None, "2026-11-20T06:00", "2026-11-20T06:00", "is not before"),
    (None, "6 o'clock", "2026-11-20T06:00", "invalid time"),
    ("9999-12-31", None, None, "out of range"),  # its window would end in year 10000
    (None, "0001-01-01T00:00+01:00", "2026-11-20T06:00", "out of range"),  # before year 1
])
def test_choose_window_errors(day, since, until, words):
    with pytest.raises(ConfigError) as info:
        choose_window(day, since, until)
    assert words in info.value.message
    if words != "is not before":
        assert info.value.hint


# -- daylight saving -----------------------------------------------------------------------
# Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT, so
# wall-clock 01:00-02:00 on 2026-10-25 happens twice (00:00-01:00 and 01:00-02:00 UTC).


def test_local_bound_is_the_wall_clock_time():
    assert wall_clock(utc(2026, 10, 25), "Europe/London") == datetime(2026, 10, 25, 1)
    assert wall_clock(utc(2026, 10, 26), "Europe/London") == datetime(2026, 10, 26, 0)
    assert wall_clock(utc(2026, 3, 29, 1), "Europe/London") == datetime(2026, 3, 29, 2)
    assert wall_clock(utc(2026, 10, 25), "UTC") == datetime(2026, 10, 25)


def test_closing_instant_waits_for_the_second_pass_of_a_repeated_hour():
    # Day 2026-10-24 ends at 00:00 UTC = wall-clock 01:00, which happens again at 01:00 UTC:
    # rows written in the second pass up to then still belong before the bound.
    end_24 = Window.day(date(2026, 10, 24)).end
    assert closing_instant(end_24, NAIVE, "Europe/London") == utc(2026, 10, 25, 1)
    # inside the repeated hour: 01:30 wall clock names 00:30 and 01:30 UTC
    assert closing_instant(utc(2026, 10, 25, 0, 30), NAIVE, "Europe/London") == \
        utc(2026, 10, 25, 1, 30)
    # the end of the 25th (00:00 GMT on the 26th) is not repeated
    end_25 = Window.day(date(2026, 10, 25)).end
    assert closing_instant(end_25, NAIVE, "Europe/London") == end_25
    # the second pass itself (fold=1) gives no later instant
    assert closing_instant(utc(2026, 10, 25, 1, 30), NAIVE, "Europe/London") == \
        utc(2026, 10, 25, 1, 30)


def test_closing_instant_elsewhere_is_the_bound():
    end_24 = Window.day(date(2026, 10, 24)).end
    # aware cursors, UTC wall clocks and no cursor compare instants as they are
    assert closing_instant(end_24, AWARE, "Europe/London") == end_24
    assert closing_instant(end_24, NAIVE, "UTC") == end_24
    assert closing_instant(end_24, None, "Europe/London") == end_24
    assert closing_instant(end_24, "date", "Europe/London") == end_24
    # spring forward skips an hour; no wall-clock time is repeated, so nothing to wait for
    for bound in (utc(2026, 3, 29), utc(2026, 3, 29, 1), utc(2026, 3, 29, 0, 30),
                  utc(2026, 3, 30)):
        assert closing_instant(bound, NAIVE, "Europe/London") == bound
    # another zone's fall-back: America/New_York repeats 01:00-02:00 on 2026-11-01
    # (05:00-06:00 UTC in EDT, 06:00-07:00 UTC in EST)
    assert closing_instant(utc(2026, 11, 1, 5, 15), NAIVE, "America/New_York") == \
        utc(2026, 11, 1, 6, 15)


def test_days_back():
    w = Window.day(date(2026, 3, 2))
    assert days_back(w, 3) == [Window.day(date(2026, 2, 27)), Window.day(date(2026, 2, 28)),
                               Window.day(date(2026, 3, 1))]
    assert days_back(w, 1) == [Window.day(date(2026, 3, 1))]
    assert days_back(w, 0) == []
    span = Window(utc(2026, 3, 2, 6), utc(2026, 3, 2, 12))
    assert days_back(span, 3) == []
    # the first days: no day before year 1 to re-check (it was an internal error)
    assert days_back(Window.day(date(1, 1, 4)), 3)[0] == Window.day(date(1, 1, 1))
    with pytest.raises(ConfigError, match="has no 3 days before it") as info:
        days_back(Window.day(date(1, 1, 3)), 3)
    assert "--lookback-days 2" in (info.value.hint or "")


def test_cursor_bounds_are_contiguous_across_the_fall_back():
    day24, day25 = Window.day(date(2026, 10, 24)), Window.day(date(2026, 10, 25))
    b24 = cursor_bounds(NAIVE, "Europe/London", day24)
    b25 = cursor_bounds(NAIVE, "Europe/London", day25)
    # [2026-10-24 01:00, 2026-10-25 01:00) then [2026-10-25 01:00, 2026-10-26 00:00) wall clock
    assert (b24.lo, b24.hi) == (datetime(2026, 10, 24, 1), datetime(2026, 10, 25, 1))
    assert (b25.lo, b25.hi) == (datetime(2026, 10, 25, 1), datetime(2026, 10, 26, 0))
    assert b24.literals() == ("2026-10-24 01:00:00", "2026-10-25 01:00:00")
    aware = cursor_bounds(AWARE, "Europe/London", day25)
    assert (aware.lo, aware.hi) == (utc(2026, 10, 25), utc(2026, 10, 26))
    d = cursor_bounds("date", "UTC", day25)
    assert d.literals() == ("2026-10-25", "2026-10-26")
    with pytest.raises(ConfigError, match="only be exported by day"):
        cursor_bounds("date", "UTC", Window(utc(2026, 10, 25, 6), utc(2026, 10, 25, 7)))
