"""The plan of a sweep, made before anything is submitted: a job whose result file is complete for its
configuration hash (the one ``spurbench run`` skips on) is skipped, a job still in flight from an
earlier sweep is not submitted twice, and an entry that cannot run (an unknown model name, a model the
benchmark cannot score, a missing checkpoint, no SpuFix artifact for ``--spufix auto``) is listed as
invalid with its reason. Each job carries its ``RunSettings``, built (and so checked) here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from spurbench.benchmarks import default_benchmark, get_benchmark
from spurbench.errors import SpurbenchError
from spurbench.harness import load_spufix, spufix_reference
from spurbench.result_conflicts import ConfigurationConflict, existing_result
from spurbench.results import result_filename
from spurbench.runs import is_complete
from spurbench.settings import RunEntry, RunOptions
from spurbench.sweeps.jobs import JobSpec, JobStatus, Liveness, read_records, read_status

SkipReason = Literal["complete", "in flight", "unknown"]


@dataclass(frozen=True)
class Invalid:
    model: str
    benchmark: str
    reason: str


@dataclass(frozen=True)
class Skipped:
    spec: JobSpec
    reason: SkipReason
    running: JobStatus | None = None  # "in flight", "unknown": the earlier sweep's record of the job


@dataclass
class SweepPlan:
    to_run: list[JobSpec] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)

    def in_flight(self) -> list[Skipped]:
        """Jobs of an earlier sweep that are still queued or running, or may be (a board must wait for them)."""
        return [s for s in self.skipped if s.reason != "complete"]


def plan_sweep(
    options: RunOptions,
    entries: Sequence[RunEntry],
    benchmarks: Sequence[str] = (),
    *,
    liveness: Callable[[JobStatus], Liveness] | None = None,
) -> SweepPlan:
    """Jobs for every (entry, benchmark; none: the default benchmark), each run with ``options`` (the
    jobs' own: see ``sweeps.driver.sweep_setup``). ``liveness(status)`` says whether a job recorded as
    queued or running is still in flight (its executor's answer), so it is not submitted again; one
    whose executor cannot tell is not submitted either, except under ``--force``."""
    if not entries:
        raise SpurbenchError("a sweep needs models: --model-list FILE.yaml or --model NAME")
    if options.output is None:
        raise SpurbenchError("a sweep needs an output folder (--output)")
    output = options.output.resolve()  # jobs and a later --retry-failed may run from other folders
    quiet = options.features.model_copy(update={"progress": False})  # a job's log is a file: no progress bars
    options = options.model_copy(update={"output": output, "features": quiet})
    benchmarks = list(benchmarks) or [default_benchmark()]
    values = options.option_values(benchmarks)
    plan = SweepPlan()
    seen: set[str] = set()
    for name in benchmarks:
        plugin = get_benchmark(name)
        bench_name = plugin.benchmark_name(plugin.parse_options(values))  # options a benchmark refuses stop the whole sweep
        for entry in entries:
            if entry.checkpoint:  # a job may run from another folder
                entry = replace(entry, checkpoint=str(Path(entry.checkpoint).resolve()))
            try:
                settings = options.settings(entry, name, values)
                artifact = load_spufix(settings.spufix, settings.model)
                config_hash = settings.config_hash(spufix_reference(artifact))
            except SpurbenchError as exc:
                plan.invalid.append(Invalid(entry.model, bench_name, " ".join(str(exc).split())))  # one line per entry
                continue
            key = result_filename(entry.model, bench_name).removesuffix(".json")
            if key in seen:
                plan.invalid.append(Invalid(entry.model, bench_name, "listed twice"))
                continue
            seen.add(key)
            spec = JobSpec(key=key, settings=settings, config_hash=config_hash)
            previous = read_status(output, key)
            try:  # a result of another configuration is refused here, not after the job's queue time
                complete = not options.force and existing_result(
                    Path(spec.result_file), config_hash, settings.planned_facts(artifact is not None)
                )
            except ConfigurationConflict as exc:
                plan.invalid.append(Invalid(entry.model, bench_name, " ".join(str(exc).split())))
                continue
            if complete:
                plan.skipped.append(Skipped(spec, "complete"))
            elif (state := _recorded_liveness(previous, liveness)) == "in flight" or (state == "unknown" and not options.force):
                # (whatever its configuration: two jobs must not write one result file)
                plan.skipped.append(Skipped(spec, state, previous))
            else:
                plan.to_run.append(spec)
    return plan


def _recorded_liveness(previous: JobStatus | None, liveness: Callable[[JobStatus], Liveness] | None) -> Liveness:
    if previous is None or previous.state not in ("queued", "running") or liveness is None:
        return "ended"
    return liveness(previous)


def failed_jobs(output: str | Path, liveness: Callable[[JobStatus], Liveness] | None = None) -> tuple[list[JobStatus], list[str]]:
    """Jobs of earlier sweeps into ``output`` that failed, or that were queued or running and whose
    process is gone (killed, lost with its node), and whose result is still not complete; and one line
    for each record that cannot be used (truncated, unreadable, written by an earlier spurbench, or
    leading out of ``output``): its job cannot be retried from it, and is not passed over in silence."""
    records, bad = read_records(output)
    lost = [s for s in records if s.state == "failed" or (s.state in ("queued", "running") and _recorded_liveness(s, liveness) == "ended")]
    return [s for s in lost if not is_complete(Path(s.spec.result_file), s.spec.config_hash)], bad


__all__ = ["Invalid", "SkipReason", "Skipped", "SweepPlan", "failed_jobs", "plan_sweep"]
