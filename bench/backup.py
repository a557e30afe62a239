"""Benchmark: topoff backup and topoff restore against the shell recipe, same run.

    ./run bench backup [--days 30] [--per-day 50000] [--repeat 3]

Builds the datanommer-shaped database on a primary with a streaming hot standby, then,
interleaved ``--repeat`` times (the order alternates, so that the shared machine's slow
moments spread over both):

* ``topoff backup --jobs 2`` of the standby to a local store (pg_dump -Fd -j2 in topoff's
  snapshot, each finished file streamed into tar | zstd -3 | age | sha256 | store; then,
  with the snapshot still held, per-table counts and hashes for the drill, timed apart in
  the catalog's ``phases``);
* the shell recipe ``pg_dump -Fd -j2 --compress=0 -f DIR && tar -C DIR -c . | zstd -3 |
  age -r KEY > FILE`` (same compression work; no snapshot of its own, no hashes, no
  catalog);
* ``topoff restore --jobs 2`` of that backup into an empty database on the primary
  (read and sha256 in topoff, decryption in an ``age -d`` child process, zstd and the tar
  into a work directory in topoff, then pg_restore -j2; the decode stage alone is timed by
  ``bench/restore_decode.py``);
* the recipe in reverse: ``age -d -i KEY FILE | zstd -d | tar -x -C DIR && pg_restore -j2
  -d URL DIR``.

Reported: median wall seconds; CPU seconds of the command's own processes (client) and
of the PostgreSQL server's processes while it ran (server: pg_dump's COPY, the hashes,
pg_restore's inserts and index builds); peak RSS of the largest process; output size;
the peak size of the work directory. Targets: the dump (the backup up to the stored
object) and the restore within 1.1x of the recipe; the hashes reported apart.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from common import WORK, machine, start_source, topoff, yesterday
from usage import Usage, measure, median


def dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


class DiskWatcher:
    """The largest size ``path`` reached while the block ran (sampled every 20 ms)."""

    def __init__(self, path: Path) -> None:
        self.path, self.peak, self._stop = path, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, dir_bytes(self.path))
            time.sleep(0.02)

    def __enter__(self) -> DiskWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Contender:
    def __init__(self, label: str) -> None:
        self.label = label
        self.runs: list[Usage] = []
        self.disk = 0
        self.out_mb = 0.0
        self.phases: list[dict[str, float]] = []

    def row(self, base: Contender | None) -> str:
        s = median([u.seconds for u in self.runs])
        c, sc = median([u.client_cpu for u in self.runs]), median([u.server_cpu for u in self.runs])
        if base is None:
            ratio = cratio = "1.00x"
        else:
            bs = median([u.seconds for u in base.runs])
            bc = median([u.cpu for u in base.runs])
            ratio, cratio = f"{s / bs:.2f}x", f"{median([u.cpu for u in self.runs]) / bc:.2f}x"
        peak = max(u.peak_mb for u in self.runs)
        label = self.label.replace("|", "\\|")
        out = f"{self.out_mb:.1f}" if self.out_mb else ""  # a restore writes no object
        return (f"| {label} | {s:.2f} | {ratio} | {c:.2f} | {sc:.2f} | {cratio} | "
                f"{peak:.0f} | {self.disk / 1e6:.0f} | {out} |")


HEAD = ("| tool | seconds (median) | ratio | client CPU s | server CPU s | CPU ratio | "
        "peak RSS MB | peak work dir MB | output MB |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def recreate(primary_url: str, db: str) -> str:
    with psycopg.connect(primary_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    return primary_url.rsplit("/", 1)[0] + "/" + db


def compare(src: str, primary_url: str, servers: dict[str, Path], out: Path,
            repeat: int) -> str:
    key = out / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                            text=True).stdout.strip()
    store, work = out / "store", out / "work"
    tb, rb = Contender("topoff backup -j2"), Contender("pg_dump -Fd -j2 && tar | zstd -3 | age")
    tr, rr = (Contender("topoff restore -j2"),
              Contender("age -d | zstd -d | tar -x && pg_restore -j2"))
    standby, primary = [servers["standby"]], [servers["primary"], servers["standby"]]

    def fresh_work() -> Path:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        return work

    for i in range(repeat):
        def topoff_backup(i: int = i) -> None:
            cmd = topoff(f"backup --quiet --source {src} --to {store} --name dump.{i} "
                         f"--recipient {public} --jobs 2 --workdir {fresh_work()}")
            with DiskWatcher(work) as w:
                tb.runs.append(measure(cmd, standby))
            tb.disk = max(tb.disk, w.peak)
            tb.out_mb = (store / "backups" / f"dump.{i}.tar.zst.age").stat().st_size / 1e6
            fin = json.loads((store / "catalog" / f"dump.{i}" / "finished.json").read_text())
            tb.phases.append(fin["phases"])

        def recipe_backup(i: int = i) -> None:
            d = fresh_work() / "d"
            cmd = (f"pg_dump -Fd -j2 --compress=0 -d {src} -f {d} && tar -C {d} -cf - . | "
                   f"zstd -q -3 | age -r {public} > {out / f'recipe.{i}.age'}")
            with DiskWatcher(work) as w:
                rb.runs.append(measure(cmd, standby))
            rb.disk = max(rb.disk, w.peak)
            rb.out_mb = (out / f"recipe.{i}.age").stat().st_size / 1e6

        def topoff_restore(i: int = i) -> None:
            target = recreate(primary_url, "restore_topoff")
            cmd = topoff(f"restore {store} --name dump.{i} --identity {key} --target {target} "
                         f"--jobs 2 --workdir {fresh_work()}")
            with DiskWatcher(work) as w:
                tr.runs.append(measure(cmd, primary))
            tr.disk = max(tr.disk, w.peak)

        def recipe_restore(i: int = i) -> None:
            target = recreate(primary_url, "restore_recipe")
            d = fresh_work() / "d"
            d.mkdir()
            cmd = (f"age -d -i {key} {out / f'recipe.{i}.age'} | zstd -dq | tar -x -C {d} && "
                   f"pg_restore -j2 -d {shlex.quote(target)} {d}")
            with DiskWatcher(work) as w:
                rr.runs.append(measure(cmd, primary))
            rr.disk = max(rr.disk, w.peak)

        steps = [topoff_backup, recipe_backup, topoff_restore, recipe_restore]
        if i % 2:
            steps = [recipe_backup, topoff_backup, recipe_restore, topoff_restore]
        for step in steps:
            step()
        print(f"# run {i + 1}/{repeat}: " + ", ".join(
            f"{c.label.split()[0]} {c.runs[-1].seconds:.2f}s" for c in (tb, rb, tr, rr)),
            flush=True)

    dump = median([p["dump"] for p in tb.phases])
    pg_dump = median([p.get("pg_dump", 0.0) for p in tb.phases])
    hashes = median([p["hash"] for p in tb.phases])
    recipe = median([u.seconds for u in rb.runs])
    lines = [
        "### Backup (standby to a local store)", "", HEAD, tb.row(rb), rb.row(None), "",
        f"topoff backup's phases (median, from the catalog's `phases`): the dump (pg_dump "
        f"to the stored object) {dump:.2f} s = {dump / recipe:.2f}x the recipe (of which "
        f"pg_dump until it exited {pg_dump:.2f} s); the "
        f"drill's per-table counts and hashes, after pg_dump, in its snapshot "
        f"{hashes:.2f} s.", "",
        "### Restore (local store to an empty database on the primary)", "", HEAD,
        tr.row(rr), rr.row(None), "",
        "Server CPU: the standby's processes for backups; the primary's and the standby's "
        "(which replays the restore) for restores.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = WORK / "backup"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cluster = start_source(args.days, args.per_day, yesterday())
    assert cluster.standby is not None
    try:
        text = compare(cluster.standby.url("datanommer"), cluster.primary.url("postgres"),
                       {"standby": cluster.standby.datadir, "primary": cluster.primary.datadir},
                       out, args.repeat)
    finally:
        cluster.close()
    command = " ".join(["./run bench backup", *sys.argv[1:]])
    print(f"\n{machine()}; {args.days} days x {args.per_day:,} messages; median of "
          f"{args.repeat} interleaved runs; command: {command}\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
