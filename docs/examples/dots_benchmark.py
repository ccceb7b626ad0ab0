"""The plugin guide's example benchmark, ``dots``: a generated benchmark with ground truth, so that
``spurbench run -b dots`` (no ``--model``) scores its default models and runs the SpuFix demo.

Three classes, each a coloured square on a dark 16 px background. The spurious-only images of class 0
(red) show a grey stripe on the left and no square; the training images of class 0 carry that stripe
half of the time (the ground truth), so a model trained on them may score the stripe as "red".
The other classes are controls: their spurious-only images show a dot in a corner, which no model
here reads. The guide (docs/extending/benchmarks.md) includes this file; tests/test_plugin_guide.py
runs it.
"""

# --8<-- [start:imports]
from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image
from pydantic import Field

from spurbench.benchmarks import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    GroundTruth,
    GroundTruthSource,
    Reference,
)
from spurbench.errors import DataError
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

# --8<-- [end:imports]

# --8<-- [start:constants]
CLASSES = ("red", "green", "blue")
SEEDED = {0: 0}  # class -> the spurious feature seeded into its training images (0: the grey stripe)
COMPONENTS = {0: "grey stripe", 1: "corner dot"}
SIZE = 16
PER_ROLE = 24  # test images per class and role
TRAIN_PER_CLASS = 60  # training images per class; half of a seeded class's carry its feature
# Drawn at the model's input size: nothing to crop, for either protocol.
PROTOCOLS = protocol_table(fixed_paper(1.0, by="images drawn at the model's input size"), MODEL_TRANSFORM)
# Every image is drawn from its own key (seed, split, class, role, i): the test, validation and training
# splits are distinct draws, never the same image under two names.
TEST, VALIDATION, TRAIN = 0, 1, 2
REVISION = re.compile(r"v2-seed(\d+)-stripe([0-9.]+)")  # "v2": the generator's version; a new one gives other images
# --8<-- [end:constants]


# --8<-- [start:options]
class DotsOptions(BenchmarkOptions):
    """``limit`` and ``token`` come from ``BenchmarkOptions``; this benchmark adds one key:
    ``spurbench run -b dots -O stripe=0.6``."""

    stripe: float = Field(0.8, ge=0.0, le=1.0)  # brightness of the grey stripe in the spurious-only images
    seed: int = Field(0, ge=0, lt=10**9)  # the generator's seed; `spurbench run --seed N` sets it


# --8<-- [end:options]


# --8<-- [start:helpers]
def draw(key: tuple[int, ...], colour: int | None, stripe: float | None, dot: bool) -> np.ndarray:
    """One image: dark noise, a square of ``colour`` (None: no square), a stripe of brightness ``stripe``, a corner dot.
    ``key`` seeds the image's own random stream: distinct keys, distinct images."""
    rng = np.random.default_rng(key)
    image = rng.uniform(0.0, 0.15, size=(SIZE, SIZE, 3))
    if colour is not None:
        image[4:12, 4:12, colour] = rng.uniform(0.25, 0.9)  # how clearly the object shows varies
    if stripe is not None:
        image[:, :2, :] = stripe
    if dot:
        image[13:15, 13:15, :] = 0.9
    return (image * 255).round().astype(np.uint8)


def image_record(image_id: str, array: np.ndarray, class_index: int, role: str, component: int | None) -> BenchmarkImage:
    return BenchmarkImage(
        image_id=image_id,  # unique and stable: it keys the per-image results and the feature cache
        class_index=class_index,
        role=role,  # type: ignore[arg-type]
        component=component,  # spurious-only images name their component; class images None
        origin=f"dots generator, image {image_id}",  # named in errors
        loader=lambda: Image.fromarray(array),  # opened lazily, when the image is read
    )


# --8<-- [end:helpers]


