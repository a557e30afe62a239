"""Per-table replication state: a few fixed-size values that never grow.

* ``cursor``: the highest cursor value read, as PostgreSQL's own text of it (full precision:
  microseconds of a timestamp, every digit of a numeric or bigint; never a float).
* ``key``: the (cursor, key) position of the last batch handed over, as text, for a
  caller that pages one refresh within its snapshot; None once a refresh completed. An
  interrupted refresh starts again from ``cursor`` (see topoff.replicate.run).
* ``xmin``: ``pg_snapshot_xmin`` of the previous run's snapshot, a 64-bit transaction ID
  (xid8, or txid before PostgreSQL 13): rows committed since that run have a newer xmin.
* ``run_at``: when the previous run's snapshot was taken (the source's clock, UTC).
* ``as_of``: the time (the primary's clock, UTC) up to which the data the previous run read
  is complete: a standby's replay (topoff.safety.ReplayState.until), a MariaDB replica's
  clock less Seconds_Behind_Master, a primary's clock. When a run cannot tell, the
  previous run's ``as_of`` stands (the replica holds at least that much); never known:
  ``as_of_unknown``. A state written before this field: the lag is counted from
  ``run_at``, as then (:meth:`TableState.lag_seconds`).
* ``receiver_hidden_from``: the role the previous run read a PostgreSQL standby as, when
  that role could not see the standby's WAL receiver (it lacks pg_read_all_stats):
  ``as_of`` was then the last replayed commit's, and the lag an upper bound.
* ``rows``: rows moved by the previous run.
* ``content``: for a snapshot table, ``count:hash`` of its rows at the previous run
  (``count:`` when the hash was not computed: the xmin rule decided, see change.py).
* ``relation``: for a snapshot table, the signature of its storage at the previous run
  (cluster, timeline, and each relation's oid and file node; change.py); for an
  inserter/updater table of a PostgreSQL source, which relations its rows were in (the
  table, its partitions and inheritance children: a member attached since may bring rows
  below the watermark, attached.py).
* ``identity``: for an inserter/updater table, which source table the watermark belongs
  to (PostgreSQL: its oid; MariaDB: its creation time; describe.py): a table created
  again under the same name is another one, rebuilt as at its first load (apply.py).

The target stores :meth:`TableState.to_json` next to the data, in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from topoff.errors import IntegrityError

_MAX_TEXT = 1024
_MAX_XID = 2**63 - 1


@dataclass(frozen=True)
class TableState:
    cursor: str | None = None
    key: tuple[str | None, ...] | None = None
    xmin: int | None = None
    run_at: datetime | None = None
    rows: int = 0
    content: str | None = None
    relation: str | None = None
    identity: str | None = None
    as_of: datetime | None = None
    as_of_unknown: bool = False  # measured, and never known (not an older state's None)
    receiver_hidden_from: str | None = None

    def to_json(self) -> str:
        as_of = "unknown" if self.as_of_unknown else (
            self.as_of.isoformat() if self.as_of else None)
        d: dict[str, Any] = {
            "v": 1, "cursor": self.cursor, "key": list(self.key) if self.key is not None
            else None, "xmin": self.xmin, "rows": self.rows, "content": self.content,
            "relation": self.relation, "identity": self.identity, "as_of": as_of,
            "run_at": self.run_at.isoformat() if self.run_at else None}
        if self.receiver_hidden_from is not None:
            d["receiver_hidden_from"] = self.receiver_hidden_from
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> TableState:
        """Parse stored state; anything malformed is an IntegrityError (never a crash)."""
        def bad(why: str) -> IntegrityError:
            return IntegrityError(f"stored replication state is invalid: {why}",
                                  hint="the target's state row was altered; drop it to "
                                  "replicate the table again from the start")
        if len(text) > 16 * _MAX_TEXT:
            raise bad("too long")
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise bad("not JSON") from None
        if not isinstance(d, dict) or d.get("v") != 1:
            raise bad("unknown version")
        cursor, key, xmin = d.get("cursor"), d.get("key"), d.get("xmin")
        rows, content, run_at = d.get("rows", 0), d.get("content"), d.get("run_at")
        relation, identity, as_of = d.get("relation"), d.get("identity"), d.get("as_of")
        hidden = d.get("receiver_hidden_from")
        for name, v in (("cursor", cursor), ("content", content), ("run_at", run_at),
                        ("relation", relation), ("identity", identity), ("as_of", as_of),
                        ("receiver_hidden_from", hidden)):
            if v is not None and (not isinstance(v, str) or len(v) > _MAX_TEXT):
                raise bad(f"{name} is not a short text")
        if key is not None and (not isinstance(key, list) or len(key) > 32 or not all(
                k is None or (isinstance(k, str) and len(k) <= _MAX_TEXT) for k in key)):
            raise bad("key is not a short list of texts")
        for name, v in (("xmin", xmin), ("rows", rows)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                                  or not 0 <= v <= _MAX_XID):
                raise bad(f"{name} is not a non-negative 64-bit integer")
        times: dict[str, datetime | None] = {}
        for name, v in (("run_at", run_at), ("as_of", as_of)):
            try:
                times[name] = None if v in (None, "unknown") else _utc(datetime.fromisoformat(v))
            except ValueError:
                raise bad(f"{name} is not an ISO time") from None
        return cls(cursor, tuple(key) if key is not None else None, xmin, times["run_at"],
                   rows or 0, content, relation, identity, times["as_of"], as_of == "unknown",
                   hidden)

    def measured(self, as_of: datetime | None, before: TableState,
                 receiver_hidden_from: str | None = None) -> TableState:
        """This state with the run's ``as_of`` (None: unknown) and why it may be early,
        or else ``before``'s."""
        if as_of is None:
            as_of, receiver_hidden_from = before.as_of, before.receiver_hidden_from
        return replace(self, as_of=as_of, as_of_unknown=as_of is None,
                       receiver_hidden_from=receiver_hidden_from)

    def lag_seconds(self, now: datetime) -> float | None:
        """How far the replica is behind its source at ``now`` (UTC): since ``as_of``;
        None when unknown; for a state written before ``as_of`` was kept, since ``run_at``."""
        since = self.as_of if self.as_of is not None or self.as_of_unknown else self.run_at
        return None if since is None else max(0.0, (now - since).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def same_identity(stored: str | None, current: str | None) -> bool:
    """Whether two identities of a source table (``oid 16384``; ``created 2026-01-01
    10:00:00; table id 52``) may name one table: unknown on either side, or every part
    both hold equal (a part one lacks, such as a table id the user could not read then,
    proves nothing)."""
    if stored is None or current is None or stored == current:
        return True
    mine, theirs = (dict(p.partition(" ")[::2] for p in i.split("; "))
                    for i in (stored, current))
    common = mine.keys() & theirs.keys()
    return bool(common) and all(mine[k] == theirs[k] for k in common)
