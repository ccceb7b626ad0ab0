"""Finding spurious features: components of a class logit for any model, ready for people to label.

``discover`` runs one backbone pass over the training images of the chosen classes (through the
feature cache, the same entries ``spufix fit`` reads, so fitting SpuFix afterwards forwards nothing),
then per class, from the cached features, fits a basis (``spurbench.basis``): class-wise neural PCA
(paper 1 sec. 4.1, the default) or the class's top penultimate neurons (Salient ImageNet, paper 2
sec. 3). Per component it records its share of the class logit's variance (and eigenvalue or unit
index), the distribution of its contribution alpha_l, its top training images, its feature
visualisation (NPFV, ``spurbench.discovery.npfv``, sec. 4.2), and GradCAM of alpha_l on both
(``spurbench.discovery.gradcam``) where the adapter names a CAM layer. One class at a time, so memory is O(D^2)
whatever the number of classes.

Everything lands in ``--out``: ``discovery.json`` (the index: model card, training split, per class
and component the statistics and top images) and ``images/`` (PNGs, ``spurbench.discovery.images``). The index is
rewritten atomically after every class, and a run on a folder that already holds part of the same
discovery continues with the classes not yet done.

Under torchrun (``spurbench.distributed``) each rank streams a batch-aligned part of every class: the
basis statistics are summed over the ranks, the alpha rows gathered in image order, and rank 0 alone
finalises the basis, picks the top images as one process would, renders and writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from spurbench import distributed
from spurbench._version import __version__
from spurbench.adapters import ModelAdapter, load_model
from spurbench.basis import save_basis
from spurbench.benchmarks import Benchmark, BenchmarkPlugin, TrainingData, get_benchmark, require
from spurbench.discovery.images import save_npfvs, save_top_images, supports_cam
from spurbench.discovery.index import (
    BASES_DIR,
    INDEX_FILE,
    ClassRecord,
    ComponentRecord,
    DiscoveryIndex,
    NPFVRecord,
    TopImage,
    TrainingSplit,
    read_index,
    write_index,
)
from spurbench.discovery.statistics import class_statistics
from spurbench.errors import SpurbenchError
from spurbench.features import check_same_inputs, class_subset
from spurbench.files import plain, remove_stale_temporaries
from spurbench.results import check_output_dir
from spurbench.settings import DiscoverySettings, FeatureSettings

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def discover_class(
    model: ModelAdapter,
    subset: Benchmark,
    class_index: int,
    components: int,
    top: tuple[int, int],
    folder: Path,
    settings: FeatureSettings,
    npfv_steps: int = 0,
    basis: str = "npca",
) -> ClassRecord | None:
    """One class from its (cached) features: its basis (neural PCA or top neurons), and per component
    the statistics, top images, feature visualisation and GradCAMs. Under torchrun every rank streams
    its part of the class and rank 0 renders, writes and returns the record (None on the other ranks)."""
    statistics = class_statistics(model, subset, class_index, components, top, basis, settings)
    if statistics is None:
        return None
    fitted, fields, everything, (best, worst), rises = statistics
    count = len(fields)
    positive = (everything > 0).to(torch.float64).mean(0)
    effects = rises.mean(0)
    means = everything.mean(0)
    quantiles = torch.quantile(everything, torch.tensor(QUANTILES, dtype=torch.float64), dim=0)
    by_id = {im.image_id: im for im in subset.images}
    cams = supports_cam(model)
    npfvs = (
        [NPFVRecord(**r) for r in save_npfvs(model, class_index, fitted, count, npfv_steps, folder, settings.device, cams)]
        if npfv_steps
        else [None] * count
    )
    records = []
    for l in range(count):
        saved = save_top_images(model, by_id, class_index, fitted, l, best[1][l], folder, cams)
        tops = [TopImage(image_id=i, alpha=float(v), file=f, cam_file=c) for i, v, (f, c) in zip(best[1][l], best[0][:, l], saved)]
        lows = save_top_images(model, by_id, class_index, fitted, l, worst[1][l], folder, cams) if worst[1][l] else []
        bottoms = (
            [TopImage(image_id=i, alpha=-float(v), file=f, cam_file=c) for i, v, (f, c) in zip(worst[1][l], worst[0][:, l], lows)]
            if lows
            else []
        )
        records.append(
            ComponentRecord(
                rank=l,
                **fields[l],
                alpha_mean=float(means[l]),
                alpha_quantiles={f"q{round(q * 100):02d}": float(quantiles[i, l]) for i, q in enumerate(QUANTILES)},
                top_images=tops,
                npfv=npfvs[l],
                bottom_images=bottoms,
                positive_share=float(positive[l]),
                probability_effect=float(effects[l]),
            )
        )
    basis_file = f"{BASES_DIR}/class{class_index}.safetensors"
    (folder / BASES_DIR).mkdir(parents=True, exist_ok=True)
    save_basis(folder / basis_file, fitted, count)
    name = next((c.name for c in subset.classes if c.index == class_index), str(class_index))
    # f_k = <1, psi_k> + b_k, so its mean is <1, mean psi_k> + b_k (for neural PCA: every alpha_l averages to 0)
    logit_mean = float(fitted.constant) + float(model.head[1][class_index])
    return ClassRecord(
        class_index=class_index,
        class_name=name,
        num_images=fitted.num_images,
        logit_mean=logit_mean,
        components=records,
        basis_file=basis_file,
    )


def load_training(
    settings: DiscoverySettings, model: ModelAdapter | None = None, train: Benchmark | None = None
) -> tuple[ModelAdapter, BenchmarkPlugin, Benchmark]:
    """The model, plugin and training split a discovery analyses: the loaded ones given, else what the
    settings name. A named benchmark's training split is resolved before the model loads, so a bad
    source fails first. Under torchrun rank 0 loads the model first (a download, or the training of a
    model that trains on first use, fills the cache once), then the other ranks load it from the cache."""

    def split(plugin: BenchmarkPlugin) -> Benchmark:
        return require(plugin, TrainingData).training_split(settings.classes, settings.train_data, settings.limit)

    if train is None and settings.benchmark is not None:
        train = split(get_benchmark(settings.benchmark))
    if model is None:
        with distributed.main_first("waiting for rank 0 to load the model"):
            model = load_model(settings.model, checkpoint=settings.checkpoint)
    plugin = settings.training_plugin(model.label_space)
    return model, plugin, train if train is not None else split(plugin)


def discover(
    settings: DiscoverySettings,
    *,
    model: ModelAdapter | None = None,
    train: Benchmark | None = None,
    on_class: Callable[[int, int, int], None] | None = None,
) -> DiscoveryIndex:
    """Discover the components of ``settings.classes`` (default: every class of the training split) into
    ``settings.out``; resumes a partial discovery of the same model, weights, images and settings,
    refuses a different one. ``model`` and ``train`` are objects loaded already (the training split of
    the benchmark the settings name), else they are loaded from the settings. ``on_class(done, total,
    class_index)`` is called before each class."""
    features = settings.features
    features.check_machine()
    check_output_dir(settings.out)
    model, plugin, train = load_training(settings, model, train)
    classes, components, top = settings.classes, settings.components_per_class, (settings.top_images, settings.bottom_images)
    npfv_steps, basis, out = settings.npfv_steps, settings.basis, settings.out
    beyond = sorted(k for k in (classes or []) if not 0 <= k < model.num_classes)
    if beyond:
        raise SpurbenchError(
            f"--classes: {beyond[0]} is not a class of {model.name} (its label space {model.label_space} has classes 0-{model.num_classes - 1})"
        )
    check_same_inputs(
        "model, training images, classes or settings", [model], train, features, [classes, components, *top, npfv_steps, basis]
    )
    index = DiscoveryIndex(
        spurbench_version=__version__,
        model=model.card.model_copy(update={"data_config": plain(model.data_config)}),
        training=TrainingSplit(
            benchmark=plugin.name,
            name=train.name,
            revision=train.revision,
            checksum=train.checksum,
            source=train.repo or train.positives_source,
        ),
        components_per_class=components,
        top_images=top[0],
        bottom_images=top[1],
        npfv_steps=npfv_steps,
        robust=settings.robust,
        basis=basis,
    )

    def folder_state() -> dict[str, ClassRecord]:  # rank 0 alone reads and creates the folder
        found = read_index(out) if (out / INDEX_FILE).exists() else None
        if found is not None and not found.same_discovery(index):
            raise SpurbenchError(
                f"{out}: holds a discovery of {found.model.name} ({found.model.weights_revision}) on {found.training.name} with other settings; use another --out"
            )
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)  # of a killed run: the continued discovery equals an uninterrupted one
        return found.classes if found is not None else {}

    index.classes = distributed.from_main(folder_state, "receiving the discovery folder's state from rank 0")
    wanted = sorted({c.index for c in train.classes} if classes is None else set(classes))
    missing = sorted(set(wanted) - {im.class_index for im in train.images})
    if missing:
        raise SpurbenchError(f"training data {train.name} has no images of class {missing[0]}")
    todo = [k for k in wanted if str(k) not in index.classes]
    for done, k in enumerate(todo):
        if on_class is not None:
            on_class(done, len(todo), k)
        record = discover_class(model, class_subset(train, k), k, components, top, out, features, npfv_steps, basis)
        if record is not None:  # rank 0, or the only process
            index.classes[str(k)] = record
            write_index(out, index)  # after every class: a killed run keeps what it finished
    if distributed.is_main():
        write_index(out, index)
    return distributed.from_main(lambda: index, "receiving the index from rank 0")


__all__ = ["QUANTILES", "discover", "discover_class", "load_training"]
