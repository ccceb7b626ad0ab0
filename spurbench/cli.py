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
leaderboard_app = typer.Typer(help="Verify result files, build the leaderboard, publish it to the Hub.", add_completion=False)
app.add_typer(leaderboard_app, name="leaderboard")
spufix_app = typer.Typer(help="Fit, import and publish SpuFix artifacts (class-wise neural PCA, matched directions).", add_completion=False)
app.add_typer(spufix_app, name="spufix")

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
    spufix: Optional[str] = typer.Option(None, "--spufix", help="SpuFix artifact for the model: a folder, hf://ORG/NAME[@REV], or 'auto' (Hub org lookup by model name). Plain and SpuFix are scored from one forward pass."),
    no_spufix: bool = typer.Option(False, "--no-spufix", help="Default run only: skip the ground-truth SpuFix demo and score the plain heads alone."),
    temperature: float = typer.Option(1.0, "--temperature", help="Divide the plain head's logits by T before the softmax (the authors used 0.7156 for their robust ResNet-50). Registry entries carry their own."),
    spufix_temperature: Optional[float] = typer.Option(None, "--spufix-temperature", help="T for the SpuFix head (default: --temperature; the authors used 1 for SpuFix)."),
) -> None:
    """Evaluate models; write one result JSON per model and print mAUC, accuracy and the worst classes.

    With no --model this trains (once, cached) and evaluates the two planted models on the embedded
    planted benchmark: classes with a planted spurious feature score clearly lower than control classes.
    It also fits SpuFix with components chosen from the generator's ground truth (a demo: real use
    passes a components file to `spufix fit`) on planted:cnn, transfers it to planted:resnet from
    planted:cnn's alphas alone, and shows plain and SpuFix side by side.
    """
    from spurbench.adapters import DEFAULT_MODELS
    from spurbench.benchmarks import BENCHMARKS, BenchmarkOptions
    from spurbench.features import check_device
    from spurbench.harness import check_bootstrap, check_temperature, evaluate, run_config_hash, spufix_reference
    from spurbench.model_lists import load_model_list
    from spurbench.preprocessing import check_protocol
    from spurbench.results import check_output_dir, read_result, result_filename

    BENCHMARKS.get(benchmark)  # unknown benchmark: fail before anything else
    check_protocol(protocol)
    check_device(device)
    check_bootstrap(bootstrap)
    check_temperature(temperature)
    if spufix_temperature is not None:
        check_temperature(spufix_temperature, "--spufix-temperature")
    # (model, checkpoint, temperature, SpuFix temperature)
    entries: list[tuple[str, Optional[str], float, Optional[float]]] = [(m, checkpoint, temperature, spufix_temperature) for m in (model or [])]
    if registry is not None:
        entries += [(e.model, e.checkpoint, e.temperature, e.spufix_temperature) for e in load_model_list(registry)]
    demo = not entries and spufix is None and not no_spufix and benchmark == "planted"
    if not entries:
        if benchmark != "planted":
            raise SpurbenchError(f"--model is required for benchmark {benchmark!r} (the default models are trained on 'planted')")
        entries = [(m, None, temperature, spufix_temperature) for m in DEFAULT_MODELS]

    from spurbench.adapters import check_model_name

    for name, *_ in entries:
        check_model_name(name)
    options = BenchmarkOptions(
        data_dir=data_dir, imagenet_val=imagenet_val, dataset_repo=dataset_repo, revision=revision, limit=limit, seed=seed
    )
    check_output_dir(output)
    demo_artifacts = _planted_demo([name for name, *_ in entries], batch_size, device, quiet, not no_cache) if demo else {}
    bench = None
    for name, ckpt, temp, spufix_temp in entries:
        target = output / result_filename(name, benchmark)
        artifact = demo_artifacts.get(name) or _spufix_artifact(spufix, name)
        config_hash = run_config_hash(name, ckpt, benchmark, options, protocol, bootstrap, spufix_reference(artifact), temp, spufix_temp)
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
            spufix=artifact,
            temperature=temp,
            spufix_temperature=spufix_temp,
        )
        _print_result(result, target)


