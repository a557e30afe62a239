"""The replicate benchmark's results: one side-by-side table and each target met or missed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Timed:
    tool: str
    task: str
    seconds: float
    cpu: float
    server_cpu: float
    peak_mb: float


def print_results(runs: list[Timed], title: str) -> str:
    """One table side by side; ratio: seconds against the peer's of the same task (below
    1 is faster than the peer)."""
    lines = [f"## {title}", "",
             "| task | tool | seconds (median) | ratio | client CPU s | server CPU s | "
             "peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        peer = next((p for p in runs if p.task == r.task and not p.tool.startswith("topoff")),
                    None)
        ratio = f"{r.seconds / peer.seconds:.2f}x" if peer and peer.seconds else ""
        lines.append(f"| {r.task} | {r.tool} | {r.seconds:.2f} | {ratio} | "
                     f"{r.cpu:.2f} | {r.server_cpu:.2f} | {r.peak_mb:.0f} |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def verdicts(runs: list[Timed]) -> list[str]:
    """Each topoff row against its target: 3x faster than mimeo, no slower than pgcopydb,
    peak RSS under 200 MB."""
    out = []
    for r in runs:
        if not r.tool.startswith("topoff"):
            continue
        peer = next((p for p in runs if p.task == r.task and not p.tool.startswith("topoff")),
                    None)
        if peer is None:
            continue
        need = 3.0 if peer.tool.startswith("mimeo") else 1.0
        speed = peer.seconds / r.seconds if r.seconds else float("inf")
        if "unchanged" in r.task:  # not one of the tasks: the memory target only
            verdict = "met" if r.peak_mb < 200 else "MISSED"
            out.append(f"{verdict}: {r.task}: {speed:.1f}x {peer.tool} (no speed target), "
                       f"peak {r.peak_mb:.0f} MB (target < 200)")
            continue
        ok = speed >= need and r.peak_mb < 200
        out.append(f"{'met' if ok else 'MISSED'}: {r.task}: {speed:.1f}x {peer.tool} "
                   f"(target {need:g}x), peak {r.peak_mb:.0f} MB (target < 200)")
    return out
