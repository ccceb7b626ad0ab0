"""Command line: ``spurbench run | ls | dataset build | dataset download``."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from spurbench.errors import SpurbenchError

app = typer.Typer(
    help="Measure how much image classifiers rely on harmful spurious features (Spurious ImageNet, SpuFix).",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dataset_app = typer.Typer(help="Build, publish and download the Spurious ImageNet Hub dataset.", add_completion=False)
app.add_typer(dataset_app, name="dataset")

console = Console()
err_console = Console(stderr=True)


@app.command()
def run(
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="FAMILY:SPEC, repeatable. Default: planted:cnn and planted:resnet on the planted benchmark."),
    registry: Optional[Path] = typer.Option(None, "--registry", help="YAML model list (registry/*.yaml) to sweep."),
    benchmark: str = typer.Option("planted", "--benchmark", "-b", help="planted (embedded, no downloads) or spurious-imagenet."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Local Spurious ImageNet: upstream folder layout or a built dataset folder."),
    imagenet_val: Optional[str] = typer.Option(None, "--imagenet-val", help="Local ILSVRC2012 val folder for the positives (else the gated Hub dataset)."),
    dataset_repo: Optional[str] = typer.Option(None, "--dataset-repo", help="Hub dataset repo of Spurious ImageNet (default: the one named in spurbench)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Pinned Hub revision of the dataset."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Local .safetensors weights for a timm architecture (e.g. a robust ResNet-50)."),
    protocol: str = typer.Option("paper", "--protocol", help="paper: the paper's preprocessing; model: each model's own timm data config."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps ..."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N images per class and role (smoke runs)."),
    output: Path = typer.Option(Path("spurbench-results"), "--output", "-o", help="Folder for result JSON files."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the feature cache."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap draws for the mAUC 95% CI (0 = none)."),
    seed: int = typer.Option(0, "--seed", help="Planted benchmark generator seed."),
    force: bool = typer.Option(False, "--force", help="Re-run models whose result file is already complete."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate models; write one result JSON per model and print mAUC, accuracy and the worst classes.

    With no --model this trains (once, cached) and evaluates the two planted models on the embedded
    planted benchmark: classes with a planted spurious feature score clearly lower than control classes.
    """
    from spurbench.adapters import DEFAULT_MODELS
    from spurbench.benchmarks import BENCHMARKS, BenchmarkOptions
    from spurbench.harness import evaluate, run_config_hash
    from spurbench.model_lists import load_model_list
    from spurbench.preprocessing import PROTOCOLS
    from spurbench.results import read_result, result_filename

    BENCHMARKS.get(benchmark)  # unknown benchmark: fail before anything else
    if protocol not in PROTOCOLS:
        raise SpurbenchError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    entries: list[tuple[str, Optional[str]]] = [(m, checkpoint) for m in (model or [])]
    if registry is not None:
        entries += [(e.model, e.checkpoint) for e in load_model_list(registry)]
    if not entries:
        if benchmark != "planted":
            raise SpurbenchError(f"--model is required for benchmark {benchmark!r} (the default models are trained on 'planted')")
        entries = [(m, None) for m in DEFAULT_MODELS]

    from spurbench.adapters import check_model_name

    for name, _ in entries:
        check_model_name(name)
    options = BenchmarkOptions(
        data_dir=data_dir, imagenet_val=imagenet_val, dataset_repo=dataset_repo, revision=revision, limit=limit, seed=seed
    )
    bench = None
    for name, ckpt in entries:
        target = output / result_filename(name, benchmark)
        config_hash = run_config_hash(name, ckpt, benchmark, options, protocol, bootstrap)
        if target.exists() and not force:
            try:
                if read_result(target).config_hash == config_hash:
                    console.print(f"[dim]skip {name}: {target} is complete (use --force to re-run)[/]")
                    continue
            except SpurbenchError:
                pass  # invalid or partial file: run again and overwrite it
        if bench is None:
            from spurbench.benchmarks import load_benchmark

            with console.status(f"loading benchmark {benchmark}"):
                bench = load_benchmark(benchmark, options)
        result = evaluate(
            name,
            bench,
            options=options,
            checkpoint=ckpt,
            protocol=protocol,
            batch_size=batch_size,
            device=device,
            use_cache=not no_cache,
            bootstrap=bootstrap,
            output_dir=output,
            progress=not quiet,
        )
        _print_result(result, target)


def _print_result(result, path: Path) -> None:
    from spurbench.report import summary_table, worst_classes_table

    console.print(summary_table(result))
    console.print(worst_classes_table(result, n=10))
    console.print(f"[dim]result: {path}[/]")


@app.command("ls")
def list_models(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard filter, e.g. 'timm:*convnext*'."),
    registry_dir: Path = typer.Option(Path("registry"), "--registry-dir", help="Folder of YAML model lists."),
) -> None:
    """List model families, example names, and the models in registry/*.yaml."""
    from spurbench.adapters import ADAPTERS, EXAMPLES
    from spurbench.model_lists import load_model_list, registry_files

    table = Table(title="model families", title_justify="left")
    table.add_column("family")
    table.add_column("examples")
    for family in ADAPTERS.names():
        examples = [e for e in EXAMPLES.get(family, [f"{family}:..."]) if pattern is None or fnmatch.fnmatch(e, pattern)]
        if examples or pattern is None:
            table.add_row(family, ", ".join(examples))
    console.print(table)
    for path in registry_files(registry_dir):
        rows = [e for e in load_model_list(path) if pattern is None or fnmatch.fnmatch(e.model, pattern)]
        if not rows:
            continue
        reg = Table(title=str(path), title_justify="left")
        for col in ("model", "display name", "data"):
            reg.add_column(col)
        for e in rows:
            reg.add_row(e.model, e.display_name or "", e.data or "")
        console.print(reg)


@dataset_app.command("build")
def dataset_build(
    from_upstream: Path = typer.Option(..., "--from-upstream", help="The unzipped upstream Spurious ImageNet folder."),
    out: Path = typer.Option(Path("spurious-imagenet-hf"), "--out", "-o", help="Where to write parquet shards and the dataset card."),
    push: Optional[str] = typer.Option(None, "--push", help="Upload the built dataset to this Hub dataset repo."),
) -> None:
    """Turn the upstream folder layout into a Hub dataset (parquet shards, card, checksum)."""
    from spurbench.benchmarks.dataset_build import build_from_upstream, push_to_hub

    info = build_from_upstream(from_upstream, out)
    console.print(f"built {out}: {info}")
    if push:
        url = push_to_hub(out, push)
        console.print(f"pushed to {url}")


@dataset_app.command("download")
def dataset_download(
    dataset_repo: Optional[str] = typer.Option(None, "--dataset-repo", help="Hub dataset repo (default: the one named in spurbench)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Pinned revision."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Copy the verified snapshot here (default: stay in the Hub cache)."),
) -> None:
    """Download the Spurious ImageNet dataset and verify its checksum."""
    from spurbench.benchmarks.dataset_build import download
    from spurbench.benchmarks.spurious_imagenet import DEFAULT_DATASET_REPO

    path = download(dataset_repo, revision, out)
    console.print(f"verified snapshot at {path}")


def main() -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except SpurbenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted: finished feature shards are cached; run the same command again to resume")
        sys.exit(130)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
