"""What one refresh reads from a MariaDB/MySQL source for an Iceberg table: the read plan
of maria_source.py (the same snapshot, ``watermark - boundary < cursor <= max(cursor)``
in keyset batches, the ``my1`` content hash of a snapshot table, the same next state),
handed over as CSV blocks and what they replace (iceberg_pull.py's :class:`Pull`).

MariaDB rows carry no xmin: an inserter/updater re-reads its boundary at every run (keys:
replaced by key; no key: the window replaced whole), as on a SQL target.
"""

from __future__ import annotations

from dataclasses import replace

from topoff.replicate.describe import TableInfo
from topoff.replicate.iceberg_pull import Pull, is_ranged
from topoff.replicate.maria_read import count_hash, lines
from topoff.replicate.maria_source import MariaSession
from topoff.replicate.source import Request
from topoff.replicate.state import TableState


def pull_maria(s: MariaSession, info: TableInfo, state: TableState, request: Request,
               first: bool, force: bool) -> Pull:
    t = info.table
    mt = s.tables[t.qualified]
    if t.method == "snapshot":
        w = f" WHERE ({t.where})" if t.where else ""  # checked by _where_checked
        count, content = count_hash(s.conn, mt, mt.columns, w, t.qualified)
        new = TableState(run_at=s.taken_at, content=content)
        if not first and not force and request.kind != "repull" and content is not None \
                and content == state.content:
            return Pull("unchanged", "state", iter(()), [0], lambda _: new)
        counter = [0]
        blocks = lines(s.conn, mt.columns, f"FROM {mt.qualified}{w}", counter, t.qualified)
        return Pull("ok", "none" if first else "all", blocks, counter,
                    lambda rows: replace(new, rows=rows),
                    expect=count)
    if is_ranged(request) and not first:  # lo <= cursor <= hi; the state as it was
        got = s.range_read(info, request)
        if got is None:
            return Pull("ok", "state", iter(()), [0], lambda _: state)
        return Pull("ok", "keys" if info.key else "window", got.blocks, got.counter,
                    lambda _: state, got.lo, got.hi, lo_inclusive=True)
    whole = request.kind == "repull"
    if whole:
        state = TableState()
    new = TableState(cursor=state.cursor, run_at=s.taken_at)
    read = s.window_read(info, state)
    if read is None:
        return Pull("ok", "state", iter(()), [0], lambda _: new)
    mode = "none" if first else "all" if whole else "keys" if info.key else "window"
    return Pull("ok", mode, read.blocks, read.counter,
                lambda rows: replace(new, cursor=read.hi, rows=read.counter[0]),
                read.lo, read.hi, cursor=read.hi)
