"""Benchmark: topoff backup against the shell recipe, on the same standby, same run.

    ./run bench backup [--days 30] [--per-day 50000] [--repeat 3]

Builds the datanommer-shaped database on a primary with a streaming hot standby, then
backs the standby up with:

* ``topoff backup --jobs 2`` (pg_dump -Fd -j2 in topoff's snapshot, each finished file
  streamed into tar | zstd -3 | age | sha256 | store, plus per-table counts and hashes);
* the shell recipe ``pg_dump -Fd -j2 --compress=0 -f DIR && tar -C DIR -c . | zstd -3 |
  age -r KEY > FILE`` (same compression work; no snapshot of its own, no hashes, no
  catalog).

Besides time and peak memory it samples the work directory's size while each runs: the
recipe holds the whole uncompressed dump on disk before tar starts, topoff only the files
pg_dump is still writing. Target: within 1.3x of the recipe's time, far less peak disk.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import threading
import time
from pathlib import Path

from common import WORK, Run, machine, print_table, run, start_source, topoff, yesterday


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = WORK / "backup"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    key = out / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                            text=True).stdout.strip()
    cluster = start_source(args.days, args.per_day, yesterday())
    assert cluster.standby is not None
    src = cluster.standby.url("datanommer")
    results: dict[str, list[tuple[float, float, int, int]]] = {"topoff": [], "recipe": []}
    try:
        for i in range(args.repeat):
            work = out / "work"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            with DiskWatcher(work) as w:
                s, peak = run(topoff(f"backup --quiet --source {src} --to {out / 'store'} "
                                     f"--name dump.{i} --recipient {public} --jobs 2 "
                                     f"--workdir {work}"))
            size = (out / "store" / "backups" / f"dump.{i}.tar.zst.age").stat().st_size
            results["topoff"].append((s, peak, w.peak, size))
            shutil.rmtree(work)
            work.mkdir()
            recipe = (f"pg_dump -Fd -j2 --compress=0 -d {src} -f {work / 'd'} && "
                      f"tar -C {work / 'd'} -cf - . | zstd -q -3 | age -r {public} "
                      f"> {out / f'recipe.{i}.age'}")
            with DiskWatcher(work) as w:
                s, peak = run(recipe)
            results["recipe"].append((s, peak, w.peak, (out / f"recipe.{i}.age").stat().st_size))
    finally:
        cluster.close()
    runs = []
    for tool, label in (("topoff", "topoff backup -j2"),
                        ("recipe", "pg_dump -Fd -j2 && tar | zstd -3 | age")):
        ordered = sorted(results[tool])
        s, _, _, size = ordered[len(ordered) // 2]
        r = Run(label, "full backup", s, max(x[1] for x in results[tool]), size / 1e6)
        runs.append(r)
        disk = max(x[2] for x in results[tool]) / 1e6
        print(f"# {label}: peak work-directory size {disk:.1f} MB", flush=True)
    print(f"\n{machine()}; {args.days} days x {args.per_day:,} messages; median of "
          f"{args.repeat} runs\n")
    print_table("topoff backup vs the shell recipe", runs,
                {"full backup": "pg_dump -Fd -j2 && tar | zstd -3 | age"})


if __name__ == "__main__":
    main()
