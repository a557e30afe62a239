"""Write docs/commands/*.md: each command's help, an example, and the example's real output.

    .venv/bin/python docs/generate.py     (after ./run test or ./run demo made .venv)

Runs the examples for real, on a throwaway primary + standby with a small datanommer-shaped
database, and pastes what they print. Temp paths and ports in the output are replaced by
the readable names used in the examples (/srv/dumps/datanommer, standby.example.org, ...).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from topoff.demo import sample
from topoff.demo.cluster import ThrowawayCluster

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "commands"

PAGES: list[tuple[str, str, str, list[str]]] = [
    ("init", "topoff init",
     "Reads the source's catalog (a standby unless `--allow-primary`, read-only) and writes "
     "a commented config file: every table with a suggested method and cursor, its primary "
     "key, and every column classified. Review the classification before publishing. A "
     "MariaDB or MySQL source (`mariadb://`, `mysql://`) is read the same way, a replica "
     "unless `--allow-primary`; `--schema` names its databases "
     "([mariadb.md](../mariadb.md#writing-and-checking-a-config)).",
     ["topoff init --source {standby} --output new.toml",
      "cat new.toml",
      "topoff init --source {standby} --output new.toml",
      "topoff init --source {primary} --output primary.toml"]),
    ("check-config", "topoff check-config",
     "Checks a config file against the source in one read-only snapshot and shows what an "
     "export would read; writes nothing anywhere. Exit 0 when valid, 2 with one `error:` "
     "and one `hint:` line per problem otherwise.",
     ["topoff check-config --config new.toml",
      "sed -e '/^agent_name/d' -e 's/^cursor = \"timestamp\"/cursor = \"timestmp\"/' "
      "datanommer.toml > broken.toml",
      "topoff check-config --config broken.toml"]),
    ("export-full", "topoff export full",
     "Exports every configured table from one snapshot of the standby as a new full export: "
     "schema split into pre-data and post-data, zstd CSV data files in chunks, a manifest "
     "with every file's size, rows and sha256, and a README telling how to load it with psql "
     "alone. Big tables are read as several page ranges in parallel (`--jobs`). Without "
     "`--config`, every table of every non-system schema (or of `--schema`) is exported with "
     "all its columns, and a warning says so; `export incremental` needs a config file (see "
     "[init](init.md)).",
     ["topoff export full --config datanommer.toml --to /srv/dumps/datanommer",
      "topoff export full --config datanommer.toml --source {primary} --to /srv/dumps/datanommer",
      "topoff export full --config datanommer.toml --to /srv/dumps/datanommer --log-format json "
      "--quiet",
      "topoff export full --source {standby} --to everything --dry-run",
      "topoff export full --source {standby} --to everything"]),
    ("export-incremental", "topoff export incremental",
     "Exports one UTC day (yesterday by default, `--date` to choose, `--since/--until` for "
     "another window) as a partition with the date in its name, and re-checks the days "
     "before it (`--lookback-days`, default 3) for rows that committed late: a changed day "
     "gets a new revision. Running a day again publishes nothing when nothing changed. "
     "`--keep-days` prunes afterwards, so one cron line does both.",
     ["topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer "
      "--date {day_before}",
      "topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer",
      "topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer",
      "# rows for an already published day commit late on the primary; the next run sees them:",
      "@late",
      "topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer "
      "--keep-days 15",
      "topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer "
      "--date {today}",
      "topoff export incremental --config datanommer.toml --to /srv/dumps/datanommer "
      "--date 2026-13-01"]),
    ("prune", "topoff prune",
     "Deletes the incremental days before the last `--keep-days` UTC days and full exports "
     "beyond the newest `--keep-full`, never the newest full export nor anything published "
     "after it. index.json is rewritten first, then the files are deleted.",
     ["topoff prune --to /srv/dumps/datanommer --keep-days 2",
      "topoff prune --to /srv/dumps/datanommer --keep-days 4 --dry-run",
      "topoff prune --to /srv/dumps/datanommer --keep-days 4"]),
    ("list", "topoff list",
     "Lists the publications of a dataset, from a directory, an http(s) URL or s3://. The "
     "snapshot times are UTC, whatever the host's `TZ`.",
     ["topoff list /srv/dumps/datanommer", "topoff list /srv/dumps"]),
    ("sync", "topoff sync",
     "Builds a replica from the newest full export, then applies every newer partition, "
     "each in one transaction with its ledger row; later runs download and apply only what "
     "is new. Every file's sha256 is checked before it is applied.",
     ["topoff sync /srv/dumps/datanommer replica.duckdb",
      "topoff sync /srv/dumps/datanommer replica.duckdb",
      "topoff sync /srv/dumps/datanommer {replica_pg}",
      "topoff sync /srv/dumps/datanommer small.duckdb --tables messages,users --since "
      "{day_before}"]),
    ("status", "topoff status",
     "Shows what a replica has applied, how far behind its dataset it is, and the newest "
     "data per table (`--json` for scripts, `--offline` without reading the dataset). Times "
     "with a zone are printed in UTC (`+00:00`) whatever the target and the host's `TZ`; a "
     "`timestamp without time zone` cursor's newest value as it is stored.",
     ["topoff status replica.duckdb", "topoff status replica.duckdb --offline",
      "topoff status replica.duckdb --json", "topoff status no-such.duckdb"]),
    ("verify", "topoff verify",
     "Compares each table of a replica with the source database: row count and an "
     "order-independent content hash, per UTC day for tables with a cursor. Exits 1 when "
     "they differ.",
     ["topoff verify replica.duckdb --against {standby}",
      "# a row of an old day is deleted on the primary:",
      "@delete",
      "topoff verify replica.duckdb --against {standby}"]),
    ("demo", "topoff demo",
     "The README's main command (`./run demo` installs what is missing, then runs it): the "
     "whole story on a throwaway PostgreSQL primary and streaming standby, with a "
     "datanommer-shaped database and a DuckDB replica, removed at the end (`--keep DIR` "
     "copies the dataset and the replica out first).",
     ["topoff demo --per-day 20000"]),
]


def _run(cmd: str, cwd: Path, env: dict[str, str]) -> str:
    argv = ["bash", "-c", cmd.replace("topoff ", f"{sys.executable} -m topoff ", 1)]
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    out = (res.stderr + res.stdout).rstrip()  # the log comes first, as on a terminal
    if res.returncode:
        out += f"\n(exit status {res.returncode})"
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date()
    work = Path(tempfile.mkdtemp(prefix="topoff-docs-"))
    cluster = ThrowawayCluster().start()
    try:
        assert cluster.standby is not None
        cluster.create_database("datanommer")
        cluster.create_database("replica")
        with cluster.primary.connect("datanommer") as conn:
            sample.fill(conn, days=5, per_day=2000, last_day=today - timedelta(days=2))
        cluster.wait_replay()
        standby = cluster.standby.url("datanommer")
        config = sample.example_config().replace(
            'url = "postgresql://datanommer_ro@db-standby.example.org/datanommer"',
            f'url = "{standby}"')
        (work / "datanommer.toml").write_text(config)
        dumps = work / "srv" / "dumps" / "datanommer"
        values = {"primary": cluster.primary.url("datanommer"), "standby": standby,
                  "replica_pg": cluster.primary.url("replica"), "today": today.isoformat(),
                  "day_before": (today - timedelta(days=2)).isoformat()}
        shown = {cluster.primary.url("datanommer"): "postgresql://postgres@db-primary:5432/datanommer",
                 standby: "postgresql://reader@standby.example.org:5432/datanommer",
                 cluster.primary.url("replica"): "postgresql://me@localhost:5432/replica",
                 str(dumps): "/srv/dumps/datanommer", str(dumps.parent): "/srv/dumps",
                 str(work) + "/": ""}
        env = {**os.environ, "COLUMNS": "100", "TERM": "dumb"}
        for name, title, intro, commands in PAGES:
            help_text = _run(f"topoff {title.removeprefix('topoff ')} --help", work, env)
            body = [f"# {title}", "", intro, "", "```", help_text, "```", "", "## Examples", ""]
            for cmd in commands:
                if cmd.startswith("#"):
                    body += [cmd.removeprefix("# "), ""]
                    continue
                if cmd == "@late":
                    with cluster.primary.connect("datanommer") as conn:
                        sample.add_messages(conn, today - timedelta(days=3), 12, tag="late")
                    cluster.wait_replay()
                    continue
                if cmd == "@delete":
                    with cluster.primary.connect("datanommer") as conn:
                        conn.execute("DELETE FROM packages_messages WHERE msg_id = "
                                     "(SELECT min(msg_id) FROM packages_messages)")
                    cluster.wait_replay()
                    continue
                real = cmd.format(**values)
                real = real.replace("/srv/dumps/datanommer", str(dumps)) \
                    if "/srv/dumps/datanommer" in real else \
                    real.replace("/srv/dumps", str(dumps.parent))
                out = _run(real, work, env)
                for raw, nice in shown.items():
                    out = out.replace(raw, nice)
                out = re.sub(r"127\.0\.0\.1:\d+", "localhost:5432", out)
                pretty = {k: shown.get(v, v) for k, v in values.items()}
                body += ["```console", f"$ {cmd.format(**pretty)}", out, "```", ""]
            (OUT / f"{name}.md").write_text("\n".join(body).rstrip() + "\n")
            print(f"wrote docs/commands/{name}.md")
    finally:
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)  # the examples' dataset, replicas, configs


if __name__ == "__main__":
    main()
