"""What a sync must do: which full export to load (if any) and which publications to apply.

Publications are applied in sequence order. The replica remembers the last sequence it has
applied (or deliberately passed over); every later sequence must be either present in the
index, a full export (not needed: the increments carry the changes), or a revision
superseded by a later one of the same window. Anything else was removed by retention before
this replica got to it: the sync stops and says how to rebase.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from topoff.dataset import layout
from topoff.dataset.index import Index, Publication
from topoff.dataset.manifest import Manifest
from topoff.errors import ConfigError, TargetError
from topoff.targets.base import ReplicaState


@dataclass
class SyncPlan:
    base: Publication | None  # a full export to load first (or finish loading)
    apply: list[Publication] = field(default_factory=list)
    skip: list[tuple[Publication, str]] = field(default_factory=list)  # (publication, why)

    @property
    def last_sequence(self) -> int | None:
        seqs = [p.sequence for p in self.apply] + [p.sequence for p, _ in self.skip]
        return max(seqs) if seqs else None


def rebase_hint(origin: str, target: str) -> str:
    return ("rebuild the replica from the newest full export: "
            f"topoff sync {origin} {target} --rebase")


def plan_sync(index: Index, state: ReplicaState | None, origin: str, target: str,
              applied: tuple[str, int, str | None] | None = None) -> SyncPlan:
    """What to load and apply; ``applied``: the publication the replica applied last (id,
    sequence, manifest sha256), checked against the index with the replica's base."""
    if state is None or state.status == "loading":
        base = index.newest_full() if state is None else index.get(state.base)
        if base is None:
            if state is None:
                raise TargetError(f"no full export is published at {origin} yet",
                                  hint="publish one with `topoff export full`, then sync")
            raise TargetError(
                f"the replica was being built from {state.base}, which {origin} no longer has",
                hint=rebase_hint(origin, target))
        if state is not None:  # a load that stopped: its files must come from that export
            _check_lineage(index, state, origin, target, applied)
        last = base.sequence
    else:
        base, last = None, state.last_sequence
        _check_lineage(index, state, origin, target, applied)
        published = index.next_sequence - 1
        if published < last:
            raise TargetError(
                f"the replica has applied publication {last} but {origin} only has up to "
                f"{published}: the dataset was recreated", hint=rebase_hint(origin, target))
    pending = sorted((p for p in index.publications if p.sequence > last),
                     key=lambda p: p.sequence)
    # the newest pending revision of each window: one pass, so planning stays linear in the
    # number of publications (a day republished 32,000 times must not take minutes)
    newest: dict[str | None, int] = {}
    for p in pending:
        newest[p.label] = max(newest.get(p.label, 0), p.sequence)
    _check_gaps(index, newest, last, origin, target)
    plan = SyncPlan(base)
    for p in pending:
        if p.kind == layout.FULL:
            plan.skip.append((p, "a newer full export; the increments carry its changes"))
        elif newest[p.label] > p.sequence:
            plan.skip.append((p, "superseded by a later revision of the same window"))
        else:
            plan.apply.append(p)
    return plan


def _published(index: Index, pub_id: str, sequence: int, sha256: str | None = None
               ) -> bool | None:
    """Whether this dataset published ``pub_id`` at ``sequence`` (with that manifest,
    when known): held, or removed by retention; None when the index no longer remembers
    that far back."""
    held = index.get(pub_id)
    if held is not None:
        return held.sequence == sequence and not (
            sha256 and held.manifest_sha256 and held.manifest_sha256 != sha256)
    gone = index.removed_entry(sequence)
    if gone is not None:
        return gone.get("id") == pub_id
    if any(p.sequence == sequence for p in index.publications):
        return False  # another publication at that sequence
    forgot = len(index.removed) >= Index.REMEMBER_REMOVED and \
        min(r["sequence"] for r in index.removed) > sequence
    return None if forgot else False


def _check_lineage(index: Index, state: ReplicaState, origin: str, target: str,
                   applied: tuple[str, int, str | None] | None) -> None:
    """The replica's full export, and the publication it applied last, are this
    dataset's: another copy of a dataset of the same name, or one recreated since, numbers
    its publications alike (even its ids, when exported in the same second and days) but is
    not the replica's: applying its increments would mix two datasets silently."""
    checks: list[tuple[str, int, str | None]] = [(state.base, state.base_sequence, None)]
    if applied is not None:
        checks.append(applied)
    for pub_id, sequence, sha256 in checks:
        if _published(index, pub_id, sequence, sha256) is False:
            raise TargetError(f"the replica applied {pub_id} (publication {sequence}), which "
                              f"{origin} did not publish: it holds another copy of dataset "
                              f"{index.dataset}, or one recreated since",
                              hint=rebase_hint(origin, target))


def _check_gaps(index: Index, newest: dict[str | None, int], last: int, origin: str,
                target: str) -> None:
    """Every sequence after ``last`` is published, or was a full export or a revision
    superseded by a pending one. Each step meets a publication or a remembered removal
    (or stops), so this is linear however large ``next_sequence`` claims to be."""
    present = {p.sequence for p in index.publications}
    removed = {r["sequence"]: r for r in index.removed}
    for seq in range(last + 1, index.next_sequence):
        if seq in present:
            continue
        r = removed.get(seq)
        if r and r["kind"] == layout.FULL:
            continue
        if r and r["label"] is not None and newest.get(r["label"], 0) > seq:
            continue
        what = r["id"] if r else f"publication {seq}"
        raise TargetError(
            f"the replica is older than the oldest data still published: {what} was removed "
            f"from {origin} by retention before this replica applied it",
            hint=rebase_hint(origin, target))


def select_tables(manifest: Manifest, wanted: list[str] | None) -> list[str]:
    """Qualified names of the tables to keep; ``wanted`` may give bare or qualified names."""
    names = list(manifest.tables)
    if not wanted:
        return names
    chosen = []
    for w in wanted:
        matches = [n for n in names if n == w or n.split(".", 1)[1] == w]
        if not matches:
            raise ConfigError(f"table {w!r} is not in the dataset",
                              hint=f"tables published: {', '.join(names)}")
        if len(matches) > 1:
            raise ConfigError(f"table name {w!r} is ambiguous ({', '.join(matches)})",
                              hint="give it with its schema, e.g. public.messages")
        chosen.append(matches[0])
    return list(dict.fromkeys(chosen))
