"""A hostile publication whose data file holds texts that are no value of their column's
declared type (the attacker writes the manifest too, so size and sha256 match): every
target (DuckDB, PostgreSQL, Iceberg) refuses the same file the same way, exit 6 with one
``error:`` line and its ``hint:``, and applies nothing of it. A valid value a target cannot
hold (a BC date in Iceberg) stays exit 7 (docs/exit-codes.md, docs/iceberg.md)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from support.dataset import compress, decompress, replace_data_file
from support.pg import make_config
from support.replica import ENGINES, Replicas, cli, contents, day, publish_day, publish_full
from test_iceberg_sync import catalog_file, iceberg_rows
from topoff.config import Config

TOML = 'dataset = "h"\n[tables.h]\nmethod = "append"\ncursor = "ts"\n'
COLUMNS = "id integer, ts timestamptz NOT NULL, i integer, d date, a integer[], t text, " \
          "f real, b bytea, v varchar(3)"
#: column -> a text PostgreSQL refuses for the column's type (COPY: exit 6)
HOSTILE = {
    "text-in-integer": ("i", "abc"),
    "integer-overflow": ("i", "99999999999"),
    "date-that-does-not-exist": ("d", "2023-02-30"),
    "array-that-does-not-parse": ("a", "{1,2"),
    "array-of-text-in-integers": ("a", "{1,x}"),
    "year-zero": ("d", "0000-06-15"),
    "bytea-of-odd-hex": ("b", "\\x0"),
    "longer-than-its-varchar": ("v", "abcd"),
}
TARGETS = [*ENGINES, "iceberg"]
#: Iceberg holds a varchar(n) as text of any length
LENIENT = {("longer-than-its-varchar", "iceberg")}
CASES = [(case, kind) for case in HOSTILE for kind in TARGETS if (case, kind) not in LENIENT]


def _full(db, tmp_path: Path) -> tuple[Path, Config]:
    """A published full export (one row, day 3): (its store, the export's config)."""
    db.execute(f"CREATE TABLE h ({COLUMNS})")
    db.execute(f"INSERT INTO h VALUES (1, '{day(3)} 01:00+00', 1, '2024-01-01', '{{1,2}}', "
               "'x', 1.5, '\\x00ff', 'abc')")
    db.sync()
    url = tmp_path / "published"
    cfg = make_config(db, TOML)
    publish_full(cfg, str(url))
    return url, cfg


def _hostile_day(db, url: Path, cfg: Config, column: str, text: str) -> None:
    """The day-1 partition (one row), its file then rewritten with ``text`` in ``column``."""
    db.execute(f"INSERT INTO h VALUES (2, '{day(1)} 01:00+00', 2, '2024-01-02', '{{3}}', "
               "'y', 2.5, '\\x01', 'de')")
    db.sync()
    pub = next(p.id for p in publish_day(cfg, str(url), day(1)).publications
               if day(1).isoformat() in p.id)
    doc = json.loads((url / pub / "manifest.json").read_bytes())
    good = decompress((url / pub / doc["tables"]["public.h"]["files"][0]["path"]).read_bytes())
    rows = list(csv.reader(io.StringIO(good.decode())))
    assert len(rows) == 2
    rows[1][rows[0].index(column)] = text
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    replace_data_file(url, pub, "public.h", compress(out.getvalue().encode()))


def _target(kind: str, tmp_path: Path, cluster) -> tuple[str, Replicas | None]:
    if kind == "iceberg":
        return catalog_file(tmp_path), None
    replicas = Replicas(kind, tmp_path, cluster)
    return replicas.new(), replicas


def _rows(kind: str, target: str) -> list:
    if kind == "iceberg":
        return [r[0] for r in iceberg_rows(target, "public.h")]
    return [r[0] for r in next(v for k, v in contents(target).items() if k.endswith("h"))]


@pytest.mark.parametrize(("case", "kind"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_a_text_that_is_no_value_of_its_type_is_exit_6_on_every_target(db, tmp_path,
                                                                         cluster, kind, case):
    """DuckDB said 7 "a value does not fit its DuckDB column" (or loaded ``{1,2`` as
    [1, 2]), Iceberg 7 "does not fit its Iceberg column" (a year 0 was an internal error),
    PostgreSQL 6 (an odd hex bytea was an internal error)."""
    url, cfg = _full(db, tmp_path)
    target, replicas = _target(kind, tmp_path, cluster)
    try:
        assert cli("sync", str(url), target).exit_code == 0
        assert _rows(kind, target) == [1]
        _hostile_day(db, url, cfg, *HOSTILE[case])
        out = cli("sync", str(url), target)
        assert out.exit_code == 6, (out.stdout, out.stderr)
        errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1 and "malformed" in errors[0], out.stderr
        assert "hint: " in out.stderr and "internal error" not in out.stderr
        assert _rows(kind, target) == [1]  # nothing of the partition applied
    finally:
        if replicas is not None:
            replicas.close()


@pytest.mark.parametrize(("column", "text"), [("d", "0044-03-15 BC"), ("d", "infinity"),
                                              ("a", "{{1,2},{3,4}}"), ("a", "[2:3]={1,2}")])
def test_a_valid_value_iceberg_cannot_hold_stays_exit_7(db, tmp_path, column, text):
    url, cfg = _full(db, tmp_path)
    target = catalog_file(tmp_path)
    assert cli("sync", str(url), target).exit_code == 0
    _hostile_day(db, url, cfg, column, text)
    out = cli("sync", str(url), target)
    assert out.exit_code == 7, (out.stdout, out.stderr)
    assert "does not fit its Iceberg column" in out.stderr and "hint: " in out.stderr
    assert _rows("iceberg", target) == [1]
