"""A hostile publication's texts read as PostgreSQL's input functions read them, on both
SQL targets: a text PostgreSQL refuses for its column's type stops the sync with exit 6
(one ``error:`` line naming the table and, for DuckDB, the column; nothing of the
partition applied), and a text PostgreSQL accepts in another spelling than its own
(``yes`` for true, `` 1`` for 1) is loaded as the value PostgreSQL reads, which ``verify``
against the source holding that value confirms. DuckDB's casts alone read ``1.5`` as the
integer 2, ``0x10`` as 16, ``1e39`` as a real infinity, ``abcd`` into a varchar(3), and
refused ``yes``, ``t `` and ``{ t }``; PostgreSQL's offset beyond ±15:59 was an internal
error. (A json text PostgreSQL refuses, or a NUL, is a MariaDB source's value DuckDB keeps:
tests/test_mariadb_edges.py.)"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from support.dataset import compress, decompress, replace_data_file
from support.pg import make_config
from support.replica import ENGINES, Replicas, cli, contents, day, publish_day, publish_full
from topoff.config import Config

TOML = 'dataset = "h"\n[tables.h]\nmethod = "append"\ncursor = "ts"\n'
COLUMNS = {
    "i2": ("smallint", "1"), "i4": ("integer", "1"), "i8": ("bigint", "1"), "o": ("oid", "1"),
    "f4": ("real", "1.5"), "f8": ("double precision", "1.5"), "n": ("numeric(5,2)", "1.50"),
    "nn": ("numeric", "1.5"), "bo": ("boolean", "true"), "d": ("date", "2024-01-02"),
    "tm": ("time", "10:00"), "tz": ("timetz", "10:00+00"),
    "tsp": ("timestamp", "2024-01-02 10:00"), "tst": ("timestamptz", "2024-01-02 10:00+00"),
    "by": ("bytea", "\\x01"), "j": ("json", '{"a": 1}'), "jb": ("jsonb", '{"a": 1}'),
    "ai": ("integer[]", "{1,2}"), "at": ("text[]", "{a,b}"), "ab": ("boolean[]", "{t}"),
    "v": ("varchar(3)", "ab"), "c": ("char(3)", "ab"), "ch": ('"char"', "a"), "tx": ("text", "x"),
}
#: (column, text): PostgreSQL's input function refuses it (COPY: exit 6)
REFUSED = [
    ("f4", "1e39"), ("f4", "-1e39"), ("f4", "1e-50"), ("f8", "1e309"), ("f8", "1e-400"),
    ("f8", "1_000"), ("f4", "1x"), ("i4", "1.0"), ("i4", "1.5"), ("i4", "0x10"),
    ("i4", "1_000"), ("i4", "1e2"), ("i2", "32768"), ("i8", "9223372036854775808"),
    ("o", "4294967296"), ("o", "0x10"), ("n", "1234.5"), ("nn", "abc"), ("nn", "1_000"),
    ("d", "2024-02-30"), ("d", "0000-01-01"), ("d", "5874898-01-01"), ("d", "4714-11-23 BC"),
    ("tm", "24:00:01"), ("tsp", "2024-01-01 00:00:00 XYZ"),
    ("tst", "2024-01-01 00:00:00+16"), ("by", "\\x0"), ("by", "\\xzz"), ("ai", "{1.0}"),
    ("ai", "{1,2"), ("ab", "{o}"), ("bo", "yes please"), ("bo", "o"), ("v", "abcd"),
    ("c", "abcd"),
]
#: (column, text PostgreSQL accepts, the value it reads, as the source holds it)
ACCEPTED = [
    ("f4", "Infinity", "Infinity"), ("f8", " 1 ", "1"), ("f8", "-nan", "NaN"),
    ("f8", "1e308", "1e308"), ("i4", "+1", "1"), ("i4", " 007 ", "7"),
    ("o", "-1", "4294967295"), ("bo", "yes", "true"), ("bo", "t ", "true"),
    ("bo", "OFF", "false"), ("bo", "1", "true"), ("nn", " 01.50 ", "1.50"),
    ("nn", "-0", "0"),
    ("tst", "2024-01-01 02:00:00+02", "2024-01-01 00:00+00"),
    ("tst", "2024-01-01T00:00:00Z", "2024-01-01 00:00+00"),
    ("tsp", "2024-01-01 00:00:00+05", "2024-01-01 00:00"), ("by", "\\x00 ff", "\\x00ff"),
    ("ai", "{ 1 , 2 }", "{1,2}"), ("ai", "{null}", "{NULL}"), ("ai", "{ }", "{}"),
    ("at", '{ a , "b c" }', '{a,"b c"}'), ("ab", "{yes,off}", "{t,f}"),
    ("v", "abc  ", "abc"), ("c", "ab", "ab"), ("ch", "ab", "a"),
]


def _insert(db, k: int, ts: str, column: str | None = None, value: str | None = None) -> None:
    """Row ``k``: the source's ``value`` in ``column``, the defaults elsewhere."""
    names = list(COLUMNS)
    db.execute(f"INSERT INTO h (id, ts, {', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}) "
               f"VALUES (%s, %s, {', '.join(['%s'] * len(names))})",
               [k, ts, *[value if n == column else d for n, (_, d) in COLUMNS.items()]])


