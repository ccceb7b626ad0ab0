"""The ``salient-imagenet`` benchmark plugin: core vs spurious accuracy under mask noise (Singla & Feizi,
ICLR 2022) on the authors' layout, and its embedded default, ``planted-salient`` (``planted``).

Data: the user's own download only. Salient ImageNet's terms forbid passing it on, so spurbench never
re-hosts it (no dataset build or push) and the board never shows its images or masks. ``--data-dir``
is the unzipped dataset (``layout``: one folder per wnid with ``image_names_map.csv`` and the masks; the
annotation CSV beside it or given with ``-O annotations=FILE``), ``--imagenet-train`` the ILSVRC2012
train folder the images come from (or ``hub``: the gated Hub split, streamed once into the cache).
Without ``--data-dir`` the benchmark is ``planted-salient``, under that name, never disguised as the
real one.

The evaluation (``noise``, ``metrics``) is the paper's: per image the clean view and, per noise level,
noise on the union of its spurious masks, on the union of its core masks and on each feature's mask.
Fidelity notes, from the authors' code (``layout`` cites file and line): images are resized as their
``Resize(256) + CenterCrop(224)`` does, bilinear; their code clamps to [0, 1] (the paper's eq. 1 has no
clamp) and so does spurbench; their code zooms the already-224 union mask once more by 256/224 before
applying it, which misaligns it with the image: spurbench applies the masks on the grid they were made
for, and ``-O upstream_mask_zoom=true`` reproduces the zoom for comparisons with the authors' numbers.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field

from spurbench.protocols import EvalProtocol, Geometry, protocol_table
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage, BenchmarkOptions, BenchmarkPlugin, Reference, ViewScores, ViewTable
from spurbench.benchmarks.imagenet.train import hub_imagenet_train
from spurbench.benchmarks.imagenet.val import file_loader
from spurbench.benchmarks.salient_imagenet.layout import SalientLayout, check_masks, check_train_images, load_mask, read_layout, train_image_path
from spurbench.benchmarks.salient_imagenet.metrics import DEFAULT_SIGMA, METRICS, salient_metrics
from spurbench.benchmarks.salient_imagenet.noise import check_salient_views, check_sigmas, renderer, views_for
from spurbench.benchmarks.salient_imagenet.planted import NOISE_SCHEME, PlantedSalient
from spurbench.benchmarks.salient_imagenet.planted import NAME as PLANTED_NAME
from spurbench.benchmarks.salient_imagenet.planted import PROTOCOLS as PLANTED_PROTOCOLS
from spurbench.errors import SpurbenchError
from spurbench.imagenet import class_names

NAME = "salient-imagenet"
_REVISION = re.compile(r"layout-([0-9a-f]{12})(-upstream-zoom)?")


class SalientOptions(BenchmarkOptions):
    data_dir: str | None = None  # the unzipped Salient ImageNet dataset; None: the embedded planted-salient
    imagenet_train: str | None = None  # the ILSVRC2012 train folder, or "hub"
    annotations: str | None = None  # discover_spurious_features.csv (default: found beside the dataset)
    classes: list[int] | None = None  # a subset of its classes (ImageNet-1k indices)
    sigma: list[float] | None = Field(default=None, min_length=1)  # noise levels (default 0.25; planted-salient: 1.0)
    upstream_mask_zoom: bool = False  # zoom the union mask by 256/224 as the authors' code does
    seed: int = Field(default=0, ge=0, lt=10**9)  # planted-salient's generator seed


def layout_checksum(layout: SalientLayout) -> str:
    """sha256 over what defines the benchmark: every (class, feature, kind, stems). Masks and pixels are
    the user's download; they are checked for presence and decoded lazily."""
    digest = hashlib.sha256()
    for cls in layout.classes:
        for feat in cls.features:
            digest.update(f"{cls.class_index}\t{feat.feature_index}\t{feat.kind}\t{','.join(feat.stems)}\n".encode())
    return digest.hexdigest()


def _upstream_zoom(mask: torch.Tensor) -> torch.Tensor:
    """What the authors' code does to the 224 union mask: truncate to uint8, Resize(256), CenterCrop(224)."""
    mask = torch.floor(mask * 255) / 255
    big = F.interpolate(mask[None, None], size=(256, 256), mode="bilinear", align_corners=False, antialias=False)[0, 0]
    return big[16:240, 16:240]


# The masks are on the Resize(256) + CenterCrop(224) grid, bilinear. (Today's steps; issue #24 makes
# ``paper`` the authors' evaluation.)
PROTOCOLS = protocol_table(
    EvalProtocol(
        name="paper", by="Singla & Feizi's code (singlasahil14/salient_imagenet)", transform="fixed", size="test", normalization="model",
        positive=Geometry(crop_pct=224 / 256, interpolation="bilinear"), negative=Geometry(crop_pct=1.0, interpolation="bicubic"),
    )
)  # fmt: skip


