"""Benchmark: the Iceberg target against the DuckDB target and against pyarrow writing Parquet.

    ./run bench iceberg [--days 30] [--per-day 50000] [--new-day 50000] [--repeat 3]

A datanommer-shaped source (PostgreSQL primary + streaming standby, bench/common.py) holds
days 1..N-1; topoff publishes a full export and the nightly partition of day N-1 into a
local store. Then, side by side:

* first build from that dataset: ``topoff sync DATASET iceberg:catalog.toml`` (SQL catalog
  on SQLite, warehouse in a local directory, docs/iceberg.md) against ``topoff sync DATASET
  replica.duckdb`` and against pyarrow alone reading the same ``.csv.zst`` files
  (``pyarrow.csv`` in batches, types inferred) and writing one Parquet file per table with
  ``pyarrow.parquet.ParquetWriter`` (zstd, the codec pyiceberg writes by default, at its
  default level): no checks, no commits, no partitions;
* top-off of day N (written on the primary, exported as one incremental partition): the
  Iceberg target against the DuckDB target, each from a copy of the built replica.

Each command runs ``--repeat`` times, interleaved; the median is shown. Targets (issue 10):
the one-day top-off within 2x of the DuckDB target, the first build no slower than pyarrow
writing Parquet directly.

``python bench/iceberg.py --pyarrow-write SRC DST`` is the pyarrow contender by itself.
``--before SRC`` adds the Iceberg target of another checkout's ``src`` (e.g. the previous
commit's) to both tasks: a before/after comparison in the same run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from common import (
    CONFIG,
    WORK,
    dir_mb,
    machine,
    median_runs,
    print_table,
    run,
    start_source,
    topoff,
    yesterday,
)


def pyarrow_write(src: Path, dst: Path) -> None:
    """Every data file under ``src`` into one Parquet file per table under ``dst``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    by_table: dict[str, list[Path]] = {}
    for f in sorted(src.rglob("*.csv.zst")):
        # data/<schema>.<table>[.<day>].<n>.csv.zst
        table = re.sub(r"(\.\d{4}-\d{2}-\d{2})?\.\d+\.csv\.zst$", "", f.name)
        by_table.setdefault(table, []).append(f)
    dst.mkdir(parents=True, exist_ok=True)
    for table, files in by_table.items():
        writer = None
        schema = None
        for f in files:
            with pa.input_stream(str(f), compression="zstd") as stream:
                convert = pacsv.ConvertOptions(
                    column_types=schema, strings_can_be_null=True) if schema is not None \
                    else pacsv.ConvertOptions(strings_can_be_null=True)
                reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(
                    block_size=16 << 20), convert_options=convert)
                for batch in reader:
                    if writer is None:
                        schema = batch.schema
                        writer = pq.ParquetWriter(str(dst / f"{table}.parquet"), schema,
                                                  compression="zstd")
                    writer.write_batch(batch.cast(schema) if batch.schema != schema
                                       else batch)
        if writer is not None:
            writer.close()


def catalog_file(root: Path) -> Path:
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    cat = root / "catalog.toml"
    cat.write_text(f'type = "sql"\nuri = "sqlite:///{root / "catalog.db"}"\n'
                   f'warehouse = "{root / "warehouse"}"\nnamespace = "datanommer"\n')
    return cat


