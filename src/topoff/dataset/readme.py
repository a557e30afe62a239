"""README.md inside a publication: how a person loads it with psql and zstd alone."""

from __future__ import annotations

from psycopg import sql

from topoff.dataset import layout
from topoff.dataset.manifest import Manifest


def _copy_line(schema: str, name: str, columns: list[str], path: str) -> str:
    cols = ", ".join(sql.Identifier(c).as_string() for c in columns)
    table = sql.Identifier(schema, name).as_string()
    copy = f"\\copy {table} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER true)"
    return f"zstd -dc {path} | psql -v ON_ERROR_STOP=1 \"$DB\" -c '{copy}'"


def full_readme(m: Manifest) -> str:
    lines = [
        f"# {m.dataset}: full export {m.publication}",
        "",
        f"A consistent snapshot of {len(m.tables)} tables taken at {m.snapshot.time} "
        f"(source PostgreSQL {m.source.get('server_version')}, "
        f"{'hot standby' if m.snapshot.in_recovery else 'primary'}, WAL position "
        f"{m.snapshot.lsn}). Written by topoff {m.tool_version}; the format is described in "
        "topoff's docs/dataset-format.md. `manifest.json` lists every file with its size, "
        "row count and sha256.",
        "",
        "## Load it with psql alone",
        "",
        "From this directory, with `DB` set to the connection URL of an empty database:",
        "",
        "```sh",
        "sha256sum -c <(jq -r '.schema_files[], .tables[].files[] | \"\\(.sha256)  \\(.path)\"' "
        "manifest.json)   # optional: check every file",
        f"psql -v ON_ERROR_STOP=1 \"$DB\" -f {layout.PRE_DATA}",
    ]
    for t in m.tables.values():
        cols = [c.name for c in t.columns]
        lines.extend(_copy_line(t.schema, t.name, cols, f.path) for f in t.files)
    lines += [
        f"psql -v ON_ERROR_STOP=1 \"$DB\" -f {layout.POST_DATA}",
        "```",
        "",
        "Pre-data creates the tables, the data files fill them, post-data adds primary keys, "
        "indexes and foreign keys last (faster than loading into indexed tables).",
        "",
        "## Keep it up to date",
        "",
        "Daily partitions under `incremental/<date>/r<revision>/` hold the rows of each UTC day. "
        "`topoff sync <this dataset's URL> <your database>` loads this export and applies them; "
        "see topoff's docs/commands/sync.md.",
        "",
        "## Tables",
        "",
        "| table | method | cursor | rows | files |",
        "|---|---|---|---:|---:|",
    ]
    for t in m.tables.values():
        lines.append(f"| {t.qualified} | {t.method} | {t.cursor or ''} | {t.rows} | "
                     f"{len(t.files)} |")
    return "\n".join(lines) + "\n"


def incremental_readme(m: Manifest) -> str:
    assert m.window is not None
    lines = [
        f"# {m.dataset}: rows of {m.window.label}, revision {m.revision}",
        "",
        f"Rows whose cursor falls in [{m.window.start.isoformat()}, {m.window.end.isoformat()}) "
        f"as of the snapshot taken at {m.snapshot.time}. A later revision of the same window "
        "replaces this one (rows that committed late). Apply with `topoff sync`, or by hand: "
        "for an append table delete the window's rows and COPY these in; for an upsert table "
        "upsert on the primary key; a snapshot table replaces the whole table.",
        "",
        "| table | method | rows | files |",
        "|---|---|---:|---:|",
    ]
    for t in m.tables.values():
        state = "unchanged" if t.unchanged_since else str(len(t.files))
        lines.append(f"| {t.qualified} | {t.method} | {t.rows} | {state} |")
    return "\n".join(lines) + "\n"
