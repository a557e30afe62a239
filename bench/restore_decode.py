"""Benchmark: the decode stage of a restore alone, topoff against the shell recipe.

    ./run bench restore_decode [--object FILE --identity KEY] [--repeat 5]

The decode stage is everything a restore does before pg_restore: read the object, sha256
it, decrypt it, decompress it and write the tar's files into a directory. Compared, on
the same object, interleaved ``--repeat`` times (the order alternates):

* topoff's ``restore.fetch`` (the stage as ``topoff restore`` runs it: the decrypting
  child is the ``age`` program found on PATH);
* the same with ``age`` absent from PATH (the decrypting child is pyrage in Python);
* ``age -d -i KEY FILE | zstd -d | tar -x -C DIR``.

By default the object and key are those ``./run bench backup`` left under
``bench/work/backup`` (run it first). Reported: median wall seconds of the whole command
(topoff's includes Python's start-up and imports) and of topoff's stage alone (timed
inside), CPU seconds of all the command's processes, and peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import WORK
from usage import Usage, measure, median

HERE = Path(__file__).resolve().parent


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(1 << 20):
            sha.update(data)
    return sha.hexdigest()


def inner(obj: Path, key: Path, dest: Path, sha256: str) -> None:
    """One run of topoff's decode stage (in a fresh process, as a restore is)."""
    from topoff.backup import restore
    from topoff.backup.catalog import Entry
    from topoff.backup.keys import load_identities
    from topoff.stores.local import LocalStore

    name = obj.name.removesuffix(".tar.zst.age")
    store = LocalStore(str(obj.parent.parent))
    entry = Entry(name, "finished", {}, {"size": obj.stat().st_size, "sha256": sha256})
    identities = load_identities(str(key))
    started = time.monotonic()
    files = restore.fetch(store, entry, identities, dest)
    print(f"stage {time.monotonic() - started:.3f} files {files}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--object", type=Path,
                    default=WORK / "backup" / "store" / "backups" / "dump.0.tar.zst.age")
    ap.add_argument("--identity", type=Path, default=WORK / "backup" / "key.txt")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--inner", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        obj, key, dest, sha256 = args.inner
        inner(Path(obj), Path(key), Path(dest), sha256)
        return
    obj, key = args.object.resolve(), args.identity.resolve()
    if obj.parent.name != "backups":
        raise SystemExit(f"{obj}: expected a store's backups/NAME.tar.zst.age")
    no_age = Path(tempfile.mkdtemp(prefix="topoff-no-age-"))
    work = WORK / "restore_decode"
    sha256 = sha256_of(obj)
    py = f"PYTHONPATH={HERE.parent / 'src'} {sys.executable} {Path(__file__).resolve()}"
    fetch_args = f"--inner {obj} {key} {work / 'd'} {sha256}"
    contenders = {
        "topoff fetch (age child)": f"{py} {fetch_args}",
        "topoff fetch (pyrage child)": f"PATH={no_age} {py} {fetch_args}",
        "age -d | zstd -d | tar -x": f"age -d -i {key} {obj} | zstd -dq | tar -x -C {work / 'd'}",
    }
    runs: dict[str, list[Usage]] = {label: [] for label in contenders}
    stages: dict[str, list[float]] = {label: [] for label in contenders}
    try:
        for i in range(args.repeat):
            order = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for label in order:
                shutil.rmtree(work, ignore_errors=True)
                (work / "d").mkdir(parents=True)
                out = work / "out.txt"
                runs[label].append(measure(f"{contenders[label]} > {out}", []))
                text = out.read_text().split()
                if text[:1] == ["stage"]:
                    stages[label].append(float(text[1]))
            print(f"# run {i + 1}/{args.repeat}: " + ", ".join(
                f"{label} {runs[label][-1].seconds:.2f}s" for label in contenders), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.rmdir(no_age)
    base = median([u.seconds for u in runs["age -d | zstd -d | tar -x"]])
    print(f"\n{obj.stat().st_size / 1e6:.1f} MB object; median of {args.repeat} interleaved "
          f"runs; command: {' '.join(['./run bench restore_decode', *sys.argv[1:]])}\n")
    print("| decode stage | wall s (command) | ratio | stage s (inside) | CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, us in runs.items():
        wall = median([u.seconds for u in us])
        stage = f"{median(stages[label]):.2f}" if stages[label] else ""
        cpu = median([u.client_cpu for u in us])
        peak = max(u.peak_mb for u in us)
        shown = label.replace("|", "\\|")
        print(f"| {shown} | {wall:.2f} | {wall / base:.2f}x | {stage} | "
              f"{cpu:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
