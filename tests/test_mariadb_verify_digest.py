"""``topoff verify`` of a MariaDB source whose server computes no MD5 (a FIPS build): the
rows are hashed by topoff (every row's MD5 was NULL, left out of the server's sum: every
table reported different from its replica, equal or not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.mariadb import MariaDatabase, MariaPair
from topoff.config import Config, TableConfig
from topoff.export.full import export_full
from topoff.sources.mariadb.verify import MariaVerifier
from topoff.stores import open_store
from topoff.sync import SyncOptions, sync
from topoff.verify import verify

ROWS = """
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
CREATE TABLE vt (id INT PRIMARY KEY, t TEXT, b BLOB, d DATE, n DECIMAL(10,2), j JSON);
INSERT INTO vt VALUES (1, 'ä😀,"x"', X'00FF', '0000-00-00', 1.5, '{"a": 1}'),
  (2, NULL, NULL, '2024-02-29', NULL, NULL);
"""


@pytest.mark.parametrize("probe", ["SELECT SHA2('abc', 256), NULL", "SELECT NULL, NULL",
                                   "SELECT SHA2('abc', 256), MD5('abc')"])
def test_verify_hashes_the_rows_itself_on_a_server_without_md5(
        maria_pair: MariaPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        probe: str) -> None:
    maria = MariaDatabase(maria_pair.create_database(), maria_pair)
    maria.execute(ROWS)
    root, replica = str(tmp_path / "pub"), str(tmp_path / "r.duckdb")
    with open_store(root) as store:
        export_full(Config(dataset="v", source_url=maria.replica_url, tables=(
            TableConfig(schema=maria.name, name="vt", method="snapshot"),)), store)
    sync(root, replica, SyncOptions(cache_dir=tmp_path / "cache"))
    # the server's MD5 as a server without it gives it (NULL); the last probe says MD5
    # works all the same: the NULL digests the server summed are seen
    monkeypatch.setattr(MariaVerifier, "HASH_PROBE", probe)
    monkeypatch.setattr("topoff.sources.mariadb.verify.DIGEST", "IF(FALSE, {}, NULL)")
    report = verify(replica, maria.replica_url)
    assert report.equal, report.to_json()
    maria.execute("UPDATE vt SET t = 'ä😀,\"y\"' WHERE id = 1")
    assert not verify(replica, maria.replica_url).equal
