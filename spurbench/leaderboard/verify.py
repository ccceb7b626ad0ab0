"""Trust nothing stored: re-derive every metric of a result file from what it stores per image.

``verify_result(path)`` checks, in order, and raises a one-line ``VerificationError`` naming the file
and the field at the first mismatch:

1. the schema (the model of the file's task, its ``kind``; ``schema_version`` included);
2. the benchmark: a known name, a known revision, that revision's content checksum, and the task
   its plugin names;
3. the heads: ``plain`` and optionally others of the known heads;
4. the rest is the task's (``Task.verify``): the image set against the benchmark's reference, and every
   metric recomputed with the same code ``evaluate`` uses, within 1e-6.
"""

from __future__ import annotations

import functools
from pathlib import Path

from spurbench.benchmarks import BENCHMARKS, BenchmarkPlugin, Reference, get_benchmark
from spurbench.errors import SpurbenchError
from spurbench.heads import HEADS, PLAIN, SPUFIX
from spurbench.results import TaskResult, read_result
from spurbench.tasks import VerificationError, task_of_result


@functools.lru_cache(maxsize=16)  # a generated benchmark's reference is regenerated: once per revision
def benchmark_reference(name: str, revision: str | None) -> tuple[Reference, BenchmarkPlugin]:
    """The plugin's reference for ``name`` at ``revision`` (and the plugin); VerificationError if unknown."""
    if name not in BENCHMARKS.names():
        raise VerificationError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS.names())})")
    plugin = get_benchmark(name)
    reference = plugin.reference(revision or "")
    if reference is None:
        raise VerificationError(f"unknown revision {revision!r} of benchmark {name!r}")
    return reference, plugin


def verify_result(path: str | Path) -> TaskResult:
    """The validated result, or a one-line VerificationError ``<file>: <field>: <what>``."""
    path = Path(path)
    try:
        result = read_result(path)
    except SpurbenchError as exc:
        raise VerificationError(str(exc)) from None
    try:
        _verify(result)
    except VerificationError as exc:
        raise VerificationError(f"{path}: {exc}") from None
    return result


def _verify(result: TaskResult) -> None:
    bench = result.benchmark
    reference, plugin = benchmark_reference(bench.name, bench.revision)
    if result.kind != plugin.task:
        raise VerificationError(f"kind: {result.kind!r}, but {bench.name} is a {plugin.task!r} benchmark")
    if not reference.accepts(bench.checksum):
        raise VerificationError(f"benchmark.checksum: {bench.checksum!r} is not the checksum of {bench.name} revision {bench.revision!r}")
    if PLAIN not in result.heads or set(result.heads) - set(HEADS.names()):
        raise VerificationError(f"heads: {sorted(result.heads)}; a result has {PLAIN!r} and optionally others of {HEADS.names()}")
    _verify_spufix_info(result)
    task_of_result(result).verify(result, reference, plugin)


def _verify_spufix_info(result: TaskResult) -> None:
    """The recorded artifact belongs to a SpuFix head, and names only components it clips."""
    info = result.spufix
    if info is None:
        return
    if SPUFIX not in result.heads:
        raise VerificationError(f"spufix: the result records a SpuFix artifact but has no {SPUFIX!r} head")
    for k, named in info.component_names.items():
        if unclipped := sorted(set(named) - {str(c) for c in info.clipped.get(k, [])}):
            raise VerificationError(f"spufix.component_names: class {k} names component {unclipped[0]}, which the artifact does not clip")


def verify_all(paths: list[Path]) -> list[TaskResult]:
    """Verify every file; raises at the first bad one."""
    if not paths:
        raise VerificationError("no result files to verify")
    return [verify_result(p) for p in paths]


__all__ = ["VerificationError", "benchmark_reference", "verify_all", "verify_result"]
