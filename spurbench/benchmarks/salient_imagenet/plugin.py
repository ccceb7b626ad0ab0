"""The ``salient-imagenet`` plugin: core vs spurious accuracy under mask noise (Singla & Feizi,
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
Two protocols (``PROTOCOLS``):

* ``paper``: the authors' evaluation code (``inspection_utils.py``, checked at commit f41ce51): every
  model gets 224 px, ``Resize(256) + CenterCrop(224)`` (PIL, bilinear) of the train image, and is
  normalised with the ImageNet mean/std whatever its config says (their ``CompleteModel``); the union
  mask goes through their loader's steps to the last bit (``noise.authors_union``: truncated to 8 bits,
  then the same Resize(256) + CenterCrop(224) again, which zooms the already-224 mask by 256/224 about
  its centre). Not theirs: eps is seeded per image id and shared by all views (theirs is unseeded per
  batch; the same distribution).
* ``model``: spurbench's own, the model's test size and mean/std: the same 224/256 centre crop of the
  train image (bilinear) resized to the model's size, and the masks, not zoomed, resized (bilinear,
  float) to it, so they stay on the pixels they were made for. It is a fixed geometry, not timm's eval
  transform: another crop would cut the image where the masks were not cut.

Both clamp to [0, 1] after the noise (their code does; the paper's eq. 1 does not) and normalise after
it. The retired ``-O upstream_mask_zoom`` is refused with a line naming ``--protocol paper``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    Reference,
    ViewScores,
    ViewTable,
)
from spurbench.benchmarks.capabilities import ScoresViews, ShowsExamples
from spurbench.benchmarks.folders import file_loader
from spurbench.benchmarks.imagenet.train import hub_imagenet_train
from spurbench.benchmarks.salient_imagenet.layout import (
    SalientLayout,
    check_masks,
    check_train_images,
    mask_bytes,
    read_layout,
    train_image_path,
)
from spurbench.benchmarks.salient_imagenet.metrics import DEFAULT_SIGMA, METRICS, salient_metrics
from spurbench.benchmarks.salient_imagenet.noise import authors_union, check_salient_views, check_sigmas, float_union, renderer, views_for
from spurbench.benchmarks.salient_imagenet.planted import NAME as PLANTED_NAME
from spurbench.benchmarks.salient_imagenet.planted import NOISE_SCHEME, PlantedSalient
from spurbench.benchmarks.salient_imagenet.planted import PROTOCOLS as PLANTED_PROTOCOLS
from spurbench.errors import SpurbenchError
from spurbench.label_spaces import class_names
from spurbench.protocols import EvalProtocol, Geometry, protocol_table

NAME = "salient-imagenet"
_REVISION = re.compile(r"layout-([0-9a-f]{12})")
RETIRED_ZOOM = "upstream_mask_zoom"


class SalientOptions(BenchmarkOptions):
    data_dir: str | None = None  # the unzipped Salient ImageNet dataset; None: the embedded planted-salient
    imagenet_train: str | None = None  # the ILSVRC2012 train folder, or "hub"
    annotations: str | None = None  # discover_spurious_features.csv (default: found beside the dataset)
    classes: list[int] | None = None  # a subset of its classes (ImageNet-1k indices)
    sigma: list[float] | None = Field(default=None, min_length=1)  # noise levels (default 0.25; planted-salient: 1.0)
    seed: int = Field(default=0, ge=0, lt=10**9)  # planted-salient's generator seed


def layout_checksum(layout: SalientLayout) -> str:
    """sha256 over what defines the benchmark: every (class, feature, kind, stems). Masks and pixels are
    the user's download; they are checked for presence and decoded lazily."""
    digest = hashlib.sha256()
    for cls in layout.classes:
        for feat in cls.features:
            digest.update(f"{cls.class_index}\t{feat.feature_index}\t{feat.kind}\t{','.join(feat.stems)}\n".encode())
    return digest.hexdigest()