def _full(db, tmp_path: Path) -> tuple[Path, Config]:
    """A published full export holding row 1: (its store, the export's config)."""
    db.execute("CREATE TABLE h (id integer, ts timestamptz NOT NULL, "
               + ", ".join(f'"{n}" {t}' for n, (t, _) in COLUMNS.items()) + ")")
    _insert(db, 1, f"{day(3)} 01:00+00")
    db.sync()
    url = tmp_path / "published"
    cfg = make_config(db, TOML)
    publish_full(cfg, str(url))
    return url, cfg


def _day(db, url: Path, cfg: Config, rows: list[tuple[str, str]]) -> str:
    """A day partition holding rows 2... (one per ``rows``: column, the source's value)."""
    for k, (column, value) in enumerate(rows, start=2):
        _insert(db, k, f"{day(1)} 01:00+00", column, value)
    db.sync()
    return next(p.id for p in publish_day(cfg, str(url), day(1)).publications
                if day(1).isoformat() in p.id)


def _rewrite(url: Path, pub: str, texts: dict[int, tuple[str, str]]) -> None:
    """The partition's file with row id k's ``column`` holding ``text`` (texts: k -> ...)."""
    doc = json.loads((url / pub / "manifest.json").read_bytes())
    path = url / pub / doc["tables"]["public.h"]["files"][0]["path"]
    if not (url / pub / "good.csv").exists():
        (url / pub / "good.csv").write_bytes(decompress(path.read_bytes()))
    rows = list(csv.reader(io.StringIO((url / pub / "good.csv").read_text(), newline="")))
    for row in rows[1:]:
        if int(row[0]) in texts:
            column, text = texts[int(row[0])]
            row[rows[0].index(column)] = text
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    replace_data_file(url, pub, "public.h", compress(out.getvalue().encode()))


def _ids(target: str) -> list[int]:
    return sorted(r[0] for r in next(v for k, v in contents(target).items()
                                     if k.endswith("h")))


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k == "postgresql"
                                  else k for k in ENGINES])  # PostgreSQL's COPY refuses them
def test_a_text_postgresql_refuses_stops_the_sync_on_both_targets(db, tmp_path, cluster, kind):
    url, cfg = _full(db, tmp_path)
    replicas = Replicas(kind, tmp_path, cluster)
    try:
        target = replicas.new()
        assert cli("sync", str(url), target).exit_code == 0
        pub = _day(db, url, cfg, [("i4", "1")])
        wrong = []
        for column, text in REFUSED:
            _rewrite(url, pub, {2: (column, text)})
            out = cli("sync", str(url), target)
            errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
            # DuckDB names the table and the column, PostgreSQL the table (and the text)
            line = errors[0] if errors else ""
            named = ("public.h" in line and repr(column) in line) if kind == "duckdb" \
                else " h " in line
            if out.exit_code != 6 or len(errors) != 1 or "malformed" not in errors[0] \
                    or not named or "hint: " not in out.stderr or _ids(target) != [1]:
                wrong.append((column, text, out.exit_code, errors, _ids(target)))
        assert not wrong, "\n".join(map(repr, wrong))
    finally:
        replicas.close()


@pytest.mark.parametrize("kind", ENGINES)
def test_a_text_postgresql_accepts_loads_the_value_it_reads(db, tmp_path, cluster, kind):
    url, cfg = _full(db, tmp_path)
    pub = _day(db, url, cfg, [(c, v) for c, _, v in ACCEPTED])
    _rewrite(url, pub, {k: (c, t) for k, (c, t, _) in enumerate(ACCEPTED, start=2)})
    replicas = Replicas(kind, tmp_path, cluster)
    try:
        target = replicas.new()
        out = cli("sync", str(url), target)
        assert out.exit_code == 0, out.stderr
        assert _ids(target) == list(range(1, len(ACCEPTED) + 2))
        out = cli("verify", target, "--against", db.standby_url)
        assert out.exit_code == 0, (out.stdout, out.stderr)
    finally:
        replicas.close()
