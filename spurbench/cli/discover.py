"""``spurbench discover``: class-wise neural PCA components of a model, with statistics and top images."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import app, console
from spurbench.errors import SpurbenchError

# No label space has a million classes (ImageNet-21k has 21,843): a larger index is a typo, refused
# before a list of that many classes is built. The model's own label space bounds it once loaded.
MAX_CLASS_INDEX = 999_999


def parse_classes(text: str) -> list[int] | None:
    """``all`` -> None; ``1,2,5-7`` -> [1, 2, 5, 6, 7]; a one-line error otherwise (also for a range that
    runs backwards, or an index beyond any label space)."""
    if text.strip().lower() == "all":
        return None
    spans: list[tuple[int, int]] = []
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            span = (int(first), int(last) if sep else int(first))
        except ValueError:
            raise SpurbenchError(f"--classes {text!r}: expected 'all' or class indices like 1,2,5-7") from None
        if span[1] < span[0]:
            raise SpurbenchError(f"--classes {text!r}: the range {span[0]}-{span[1]} runs backwards; write {span[1]}-{span[0]}")
        if span[1] > MAX_CLASS_INDEX:
            raise SpurbenchError(f"--classes {text!r}: class {span[1]} is beyond any label space (at most {MAX_CLASS_INDEX})")
        spans.append(span)
    return sorted({k for first, last in spans for k in range(first, last + 1)})


@app.command()
def discover(
    model: str = typer.Option(..., "--model", "-m", help="FAMILY:SPEC of the model whose components to find."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Discovery folder: discovery.json and images/. A partial discovery of the same model and settings is continued.",
    ),
    train_data: str | None = typer.Option(
        None,
        "--train-data",
        help="Where the training images come from: for ImageNet a local ILSVRC2012 train folder or 'hub'; a benchmark name selects that benchmark's own (e.g. generated) split.",
    ),
    benchmark: str | None = typer.Option(
        None, "--benchmark", "-b", help="Benchmark whose training split to use (default: the one in the model's label space)."
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", help="Local .safetensors weights (e.g. an adversarially robust ResNet-50, as the papers use)."
    ),
    classes: str = typer.Option("all", "--classes", help="Classes to analyse: 'all' or indices like 1,2,5-7."),
    basis: str = typer.Option(
        "npca",
        "--basis",
        help="What a component is: 'npca' = class-wise neural PCA components (the default), 'neurons' = the class's top penultimate units by mean(feature x weight), as Salient ImageNet. Labels, pages and export work the same for both.",
    ),
    components_per_class: int = typer.Option(
        10, "--components-per-class", min=1, help="Components recorded per class: the leading neural PCA components, or the top neurons."
    ),
    top_images: int = typer.Option(8, "--top-images", min=1, help="Training images with the largest contribution shown per component."),
    bottom_images: int = typer.Option(
        4,
        "--bottom-images",
        min=0,
        help="The class's training images with the smallest contribution, shown beside the top ones as a contrast strip (0 = none).",
    ),
    npfv_steps: int = typer.Option(
        200,
        "--npfv-steps",
        min=0,
        help="APGD steps of each component's feature visualisation (NPFV; 0 = none). Meaningful for adversarially robust models.",
    ),
    robust: bool = typer.Option(
        False,
        "--robust",
        help="Say that the model is adversarially robust: the label page then shows each feature visualisation large (for other models they are mostly noise, and shown small).",
    ),
    limit: int | None = typer.Option(None, "--limit", min=2, help="At most N training images per class."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str = typer.Option("cpu", "--device"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Find candidate spurious features: one backbone pass over the training images (cached, shared with
    `spufix fit`), then per class its components (neural PCA, or top neurons with --basis neurons), each
    with its statistics, top images, feature visualisation and GradCAM overlays. Label them with
    `spurbench label OUT`. Data-parallel under `torchrun --nproc-per-node N -m spurbench discover ...`."""
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench import distributed
    from spurbench.discovery.pipeline import discover as run_discovery
    from spurbench.settings import DiscoverySettings, FeatureSettings

    features = FeatureSettings(batch_size=batch_size, device=device, progress=not quiet)
    features.check_machine()
    settings = DiscoverySettings.from_command(
        model=model,
        checkpoint=checkpoint,
        benchmark=benchmark,
        train_data=train_data,
        limit=limit,
        out=out,
        classes=parse_classes(classes),
        basis=basis,
        components_per_class=components_per_class,
        top_images=top_images,
        bottom_images=bottom_images,
        npfv_steps=npfv_steps,
        robust=robust,
        features=features,
    )
    with distributed.joined(device) as device:  # under torchrun: this rank (cuda -> cuda:LOCAL_RANK), sharing the images; else as it is
        quiet = quiet or not distributed.is_main()  # only rank 0 prints (and writes)
        report = (
            (lambda done, total, k: None) if quiet else (lambda done, total, k: console.print(f"[dim]class {k} ({done + 1}/{total})[/]"))
        )
        index = run_discovery(settings.for_rank(device, distributed.is_main()), on_class=report)
    if distributed.is_main():
        console.print(f"discovered {len(index.classes)} classes x {components_per_class} components of {model}: {out / 'discovery.json'}")
