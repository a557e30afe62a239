"""FLOATs through a MariaDB backup and its drill: the drill's hash tells every digit of a
FLOAT's value."""

from __future__ import annotations

from support.mariadb import MariaDatabase
from topoff.backup.maria_tables import table_hashes
from topoff.sources.mariadb.connect import connect


def test_the_drill_s_hash_tells_floats_apart_by_every_digit(maria: MariaDatabase) -> None:
    """The backup's and the drill's hash of a FLOAT (hash form 3) is its double's text:
    1.2345678, restored as 1.23457, differs (form 2 hashed ``HEX()`` of the double, which
    is the hex of its integer part: the drill passed a restore whose FLOATs were rounded
    below 1). Form 2 stays computed as it was, for the backups that recorded it."""
    maria.execute("CREATE TABLE fa (f FLOAT); INSERT INTO fa VALUES (1.2345678);"
                  "CREATE TABLE fb (f FLOAT); INSERT INTO fb VALUES (1.23457);"
                  "CREATE TABLE fc (f FLOAT); INSERT INTO fc VALUES (2.2345678);")
    with connect(maria.replica_url) as conn:
        now = table_hashes(conn)
        assert now["fa"] != now["fb"] != now["fc"] != now["fa"]
        two = table_hashes(conn, form=2)
        assert two["fa"] == two["fb"] != two["fc"]
