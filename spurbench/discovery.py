"""Finding spurious features: class-wise neural PCA components of any model, ready for people to label.

``discover`` runs one backbone pass over the training images of the chosen classes (through the
feature cache, the same entries ``spufix fit`` reads, so fitting SpuFix afterwards forwards nothing),
then per class, from the cached features: neural PCA (paper sec. 4.1), per component its eigenvalue,
its share of the class logit's variance and the distribution of its contribution alpha_l, its top
training images, its feature visualisation (NPFV, ``spurbench.npfv``, sec. 4.2), and GradCAM of
alpha_l on both (``spurbench.gradcam``) where the adapter names a CAM layer. One class at a time, so memory is O(D^2) whatever the number of classes.

Everything lands in ``--out``: ``discovery.json`` (the index: model card, training split, per class
and component the statistics and top images) and ``images/`` (the top images as PNG). The index is
rewritten atomically after every class, and a run on a folder that already holds part of the same
discovery continues with the classes not yet done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Sequence

import matplotlib
import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spurbench._version import __version__
from spurbench.adapters import ModelAdapter
from spurbench.benchmarks import Benchmark, BenchmarkImage
from spurbench.errors import SpurbenchError
from spurbench.features import FeatureStream
from spurbench.files import atomic_path, plain, slug, strict_json
from spurbench.gradcam import component_cams
from spurbench.npfv import STEPS, visualise
from spurbench.results import ModelInfo
from spurbench.spufix.fit import class_subset
from spurbench.spufix.npca import NPCA, fit_npca_streaming

FORMAT_VERSION = 1
INDEX_FILE = "discovery.json"
IMAGES_DIR = "images"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
THUMBNAIL = 224  # longest side of a saved top image, px


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TopImage(_Strict):
    image_id: str
    alpha: float  # the component's contribution to the class logit on this image
    file: str  # path relative to the discovery folder
    cam_file: str | None = None  # GradCAM of alpha_l on it, overlaid (None: the model names no CAM layer)


class NPFVRecord(_Strict):
    """The component's feature visualisation (``spurbench.npfv``), made by the index's model."""

    file: str
    alpha: float  # the contribution it reaches (without alpha_l's constant mean term)
    eps: float  # its L2 budget around the grey image
    steps: int
    cam_file: str | None = None  # GradCAM of alpha_l on the visualisation, overlaid


class ComponentRecord(_Strict):
    rank: int  # 0-based, eigenvalue order: what `spufix fit --components` refers to
    eigenvalue: float
    variance_share: float = Field(ge=0, le=1)  # Var(alpha_l) / Var(class logit) over the class's images
    alpha_mean: float
    alpha_quantiles: dict[str, float]  # "q05", "q25", "q50", "q75", "q95"
    top_images: list[TopImage]
    npfv: NPFVRecord | None = None  # None when discovered with --npfv-steps 0


class ClassRecord(_Strict):
    class_index: int
    class_name: str
    num_images: int
    logit_mean: float  # mean of the class logit over its training images
    components: list[ComponentRecord]


class TrainingSplit(_Strict):
    benchmark: str
    name: str
    revision: str | None
    checksum: str | None
    source: str | None


class DiscoveryIndex(_Strict):
    format: Literal[1] = FORMAT_VERSION
    spurbench_version: str
    basis: Literal["npca"] = "npca"
    model: ModelInfo
    training: TrainingSplit
    components_per_class: int
    top_images: int
    npfv_steps: int  # APGD steps of the feature visualisations; 0: none
    classes: dict[str, ClassRecord] = Field(default_factory=dict)  # class index -> its components

    def same_discovery(self, other: "DiscoveryIndex") -> bool:
        """The same model, weights, training images and settings (so its classes can be continued)."""
        keys = ("basis", "components_per_class", "top_images", "npfv_steps")
        return (
            all(getattr(self, k) == getattr(other, k) for k in keys)
            and (self.model.name, self.model.weights_revision) == (other.model.name, other.model.weights_revision)
            and self.training == other.training
        )


def read_index(folder: Path) -> DiscoveryIndex:
    """The index of a discovery folder; a one-line SpurbenchError if the folder is not one."""
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise SpurbenchError(f"{folder}: not a discovery folder (no {INDEX_FILE}; run `spurbench discover` first)")
    try:
        return DiscoveryIndex.model_validate(strict_json(path.read_text(encoding="utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:  # ValidationError is a ValueError
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) if first else ""
        message = " ".join(str(first["msg"] if first else exc).split())[:200]
        raise SpurbenchError(f"{path}: not a valid discovery index{' at ' + where if where else ''}: {message}") from None


def write_index(folder: Path, index: DiscoveryIndex) -> None:
    with atomic_path(Path(folder) / INDEX_FILE) as tmp:
        tmp.write_text(index.model_dump_json(indent=1) + "\n")


def _top_rows(alphas: torch.Tensor, ids: list[str], best: tuple[torch.Tensor, list[list[str]]] | None, n: int) -> tuple[torch.Tensor, list[list[str]]]:
    """Merge one shard's alphas [B, L] into the running top-n per component (values [n', L], ids per column)."""
    if best is not None:
        values = torch.cat([best[0], alphas])
        names = [[*best[1][c], *ids] for c in range(alphas.shape[1])]
    else:
        values, names = alphas, [list(ids) for _ in range(alphas.shape[1])]
    top = torch.topk(values, min(n, values.shape[0]), dim=0)
    return top.values, [[names[c][int(i)] for i in top.indices[:, c]] for c in range(alphas.shape[1])]


def _write_png(pixels: np.ndarray, folder: Path, rel: str) -> str:
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / rel) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return rel


def _as_pixels(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [0, 1] -> uint8 [H, W, 3]."""
    return (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _overlay(image: torch.Tensor, cam: np.ndarray) -> np.ndarray:
    """The image with its CAM as a jet heat map on top, half and half (how grad-cam shows them)."""
    heat = torch.from_numpy(matplotlib.colormaps["jet"](cam)[..., :3]).permute(2, 0, 1)
    return _as_pixels(0.5 * image + 0.5 * heat)


def _supports_cam(model: ModelAdapter) -> bool:
    try:
        model.cam_target_layers()
        return True
    except SpurbenchError:
        return False


def _save_npfvs(model: ModelAdapter, class_index: int, npca: NPCA, count: int, steps: int, folder: Path, device: str, cams: bool) -> list[NPFVRecord]:
    made = visualise(model, class_index, npca, list(range(count)), steps=steps, device=device)
    records = []
    for l in range(count):
        stem = f"{IMAGES_DIR}/npfv-class{class_index}-component{l}"
        cam_file = None
        if cams:
            cam = component_cams(model, class_index, npca, l, made.images[l : l + 1])[0]
            cam_file = _write_png(_overlay(made.images[l], cam), folder, f"{stem}-cam.png")
        records.append(NPFVRecord(file=_write_png(_as_pixels(made.images[l]), folder, f"{stem}.png"), alpha=float(made.alphas[l]), eps=made.eps, steps=steps, cam_file=cam_file))
    return records


def _save_top_images(
    model: ModelAdapter, by_id: dict[str, BenchmarkImage], class_index: int, npca: NPCA, component: int, ids: list[str], folder: Path, cams: bool
) -> list[tuple[str, str | None]]:
    """Each top image (decoded once) as a thumbnail and, with ``cams``, its GradCAM overlay of
    alpha_component at the model's input size: (file, CAM file) per image."""
    height, width = model.data_config["input_size"][1:]
    opened = [by_id[i].open() for i in ids]
    files = []
    for i, image in zip(ids, opened):
        rel = f"{IMAGES_DIR}/{slug(i)}.png"
        if not (folder / rel).exists():  # an image among the top of several components is written once
            thumbnail = image.copy()
            thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
            _write_png(np.asarray(thumbnail), folder, rel)
        files.append(rel)
    if not cams:
        return [(f, None) for f in files]
    images = torch.stack([torch.from_numpy(np.asarray(image.resize((width, height)), dtype=np.float32) / 255).permute(2, 0, 1) for image in opened])
    maps = component_cams(model, class_index, npca, component, images)
    overlays = [_write_png(_overlay(images[j], maps[j]), folder, f"{IMAGES_DIR}/cam-class{class_index}-component{component}-{slug(i)}.png") for j, i in enumerate(ids)]
    return list(zip(files, overlays))


def discover_class(
    model: ModelAdapter, subset: Benchmark, class_index: int, components: int, top: int, folder: Path, npfv_steps: int = 0, **feature_kwargs
) -> ClassRecord:
    """Neural PCA of one class from its (cached) features, with its components' statistics and top images."""
    weight, bias = model.head
    npca: NPCA = fit_npca_streaming((feats for _, feats in FeatureStream.open(model, subset, **feature_kwargs)), weight[class_index])
    count = min(components, npca.eigenvalues.numel())
    scale = npca.eigenvectors.sum(0) ** 2 * npca.eigenvalues.clamp(min=0)  # Var(alpha_l) = <1, v_l>^2 lambda_l
    share = scale / scale.sum().clamp(min=1e-300)
    parts, best = [], None
    for ids, feats in FeatureStream.open(model, subset, **{**feature_kwargs, "progress": False}):
        alphas = npca.alphas(feats)[:, :count]
        parts.append(alphas)  # [N, count]: a few floats per image, for the mean and quantiles
        best = _top_rows(alphas, ids, best, top)
    everything = torch.cat(parts)
    means = everything.mean(0)
    quantiles = torch.quantile(everything, torch.tensor(QUANTILES, dtype=torch.float64), dim=0)
    assert best is not None
    by_id = {im.image_id: im for im in subset.images}
    cams = _supports_cam(model)
    npfvs = _save_npfvs(model, class_index, npca, count, npfv_steps, folder, feature_kwargs.get("device", "cpu"), cams) if npfv_steps else [None] * count
    records = []
    for l in range(count):
        saved = _save_top_images(model, by_id, class_index, npca, l, best[1][l], folder, cams)
        tops = [TopImage(image_id=i, alpha=float(v), file=f, cam_file=c) for i, v, (f, c) in zip(best[1][l], best[0][:, l], saved)]
        records.append(
            ComponentRecord(
                rank=l,
                eigenvalue=float(npca.eigenvalues[l]),
                variance_share=float(share[l].clamp(0, 1)),
                alpha_mean=float(means[l]),
                alpha_quantiles={f"q{round(q * 100):02d}": float(quantiles[i, l]) for i, q in enumerate(QUANTILES)},
                top_images=tops,
                npfv=npfvs[l],
            )
        )
    name = next((c.name for c in subset.classes if c.index == class_index), str(class_index))
    # f_k = sum_l alpha_l + <1, mean psi_k> + b_k and every alpha_l averages to 0 over these images
    logit_mean = float(npca.constant) + float(bias[class_index])
    return ClassRecord(class_index=class_index, class_name=name, num_images=npca.num_images, logit_mean=logit_mean, components=records)


def discover(
    model: ModelAdapter,
    train: Benchmark,
    benchmark: str,
    out: Path,
    classes: Sequence[int] | None = None,
    components: int = 10,
    top: int = 5,
    npfv_steps: int = STEPS,
    on_class: Callable[[int, int, int], None] | None = None,
    **feature_kwargs,
) -> DiscoveryIndex:
    """Discover the components of ``classes`` (default: every class of ``train``) into ``out``; resumes a
    partial discovery of the same model, weights, images and settings, refuses a different one."""
    if components < 1 or top < 1 or npfv_steps < 0:
        raise SpurbenchError("--components-per-class and --top-images must be at least 1, --npfv-steps at least 0")
    out = Path(out)
    index = DiscoveryIndex(
        spurbench_version=__version__,
        model=model.card.model_copy(update={"data_config": plain(model.data_config)}),
        training=TrainingSplit(benchmark=benchmark, name=train.name, revision=train.revision, checksum=train.checksum, source=train.repo or train.positives_source),
        components_per_class=components,
        top_images=top,
        npfv_steps=npfv_steps,
    )
    if (out / INDEX_FILE).exists():
        found = read_index(out)
        if not found.same_discovery(index):
            raise SpurbenchError(f"{out}: holds a discovery of {found.model.name} ({found.model.weights_revision}) on {found.training.name} with other settings; use another --out")
        index.classes = found.classes
    out.mkdir(parents=True, exist_ok=True)
    wanted = sorted({c.index for c in train.classes} if classes is None else set(classes))
    missing = sorted(set(wanted) - {im.class_index for im in train.images})
    if missing:
        raise SpurbenchError(f"training data {train.name} has no images of class {missing[0]}")
    todo = [k for k in wanted if str(k) not in index.classes]
    for done, k in enumerate(todo):
        if on_class is not None:
            on_class(done, len(todo), k)
        index.classes[str(k)] = discover_class(model, class_subset(train, k), k, components, top, out, npfv_steps, **feature_kwargs)
        write_index(out, index)  # after every class: a killed run keeps what it finished
    write_index(out, index)
    return index


__all__ = ["ClassRecord", "ComponentRecord", "DiscoveryIndex", "discover", "discover_class", "read_index"]