# --8<-- [start:split]
def split(name: str, seed: int, part: int, stripe: float, limit: int | None = None) -> Benchmark:
    """A test or validation split (``part``: TEST or VALIDATION): per class, class images and spurious-only images."""
    images, digest = [], hashlib.sha256()
    for k in range(len(CLASSES)):
        for i in range(PER_ROLE)[:limit]:
            positive = draw((seed, part, k, 0, i), colour=k, stripe=None, dot=False)
            negative = draw((seed, part, k, 1, i), colour=None, stripe=stripe if k in SEEDED else None, dot=k not in SEEDED)
            for role, array, component in (("positive", positive, None), ("negative", negative, SEEDED.get(k, 1))):
                digest.update(array.tobytes())
                images.append(image_record(f"{name}/{CLASSES[k]}/{role}/{i}", array, k, role, component))
    classes = [
        BenchmarkClass(
            index=k,
            name=CLASSES[k],
            components=(SEEDED.get(k, 1),),
            group="seeded" if k in SEEDED else "control",  # results report mauc_seeded and mauc_control
            feature=COMPONENTS[SEEDED.get(k, 1)],
        )
        for k in range(len(CLASSES))
    ]
    return Benchmark(
        name=name,
        label_space="dots",
        classes=classes,
        images=images,
        revision=f"v2-seed{seed}-stripe{stripe}",  # what reference(revision) regenerates
        checksum=digest.hexdigest(),
        positives_source="dots generator",
        protocols=PROTOCOLS,
        component_names=COMPONENTS,
    )


# --8<-- [end:split]


# --8<-- [start:training]
def training_split(seed: int) -> tuple[Benchmark, dict[str, int]]:
    """Training images (role "positive") of every class, and which of them carry a seeded feature."""
    images, carriers = [], {}
    for k in range(len(CLASSES)):
        for i in range(TRAIN_PER_CLASS):
            carries = k in SEEDED and i % 2 == 0
            image_id = f"dots-train/{CLASSES[k]}/{i}"
            array = draw((seed, TRAIN, k, 0, i), colour=k, stripe=0.8 if carries else None, dot=False)
            images.append(image_record(image_id, array, k, "positive", None))
            if carries:
                carriers[image_id] = SEEDED[k]
    classes = [BenchmarkClass(index=k, name=name) for k, name in enumerate(CLASSES)]
    return Benchmark("dots-train", "dots", classes, images, revision=f"v2-seed{seed}", protocols=PROTOCOLS), carriers


# --8<-- [end:training]


# --8<-- [start:plugin]
class DotsBenchmark(GroundTruthSource, BenchmarkPlugin):
    name = "dots"
    description = "coloured squares; class 0's spurious-only images show a grey stripe (the plugin guide's example)"
    options_model = DotsOptions
    label_space = "dots"  # the models that score it predict this label space (ModelCard.label_space)
    default_models = ("dotsnet:small", "dotsnet:large")  # what `spurbench run -b dots` evaluates
    protocols = PROTOCOLS

    def load(self, options: BenchmarkOptions) -> Benchmark:
        options = self.parse_options(options)
        assert isinstance(options, DotsOptions)
        # Its name is what benchmark_name(options) says (the default: the plugin's name, "dots"):
        # result files are named by it before anything is loaded.
        return split("dots", options.seed, TEST, options.stripe, options.limit)

    def reference(self, revision: str) -> Reference | None:
        match = REVISION.fullmatch(revision)
        if match is None:
            return None  # not a revision of this benchmark: verify refuses the result in one line
        try:
            seed, stripe = int(match[1]), float(match[2])
        except ValueError:
            raise DataError(f"benchmark 'dots': revision {revision!r} names no stripe brightness") from None
        bench = split("dots", seed, TEST, stripe)
        images: dict[str, tuple[int, str]] = {im.image_id: (im.class_index, im.role) for im in bench.images}
        return Reference(self.name, revision, bench.checksum or "", images)

    def ground_truth(self, options: BenchmarkOptions) -> GroundTruth:
        options = self.parse_options(options)
        assert isinstance(options, DotsOptions)
        train, carriers = training_split(options.seed)
        # The validation split: a held-out twin of the test split (other draws), with class images AND
        # spurious-only images of every seeded class (GroundTruth checks it when it is built).
        validation = split("dots-validation", options.seed, VALIDATION, options.stripe)
        return GroundTruth(train=train, validation=validation, features=dict(SEEDED), carriers=carriers)


# --8<-- [end:plugin]
