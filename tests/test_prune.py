"""``topoff prune``: old days and old full exports go, what a replica still needs stays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest

from conftest import PER_DAY
from support.cli import after_second_of, error_lines, run_cli, write_config
from support.dataset import files_under, read_dataset, topoff_log
from support.pg import make_config
from topoff.dataset import layout
from topoff.dataset.index import read_index
from topoff.dataset.layout import Window
from topoff.dataset.retention import plan_prune, prune
from topoff.demo import sample
from topoff.errors import ConfigError
from topoff.export.full import export_full
from topoff.export.incremental import export_incremental
from topoff.export.windows import yesterday
from topoff.stores import open_store


def rev(d, n):
    return layout.incremental_id(Window.day(d), n)


@pytest.fixture
def history(datanommer, dest):
    """Seven publications over five days:

    seq 1  incremental Y-4 r1      (old, before the newest full: removable)
    seq 2  incremental Y-3 r1      (old, before the newest full: removable)
    seq 3  full F1                 (not the newest full)
    seq 4  incremental Y-2 r1      (old, before the newest full: removable)
    seq 5  full F2                 (the newest full: always kept)
    seq 6  incremental Y-1 r1      (recent)
    seq 7  incremental Y-4 r2      (old, but published after F2: kept)
    """
    config = make_config(datanommer, lookback_days=0)
    store = open_store(str(dest))
    y = yesterday()
    day = {n: y - timedelta(days=n) for n in range(5)}
    export_incremental(config, store, Window.day(day[4]))
    export_incremental(config, store, Window.day(day[3]))
    [f1] = export_full(config, store).publications
    export_incremental(config, store, Window.day(day[2]))
    after_second_of(f1.snapshot_time)
    [f2] = export_full(config, store).publications
    export_incremental(config, store, Window.day(day[1]))
    with datanommer.primary() as conn:
        sample.add_messages(conn, day[4], 3, tag="late")
    datanommer.sync()
    [late] = export_incremental(config, store, Window.day(day[4])).publications
    assert late.id == rev(day[4], 2)
    ids = [p.id for p in read_index(store).publications]
    assert ids == [rev(day[4], 1), rev(day[3], 1), f1.id, rev(day[2], 1), f2.id,
                   rev(day[1], 1), rev(day[4], 2)]
    return {"store": store, "day": day, "f1": f1.id, "f2": f2.id, "ids": ids,
            "now": datetime.combine(y + timedelta(days=1), time(12), tzinfo=UTC)}


def test_prune_keeps_the_newest_full_and_everything_after_it(history, dest):
    store, day, now = history["store"], history["day"], history["now"]
    expected = [rev(day[4], 1), rev(day[3], 1), history["f1"], rev(day[2], 1)]
    kept = [history["f2"], rev(day[1], 1), rev(day[4], 2)]
    files_before = {p: (dest / p).read_bytes() for p in files_under(dest)}

    dry = prune(store, "datanommer", keep_days=2, keep_full=1, dry_run=True, now=now)
    assert dry.dry_run and [p.id for p in dry.removed] == expected
    assert [p.id for p in dry.kept] == kept
    assert dry.files == sum(1 for p in files_before if layout.publication_of(p) in expected)
    assert dry.bytes == sum(len(b) for p, b in files_before.items()
                            if layout.publication_of(p) in expected)
    assert {p: (dest / p).read_bytes() for p in files_under(dest)} == files_before

    done = prune(store, "datanommer", keep_days=2, keep_full=1, now=now)
    assert not done.dry_run
    assert [p.id for p in done.removed] == expected and (done.files, done.bytes) == (
        dry.files, dry.bytes)
    index = read_index(store)
    assert [p.id for p in index.publications] == kept
    assert [(r["id"], r["sequence"]) for r in index.removed] == [
        (expected[0], 1), (expected[1], 2), (expected[2], 3), (expected[3], 4)]
    assert index.next_sequence == 8  # sequence numbers are never reused
    left = files_under(dest)
    assert not [p for p in left if layout.publication_of(p) in expected]
    for pub in expected:  # no empty directories left behind either
        assert not (dest / pub).exists()
    rewritten = (layout.INDEX, layout.INDEX_HTML)
    assert {p: (dest / p).read_bytes() for p in left if p not in rewritten} == {
        p: b for p, b in files_before.items() if p in left and p not in rewritten}
    read_dataset(store)  # what is left is whole

    # nothing more to remove: the index is not rewritten
    raw = (dest / layout.INDEX).read_bytes()
    again = prune(store, "datanommer", keep_days=2, keep_full=1, now=now)
    assert again.removed == [] and (dest / layout.INDEX).read_bytes() == raw


def test_a_pruned_day_is_not_published_again(history, datanommer, dest, caplog):
    """A day removed by retention that a later run's lookback reaches (keep_days shorter
    than the lookback) is neither re-checked nor republished: retention has the last word,
    and no name is ever written twice."""
    store, day = history["store"], history["day"]
    prune(store, "datanommer", keep_days=2, keep_full=1, now=history["now"])
    assert not (dest / rev(day[2], 1)).exists()
    with topoff_log():
        result = export_incremental(make_config(datanommer, lookback_days=1), store,
                                    Window.day(day[1]))
    assert result.publications == []
    assert result.unchanged == [day[1].isoformat()]
    assert f"{day[2].isoformat()}: removed by retention; not re-checked" in caplog.text
    data = read_dataset(store)
    assert not [p for p in data.index.publications if p.label == day[2].isoformat()]
    assert not (dest / rev(day[2], 1)).exists() and not (dest / rev(day[2], 2)).exists()


def test_a_pruned_day_exported_again_by_hand_gets_the_next_revision(history, datanommer,
                                                                     dest):
    """--date on a day that retention removed publishes it again, under a revision number
    that was never used, with every file where its manifest says (the day's COPY starts
    before the recheck; both must agree on the name)."""
    store, day = history["store"], history["day"]
    prune(store, "datanommer", keep_days=2, keep_full=1, now=history["now"])
    assert read_index(store).get(rev(day[3], 1)) is None
    for jobs in (2, 1):
        result = export_incremental(make_config(datanommer, lookback_days=0, jobs=jobs), store,
                                    Window.day(day[3]))
        expected = rev(day[3], 2 if jobs == 2 else 3)
        if jobs == 1:  # nothing changed since the hand-made r2: nothing new
            assert result.publications == []
            break
        assert [p.id for p in result.publications] == [expected]
    data = read_dataset(store)  # every listed file exists, with its size, sha256 and rows
    assert data.manifests[rev(day[3], 2)].tables["public.messages"].rows == PER_DAY
    assert not (dest / rev(day[3], 1)).exists()


def test_prune_limits(history):
    index = read_index(history["store"])
    now, day = history["now"], history["day"]
    # keep_full=2 keeps the older full export as well
    remove, _ = plan_prune(index, keep_days=2, keep_full=2, now=now)
    assert history["f1"] not in [p.id for p in remove]
    # a long keep_days removes only the older full export
    remove, _ = plan_prune(index, keep_days=30, keep_full=1, now=now)
    assert [p.id for p in remove] == [history["f1"]]
    # even with keep_days=1 the newest full and what follows it stay
    remove, keep = plan_prune(index, keep_days=1, keep_full=1, now=now + timedelta(days=400))
    assert [p.id for p in keep] == [history["f2"], rev(day[1], 1), rev(day[4], 2)]
    with pytest.raises(ConfigError, match="at least 1"):
        plan_prune(index, keep_days=2, keep_full=0, now=now)


def test_prune_of_an_empty_store(tmp_path):
    result = prune(open_store(str(tmp_path / "nothing")), None, keep_days=1)
    assert result.removed == [] and result.kept == []


def test_prune_command(history, dest, tmp_path):
    index_before = (dest / layout.INDEX).read_bytes()
    # the exporter re-checks 3 days (the default): keeping 2 would lose late rows
    refused = run_cli("prune", "--to", str(dest), "--keep-days", "3")
    assert refused.exit_code == 2
    error, hint = error_lines(refused)
    assert "lookback_days is 3" in error and "keep at least 4 days" in hint
    assert "[export] lookback_days" in hint and "--lookback-days" not in hint  # not prune's
    assert (dest / layout.INDEX).read_bytes() == index_before
    for command in (["prune", "--to", str(dest)], ["backups", "prune", str(dest)]):
        huge = run_cli(*command, "--keep-days", "99999999999")  # was an internal error
        assert huge.exit_code == 2 and "1<=x<=36600" in huge.stderr, huge.stderr
    assert (dest / layout.INDEX).read_bytes() == index_before
    conf = write_config(tmp_path / "t.toml", sample.example_config().replace(
        "lookback_days = 3", "lookback_days = 1"))
    result = run_cli("prune", "--config", conf, "--to", str(dest), "--keep-days", "2",
                     "--keep-full", "1", "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    day = history["day"]
    for pub in (rev(day[4], 1), rev(day[3], 1), history["f1"], rev(day[2], 1)):
        assert f"would remove {pub}" in lines
    assert any(ln.startswith("would remove 4 publications") for ln in lines)
    assert (dest / layout.INDEX).read_bytes() == index_before

    listing = run_cli("list", str(dest))
    assert listing.exit_code == 0
    assert history["f1"] in listing.stdout and rev(day[4], 2) in listing.stdout

    result = run_cli("prune", "--config", conf, "--to", str(dest), "--keep-days", "2",
                     "--keep-full", "1")
    assert result.exit_code == 0, result.stderr
    assert f"removed {history['f1']}" in result.stdout.splitlines()
    assert [p["id"] for p in json.loads((dest / layout.INDEX).read_text())["publications"]] == [
        history["f2"], rev(day[1], 1), rev(day[4], 2)]


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_prune_of_a_location_where_nothing_is_published(tmp_path, dry_run):
    """A mistyped --to is exit 5 (not_published) as for list and sync, and nothing is made
    there (it was "removed 0 publications", exit 0, and a new empty directory)."""
    typo = tmp_path / "dumsp"
    result = run_cli("prune", "--to", str(typo), "--keep-days", "5", *dry_run)
    assert result.exit_code == 5, result.stdout + result.stderr
    error, hint = error_lines(result)
    assert "nothing is published" in error and "--to" in hint
    assert not typo.exists()


def test_prune_takes_its_retention_from_the_config(history, dest, tmp_path):
    """[retention] keep_days and keep_full are used when --keep-days and --keep-full are not
    given (docs/configuration.md); with neither, prune is refused with exit 2."""
    index_before = (dest / layout.INDEX).read_bytes()
    missing = run_cli("prune", "--to", str(dest))
    assert missing.exit_code == 2
    error, hint = error_lines(missing)
    assert "no retention given" in error and "[retention] keep_days" in hint
    assert (dest / layout.INDEX).read_bytes() == index_before
    conf = write_config(tmp_path / "t.toml", sample.example_config().replace(
        "lookback_days = 3", "lookback_days = 1").replace("keep_days = 15", "keep_days = 2")
        .replace("keep_full = 2", "keep_full = 1"))
    result = run_cli("prune", "--config", conf, "--to", str(dest), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert f"would remove {history['f1']}" in result.stdout.splitlines()
    kept = run_cli("prune", "--config", conf, "--to", str(dest), "--keep-full", "2",
                   "--dry-run")  # the option wins over the file
    assert kept.exit_code == 0, kept.stderr
    assert f"would remove {history['f1']}" not in kept.stdout.splitlines()
    assert (dest / layout.INDEX).read_bytes() == index_before


def test_without_a_full_export_days_are_pruned_by_age():
    """No full export means nothing to bring up to date: incremental days go by age."""
    from topoff.dataset.index import Index, Publication

    now = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    pubs = []
    for n, d in enumerate(("2026-11-10", "2026-11-18", "2026-11-20"), 1):
        w = Window.from_label(d)
        pubs.append(Publication(f"incremental/{d}/r1", n, "incremental",
                                f"incremental/{d}/r1/manifest.json", "0" * 64, 1,
                                now.isoformat(), now.isoformat(), w.to_json(), 1))
    index = Index("d", pubs, next_sequence=4)
    remove, keep = plan_prune(index, keep_days=5, keep_full=1, now=now)
    assert [p.id for p in remove] == ["incremental/2026-11-10/r1"]
    assert [p.id for p in keep] == ["incremental/2026-11-18/r1", "incremental/2026-11-20/r1"]


@pytest.mark.parametrize("hour", [0, 12, 23])
def test_keep_days_keeps_the_last_n_utc_days_before_today(hour):
    """--keep-days N keeps the days dated from N days before today (UTC) on, whatever the
    hour: on Nov 30, 15 keeps Nov 15 (begun 15 days and some hours ago) and removes Nov 14
    (prune --help and docs/commands/prune.md say so)."""
    from topoff.dataset.index import Index, Publication

    now = datetime(2026, 11, 30, hour, 30, tzinfo=UTC)
    days = ("2026-11-14", "2026-11-15", "2026-11-29")
    pubs = [Publication(f"incremental/{d}/r1", n, "incremental",
                        f"incremental/{d}/r1/manifest.json", "0" * 64, 1, now.isoformat(),
                        now.isoformat(), Window.from_label(d).to_json(), 1)
            for n, d in enumerate(days, 1)]
    remove, keep = plan_prune(Index("d", pubs, next_sequence=4), keep_days=15, keep_full=1,
                              now=now)
    assert [p.id for p in remove] == ["incremental/2026-11-14/r1"]
    assert [p.id for p in keep] == ["incremental/2026-11-15/r1", "incremental/2026-11-29/r1"]


def test_keep_days_help_says_which_days_go():
    """The help of --keep-days states the rule the test above checks, not 'began more than
    N days ago' (Nov 15 began more than 15 days before Nov 30, 12:00, and is kept)."""
    for args in (("prune",), ("export", "full"), ("export", "incremental")):
        out = run_cli(*args, "--help").stdout
        text = " ".join(out.split())
        assert "began more than" not in text and "days older than this" not in text, args
        assert "days before the last N UTC days" in text, (args, text)


