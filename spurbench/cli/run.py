"""``spurbench run``: evaluate models on a benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from spurbench.cli.common import app, console, key_values


@app.command()
def run(
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="FAMILY:SPEC, repeatable. Default: the benchmark's default models."),
    registry: Optional[Path] = typer.Option(None, "--registry", help="YAML model list (registry/*.yaml) to sweep."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Benchmark name (`spurbench ls` lists them). Default: the default benchmark (embedded, no downloads)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local copy of the benchmark's images (e.g. an unpacked upstream zip or a built dataset folder)."),
    imagenet_val: Optional[str] = typer.Option(None, "--imagenet-val", help="Local ILSVRC2012 val folder, for benchmarks whose class images are ImageNet-val (else the gated Hub dataset)."),
    imagenet_train: Optional[str] = typer.Option(None, "--imagenet-train", help="Local ILSVRC2012 train folder (or 'hub': the gated Hub split), for benchmarks whose images are ImageNet train images."),
    dataset_repo: Optional[str] = typer.Option(None, "--dataset-repo", help="Hub dataset repo of the benchmark's images (default: the one its plugin names)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Pinned Hub revision of the benchmark's dataset."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Generator seed, for generated benchmarks."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-O", help="Any other benchmark option, KEY=VALUE (repeatable; unknown keys are errors)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Local .safetensors weights for the named architecture (e.g. a robust ResNet-50)."),
    protocol: str = typer.Option("paper", "--protocol", help="paper: the paper's preprocessing; model: each model's own timm data config."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps ..."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N images per class and role (smoke runs)."),
    output: Path = typer.Option(Path("spurbench-results"), "--output", "-o", help="Folder for result JSON files."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap draws for the mAUC 95% CI (0 = none)."),
    force: bool = typer.Option(False, "--force", help="Re-run models whose result file is already complete."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    spufix: Optional[str] = typer.Option(None, "--spufix", help="SpuFix artifact for the model: a folder, hf://ORG/NAME\\[@REV], or 'auto' (Hub org lookup by model name). Plain and SpuFix are scored from one forward pass."),
    no_spufix: bool = typer.Option(False, "--no-spufix", help="Default run only: skip the ground-truth SpuFix demo and score the plain heads alone."),
    temperature: float = typer.Option(1.0, "--temperature", help="Divide the plain head's logits by T before the softmax (the authors used 0.7156 for their robust ResNet-50). Registry entries carry their own."),
    spufix_temperature: Optional[float] = typer.Option(None, "--spufix-temperature", help="T for the SpuFix head (default: --temperature; the authors used 1 for SpuFix)."),
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
    from spurbench.runtime import check_device
    from spurbench.harness import check_bootstrap, check_temperature, evaluate, run_config_hash, spufix_reference
    from spurbench.preprocessing import check_protocol
    from spurbench.report import summary_table, worst_classes_table
    from spurbench.results import check_output_dir, result_filename
    from spurbench.runs import demo_artifacts, is_complete, plan_run, spufix_artifact

    named = {"data_dir": data_dir, "imagenet_val": imagenet_val, "imagenet_train": imagenet_train, "dataset_repo": dataset_repo, "revision": revision, "seed": seed, "limit": limit}
    values = {**{k: v for k, v in named.items() if v is not None}, **key_values(option)}
    check_protocol(protocol)
    check_device(device)
    check_bootstrap(bootstrap)
    check_temperature(temperature)
    if spufix_temperature is not None:
        check_temperature(spufix_temperature, "--spufix-temperature")
    plan = plan_run(benchmark or default_benchmark(), values, model or [], registry, checkpoint, temperature, spufix_temperature, spufix, no_spufix)
    check_output_dir(output)
    artifacts = {}
    if plan.ground_truth_demo:
        models = [load_model(entry.model) for entry in plan.entries]  # trains on first use, with its own progress bar
        source = models[0].name
        with console.status(f"fitting SpuFix on {source} (components from the benchmark's ground truth) and transferring it"):
            artifacts = demo_artifacts(plan, models, batch_size=batch_size, device=device, use_cache=not no_cache, progress=False)
        if not quiet:
            console.print(f"[dim]SpuFix demo: {_describe_choice(artifacts[source].extra['component_choice'], models[0].class_names)}; transferred to {', '.join(n for n in artifacts if n != source) or 'no other model'}[/]", soft_wrap=True)
    bench = None
    bench_name = plan.plugin.benchmark_name(plan.options)  # what the results are named by (a plugin's benchmarks may be named by their data)
    for entry in plan.entries:
        target = output / result_filename(entry.model, bench_name)
        artifact = artifacts.get(entry.model) or spufix_artifact(spufix, entry.model)
        config_hash = run_config_hash(entry.model, entry.checkpoint, bench_name, plan.options, protocol, bootstrap, spufix_reference(artifact), entry.temperature, entry.spufix_temperature)
        if not force and is_complete(target, config_hash):
            console.print(f"[dim]skip {entry.model}: {target} is complete (use --force to re-run)[/]")
            continue
        if bench is None:
            with console.status(f"loading benchmark {plan.plugin.name}"):
                bench = plan.plugin.load(plan.options)
        result = evaluate(
            entry.model, bench, options=plan.options, checkpoint=entry.checkpoint, protocol=protocol, batch_size=batch_size, device=device,
            use_cache=not no_cache, bootstrap=bootstrap, output_dir=output, progress=not quiet, spufix=artifact,
            temperature=entry.temperature, spufix_temperature=entry.spufix_temperature,
        )  # fmt: skip
        console.print(summary_table(result))
        console.print(worst_classes_table(result, n=10))
        console.print(f"[dim]result: {target}[/]")


def _describe_choice(choices: dict, names: list[str] | None) -> str:
    """The ground-truth component choice of the demo, in one line."""
    picked = []
    for k, c in choices.items():
        comps = ", ".join(f"component {n} (precision@25 {p:.2f})" for n, p in zip(c["components"], c["precisions"]))
        picked.append(f"{names[int(k)] if names else 'class ' + k}: {comps or 'none (no component helped on the validation split)'}")
    return "ground-truth components " + "; ".join(picked)
