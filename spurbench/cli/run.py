"""``spurbench run``: evaluate models on a benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli import options
from spurbench.cli.common import app, console
from spurbench.errors import SpurbenchError


@app.command()
def run(
    model: list[str] | None = typer.Option(None, "--model", "-m", help="FAMILY:SPEC, repeatable. Default: the benchmark's default models."),
    registry: Path | None = options.REGISTRY,
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        "-b",
        help="Benchmark name (`spurbench ls` lists them). Default: the default benchmark (embedded, no downloads).",
    ),
    data_dir: str | None = options.DATA_DIR,
    imagenet_val: str | None = options.IMAGENET_VAL,
    imagenet_train: str | None = options.IMAGENET_TRAIN,
    dataset_repo: str | None = options.DATASET_REPO,
    revision: str | None = options.REVISION,
    seed: int | None = options.SEED,
    option: list[str] | None = options.OPTION,
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="Local .safetensors weights for the named architecture (e.g. a robust ResNet-50)."
    ),
    protocol: str = options.PROTOCOL,
    batch_size: int = options.BATCH_SIZE,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps ..."),
    limit: int | None = options.LIMIT,
    output: Path = options.OUTPUT,
    no_cache: bool = options.NO_CACHE,
    bootstrap: int = options.BOOTSTRAP,
    force: bool = options.FORCE,
    quiet: bool = options.QUIET,
    spufix: str | None = options.SPUFIX,
    no_spufix: bool = typer.Option(
        False, "--no-spufix", help="Default run only: skip the ground-truth SpuFix demo and score the plain heads alone."
    ),
    temperature: float = options.TEMPERATURE,
    spufix_temperature: float | None = options.SPUFIX_TEMPERATURE,
    num_workers: int | None = options.NUM_WORKERS,
    precision: str = options.PRECISION,
    channels_last: bool = options.CHANNELS_LAST,
    pixel_cache: Path | None = options.PIXEL_CACHE,
    pixel_cache_gb: float | None = options.PIXEL_CACHE_GB,
) -> None:
    """Evaluate models; write one result JSON per model and print mAUC, accuracy and the worst classes.

    With no --model this evaluates the default benchmark's default models (the embedded benchmark: two
    small models trained once on first use, then cached): classes whose training images carried a
    spurious feature score clearly lower than control classes. Where the benchmark knows its ground truth, it also fits SpuFix on
    the first default model with components chosen from that ground truth (a demo: real use passes a
    components file to `spufix fit`), transfers it to the other default models from the first one's alphas
    alone, and shows plain and SpuFix side by side.
    """
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench.adapters import load_model
    from spurbench.benchmarks import default_benchmark
    from spurbench.harness import evaluate, planned_facts, run_config_hash, spufix_reference
    from spurbench.pixelcache import DEFAULT_GB, PixelCache
    from spurbench.protocols import scored_protocol
    from spurbench.report import summary_table, worst_classes_table
    from spurbench.result_conflicts import existing_result, refuse_other_facts
    from spurbench.results import check_output_dir
    from spurbench.runs import demo_artifacts, plan_run, spufix_artifact

    named = {
        "data_dir": data_dir,
        "imagenet_val": imagenet_val,
        "imagenet_train": imagenet_train,
        "dataset_repo": dataset_repo,
        "revision": revision,
        "seed": seed,
        "limit": limit,
    }
    values = options.benchmark_values(named, option, benchmark)
    options.check_run_options(protocol, bootstrap, temperature, spufix_temperature, num_workers, precision, device)
    plan = plan_run(
        benchmark or default_benchmark(), values, model or [], registry, checkpoint, temperature, spufix_temperature, spufix, no_spufix
    )
    check_output_dir(output)
    options.check_pixel_cache(pixel_cache, pixel_cache_gb)
    pixels = None if pixel_cache is None else PixelCache.open(pixel_cache, DEFAULT_GB if pixel_cache_gb is None else pixel_cache_gb)
    bench_name = plan.plugin.benchmark_name(
        plan.options
    )  # what the results are named by (a plugin's benchmarks may be named by their data)
    targets = _targets(plan.entries, output, bench_name)
    spec = scored_protocol(plan.plugin.protocols_for(plan.options), protocol, bench_name)
    if plan.ground_truth_demo and not force:  # its config hash needs the fit: a file that records other facts is refused before it
        for entry in plan.entries:
            refuse_other_facts(
                targets[entry.model], planned_facts(True, protocol, precision, bootstrap, entry.temperature, entry.spufix_temperature)
            )
    artifacts = {}
    if plan.ground_truth_demo:
        models = [load_model(entry.model) for entry in plan.entries]  # trains on first use, with its own progress bar
        source = models[0].name
        with console.status(f"fitting SpuFix on {source} (components from the benchmark's ground truth) and transferring it"):
            artifacts = demo_artifacts(plan, models, batch_size=batch_size, device=device, use_cache=not no_cache, progress=False)
        if not quiet:
            console.print(
                f"[dim]SpuFix demo: {_describe_choice(artifacts[source].extra['component_choice'], models[0].class_names)}; transferred to {', '.join(n for n in artifacts if n != source) or 'no other model'}[/]",
                soft_wrap=True,
            )
    # Every entry's file is checked before any model runs: a result of another configuration stops the
    # whole run in one line (unless --force), not after the models before it have run.
    todo = []
    for entry in plan.entries:
        target = targets[entry.model]
        artifact = artifacts.get(entry.model) or spufix_artifact(spufix, entry.model)
        config_hash = run_config_hash(
            entry.model,
            entry.checkpoint,
            bench_name,
            plan.options,
            spec,
            bootstrap,
            spufix_reference(artifact),
            entry.temperature,
            entry.spufix_temperature,
            precision=precision,
        )
        planned = planned_facts(
            artifact is not None, protocol, precision, bootstrap, entry.temperature, entry.spufix_temperature, entry.checkpoint
        )
        if not force and existing_result(target, config_hash, planned):
            console.print(f"[dim]skip {entry.model}: {target} is complete (use --force to re-run)[/]")
            continue
        todo.append((entry, target, artifact))
    bench = None
    for entry, target, artifact in todo:
        if bench is None:
            with console.status(f"loading benchmark {plan.plugin.name}"):
                bench = plan.plugin.load(plan.options)
            if bench.protocols.get(protocol) != spec:  # the skip check above hashed protocols_for()'s
                raise SpurbenchError(
                    f"benchmark plugin {plan.plugin.name}: load() gave protocols other than protocols_for() said; a plugin states them once"
                )
        result = evaluate(
            entry.model,
            bench,
            options=plan.options,
            checkpoint=entry.checkpoint,
            protocol=protocol,
            batch_size=batch_size,
            device=device,
            use_cache=not no_cache,
            bootstrap=bootstrap,
            output_dir=output,
            progress=not quiet,
            spufix=artifact,
            temperature=entry.temperature,
            spufix_temperature=entry.spufix_temperature,
            num_workers=num_workers,
            precision=precision,
            channels_last=channels_last,
            pixel_cache=pixels,
            force=force,
        )
        console.print(summary_table(result))
        console.print(worst_classes_table(result, n=10))
        console.print(f"[dim]result: {target}[/]")


def _targets(entries, output: Path, bench_name: str) -> dict[str, Path]:
    """Each entry's result file; two entries of one model would write one file (one line, before any work)."""
    # lazy: keeps spurbench --help fast
    from spurbench.results import result_filename

    targets: dict[str, Path] = {}
    for entry in entries:
        if entry.model in targets:
            raise SpurbenchError(
                f"{entry.model} is listed twice: both runs would write {targets[entry.model]}; list each model once (or run them into separate --output folders)"
            )
        targets[entry.model] = output / result_filename(entry.model, bench_name)
    return targets


def _describe_choice(choices: dict, names: list[str] | None) -> str:
    """The ground-truth component choice of the demo, in one line."""
    picked = []
    for k, c in choices.items():
        comps = ", ".join(f"component {n} (precision@25 {p:.2f})" for n, p in zip(c["components"], c["precisions"]))
        picked.append(f"{names[int(k)] if names else 'class ' + k}: {comps or 'none (no component helped on the validation split)'}")
    return "ground-truth components " + "; ".join(picked)
