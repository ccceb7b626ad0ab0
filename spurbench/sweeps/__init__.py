"""Sweeps: one job per (model, benchmark), planned here, run by submitit (SLURM job arrays, the local
executor packing jobs onto GPUs, or the in-process debug executor; ``spurbench.sweeps.executors``).

The plan is made before anything is submitted: a job whose result file is complete for its
configuration hash (the one ``spurbench run`` skips on) is skipped, a job still in flight from an
earlier sweep is not submitted twice, and an entry that cannot run (an unknown model name, a missing
checkpoint, no SpuFix artifact for ``--spufix auto``) is listed as invalid with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spurbench.adapters import check_model_name
from spurbench.benchmarks import get_benchmark
from spurbench.errors import SpurbenchError
from spurbench.harness import planned_facts
from spurbench.result_conflicts import ConfigurationConflict, existing_result
from spurbench.results import result_filename
from spurbench.runs import RunEntry, is_complete, spufix_artifact
from spurbench.sweeps.jobs import JobSpec, JobStatus, job_config_hash, read_records, read_status


@dataclass(frozen=True)
class Invalid:
    model: str
    benchmark: str
    reason: str


@dataclass
class SweepPlan:
    to_run: list[JobSpec] = field(default_factory=list)
    skipped: list[tuple[JobSpec, str]] = field(default_factory=list)  # (job, why: complete / in flight)
    invalid: list[Invalid] = field(default_factory=list)


def plan_sweep(
    entries: Sequence[RunEntry],
    benchmarks: Sequence[str],
    option_values: dict[str, Any],
    run_options: dict[str, Any],
    output: str | Path,
    *,
    spufix: str | None = None,
    force: bool = False,
    alive: Any = None,
) -> SweepPlan:
    """Jobs for every (entry, benchmark). ``run_options`` are ``evaluate``'s keyword options (protocol,
    batch_size, device, bootstrap, use_cache, ...); ``alive(status)`` says whether a job recorded as
    queued or running is still in flight (its executor's answer), so it is not submitted again."""
    if not entries:
        raise SpurbenchError("a sweep needs models: --registry FILE.yaml or --model NAME")
    plan = SweepPlan()
    output = Path(output).resolve()  # jobs and a later --retry-failed may run from other folders
    seen: set[str] = set()
    for name in benchmarks:
        plugin = get_benchmark(name)
        options = plugin.parse_options(option_values)
        bench_name = plugin.benchmark_name(options)
        for entry in entries:
            try:
                check_model_name(entry.model)
                artifact = spufix_artifact(spufix, entry.model)
                config_hash = job_config_hash(
                    entry.model, entry.checkpoint, plugin, options, run_options, artifact, entry.temperature, entry.spufix_temperature
                )
            except SpurbenchError as exc:
                plan.invalid.append(Invalid(entry.model, bench_name, " ".join(str(exc).split())))  # one line per entry
                continue
            filename = result_filename(entry.model, bench_name)
            key = filename.removesuffix(".json")
            if key in seen:
                plan.invalid.append(Invalid(entry.model, bench_name, "listed twice"))
                continue
            seen.add(key)
            spec = JobSpec(
                key=key,
                model=entry.model,
                checkpoint=str(Path(entry.checkpoint).resolve()) if entry.checkpoint else None,
                temperature=entry.temperature,
                spufix_temperature=entry.spufix_temperature,
                benchmark=plugin.name,
                options=option_values,
                run=run_options,
                spufix=spufix,
                output=str(output),
                result_file=str(output / filename),
                config_hash=config_hash,
                force=force,
            )
            previous = read_status(output, key)
            planned = planned_facts(
                artifact is not None,
                run_options.get("protocol", "paper"),
                run_options.get("precision", "fp32"),
                run_options.get("bootstrap", 1000),
                entry.temperature,
                entry.spufix_temperature,
                entry.checkpoint,
            )
            try:  # a result of another configuration is refused here, not after the job's queue time
                complete = not force and existing_result(Path(spec.result_file), config_hash, planned)
            except ConfigurationConflict as exc:
                plan.invalid.append(Invalid(entry.model, bench_name, " ".join(str(exc).split())))
                continue
            if complete:
                plan.skipped.append((spec, "complete"))
            elif previous is not None and previous.state in ("queued", "running") and alive is not None and alive(previous):
                # (whatever its configuration: two jobs must not write one result file)
                plan.skipped.append((spec, f"in flight ({previous.executor} job {previous.job_id})"))
            else:
                plan.to_run.append(spec)
    return plan


def failed_jobs(output: str | Path, alive: Any = None) -> tuple[list[JobStatus], list[str]]:
    """Jobs of earlier sweeps into ``output`` that failed, or that were queued or running and whose
    process is gone (killed, lost with its node), and whose result is still not complete; and one line
    for each record that cannot be used (truncated, unreadable, or leading out of ``output``): its job
    cannot be retried from it, and is not passed over in silence."""
    records, bad = read_records(output)
    lost = [s for s in records if s.state == "failed" or (s.state in ("queued", "running") and not (alive is not None and alive(s)))]
    return [s for s in lost if not is_complete(Path(s.spec.result_file), s.spec.config_hash)], bad


__all__ = ["Invalid", "SweepPlan", "failed_jobs", "plan_sweep"]
