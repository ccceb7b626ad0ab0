"""The ``imagenet-w`` plugin: every ImageNet val image seen twice, clean and with the ImageNet-W
watermark (``transform.watermark``: drawn after resize and crop, before normalisation), both views
rendered from one decode of the image, and scored by ``metrics``.

Protocols. ``paper`` is Whac-A-Mole's ``eval_shortcuts/eval_watermark_shortcut.py``: each model's own
eval transform as ``model/model_zoo.py`` builds it for timm models, ``create_transform(
**resolve_data_config({}, model))``, which is the weights' *train* size and crop (no test size), with
``AddWatermark(crop)`` inserted before Normalize. Here the clean view is that transform and the
watermark is drawn on its un-normalised crop (``render_views`` runs before the mean/std step), its font
size from the crop's height like ``AddWatermark(CenterCrop.size[0])``. ``model`` is timm's
``validate.py`` (the test size where the config has one), as for every benchmark. (Their torchvision
models take torchvision's presets; torchvision models are not a spurbench adapter.)

Data: ImageNet val, a local folder (``--imagenet-val DIR``, any layout ``imagenet.val`` reads; a
partial copy is scored on the classes it holds) or the gated Hub split, like Spurious ImageNet's
positives; nothing is re-hosted. Models must be ImageNet-1k classifiers. ``leaderboard verify`` cannot
list the user's val images: it checks the watermark definition (the checksum), both views of every
image and recomputes every metric from the stored rows; the image count is shown on the board.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    ExampleImage,
    Reference,
    ViewScores,
    ViewTable,
)
from spurbench.benchmarks.capabilities import ScoresViews, ShowsExamples
from spurbench.benchmarks.imagenet.val import local_val_classes, resolve_imagenet_val
from spurbench.benchmarks.imagenet_w.metrics import CARTON, METRICS, inw_metrics
from spurbench.benchmarks.imagenet_w.transform import OPACITY, WATERMARK_TEXT, X_POS, Y_POS, FontSource, find_font, font_size, watermark
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError
from spurbench.label_spaces import class_names
from spurbench.protocols import MODEL_TRANSFORM, EvalProtocol, protocol_table

NAME = "imagenet-w"
VIEWS = ("clean", "watermark")
REVISION = "in-w-v1"  # the watermark as defined in the paper (text, typeface, opacity, position, size rule)
CHECKSUM = hashlib.sha256(
    repr(
        (WATERMARK_TEXT, "Source Han Serif SC ExtraLight", OPACITY, X_POS, Y_POS, [font_size(s) for s in (224, 256, 288, 384, 512)])
    ).encode()
).hexdigest()

WHAC_A_MOLE = EvalProtocol(
    name="paper",
    by="Whac-A-Mole's eval_shortcuts/eval_watermark_shortcut.py (facebookresearch/Whac-A-Mole)",
    transform="model",
    size="train",  # model_zoo.py: resolve_data_config({}, model) has no test size
    model_crop="train",
    normalization="model",
    steps=("the watermark drawn on the un-normalised crop before Normalize, its font size from the crop height (AddWatermark(crop))",),
)


class ImageNetWOptions(BenchmarkOptions):
    imagenet_val: str | None = None  # a local ILSVRC2012 val folder; default: the gated Hub split


def _font_key(font: FontSource) -> str:
    return f"{REVISION} font {font.origin} #{font.index} {content_digest(font.path)}"  # memoised by (path, size, mtime)


class ImageNetW(ScoresViews, ShowsExamples, BenchmarkPlugin):
    name = NAME
    description = (
        "ImageNet-W: the watermark shortcut; clean vs watermarked ImageNet val from one decode (your val folder or the gated Hub split)"
    )
    options_model = ImageNetWOptions
    label_space = "imagenet-1k"
    task = "views"
    view_metric_specs = METRICS
    headline = ("inw_gap", None, None)
    # model: each model's own transform at its test size; the watermark is drawn there too (the step says so)
    protocols = protocol_table(WHAC_A_MOLE, MODEL_TRANSFORM.model_copy(update={"steps": WHAC_A_MOLE.steps}))

    def check_model(self, model: Any) -> None:
        if model.label_space != "imagenet-1k":
            raise SpurbenchError(
                f"benchmark {NAME!r} scores ImageNet-1k classifiers; {model.name} predicts {model.label_space!r} ({model.num_classes} classes)"
            )

    def watched_classes(self, label_space: str) -> dict[str, int]:
        return {"carton": CARTON}

    def load(self, options: BenchmarkOptions) -> Benchmark:
        opts = self.parse_options(options)
        assert isinstance(opts, ImageNetWOptions)
        font = find_font()  # before any image is read: a missing font is a one-line error
        classes = local_val_classes(opts.imagenet_val) if opts.imagenet_val else list(range(1000))
        images, source = resolve_imagenet_val(classes, opts.imagenet_val, token=opts.token, limit=opts.limit)
        names = class_names("imagenet-1k") or ()
        return Benchmark(
            name=NAME,
            label_space="imagenet-1k",
            classes=[BenchmarkClass(k, names[k] if names else str(k)) for k in classes],
            images=[_with_views(im) for im in images],
            revision=REVISION,
            checksum=CHECKSUM,
            positives_source=source,
            protocols=self.protocols,
            facts={"font": font.origin, "watermark": WATERMARK_TEXT},
            render_views=lambda image, x, protocol: [x, watermark(x, font)],
            views_key=_font_key(font),
        )

    def reference(self, revision: str) -> Reference | None:
        if revision != REVISION:
            return None
        return Reference(NAME, REVISION, CHECKSUM, None)

    def check_views(self, reference: Reference, views: dict[str, tuple[str, ...]]) -> None:
        for image_id, names in views.items():
            if names != VIEWS:
                raise SpurbenchError(f"images[{image_id!r}].views: {list(names)}, the benchmark has {list(VIEWS)}")

    def view_metrics(self, table: ViewTable) -> ViewScores:
        return inw_metrics(table)

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        """The watermark on scikit-learn's sample photo (never an ImageNet image: their terms do not allow
        showing them); none where no font is installed."""
        try:
            font = find_font()
        except SpurbenchError:
            return []
        # lazy: scikit-learn's import costs about a second of every process that lists the benchmarks
        from sklearn.datasets import load_sample_image

        photo = Image.fromarray(load_sample_image("china.jpg"))
        side = min(photo.size)
        photo = photo.crop(
            ((photo.width - side) // 2, (photo.height - side) // 2, (photo.width + side) // 2, (photo.height + side) // 2)
        ).resize((224, 224), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
        marked = (watermark(x, font).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        credit = "photo: danielbuechele on Flickr, CC BY 2.0 (scikit-learn's china.jpg)"
        return [
            ExampleImage(photo, "clean, 224 px", credit),
            ExampleImage(Image.fromarray(marked), "with the ImageNet-W watermark", credit),
        ]


def _with_views(image: BenchmarkImage) -> BenchmarkImage:
    return replace(image, views=VIEWS)
