"""The ``imagenet-w`` benchmark plugin: the watermark shortcut (Li et al., "A Whac-A-Mole Dilemma", CVPR 2023).

Every ImageNet val image is seen twice, clean and with the ImageNet-W watermark (``transform.watermark``: drawn
after resize and crop, before normalisation), both views rendered from one decode of the image. The
metrics (per class and over all images):

* ``inw_gap``: top-1 accuracy on watermarked val minus on clean val (the paper's IN-W gap; negative:
  the watermark hurts);
* ``carton_gap``: accuracy on the images of ground-truth class 478 (carton) under IN-W minus clean
  (the watermark resembles the text printed on cartons: positive means the shortcut helps there);
* ``carton_prob_change``: the mean change of P(carton) over all images (their ``delta_p_carton``);
* ``delta_p_carton_cond_carton``: the mean P(carton) over the images labelled carton under IN-W minus
  on clean (their name; None where no carton image was scored, as for ``carton_gap``).

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
from sklearn.datasets import load_sample_image

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    ExampleImage,
    Reference,
    ViewMetric,
    ViewScores,
    ViewTable,
)
from spurbench.benchmarks.imagenet.val import local_val_classes, resolve_imagenet_val
from spurbench.benchmarks.imagenet_w.transform import OPACITY, WATERMARK_TEXT, X_POS, Y_POS, FontSource, find_font, font_size, watermark
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError
from spurbench.imagenet import class_names
from spurbench.protocols import MODEL_TRANSFORM, EvalProtocol, protocol_table

NAME = "imagenet-w"
CARTON = 478  # ImageNet-1k "carton"
VIEWS = ("clean", "watermark")
REVISION = "in-w-v1"  # the watermark as defined in the paper (text, typeface, opacity, position, size rule)
CHECKSUM = hashlib.sha256(
    repr(
        (WATERMARK_TEXT, "Source Han Serif SC ExtraLight", OPACITY, X_POS, Y_POS, [font_size(s) for s in (224, 256, 288, 384, 512)])
    ).encode()
).hexdigest()

METRICS = (
    ViewMetric("clean_accuracy", "clean acc.", "top-1 accuracy on ImageNet val"),
    ViewMetric("watermark_accuracy", "IN-W acc.", "top-1 accuracy on the watermarked images"),
    ViewMetric("inw_gap", "IN-W gap", "IN-W accuracy minus clean accuracy; closer to 0 is better", "closer-to-zero", signed=True),
    ViewMetric(
        "carton_gap",
        "carton gap",
        "accuracy on the carton (478) images under IN-W minus clean: the shortcut helping",
        "closer-to-zero",
        signed=True,
    ),
    ViewMetric(
        "carton_prob_change", "ΔP(carton)", "mean change of P(carton) over all images when watermarked", "closer-to-zero", signed=True
    ),
    ViewMetric(
        "delta_p_carton_cond_carton",
        "ΔP(carton | carton)",
        "mean change of P(carton) over the carton (478) images when watermarked; – where none was scored",
        "closer-to-zero",
        signed=True,
    ),
)

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


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def inw_metrics(table: ViewTable) -> ViewScores:
    """Per class and overall: clean and IN-W accuracy, the IN-W gap, the carton gap and ΔP(carton)."""
    views = np.array(table.views)
    clean, marked = views == "clean", views == "watermark"
    carton = table.watched["carton"]
    per_class: dict[int, dict[str, float | None]] = {}
    for cls in table.classes:
        mine = table.class_index == cls.index
        c, w = table.correct[mine & clean], table.correct[mine & marked]
        per_class[cls.index] = {
            "clean_accuracy": _mean(c),
            "watermark_accuracy": _mean(w),
            "inw_gap": None if not c.size else float(w.mean() - c.mean()),
            "carton_prob_change": None if not c.size else float(carton[mine & marked].mean() - carton[mine & clean].mean()),
        }
    c, w = table.correct[clean], table.correct[marked]
    cartons = table.class_index == CARTON
    metrics = {
        "clean_accuracy": _mean(c),
        "watermark_accuracy": _mean(w),
        "inw_gap": float(w.mean() - c.mean()) if c.size else None,
        "carton_gap": float(table.correct[cartons & marked].mean() - table.correct[cartons & clean].mean())
        if (cartons & clean).any()
        else None,
        "carton_prob_change": float(carton[marked].mean() - carton[clean].mean()) if c.size else None,
        # their p_carton_cond_carton per loader (a mean over the carton images), IN-W minus IN-1k
        "delta_p_carton_cond_carton": float(carton[cartons & marked].mean() - carton[cartons & clean].mean())
        if (cartons & clean).any()
        else None,
    }
    return ViewScores(metrics=metrics, classes=per_class)


def _font_key(font: FontSource) -> str:
    return f"{REVISION} font {font.origin} #{font.index} {content_digest(font.path)}"  # memoised by (path, size, mtime)


class ImageNetW(BenchmarkPlugin):
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
        photo = Image.fromarray(load_sample_image("china.jpg"))
        side = min(photo.size)
        photo = photo.crop(
            ((photo.width - side) // 2, (photo.height - side) // 2, (photo.width + side) // 2, (photo.height + side) // 2)
        ).resize((224, 224), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
        marked = (watermark(x, font).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        credit = "photo: danielbuechele on Flickr, CC BY 2.0 (scikit-learn's china.jpg)"
        return [
            ExampleImage(photo, "clean, 224 px", credit),
            ExampleImage(Image.fromarray(marked), "with the ImageNet-W watermark", credit),
        ]


def _with_views(image: BenchmarkImage) -> BenchmarkImage:
    return replace(image, views=VIEWS)


__all__ = ["CARTON", "WHAC_A_MOLE", "ImageNetW", "inw_metrics"]
