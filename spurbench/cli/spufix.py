"""``spurbench spufix fit | import-alphas``: SpuFix artifacts (class-wise neural PCA, matched directions)."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import console
from spurbench.errors import SpurbenchError

app = typer.Typer(help="Fit, import and publish SpuFix artifacts (class-wise neural PCA, matched directions).", add_completion=False)


@app.command("fit")
def spufix_fit(
    model: str = typer.Option(..., "--model", "-m", help="Target model to fit SpuFix for (FAMILY:SPEC)."),
    source_model: str | None = typer.Option(
        None,
        "--source-model",
        help="Compute source alphas with this model (e.g. a robust ResNet-50 via --source-checkpoint); default: the target itself.",
    ),
    source_checkpoint: str | None = typer.Option(None, "--source-checkpoint", help="Local .safetensors weights for --source-model."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Local .safetensors weights for the target model."),
    source: Path | None = typer.Option(
        None, "--source", help="Precomputed source alphas (a folder from --save-alphas or `spufix import-alphas`)."
    ),
    components: Path | None = typer.Option(
        None, "--components", help="JSON {class: \\[component ranks]}; default: the paper's 322 components for ImageNet."
    ),
    train_data: str | None = typer.Option(
        None,
        "--train-data",
        help="Where the benchmark's training images come from: for ImageNet a local ILSVRC2012 train folder or 'hub' (gated ILSVRC/imagenet-1k, streamed); a generated benchmark needs none. A benchmark name here selects that benchmark.",
    ),
    benchmark: str | None = typer.Option(
        None, "--benchmark", "-b", help="Benchmark whose training split to fit on (default: the one in the model's label space)."
    ),
    components_from_ground_truth: bool = typer.Option(
        False,
        "--components-from-ground-truth",
        help="Demo, for benchmarks that know their ground truth: pick each class's components from it.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=2, help="At most N training images per class."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Artifact folder (default spufix-<model>)."),
    save_alphas: Path | None = typer.Option(
        None, "--save-alphas", help="Also write the source alphas here, to fit other models from them."
    ),
    push: str | None = typer.Option(None, "--push", help="Upload the artifact to this Hub model repo."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str = typer.Option("cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Fit SpuFix for a model: source alphas (computed or loaded) -> matched directions -> artifact.

    One backbone pass per training image and model; both models are loaded once for all classes.
    Data-parallel under `torchrun --nproc-per-node N -m spurbench spufix fit ...`: the ranks share the
    images, rank 0 prints and writes.
    """
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench import distributed
    from spurbench.files import slug
    from spurbench.runs import fit_spufix
    from spurbench.settings import FeatureSettings, SpuFixFitSettings
    from spurbench.spufix.artifact import push_artifact

    features = FeatureSettings(batch_size=batch_size, device=device, progress=not quiet)
    features.check_machine()
    out = output or Path(f"spufix-{slug(model)}")
    settings = SpuFixFitSettings.from_command(
        model=model,
        checkpoint=checkpoint,
        benchmark=benchmark,
        train_data=train_data,
        limit=limit,
        source_model=source_model,
        source_checkpoint=source_checkpoint,
        source_alphas=source,
        components=components,
        components_from_ground_truth=components_from_ground_truth,
        save_alphas=save_alphas,
        output=out,
        features=features,
    )
    with distributed.joined(device) as device:  # under torchrun: this rank (cuda -> cuda:LOCAL_RANK); else as it is
        quiet = quiet or not distributed.is_main()  # only rank 0 prints
        report = (lambda msg: None) if quiet else (lambda msg: console.print(f"[dim]{msg}[/]"))
        artifact = fit_spufix(settings.for_rank(device, distributed.is_main()), on_class=report)  # rank 0 saves it
        if not distributed.is_main():
            return
    console.print(
        f"SpuFix artifact for {model} ({sum(len(v) for v in artifact.components.values())} components in {len(artifact.components)} classes): {out}"
    )
    if push:
        console.print(f"pushed: {push_artifact(out, push)}")


@app.command("import-alphas")
def spufix_import_alphas(
    alphas_dir: Path = typer.Argument(..., help="Upstream folder of spurious_alphas_train_<kkk>.pt files."),
    train_data: Path = typer.Option(..., "--train-data", help="The local ILSVRC2012 train folder the alphas were computed on."),
    components: Path | None = typer.Option(None, "--components", help="JSON {class: \\[component ranks]}; default: the paper's 322."),
    out: Path = typer.Option(Path("source-alphas"), "--out", "-o", help="Where to write the safetensors alphas."),
) -> None:
    """Convert upstream's precomputed per-class alphas (loaded with weights_only=True) to safetensors."""
    # lazy: keeps spurbench --help fast
    from spurbench.benchmarks.imagenet.train import load_local_imagenet_train
    from spurbench.spufix.components import load_components
    from spurbench.spufix.fit import import_upstream_alphas

    if not alphas_dir.is_dir():
        raise SpurbenchError(f"alphas folder {alphas_dir} does not exist")
    table = load_components(components)
    train = load_local_imagenet_train(train_data, sorted(table))
    alphas = import_upstream_alphas(alphas_dir, train, table)
    alphas.save(out)
    console.print(f"imported alphas for {len(alphas.alphas)} classes -> {out}")
