"""pyiceberg's manifest evaluator made safe to share between threads.

pyiceberg 0.12 builds one manifest evaluator per partition spec and shares it between the
threads that read a snapshot's manifests (an overwrite's ``_deleted_entries``, which every
commit that removes data files runs: a compaction, a day replaced by its revision, a row
rewrite of a delete). Its ``eval`` stores the manifest's partition summaries on the shared
object, then reads them back while it visits the filter: a thread switch in between judges
one manifest by another's summaries. A manifest wrongly judged unable to match is skipped,
and the commit is refused ("Missing required files to delete", which topoff reports as
another writer), seen as a rare failure on a loaded machine. :func:`apply` replaces that
``eval`` with one that keeps the summaries on a copy of the evaluator made for the call.
pyiceberg's scan planning had the same defect in its partition evaluator and keeps such
state local to each call since; this does the same for the manifest evaluator.
"""

from __future__ import annotations

import copy
from typing import Any

_FIXED = "_topoff_thread_safe"


def apply() -> None:
    """Make ``_ManifestEvalVisitor.eval`` keep no state on the shared evaluator (idempotent)."""
    from pyiceberg.expressions import visitors

    cls: Any = getattr(visitors, "_ManifestEvalVisitor", None)
    if cls is None or getattr(cls, _FIXED, False):
        return

    def eval_alone(self: Any, manifest: Any) -> bool:
        partitions = manifest.partitions
        if not partitions:
            return visitors.ROWS_MIGHT_MATCH  # no partition information
        one = copy.copy(self)
        one.partition_fields = partitions
        return visitors.visit(one.partition_filter, one)

    cls.eval = eval_alone
    setattr(cls, _FIXED, True)