_NOISE_STEPS = (
    "noise: sigma * eps * mask added to the image in [0, 1], eps ~ N(0, 1) per pixel and channel, seeded per image id and shared by all its views (the authors' code: unseeded)",
    "clamped to [0, 1], then normalised",
    "a feature is spurious when at least 3 of its 5 workers answered separate_object or background (utils.py)",
)
# The crop the masks were made on: Resize(256) + CenterCrop(224) of the train image, bilinear.
_MASK_GRID = Geometry(crop_pct=224 / 256, interpolation="bilinear")
PROTOCOLS = protocol_table(
    EvalProtocol(
        name="paper",
        by="Singla & Feizi's code (singlasahil14/salient_imagenet, inspection_utils.py)",
        transform="fixed",
        size=224,
        normalization="imagenet",
        positive=_MASK_GRID,
        steps=(
            "masks: the pixel-wise max of the selected masks / 255, truncated to an 8-bit image and sent through PIL Resize(256) + CenterCrop(224) again, bilinear, as the authors' loader does (a 256/224 zoom)",
            *_NOISE_STEPS,
            "where the authors' code differs: it gave its two CLIP zero-shot models CLIP's mean/std; spurbench gives every model ImageNet's",
        ),
    ),
    EvalProtocol(
        name="model",
        by="spurbench: the model's own size and mean/std on the masks' 224/256 crop",
        transform="fixed",
        size="test",
        normalization="model",
        positive=_MASK_GRID,
        steps=("masks: the pixel-wise max of the selected masks / 255, resized to the input (bilinear, float), no zoom", *_NOISE_STEPS),
    ),
)
_UNIONS = {"paper": authors_union, "model": float_union}


class SalientImageNet(ScoresViews, ShowsExamples, BenchmarkPlugin):
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

    def parse_options(self, values: dict[str, Any] | BenchmarkOptions | None = None) -> BenchmarkOptions:
        if isinstance(values, dict) and RETIRED_ZOOM in values:
            raise SpurbenchError(
                f"benchmark {NAME!r}: -O {RETIRED_ZOOM} is retired; --protocol paper now zooms the masks as the authors' code does, bit for bit, and --protocol model leaves them on their own grid"
            )
        return super().parse_options(values)

    def _options(self, options: BenchmarkOptions) -> SalientOptions:
        opts = self.parse_options(options)
        assert isinstance(opts, SalientOptions)
        return opts

    def benchmark_name(self, options: BenchmarkOptions) -> str:
        return NAME if self._options(options).data_dir else PLANTED_NAME

    def check_model(self, model: Any) -> None:
        if model.label_space not in ("imagenet-1k", "planted"):
            raise SpurbenchError(
                f"benchmark {NAME!r} scores ImageNet-1k classifiers; {model.name} predicts {model.label_space!r} ({model.num_classes} classes)"
            )

    def load(self, options: BenchmarkOptions) -> Benchmark:
        opts = self._options(options)
        if not opts.data_dir:
            given = [k for k in ("imagenet_train", "annotations", "classes") if getattr(opts, k) is not None]
            if given:
                raise SpurbenchError(
                    f"benchmark {NAME!r}: {', '.join(given)} need --data-dir (the Salient ImageNet download); without it the benchmark is the embedded {PLANTED_NAME}"
                )
            planted = PlantedSalient()
            return planted.load(
                planted.parse_options({"seed": opts.seed, "limit": opts.limit, **({"sigma": opts.sigma} if opts.sigma else {})})
            )
        sigmas = check_sigmas(opts.sigma or [DEFAULT_SIGMA])
        if not opts.imagenet_train:
            raise SpurbenchError(
                f"benchmark {NAME!r} needs the ImageNet train images: --imagenet-train DIR (ILSVRC2012 train) or --imagenet-train hub"
            )
        layout = read_layout(
            Path(opts.data_dir).expanduser(), Path(opts.annotations).expanduser() if opts.annotations else None, opts.classes
        )
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
                images.append(
                    BenchmarkImage(
                        image_id, cls.class_index, "positive", None, str(path), file_loader(path), views_for(kinds[image_id], sigmas)
                    )
                )

        def masks_of(image: BenchmarkImage) -> dict[int, torch.Tensor]:
            return {f: torch.from_numpy(mask_bytes(p)) for f, p in masks[image.image_id].items()}

        checksum = layout_checksum(layout)
        return Benchmark(
            name=NAME,
            label_space="imagenet-1k",
            images=images,
            repo=str(layout.root),
            revision=f"layout-{checksum[:12]}",
            checksum=checksum,
            classes=[
                BenchmarkClass(
                    c.class_index,
                    names[c.class_index] if names else c.wnid,
                    feature=", ".join(f"{f.feature_index}: {f.kind}" for f in c.features),
                )
                for c in layout.classes
            ],
            positives_source=str(train_root),
            protocols=PROTOCOLS,
            facts={"annotations": str(layout.annotations), "sigma": sigmas, "skipped_classes": list(layout.skipped_classes)},
            render_views=renderer(masks_of, lambda image: kinds[image.image_id], _UNIONS),
            views_key=NOISE_SCHEME,
        )

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
