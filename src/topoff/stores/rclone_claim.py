"""Create-only writes on rclone remotes: the claim check (see :mod:`topoff.stores.rclone`).

A writer creates an empty ``.<leaf>.claim-<token>`` beside the name, lists the directory
and publishes only when this listing shows its own claim, no object under the name, and
no other live claim. Whichever of two writers lists second sees the other's claim, so at
most one of them publishes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

CLAIM_TTL = 600.0  # seconds after which a claim left by a killed writer no longer counts


def modified(entry: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(entry.get("ModTime"))).timestamp()
    except (TypeError, ValueError):
        return None


def case_twin(listing: list[Any], leaf: str) -> str | None:
    """A name of ``rclone lsjson``'s listing that differs from ``leaf`` only in case."""
    folded = leaf.casefold()
    return next((str(e.get("Name")) for e in listing if isinstance(e, dict)
                 and str(e.get("Name")) != leaf and str(e.get("Name")).casefold() == folded),
                None)


def contested(listing: list[Any], leaf: str, claim: str) -> bool:
    """Whether ``leaf`` is taken or claimed by another writer, given ``rclone lsjson`` of
    its directory and the leaf name of this writer's own claim."""
    entries = {str(e.get("Name")): e for e in listing if isinstance(e, dict)}
    mine = entries.get(claim)
    if leaf in entries or mine is None:
        return True  # taken, or the remote does not list what was just written
    prefix = f".{leaf}.claim-"
    now = modified(mine)
    return any(name.startswith(prefix) and entry is not mine
               and (now is None or (modified(entry) or now) > now - CLAIM_TTL)
               for name, entry in entries.items())
