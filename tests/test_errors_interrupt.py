"""Ctrl-C and two syncs at once, with real signals and real processes: an interrupted sync
exits 130 with ``error: interrupted`` (never "internal error") and the replica resumes;
two syncs of one dataset into one PostgreSQL replica take turns."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psycopg
import pytest

from support.replica import (
    Replicas,
    assert_no_duplicates,
    end_state,
    fill,
    ledger,
    nommer_config,
    publish_standard,
)
from topoff.errors import Interrupted
from topoff.sync.lock import lock_key
from topoff.targets.errors import engine_errors
from topoff.verify import verify

pytest_plugins = ["support.replica_fixtures"]

CHUNK = 16 * 1024  # several files per table: many steps to interrupt


@pytest.fixture
def published(db, tmp_path) -> str:
    fill(db)
    url = str(tmp_path / "published")
    publish_standard(nommer_config(db, chunk_bytes=CHUNK), url)
    return url


def start_sync(url: str, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "topoff", "sync", url, target, "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_sync(url: str, target: str, signal_after: int | None = None,
             sig: int = signal.SIGINT) -> tuple[int, list[dict]]:
    """``topoff sync`` in a process; ``sig`` (SIGINT as Ctrl-C sends it, or SIGTERM as
    systemd and kill do) after the k-th log line."""
    proc = start_sync(url, target)
    assert proc.stderr is not None
    lines: list[dict] = []
    for raw in proc.stderr:
        lines.append(json.loads(raw))
        if signal_after is not None and len(lines) == signal_after:
            proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc.returncode, lines


@pytest.mark.slow
def test_ctrl_c_at_several_points_then_rerun(published, replicas: Replicas, db):
    reference = replicas.new()
    code, full_run = run_sync(published, reference)
    assert code == 0, full_run
    want = end_state(reference)

    target = replicas.new()
    interrupted = terminated = 0
    for k, sig in ((1, signal.SIGINT), (2, signal.SIGTERM), (4, signal.SIGINT),
                   (6, signal.SIGTERM)):
        code, lines = run_sync(published, target, signal_after=k, sig=sig)
        assert code in (0, 130), lines
        assert code != -signal.SIGTERM, "SIGTERM killed the sync without a word"
        if code == 130:
            interrupted += 1
            terminated += sig == signal.SIGTERM
            last = lines[-1]
            assert (last["level"], last["error"], last["message"], last["exit_code"]) == (
                "error", "interrupted", "interrupted", 130), lines
            assert "run the same command again" in last["hint"]
        assert not any("internal error" in line["message"] for line in lines)
    assert interrupted >= 2 and terminated >= 1

    code, lines = run_sync(published, target)
    assert code == 0, lines
    assert end_state(target) == want
    assert_no_duplicates(target)
    assert verify(target, db.standby_url).equal


def test_sigterm_stops_an_export_and_publishes_nothing(db, tmp_path):
    """SIGTERM (systemd stopping a timer's unit) stops ``topoff export full`` as Ctrl-C
    does: exit 130, one error line, nothing published and no file left behind; the next
    export publishes."""
    from topoff.demo import sample

    fill(db)
    config = tmp_path / "topoff.toml"
    config.write_text(sample.example_config())
    dest = tmp_path / "published"
    cmd = [sys.executable, "-m", "topoff", "export", "full", "--config", str(config),
           "--source", db.standby_url, "--to", str(dest), "--chunk-size", "16KiB",
           "--log-format", "json", "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for raw in proc.stderr:
        lines.append(json.loads(raw))
        if "full export" in lines[-1]["message"]:  # reading has begun
            proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130, lines
    assert (lines[-1]["error"], lines[-1]["exit_code"]) == ("interrupted", 130), lines
    assert [p for p in dest.rglob("*") if p.is_file()] == []
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "published full/" in again.stdout


def _files(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in where.rglob("*") if p.is_file()}


@pytest.mark.parametrize("first", [signal.SIGTERM, pytest.param(signal.SIGINT,
                                                                  marks=pytest.mark.slow)],
                         ids=["TERM", "INT"])
def test_signals_in_a_row_leave_no_file_of_the_stopped_export(db, tmp_path, first):
    """SIGTERM (or Ctrl-C) and then SIGTERM after SIGTERM while the export stops: the
    signals after the first do not cut its cleanup short (the second one interrupted the
    removal of the files it had written, which stayed until a prune). Exit 130; the store
    holds exactly what was published before, untouched, and no lock."""
    from topoff.demo import sample

    fill(db, per_day=3000)
    config = tmp_path / "topoff.toml"
    config.write_text(sample.example_config())
    dest = tmp_path / "published"
    cmd = [sys.executable, "-m", "topoff", "export", "full", "--config", str(config),
           "--source", db.standby_url, "--to", str(dest), "--chunk-size", "16KiB",
           "--log-format", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before = _files(dest)
    data = list(dest.rglob("*.csv.zst"))
    time.sleep(1.1)  # a full export is named by the second of its snapshot
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for raw in proc.stderr:
        lines.append(json.loads(raw))
        if "full export" in lines[-1]["message"]:  # reading has begun
            while len(list(dest.rglob("*.csv.zst"))) < len(data) + 20:
                assert proc.poll() is None, lines  # until it has written files
            proc.send_signal(first)
            while proc.poll() is None:  # and again, until it has stopped
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    lines += [json.loads(raw) for raw in err.splitlines()]
    assert proc.returncode == 130, lines
    assert (lines[-1]["error"], lines[-1]["exit_code"]) == ("interrupted", 130), lines
    assert not any("internal error" in line["message"] for line in lines)
    assert _files(dest) == before
def _catches(pid: int, sig: int) -> bool:
    """The process has a handler of its own for ``sig`` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(ln for ln in status.splitlines() if ln.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (sig - 1)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["TERM", "INT", "HUP"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_signal_while_the_command_starts(tmp_path, fmt, sig):
    """SIGTERM, SIGHUP or Ctrl-C in the first moments, while the command's modules are imported:
    exit 130 and ``error: interrupted``, as later on (it was death by signal 15 and no
    word, or a KeyboardInterrupt traceback from inside an import)."""
    topoff = Path(sys.executable).parent / "topoff"  # the installed command, then -m
    for cmd in ([str(topoff)], [sys.executable, "-m", "topoff"]):
        if not Path(cmd[0]).exists():
            continue
        proc = subprocess.Popen([*cmd, "status", str(tmp_path / "r.duckdb"), "--log-format", fmt],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not _catches(proc.pid, signal.SIGTERM) and proc.poll() is None:
            pass  # as soon as topoff's first handler is there
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        if fmt == "json":
            line = json.loads(err.splitlines()[-1])
            assert (line["error"], line["exit_code"]) == ("interrupted", 130)
        else:
            assert err.startswith("error: interrupted\nhint: "), err
        assert "Traceback" not in err


def test_a_hangup_ignored_at_start_stays_ignored(tmp_path):
    """Under ``nohup`` (SIGHUP ignored when topoff starts), a closed terminal does not stop
    the command: it ends as it would have (here exit 7, no replica)."""
    def ignore_hangups() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "topoff", "status", str(tmp_path / "r.duckdb")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore_hangups)
    while not _catches(proc.pid, signal.SIGTERM) and proc.poll() is None:
        pass
    for _ in range(20):
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err


def test_ctrl_c_inside_an_engine_statement_is_an_interrupt():
    """DuckDB turns SIGINT into RuntimeError("Query interrupted") and then fails the next
    statement with "Current transaction is aborted"; psycopg cancels the query: each means
    Ctrl-C (exit 130), not a bug. (Real exception classes; a real signal cannot be timed
    into a DuckDB statement reliably on a loaded machine: DuckDB checks it between tasks.)"""
    def aborted_after_interrupt() -> None:
        try:
            raise RuntimeError("Query interrupted")
        except RuntimeError:
            aborted = "Current transaction is aborted (please ROLLBACK)"
            raise duckdb.TransactionException(aborted)  # noqa: B904 - as DuckDB does

    def cancelled() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise psycopg.errors.QueryCanceled("canceling statement due to user request")  # noqa: B904

    for fail in (aborted_after_interrupt, cancelled):
        with pytest.raises(Interrupted) as e, engine_errors("replica.duckdb"):
            fail()
        assert e.value.exit_code == 130 and e.value.message == "interrupted"
        assert "run the same command again" in (e.value.hint or "")


@pytest.fixture
def pg_replicas(tmp_path, cluster) -> Replicas:
    r = Replicas("postgresql", tmp_path, cluster)
    yield r
    r.close()


def test_two_syncs_at_once_into_one_postgresql_replica(published, pg_replicas: Replicas, db):
    reference = pg_replicas.new()
    assert run_sync(published, reference)[0] == 0
    target = pg_replicas.new()
    procs = [start_sync(published, target) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "error" not in err
    assert end_state(target) == end_state(reference)
    assert_no_duplicates(target)
    assert verify(target, db.standby_url).equal


def test_a_second_sync_waits_for_the_first(published, pg_replicas: Replicas):
    target = pg_replicas.new()
    with psycopg.connect(target, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [lock_key("dataset:datanommer")])
        proc = start_sync(published, target)
        assert proc.stderr is not None
        first = json.loads(proc.stderr.readline())
        assert first["level"] == "warning", first
        assert "another sync of datanommer" in first["message"] and "waiting" in first["message"]
        assert ledger(target) == {}  # nothing done while it waits
        holder.execute("SELECT pg_advisory_unlock(%s)", [lock_key("dataset:datanommer")])
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "(publication 3)" in out
    assert ledger(target)["datanommer"][3] == "ready"