def _planted_demo(names: list[str], batch_size: int, device: str, quiet: bool, use_cache: bool) -> dict:
    """SpuFix artifacts for the default planted models, components from the ground truth (see planted_demo)."""
    from spurbench.adapters import load_model
    from spurbench.benchmarks.planted import PLANTED_CLASSES
    from spurbench.spufix.planted_demo import DEFAULT_SOURCE, planted_demo_artifacts

    models = [load_model(name) for name in names]
    source = next((m for m in models if m.name == DEFAULT_SOURCE), None) or load_model(DEFAULT_SOURCE)
    with console.status(f"fitting SpuFix on {source.name} (components from the generator's ground truth) and transferring it"):
        artifacts = planted_demo_artifacts(models, source, batch_size=batch_size, device=device, use_cache=use_cache, progress=False)
    if not quiet:
        choices = next(iter(artifacts.values())).extra["component_choice"]
        picked = ", ".join(
            f"{PLANTED_CLASSES[int(k)]}: "
            + (", ".join(f"component {n} (precision@25 {p:.2f})" for n, p in zip(c["components"], c["precisions"])) or "none (no component helped on the validation split)")
            for k, c in choices.items()
        )
        console.print(f"[dim]SpuFix demo: neural PCA of {source.name}; ground-truth components {picked}; transferred to {', '.join(n for n in names if n != source.name) or 'no other model'}[/]", soft_wrap=True)
    return artifacts


def _spufix_artifact(spufix: Optional[str], model_name: str):
    """The artifact of ``--spufix`` (loaded once per model, before any model runs), or None."""
    if spufix is None:
        return None
    from spurbench.spufix.artifact import auto_location, load_artifact

    if spufix != "auto":
        return load_artifact(spufix)
    location = auto_location(model_name)
    try:
        return load_artifact(location)
    except SpurbenchError as exc:
        raise SpurbenchError(f"--spufix auto: no published SpuFix artifact for {model_name} ({exc}); fit one with `spurbench spufix fit`") from None


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

    path = download(dataset_repo, revision, out)
    console.print(f"verified snapshot at {path}")