def test_retention_shorter_than_the_lookback_is_refused(datanommer, dest, tmp_path):
    """--keep-days at most lookback_days would remove days that the next run re-checks,
    and their late rows would reach no replica: refused before anything is exported."""
    conf = write_config(tmp_path / "t.toml", sample.example_config())
    for keep, lookback in (("2", None), ("3", None), ("1", "1")):
        extra = ["--lookback-days", lookback] if lookback else []
        result = run_cli("export", "incremental", "--config", conf, "--source",
                         datanommer.standby_url, "--to", str(dest), "--keep-days", keep, *extra)
        assert result.exit_code == 2, result.stderr
        error, hint = error_lines(result)
        assert f"keeping {keep} days (--keep-days, [retention] keep_days) would remove" in error
        assert f"keep at least {int(lookback or 3) + 1} days" in hint
        assert not dest.exists()  # checked before the export started
    with pytest.raises(ConfigError, match="lookback_days is 3"):
        prune(open_store(str(dest)), None, keep_days=3, lookback_days=3)
    ok = run_cli("export", "incremental", "--config", conf, "--source",
                 datanommer.standby_url, "--to", str(dest), "--keep-days", "4")
    assert ok.exit_code == 0, ok.stderr


def test_a_retention_refused_is_refused_before_waiting_for_the_lock(datanommer, dest, tmp_path):
    """prune --wait with a --keep-days the lookback forbids exits 2 at once, not after
    waiting for the export that holds the lock."""
    import subprocess
    import sys

    from topoff.dataset.lock import StoreLock

    with open_store(str(dest)) as store:
        export_full(make_config(datanommer, sample.example_config()), store)
        held = StoreLock(store, read_index(store).dataset)
        held.acquire()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "topoff", "prune", "--to", str(dest), "--keep-days",
                 "2", "--wait"], capture_output=True, text=True, timeout=60)
        finally:
            held.release()
    assert proc.returncode == 2, proc.stderr
    assert "keeping 2 days" in proc.stderr


def test_keep_full_in_the_config_alone_prunes_after_an_export(history, datanommer, dest,
                                                               tmp_path):
    """[retention] keep_full set and keep_days not: an export pruned nothing (only
    --keep-full, or keep_days, did), though the page says the key stands for the option."""
    text = "\n".join(ln for ln in sample.example_config().splitlines()
                     if not ln.startswith("keep_days")).replace("keep_full = 2", "keep_full = 1")
    assert "\nkeep_days" not in text and "keep_full = 1" in text
    conf = write_config(tmp_path / "t.toml", text)
    after_second_of(read_index(history["store"]).publications[-1].snapshot_time)
    result = run_cli("export", "full", "--config", conf, "--source", datanommer.standby_url,
                     "--to", str(dest))
    assert result.exit_code == 0, result.stderr
    fulls = [p.id for p in read_index(open_store(str(dest))).publications if p.kind == "full"]
    assert len(fulls) == 1 and fulls[0] not in (history["f1"], history["f2"]), fulls
