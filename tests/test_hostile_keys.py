"""A hostile publication whose rows break the key its manifest declares (two rows of one
key; the attacker writes the manifest too, so size and sha256 match): a PostgreSQL replica
refuses it as the malformed dataset it is, exit 6 (its unique index or its upsert meets the
key twice; it was an internal error). A DuckDB replica keeps no unique index: it holds
both rows (docs/targets.md)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from support.dataset import compress, decompress, replace_data_file
from support.pg import make_config
from support.replica import ENGINES, Replicas, cli, publish_full

TOML = 'dataset = "k"\n[tables.k]\nmethod = "snapshot"\n'


@pytest.mark.parametrize("kind", [e for e in ENGINES if e != "duckdb"])
def test_rows_that_break_the_declared_key_are_exit_6(db, tmp_path: Path, cluster,
                                                     kind: str) -> None:
    db.execute("CREATE TABLE k (id integer PRIMARY KEY, v text); "
               "INSERT INTO k VALUES (1, 'a'), (2, 'b')")
    db.sync()
    url = tmp_path / "published"
    publish_full(make_config(db, TOML), str(url))
    index = json.loads((url / "index.json").read_bytes())
    pub = index["publications"][0]["id"]
    doc = json.loads((url / pub / "manifest.json").read_bytes())
    good = decompress((url / pub / doc["tables"]["public.k"]["files"][0]["path"]).read_bytes())
    rows = list(csv.reader(io.StringIO(good.decode())))
    rows[2][0] = rows[1][0]  # the second row takes the first one's key
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    replace_data_file(url, pub, "public.k", compress(out.getvalue().encode()))
    replicas = Replicas(kind, tmp_path, cluster)
    try:
        target = replicas.new()
        result = cli("sync", str(url), target)
        assert result.exit_code == 6, (result.stdout, result.stderr)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1 and "key" in errors[0], result.stderr
        assert "internal error" not in result.stderr
        # a first build keeps what it loaded, as a build killed midway does: the replica
        # stays unfinished until a good publication builds it
        status = cli("status", target)
        assert "INCOMPLETE" in status.stdout, status.stdout
    finally:
        replicas.close()