def reset(path: Path, like: Path | None = None,  # type: ignore[no-untyped-def]
          catalog: bool = False):
    """A callable that empties ``path`` (a file or directory) or restores ``like`` there;
    ``catalog``: then writes a new catalog file in it (an empty Iceberg replica)."""
    def prepare() -> None:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
            Path(str(path) + ".wal").unlink(missing_ok=True)
        if like is not None:
            if like.is_dir():
                shutil.copytree(like, path)
            else:
                shutil.copy2(like, path)
        if catalog:
            catalog_file(path)
    return prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=50000)
    ap.add_argument("--new-day", type=int, default=None,
                    help="messages in the day added last [default: --per-day]")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", metavar="SRC",
                    help="also time the Iceberg target of this checkout's src directory")
    ap.add_argument("--pyarrow-write", nargs=2, metavar=("SRC", "DST"),
                    help="only write SRC's data files as Parquet under DST (a contender)")
    args = ap.parse_args()
    if args.pyarrow_write:
        pyarrow_write(Path(args.pyarrow_write[0]), Path(args.pyarrow_write[1]))
        return
    from topoff.demo import sample

    new_rows = args.new_day or args.per_day
    new_day = yesterday()
    source = start_source(args.days - 1, args.per_day, new_day - timedelta(days=1))
    assert source.standby is not None
    out = WORK / "iceberg"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "bench.toml").write_text(CONFIG)
    src = source.standby.url("datanommer")
    cfg = f"--config {out / 'bench.toml'} --source {src} --quiet"
    published = out / "published"
    ice, duck, arrow = out / "lake", out / "replica.duckdb", out / "parquet"
    me = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))}"
    try:
        run(topoff(f"export full {cfg} --to {published}"))
        run(topoff(f"export incremental {cfg} --to {published} --date "
                   f"{new_day - timedelta(days=1)}"))
        size = dir_mb(published)
        print(f"# dataset: {size:.0f} MB", flush=True)
        build = f"first build ({args.days - 1} days)"
        runs = median_runs([
            ("topoff sync -> iceberg", build,
             topoff(f"sync {published} iceberg:{ice / 'catalog.toml'} --quiet"),
             reset(ice, catalog=True)),
            ("topoff sync -> duckdb", build, topoff(f"sync {published} {duck} --quiet"),
             reset(duck)),
            ("pyarrow csv -> ParquetWriter (zstd)", build,
             f"{me} --pyarrow-write {published} {arrow}", reset(arrow)),
        ] + ([("topoff sync -> iceberg (before)", build,
                topoff(f"sync {published} iceberg:{ice / 'catalog.toml'} --quiet",
                       args.before), reset(ice, catalog=True))] if args.before else []),
            args.repeat)
        runs[0].out_mb = dir_mb(ice)
        runs[1].out_mb = duck.stat().st_size / 1e6
        runs[2].out_mb = dir_mb(arrow)
        # the built replicas, kept as they are to top off copies of them
        ice_base, duck_base = out / "lake-built", out / "built.duckdb"
        shutil.copytree(ice, ice_base)
        shutil.copy2(duck, duck_base)

        with source.primary.connect("datanommer") as conn:
            sample.add_messages(conn, new_day, new_rows)
        source.wait_replay(timeout=600)
        run(topoff(f"export incremental {cfg} --to {published} --date {new_day}"))
        day_mb = dir_mb(published / "incremental" / new_day.isoformat())
        task = f"add day {args.days} ({new_rows // 1000}k messages)"
        day = median_runs([
            ("topoff sync -> iceberg", task,
             topoff(f"sync {published} iceberg:{ice / 'catalog.toml'} --quiet"),
             reset(ice, ice_base)),
            ("topoff sync -> duckdb", task, topoff(f"sync {published} {duck} --quiet"),
             reset(duck, duck_base)),
        ] + ([("topoff sync -> iceberg (before)", task,
               topoff(f"sync {published} iceberg:{ice / 'catalog.toml'} --quiet",
                      args.before), reset(ice, ice_base))] if args.before else []),
            args.repeat)
        for r in day:
            r.out_mb = day_mb
        runs += day
    finally:
        source.close()
    print(f"\n{machine()}; {args.days - 1} days x {args.per_day:,} messages, then one of "
          f"{new_rows:,}; dataset {size:.0f} MB; median of {args.repeat} runs; output MB: "
          "the replica (first build), the day's files (top-off)\n")
    print_table("Iceberg target vs DuckDB target and pyarrow writing Parquet", runs,
                {build: "pyarrow csv -> ParquetWriter (zstd)", task: "topoff sync -> duckdb"})


if __name__ == "__main__":
    main()