class SalientImageNet(BenchmarkPlugin):
    name = NAME
    description = "Salient ImageNet: core vs spurious accuracy under mask noise (your own download; default: the embedded planted-salient)"
    options_model = SalientOptions
    label_space = "imagenet-1k"
    task = "views"
    view_metric_specs = METRICS
    headline = ("gap", None, None)
    default_models = ("planted:cnn", "planted:resnet")  # for the embedded planted-salient; real data needs --model
    protocols = PROTOCOLS

    def protocols_for(self, options: BenchmarkOptions) -> dict[str, EvalProtocol]:
        return PROTOCOLS if self._options(options).data_dir else PLANTED_PROTOCOLS

    def _options(self, options: BenchmarkOptions) -> SalientOptions:
        opts = self.parse_options(options)
        assert isinstance(opts, SalientOptions)
        return opts

    def benchmark_name(self, options: BenchmarkOptions) -> str:
        return NAME if self._options(options).data_dir else PLANTED_NAME

    def check_model(self, model: Any) -> None:
        if model.label_space not in ("imagenet-1k", "planted"):
            raise SpurbenchError(f"benchmark {NAME!r} scores ImageNet-1k classifiers; {model.name} predicts {model.label_space!r} ({model.num_classes} classes)")

    def load(self, options: BenchmarkOptions) -> Benchmark:
        opts = self._options(options)
        if not opts.data_dir:
            given = [k for k in ("imagenet_train", "annotations", "classes") if getattr(opts, k) is not None] + (["upstream_mask_zoom"] if opts.upstream_mask_zoom else [])
            if given:
                raise SpurbenchError(f"benchmark {NAME!r}: {', '.join(given)} need --data-dir (the Salient ImageNet download); without it the benchmark is the embedded {PLANTED_NAME}")
            planted = PlantedSalient()
            return planted.load(planted.parse_options({"seed": opts.seed, "limit": opts.limit, **({"sigma": opts.sigma} if opts.sigma else {})}))
        sigmas = check_sigmas(opts.sigma or [DEFAULT_SIGMA])
        if not opts.imagenet_train:
            raise SpurbenchError(f"benchmark {NAME!r} needs the ImageNet train images: --imagenet-train DIR (ILSVRC2012 train) or --imagenet-train hub")
        layout = read_layout(Path(opts.data_dir).expanduser(), Path(opts.annotations).expanduser() if opts.annotations else None, opts.classes)
        check_masks(layout)
        train_root = Path(opts.imagenet_train).expanduser()
        if opts.imagenet_train == "hub":
            downloaded = hub_imagenet_train(layout.class_indices, token=opts.token)
            if not downloaded.images:
                raise SpurbenchError(f"the Hub ImageNet train split gave no images of classes {list(layout.class_indices)[:5]}...")
            train_root = Path(downloaded.images[0].origin).parent.parent
        check_train_images(layout, train_root)
        names = class_names("imagenet-1k") or ()
        images: list[BenchmarkImage] = []
        kinds: dict[str, dict[int, str]] = {}
        masks: dict[str, dict[int, Path]] = {}
        for cls in layout.classes:
            for stem in list(cls.images())[: opts.limit]:
                image_id = f"{NAME}/{cls.wnid}/{stem}"
                kinds[image_id], masks[image_id] = dict(cls.kinds(stem)), layout.masks_of(cls, stem)
                path = train_image_path(train_root, cls.wnid, stem)
                images.append(BenchmarkImage(image_id, cls.class_index, "positive", None, str(path), file_loader(path), views_for(kinds[image_id], sigmas)))
        zoom = opts.upstream_mask_zoom

        def masks_of(image: BenchmarkImage) -> dict[int, torch.Tensor]:
            return {f: torch.from_numpy(load_mask(p)) for f, p in masks[image.image_id].items()}

        checksum = layout_checksum(layout)
        return Benchmark(
            name=NAME, label_space="imagenet-1k", images=images, repo=str(layout.root), revision=f"layout-{checksum[:12]}" + ("-upstream-zoom" if zoom else ""), checksum=checksum,
            classes=[BenchmarkClass(c.class_index, names[c.class_index] if names else c.wnid, feature=", ".join(f"{f.feature_index}: {f.kind}" for f in c.features)) for c in layout.classes],
            positives_source=str(train_root), protocols=PROTOCOLS,
            facts={"annotations": str(layout.annotations), "sigma": sigmas, "upstream_mask_zoom": zoom, "skipped_classes": list(layout.skipped_classes)},
            render_views=renderer(masks_of, lambda image: kinds[image.image_id], _upstream_zoom if zoom else None), views_key=f"{NOISE_SCHEME} zoom={zoom}",
        )  # fmt: skip

    def reference(self, revision: str) -> Reference | None:
        """A user's download cannot be listed offline and no published checksum exists here: a revision
        ``layout-<12 hex>`` is accepted when the result's checksum starts with them (``_verify`` compares
        it), and every image's views must be views a layout can give (``check_views``)."""
        match = _REVISION.fullmatch(revision)
        return None if match is None else Reference(NAME, revision, match[1], None, checksum_prefix=True)

    def check_views(self, reference: Reference, views: dict[str, tuple[str, ...]]) -> None:
        check_salient_views(views)  # the layout's kinds are the user's: any assignment its features allow

    def view_metrics(self, table: ViewTable) -> ViewScores:
        return salient_metrics(table)

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list:
        if benchmark_name == PLANTED_NAME:
            return PlantedSalient().example_images(benchmark_name, revision, worst_classes)
        return []  # the dataset's terms do not allow showing its images or masks


__all__ = ["NAME", "SalientImageNet", "SalientOptions", "layout_checksum"]
