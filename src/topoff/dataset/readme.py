"""README.md inside a publication: how a person loads it with sh, zstd, awk and psql alone."""

from __future__ import annotations

import re
import shlex

from topoff.dataset import layout
from topoff.dataset.manifest import Manifest

PSQL = 'psql -X -q -v ON_ERROR_STOP=1 -d "${DB-}"'

#: COPY's CSV (header first) -> COPY's text format, without the header. psql 15 (and older) ends
#: any COPY FROM STDIN (and \copy, even from a file or program) at a line that is exactly
#: "\." -- which a CSV value with a line break can hold; in text format every backslash is
#: escaped, so no data line is ever "\.". Linear time, constant memory, POSIX awk (mawk,
#: gawk). A file that ends inside a value makes the COPY fail.
CSV2COPY = r"""
function put(s) { if (hdr) printf "%s", s }
function esc(s, a, n, i, b, m, j, c, l, h) {
    n = split(s, a, /\\/)
    for (i = 1; i <= n; i++) {
        if (i > 1) put("\\\\")
        m = split(a[i], b, /\t/)
        for (j = 1; j <= m; j++) {
            if (j > 1) put("\\t")
            l = split(b[j], c, /\r/)
            for (h = 1; h <= l; h++) { if (h > 1) put("\\r"); put(c[h]) }
        }
    }
}
function begin_field() { infield = 1; if (nf++) put("\t"); q = 0; any = 0 }
function end_field() { if (!q && !any) put("\\N"); infield = 0 }
{
    n = split($0, p, /"/)
    if (n == 0) { n = 1; p[1] = "" }
    if (inq) put("\\n")
    for (k = 1; k <= n; k++) {
        if (inq) {
            esc(p[k])
            if (k == n) break
            if (p[k + 1] == "" && k + 1 < n) { put("\""); k++; continue }
            inq = 0; continue
        }
        m = split(p[k], f, /,/)
        if (m == 0) { m = 1; f[1] = "" }
        for (j = 1; j <= m; j++) {
            if (j > 1) end_field()
            if (!infield) begin_field()
            if (f[j] != "") { esc(f[j]); any = 1 }
        }
        if (k < n) { inq = 1; q = 1; continue }
        end_field()
        if (hdr) printf "\n"; else { hdr = 1; cols = nf }
        nf = 0
    }
}
END {
    if (inq || !hdr) {
        print "error: the data file ends inside a value (truncated?)" > "/dev/stderr"
        for (i = 0; i <= cols; i++) printf "\t"
        printf "\n"
        exit 1
    }
}
"""

assert "'" not in CSV2COPY  # it is single-quoted in the script

_SAFE_PATH = re.compile(r"[A-Za-z0-9_.%/-]+")


def _path(path: str) -> str:
    # layout builds every name from [A-Za-z0-9_.%-]; anything else would be a bug there
    if not _SAFE_PATH.fullmatch(path) or ".." in path.split("/"):
        raise ValueError(f"unexpected file name in a manifest: {path!r}")
    return path


def _ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted (as psycopg's ``sql.Identifier`` writes it).
    Written here so that an export from MariaDB, which writes this README too, does not
    load the PostgreSQL driver (a sixth of a small export's run time)."""
    if "\0" in name:
        raise ValueError("an identifier holds a NUL character")
    return '"' + name.replace('"', '""') + '"'


def _copy_line(schema: str, name: str, columns: list[str], path: str) -> str:
    copy = (f"COPY {_ident(schema)}.{_ident(name)} ({', '.join(map(_ident, columns))}) "
            "FROM STDIN WITH (ENCODING 'UTF8')")
    return (f"zstd -dc {_path(path)} | awk \"$csv2copy\" | "
            f"{PSQL} -c {shlex.quote(copy)}")


def load_script(m: Manifest) -> list[str]:
    """The sh lines that check and load a full export into the database psql reaches."""
    lines = [
        "set -e",
        "# every file against the sha256 that manifest.json lists",
        "sha256sum -c <<'EOF'",
        *(f"{f.sha256}  {_path(f.path)}" for f in m.files()),
        "EOF",
        f"{PSQL} -f {layout.PRE_DATA}",
        "# CSV -> COPY text format (psql ends a COPY at a line \\. even inside a CSV value)",
        f"csv2copy='{CSV2COPY.strip()}'",
    ]
    for t in m.tables.values():
        cols = [c.name for c in t.columns]
        lines.extend(_copy_line(t.schema, t.name, cols, f.path) for f in t.files)
    lines.append(f"{PSQL} -f {layout.POST_DATA}")
    return lines


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
        "Needs `sh`, `sha256sum`, `zstd`, `awk` and `psql`. From this directory, with the "
        "`PG*` variables (`PGHOST`, `PGDATABASE`, ...) or `DB` (a connection URL) pointing at "
        "an empty database, run these lines with `sh` (save them as `load.sh`, then "
        "`sh load.sh`):",
        "",
        "```sh",
        *load_script(m),
        "```",
        "",
        "The checksums stop everything before a damaged file is read. Pre-data creates the "
        "schemas, the types the tables use (enums, composites, ranges, domains) and the tables; "
        "the data files fill them; post-data adds primary keys, indexes and foreign keys last "
        "(faster than loading into indexed tables). Each file is one COPY: a failed one stops "
        "the script with the rows loaded so far, so start again from an empty database.",
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
