"""``spurbench sweep``: one job per (model, benchmark) on submitit (SLURM arrays, local GPUs, debug)."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table

from spurbench.cli import options
from spurbench.cli.common import app, console, err_console, key_values, result_files
from spurbench.errors import SpurbenchError

if TYPE_CHECKING:
    from spurbench.settings import RunOptions
    from spurbench.sweeps import SweepPlan


@app.command()
@options.with_run_options(
    device=typer.Option("cpu", "--device", help="Device inside each job: cpu, cuda (a local job sees only its own GPU, as cuda)."),
    output=typer.Option(
        Path("spurbench-results"), "--output", "-o", help="Shared folder for the result files (and the sweep's job records in .sweep/)."
    ),
    quiet=typer.Option(False, "--quiet", "-q", help="No live progress."),
)
def sweep(
    model_list: Path | None = options.MODEL_LIST,
    model: list[str] | None = typer.Option(None, "--model", "-m", help="FAMILY:SPEC, repeatable (with or instead of --model-list)."),
    benchmark: list[str] | None = typer.Option(
        None, "--benchmark", "-b", help="Benchmark name, repeatable. Default: the default benchmark."
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        "-e",
        help="slurm: one sbatch job array; local: jobs on this machine (one per GPU with --gpus); debug: in this process, one after another.",
    ),
    retry_failed: bool = typer.Option(
        False,
        "--retry-failed",
        help="Resubmit only the jobs of earlier sweeps into --output that failed or were lost (no --model-list needed).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (to run, to skip, invalid) and submit nothing."),
    no_wait: bool = typer.Option(False, "--no-wait", help="SLURM: submit and return; run the same command later to see what is left."),
    board: Path | None = typer.Option(None, "--board", help="Build the leaderboard here once every job has ended (results from --output)."),
    partition: str | None = typer.Option(None, "--partition", help="SLURM partition."),
    gpus_per_job: int | None = typer.Option(
        None, "--gpus-per-job", min=0, help="SLURM GPUs per job (default: 1 with --device cuda, else 0)."
    ),
    cpus_per_job: int | None = typer.Option(None, "--cpus-per-job", min=1, help="SLURM CPUs per job (data-loader workers + 1)."),
    time_min: int = typer.Option(
        240,
        "--time",
        min=1,
        help="Time limit per job, minutes. At the limit (or on preemption) submitit requeues the job, which resumes from the feature cache.",
    ),
    mem_gb: float | None = typer.Option(None, "--mem", min=0.1, help="SLURM memory per job, GB."),
    constraint: str | None = typer.Option(None, "--constraint", help="SLURM node constraint (e.g. a GPU type)."),
    slurm_extra: list[str] | None = typer.Option(
        None, "--slurm-extra", help="Any other sbatch option, KEY=VALUE (repeatable), e.g. account=vision or qos=high."
    ),
    max_parallel: int | None = typer.Option(
        None, "--max-parallel", min=1, help="Jobs at a time: the SLURM array's %N; local CPU jobs (default 1)."
    ),
    gpus: str | None = typer.Option(
        None,
        "--gpus",
        help="Local executor: GPUs to pack jobs onto, one job per GPU: a count N (0..N-1) or a list 0,2,3. Default with --device cuda: all.",
    ),
    *,
    run_options: RunOptions,
) -> None:
    """Run a model list (or named models) on one or more benchmarks as separate jobs, with the options of `run`.

    Plans first and prints the plan: jobs whose result is complete for their configuration hash are
    skipped, entries that cannot run are listed as invalid. Each job writes its own result file
    atomically into --output; the board (--board) is built once, after the last job. Failed jobs are
    listed with their log's last line; `--retry-failed` resubmits only those.
    """
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench.runs import model_entries
    from spurbench.sweeps import failed_jobs, plan_sweep, sweep_setup
    from spurbench.sweeps.executors import ExecutorSettings, job_liveness, run_sweep
    from spurbench.sweeps.jobs import check_sweep_folders

    if no_wait and executor != "slurm":
        raise SpurbenchError("--no-wait is for --executor slurm (local and debug jobs run under this command)")
    output = run_options.output or Path("spurbench-results")
    check_sweep_folders(output)
    retryable, unusable = failed_jobs(output, job_liveness) if retry_failed else ([], [])
    resources = ExecutorSettings(
        kind=executor,
        output=output,
        time_min=time_min,
        gpus_per_job=gpus_per_job,
        cpus_per_job=cpus_per_job,
        mem_gb=mem_gb,
        partition=partition,
        constraint=constraint,
        extra=key_values(slurm_extra, "--slurm-extra"),
        max_parallel=max_parallel,
    )
    setup = sweep_setup(run_options, resources, gpus, [s.spec for s in retryable])  # the jobs keep the options they were planned with
    in_flight: list = []
    if retry_failed:
        specs = [s.spec for s in retryable]
        console.print(
            f"plan: {len(specs)} failed job(s) to resubmit from {output}"
            + (f", {len(unusable)} job record(s) unusable" if unusable else "")
        )
        for spec in specs:
            console.print(f"  retry {spec.model} on {spec.benchmark}", markup=False)
        for line in unusable:  # a job that cannot be retried from its record is a failed job, said so
            err_console.print(
                f"warning: {line}; its job is not retried: run the sweep's command again without --retry-failed to plan it again",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    else:
        plan = plan_sweep(setup.options, model_entries(run_options, model or [], model_list), benchmark or [], liveness=job_liveness)
        _print_plan(plan)
        specs, in_flight = plan.to_run, plan.in_flight()
    if dry_run or not (specs or board):
        if unusable and not dry_run:
            raise typer.Exit(1)  # jobs whose records could not be read are not done
        return
    statuses = []
    if specs:
        quiet = not run_options.features.progress
        live = Live(_progress([]), console=console, transient=True) if console.is_terminal and not quiet else None
        with live or contextlib.nullcontext():
            statuses = run_sweep(
                specs, setup.executor, on_update=(lambda s: live.update(_progress(s))) if live else _log_endings(quiet), wait=not no_wait
            )
        console.print(_summary(statuses))
    if no_wait:
        if statuses:
            console.print(
                f"submitted {len(statuses)} job(s) to SLURM (job {(statuses[0].job_id or '?').split('_')[0]}); run the same command again to see what is left"
            )
        if board is not None:
            console.print("board not built: --no-wait returns before the jobs end; run the same command again once they have", markup=False)
        return
    failed = [s for s in statuses if s.state != "done"]
    if board is not None and in_flight:
        console.print(
            f"board not built: {len(in_flight)} job(s) of an earlier sweep are still in flight; run the same command again once they end",
            markup=False,
        )
    elif board is not None:
        _build_board(output, board, model_list)
    if failed:
        console.print(f"{len(failed)} job(s) failed; `spurbench sweep --retry-failed -o {output}` resubmits only those", markup=False)
    if failed or unusable:
        raise typer.Exit(1)


def _log_endings(quiet: bool):
    """Without a terminal (a log file, CI): one line per job that ends, instead of a live table."""
    seen: set[str] = set()

    def update(statuses) -> None:
        for s in statuses:
            if s.state in ("done", "failed") and s.spec.key not in seen and not quiet:
                seen.add(s.spec.key)
                console.print(
                    f"{s.state} {s.spec.model} on {s.spec.benchmark} ({len(seen)}/{len(statuses)})" + (f": {s.error}" if s.error else ""),
                    markup=False,
                    highlight=False,
                )

    return update


def _print_plan(plan: SweepPlan) -> None:
    console.print(f"plan: {len(plan.to_run)} to run, {len(plan.skipped)} to skip, {len(plan.invalid)} invalid")
    for skipped in plan.skipped:
        running = skipped.running
        why: str = skipped.reason
        if running is not None and skipped.reason == "in flight":
            why = f"in flight ({running.executor} job {running.job_id})"
        elif running is not None:  # its executor cannot tell: another machine's local job, SLURM not answering
            why = f"may be in flight ({running.executor} job {running.job_id}, whose state cannot be asked now); --force submits it again"
        console.print(f"  [dim]skip {skipped.spec.model} on {skipped.spec.benchmark}: {why}[/]", highlight=False)
    for bad in plan.invalid:
        console.print(f"  invalid {bad.model} on {bad.benchmark}: {bad.reason}", markup=False, highlight=False, soft_wrap=True)


def _progress(statuses) -> Table:
    counts = Counter(s.state for s in statuses)
    table = Table(
        title=f"sweep: {counts['queued']} queued · {counts['running']} running · {counts['done']} done · {counts['failed']} failed",
        title_justify="left",
    )
    for column in ("model", "benchmark", "state", "attempt"):
        table.add_column(column)
    for s in statuses:
        if s.state == "running":
            table.add_row(s.spec.model, s.spec.benchmark, s.state, str(s.attempts))
    return table


def _summary(statuses) -> Table:
    """The closing table: every job's state, headline metric, attempts, and its result or the error."""
    # lazy: keeps spurbench --help fast
    from spurbench.report import headline
    from spurbench.results import read_result

    table = Table(title=f"sweep: {sum(s.state == 'done' for s in statuses)} of {len(statuses)} job(s) done", title_justify="left")
    for column in ("model", "benchmark", "state", "headline", "attempts", "result / last log line"):
        table.add_column(column, overflow="fold")
    for s in sorted(statuses, key=lambda s: (s.state != "failed", s.spec.key)):
        shown, where = "-", s.error or ""
        if s.state == "done":
            try:
                name, value = headline(read_result(Path(s.spec.result_file)))
                shown, where = (f"{name} {value:.3f}" if value is not None else name), s.spec.result_file
            except SpurbenchError as exc:
                where = str(exc)
        table.add_row(s.spec.model, s.spec.benchmark, s.state, shown, str(s.attempts), where)
    return table


def _build_board(output: Path, board: Path, model_list: Path | None) -> None:
    # lazy: keeps spurbench --help fast
    from spurbench.leaderboard.build import build_board

    # the board's display names and paper numbers: the given model list's folder, else model-lists/
    model_lists_dir = model_list.parent if model_list else Path("model-lists")
    files = build_board(result_files([output], output), board / "site", board_dir=board, model_lists_dir=model_lists_dir)
    console.print(f"board: {files.markdown}, {files.html}")