@spufix_app.command("fit")
def spufix_fit(
    model: str = typer.Option(..., "--model", "-m", help="Target model to fit SpuFix for (FAMILY:SPEC)."),
    source_model: Optional[str] = typer.Option(None, "--source-model", help="Compute source alphas with this model (e.g. a robust ResNet-50 via --source-checkpoint); default: the target itself."),
    source_checkpoint: Optional[str] = typer.Option(None, "--source-checkpoint", help="Local .safetensors weights for --source-model."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Local .safetensors weights for the target model."),
    source: Optional[Path] = typer.Option(None, "--source", help="Precomputed source alphas (a folder from --save-alphas or `spufix import-alphas`)."),
    components: Optional[Path] = typer.Option(None, "--components", help="JSON {class: [component ranks]}; default: the paper's 322 components for ImageNet."),
    train_data: str = typer.Option(..., "--train-data", help="Local ILSVRC2012 train folder, 'hub' (gated ILSVRC/imagenet-1k, streamed), or 'planted'."),
    components_from_ground_truth: bool = typer.Option(False, "--components-from-ground-truth", help="Demo on 'planted' only: pick each planted class's component from the generator's ground truth."),
    limit: Optional[int] = typer.Option(None, "--limit", min=2, help="At most N training images per class."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Artifact folder (default spufix-<model>)."),
    save_alphas: Optional[Path] = typer.Option(None, "--save-alphas", help="Also write the source alphas here, to fit other models from them."),
    push: Optional[str] = typer.Option(None, "--push", help="Upload the artifact to this Hub model repo."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str = typer.Option("cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fit SpuFix for a model: source alphas (computed or loaded) -> matched directions -> artifact.

    One backbone pass per training image and model; both models are loaded once for all classes.
    """
    from spurbench.adapters import check_model_name, load_model
    from spurbench.results import model_slug
    from spurbench.spufix.artifact import push_artifact
    from spurbench.spufix.fit import (
        SourceAlphas,
        fit_source,
        fit_transfer,
        load_components,
        self_artifact,
    )

    from spurbench.features import check_device
    from spurbench.results import check_output_dir

    check_device(device)
    check_model_name(model)
    out = output or Path(f"spufix-{model_slug(model)}")
    check_output_dir(out)
    if source is not None and source_model is not None:
        raise SpurbenchError("give either --source (precomputed alphas) or --source-model, not both")
    kw = dict(batch_size=batch_size, device=device, progress=not quiet)
    report = (lambda msg: None) if quiet else (lambda msg: console.print(f"[dim]{msg}[/]"))
    target = load_model(model, checkpoint=checkpoint)
    if source is not None:
        alphas = SourceAlphas.load(source)
        train = _train_data(train_data, sorted(alphas.alphas), limit)
        artifact = fit_transfer(target, train, alphas, on_class=report, **kw)
    else:
        if components_from_ground_truth:
            if train_data != "planted":
                raise SpurbenchError("--components-from-ground-truth is a demo for --train-data planted only")
            from spurbench.benchmarks.planted import ground_truth_components

            src = _source_model(target, model, checkpoint, source_model, source_checkpoint)
            table = ground_truth_components(src, limit=limit, **kw)
        else:
            table = load_components(components)
            src = _source_model(target, model, checkpoint, source_model, source_checkpoint)
        train = _train_data(train_data, sorted(table), limit)
        alphas, npcas = fit_source(src, train, table, on_class=report, **kw)
        if save_alphas is not None:
            alphas.save(save_alphas)
        artifact = self_artifact(src, npcas, alphas) if src is target else fit_transfer(target, train, alphas, on_class=report, **kw)
    artifact.save(out)
    console.print(f"SpuFix artifact for {model} ({sum(len(v) for v in artifact.components.values())} components in {len(artifact.components)} classes): {out}")
    if push:
        console.print(f"pushed: {push_artifact(out, push)}")


def _source_model(target, model: str, checkpoint: Optional[str], source_model: Optional[str], source_checkpoint: Optional[str]):
    """The source adapter: the target itself unless another model or other weights are named."""
    from spurbench.adapters import load_model

    name = source_model or model
    if name == model and source_checkpoint in (None, checkpoint):
        return target
    return load_model(name, checkpoint=source_checkpoint)


def _train_data(train_data: str, classes: list[int], limit: Optional[int]):
    if train_data == "planted":
        from spurbench.benchmarks.planted import training_benchmark

        return training_benchmark(limit=limit)
    from spurbench.benchmarks.imagenet_train import (
        hub_imagenet_train,
        load_local_imagenet_train,
    )

    if train_data == "hub":
        return hub_imagenet_train(classes, limit=limit)
    return load_local_imagenet_train(train_data, classes, limit)


@spufix_app.command("import-alphas")
def spufix_import_alphas(
    alphas_dir: Path = typer.Argument(..., help="Upstream folder of spurious_alphas_train_<kkk>.pt files."),
    train_data: Path = typer.Option(..., "--train-data", help="The local ILSVRC2012 train folder the alphas were computed on."),
    components: Optional[Path] = typer.Option(None, "--components", help="JSON {class: [component ranks]}; default: the paper's 322."),
    out: Path = typer.Option(Path("source-alphas"), "--out", "-o", help="Where to write the safetensors alphas."),
) -> None:
    """Convert upstream's precomputed per-class alphas (loaded with weights_only=True) to safetensors."""
    from spurbench.benchmarks.imagenet_train import load_local_imagenet_train
    from spurbench.spufix.fit import import_upstream_alphas, load_components

    if not alphas_dir.is_dir():
        raise SpurbenchError(f"alphas folder {alphas_dir} does not exist")
    table = load_components(components)
    train = load_local_imagenet_train(train_data, sorted(table))
    alphas = import_upstream_alphas(alphas_dir, train, table)
    alphas.save(out)
    console.print(f"imported alphas for {len(alphas.alphas)} classes -> {out}")


def _result_files(paths: Optional[List[Path]], default: Path) -> list[Path]:
    files: list[Path] = []
    for path in paths or [default]:
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise SpurbenchError(f"{path}: no such result file or folder")
    if not files:
        raise SpurbenchError(f"no result files (*.json) in {', '.join(str(p) for p in paths or [default])}")
    return files


@leaderboard_app.command("verify")
def leaderboard_verify(
    results: Optional[List[Path]] = typer.Argument(None, help="Result files or folders (default: leaderboard/results)."),
) -> None:
    """Validate each result file and recompute every metric from its per-image probabilities (1e-6)."""
    from spurbench.leaderboard.verify import verify_result

    files = _result_files(results, Path("leaderboard/results"))
    for path in files:
        result = verify_result(path)
        console.print(f"[green]ok[/] {path} ({result.model.name} on {result.benchmark.name} {result.benchmark.revision}, heads: {', '.join(result.heads)})")
    console.print(f"{len(files)} result file(s) verified")


@leaderboard_app.command("build")
def leaderboard_build(
    results: Path = typer.Option(Path("leaderboard/results"), "--results", help="Folder of result files."),
    out: Path = typer.Option(Path("leaderboard/site"), "--out", help="Site folder (index.html, leaderboard.json)."),
    board_dir: Path = typer.Option(Path("leaderboard"), "--board-dir", help="Where README.md (the Markdown board), leaderboard.csv and the PNG plots go."),
    registry_dir: Path = typer.Option(Path("registry"), "--registry-dir", help="Model lists with display names, data groups and paper-reported numbers."),
) -> None:
    """Render the verified results: Markdown table, CSV, PNG plots and a self-contained HTML page. No model runs."""
    from spurbench.leaderboard.build import build_board

    files = build_board(_result_files([results], results), out, board_dir=board_dir, registry_dir=registry_dir)
    console.print(f"built {files.markdown}, {files.csv}, {files.html} and {len(files.pngs)} plots")


@leaderboard_app.command("push")
def leaderboard_push(
    repo: str = typer.Option(..., "--repo", help="Hub dataset repo, ORG/NAME (needs HF_TOKEN or a login)."),
    results: Path = typer.Option(Path("leaderboard/results"), "--results"),
    site: Path = typer.Option(Path("leaderboard/site"), "--site", help="Built site to upload too (skipped if missing)."),
) -> None:
    """Verify, then upload the results and the built site with a dataset card."""
    from spurbench.leaderboard.hub import push_leaderboard

    console.print(f"pushed: {push_leaderboard(repo, results, site)}")


@leaderboard_app.command("pull")
def leaderboard_pull(
    repo: str = typer.Option("spurbench/leaderboard", "--repo", help="Hub dataset repo the board is published in."),
    out: Path = typer.Option(Path("leaderboard/results"), "--out"),
    revision: Optional[str] = typer.Option(None, "--revision", help="Pinned revision."),
) -> None:
    """Fetch the published result files (each verified before it is written)."""
    from spurbench.leaderboard.hub import pull_leaderboard

    files = pull_leaderboard(repo, out, revision)
    console.print(f"{len(files)} verified result file(s) in {out}")


INTERRUPTED = "interrupted; run the same command to resume (finished feature shards are cached)"


def one_line(text: str) -> str:
    """User-supplied text (names, paths) as one literal line: newlines and control characters escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in str(text))


def print_error(message: str) -> None:
    """One line on stderr, printed literally: no rich markup, so ``[...]`` in a name or path survives."""
    err_console.print("error: " + one_line(message), markup=False, highlight=False, soft_wrap=True, emoji=False)


def _click_class(exc: BaseException, name: str) -> bool:
    # typer >= 0.29 ships its own copy of click (typer._click), older typer uses the click package: their
    # exception classes are unrelated, so match on the class name in the hierarchy, not on one module's class.
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def usage_exit(exc: BaseException) -> int:
    """Exit status of a click/typer usage error after printing it as one line (2 for bad usage)."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    context = getattr(exc, "ctx", None)
    command = getattr(context, "command_path", None) if context is not None else None
    print_error(f"{message} (see '{command} --help')" if command else message)
    return int(getattr(exc, "exit_code", 2) or 2)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit 2; Ctrl-C exits 130.
    A bare ``spurbench`` shows the help."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = app(args=args or ["--help"], standalone_mode=False)
    except SpurbenchError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print(INTERRUPTED, markup=False)
        sys.exit(130)
    except Exception as exc:
        if _click_class(exc, "ClickException"):
            sys.exit(usage_exit(exc))
        if _click_class(exc, "Abort"):  # older click turns Ctrl-C (and EOF at a prompt) into Abort
            interrupted = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)
            err_console.print(INTERRUPTED if interrupted else "aborted", markup=False)
            sys.exit(130 if interrupted else 1)
        raise
    # In non-standalone mode typer returns the exit code instead of raising (Ctrl-C -> 130).
    if isinstance(status, int) and status != 0:
        if status == 130:
            err_console.print(INTERRUPTED, markup=False)
        sys.exit(status)


if __name__ == "__main__":
    main()
