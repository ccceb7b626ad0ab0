"""``spurbench run``: evaluate models on a benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spurbench.cli import options
from spurbench.cli.common import app, console

if TYPE_CHECKING:
    from spurbench.settings import RunOptions


@app.command()
@options.with_run_options()
def run(
    model: list[str] | None = typer.Option(None, "--model", "-m", help="FAMILY:SPEC, repeatable. Default: the benchmark's default models."),
    model_list: Path | None = options.MODEL_LIST,
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        "-b",
        help="Benchmark name (`spurbench ls` lists them). Default: the default benchmark (embedded, no downloads).",
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="Local .safetensors weights for the named architecture (e.g. a robust ResNet-50)."
    ),
    no_spufix: bool = typer.Option(
        False, "--no-spufix", help="Default run only: skip the ground-truth SpuFix demo and score the plain heads alone."
    ),
    *,
    run_options: RunOptions,
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
    from spurbench.harness import evaluate
    from spurbench.report import summary_table, worst_classes_table
    from spurbench.runs import demo_artifacts, demo_models, model_runs, plan_run

    plan = plan_run(run_options, benchmark, model or [], model_list, checkpoint, no_spufix)
    artifacts = {}
    if plan.ground_truth_demo:
        models = demo_models(plan)  # trains on first use, with its own progress bar
        source = models[0].name
        with console.status(f"fitting SpuFix on {source} (components from the benchmark's ground truth) and transferring it"):
            artifacts = demo_artifacts(plan, models)
        if run_options.features.progress:
            console.print(
                f"[dim]SpuFix demo: {_describe_choice(artifacts[source].extra['component_choice'], models[0].class_names)}; transferred to {', '.join(n for n in artifacts if n != source) or 'no other model'}[/]",
                soft_wrap=True,
            )
    bench = None
    for planned in model_runs(plan, artifacts):  # every result file is checked before any model runs
        target = planned.settings.result_file()
        if planned.complete:
            console.print(f"[dim]skip {planned.settings.model}: {target} is complete (use --force to re-run)[/]")
            continue
        if bench is None:
            with console.status(f"loading benchmark {plan.plugin.name}"):
                bench = plan.plugin.load(planned.settings.parsed_options())
        result = evaluate(planned.settings, benchmark=bench, spufix=planned.spufix)
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
