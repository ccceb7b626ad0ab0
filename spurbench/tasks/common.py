"""What every task records the same way: the benchmark's facts in a result."""

from __future__ import annotations

from spurbench.benchmarks.base import Benchmark
from spurbench.files import plain
from spurbench.results import BenchmarkInfo


def benchmark_info(bench: Benchmark) -> BenchmarkInfo:
    """A result's record of the benchmark it scored."""
    counts = bench.counts()
    return BenchmarkInfo(
        name=bench.name,
        label_space=bench.label_space,
        repo=bench.repo,
        revision=bench.revision,
        checksum=bench.checksum,
        positives_source=bench.positives_source,
        num_classes=counts["classes"],
        num_positives=counts["positives"],
        num_negatives=counts["negatives"],
        component_names={str(k): v for k, v in sorted(bench.component_names.items())},
        class_component_names={
            str(k): {str(c): name for c, name in sorted(named.items())} for k, named in sorted(bench.class_component_names.items()) if named
        },
        extra=plain(bench.facts),
    )


__all__ = ["benchmark_info"]
