"""pyiceberg's manifest evaluator shared between threads (topoff.targets.iceberg.threadsafe).

An overwrite commit (compaction, a day's revision, a row rewrite) reads the parent
snapshot's manifests in several threads through one evaluator per partition spec; pyiceberg
0.12's evaluator kept each manifest's partition summaries on itself, so a thread switch
judged one manifest by another's and the commit was refused ("Missing required files to
delete"): compaction failed at random on a loaded machine.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from types import SimpleNamespace

from pyiceberg.expressions import EqualTo
from pyiceberg.expressions.visitors import manifest_evaluator
from pyiceberg.manifest import PartitionFieldSummary
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import IntegerType, NestedField

from topoff.targets.iceberg import threadsafe


def _manifest(day: int) -> SimpleNamespace:
    """What the evaluator reads of a manifest: the summary of its one partition field."""
    bound = struct.pack("<i", day)
    return SimpleNamespace(partitions=[PartitionFieldSummary.from_args(
        contains_null=False, contains_nan=False, lower_bound=bound, upper_bound=bound)])


def _wrong_answers(threads: int = 8, rounds: int = 2000) -> int:
    schema = Schema(NestedField(1, "day", IntegerType(), required=False))
    spec = PartitionSpec(PartitionField(1, 1000, IdentityTransform(), "day"))
    evaluate = manifest_evaluator(spec, schema, EqualTo("day", 5))  # one, shared
    match, other = _manifest(5), _manifest(100)
    wrong: list[str] = []

    def work() -> None:
        for _ in range(rounds):
            if evaluate(match) is not True:
                wrong.append("match")
            if evaluate(other) is not False:
                wrong.append("other")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        running = [threading.Thread(target=work) for _ in range(threads)]
        for t in running:
            t.start()
        for t in running:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    return len(wrong)


def test_a_manifest_evaluator_shared_by_threads_judges_each_manifest_by_its_own_summary():
    threadsafe.apply()
    assert _wrong_answers() == 0


def test_opening_a_catalog_makes_the_evaluator_thread_safe(tmp_path):
    """Every Iceberg command opens its catalog first: the fix is in place before any commit
    (a process of its own: this one has it already)."""
    path = tmp_path / "catalog.toml"
    path.write_text(f'type = "sql"\nuri = "sqlite:///{tmp_path}/catalog.db"\n'
                    'warehouse = "warehouse"\nnamespace = "replica"\n')
    code = ("import sys; from pyiceberg.expressions import visitors as v; "
            "from topoff.targets.iceberg.config import open_catalog, read_settings; "
            "before = getattr(v._ManifestEvalVisitor, '_topoff_thread_safe', False); "
            "open_catalog(read_settings(sys.argv[1])); "
            "print(before, v._ManifestEvalVisitor._topoff_thread_safe)")
    done = subprocess.run([sys.executable, "-c", code, f"iceberg:{path}"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
