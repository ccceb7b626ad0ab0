"""``planted-salient``: Salient ImageNet's evaluation on generated images whose masks are exact.

Held-out objects of every planted class that carry a planted feature in a corner (the generator's own
stream, ``generate_carrier_set``): a planted class its own feature, a control class a planted feature
of another class. Each image has two "features" in Salient ImageNet's sense, with the generator's
exact binary masks: 0 = the object (core), 1 = the corner feature (spurious). Noise on the feature
region is then the core-accuracy view, noise on the object the spurious-accuracy view. What it must
show: for planted classes the feature noise changes accuracy clearly more than for control classes,
and object noise hurts every class.

It has no published protocol. Its ``paper`` protocol is the Salient ImageNet authors' evaluation as
far as it carries over to generated images made at the planted models' own size (40 px): what
carries over is the noise (per pixel and channel, eps seeded per image id and shared by all views),
the max of the selected masks, the clamp to [0, 1] and the normalisation after the noise. What does
not: their Resize(256) + CenterCrop(224) (these images are never resized, so the masks need no zoom
either: they are exact, on the images' own grid) and their ImageNet mean/std (the planted models were
trained on their own, 0.5 / 0.25): each model gets its own. The noise level is 1.0, not their 0.25
(``PLANTED_SIGMA``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from pydantic import Field

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
from spurbench.benchmarks.salient_imagenet.metrics import METRICS, salient_metrics
from spurbench.benchmarks.salient_imagenet.noise import check_salient_views, check_sigmas, float_union, renderer, views_for
from spurbench.benchmarks.salient_imagenet.pictures import mask_overlay
from spurbench.benchmarks.shared.planted_generator import (
    CONTROL_GROUP,
    FEATURE_DESCRIPTIONS,
    FEATURE_NAMES,
    GENERATED_BY,
    GENERATOR_VERSION,
    PLANTED_CLASSES,
    PLANTED_FEATURES,
    PLANTED_GROUP,
    PlantedSplit,
    generate_carrier_set,
)
from spurbench.protocols import fixed_paper, protocol_table

NAME = "planted-salient"
KINDS = {0: "core", 1: "spurious"}  # feature 0: the object, 1: the corner feature
NOISE_SCHEME = "salient-noise-v1"  # bump when noise.py draws or applies noise differently


# The generated features are saturated black/white patterns on 40 px images with exact binary masks:
# the paper's sigma = 0.25 (soft masks on photos) barely touches them (measured on planted:cnn: feature
# noise moved planted classes' accuracy by 0.00, control classes' by +0.05); sigma = 1 erases them.
PLANTED_SIGMA = 1.0


class PlantedSalientOptions(BenchmarkOptions):
    seed: int = Field(default=0, ge=0, lt=10**9)  # generator seed
    sigma: list[float] = Field(default_factory=lambda: [PLANTED_SIGMA], min_length=1)  # noise levels; the first is the reported one


def _revision(seed: int) -> str:
    return f"generator-v{GENERATOR_VERSION}-seed{seed}-carriers"


def _seed_of(revision: str | None) -> int | None:
    """The generator seed a revision of :func:`_revision` names; None for any other string."""
    match = re.fullmatch(rf"generator-v{GENERATOR_VERSION}-seed(\d{{1,9}})-carriers", revision or "")
    return None if match is None else int(match[1])


def _split(seed: int) -> PlantedSplit:
    return generate_carrier_set(seed)


def _ids(split: PlantedSplit) -> list[str]:
    seen: dict[int, int] = {}
    ids = []
    for label in split.labels.tolist():
        ids.append(f"{NAME}/{PLANTED_CLASSES[label]}/{seen.get(label, 0)}")
        seen[label] = seen.get(label, 0) + 1
    return ids


def _checksum(split: PlantedSplit) -> str:
    """sha256 over what is scored: pixels, labels, features and both masks."""
    digest = hashlib.sha256()
    for arr in (split.images, split.labels, split.feature_of, split.object_mask, split.feature_mask):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def _loader(pixels: np.ndarray) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(pixels)


def _class(k: int) -> BenchmarkClass:
    planted = k in PLANTED_FEATURES
    return BenchmarkClass(
        index=k,
        name=PLANTED_CLASSES[k],
        group=PLANTED_GROUP if planted else CONTROL_GROUP,
        feature=FEATURE_DESCRIPTIONS[PLANTED_FEATURES[k]] if planted else None,
    )


def planted_salient_benchmark(seed: int = 0, sigmas: Sequence[float] = (PLANTED_SIGMA,), limit: int | None = None) -> Benchmark:
    """The benchmark: every carrier image with its views; masks and pixels from the generator."""
    split, sigmas = _split(seed), check_sigmas(sigmas)
    ids = _ids(split)
    masks: dict[str, dict[int, torch.Tensor]] = {}
    images: list[BenchmarkImage] = []
    counts: dict[int, int] = {}
    for row, (image_id, k) in enumerate(zip(ids, split.labels.tolist())):
        counts[k] = counts.get(k, 0) + 1
        if limit is not None and counts[k] > limit:
            continue
        masks[image_id] = {
            0: torch.from_numpy(split.object_mask[row].astype(np.uint8) * 255),
            1: torch.from_numpy(split.feature_mask[row].astype(np.uint8) * 255),
        }  # 8-bit, as the renderer takes masks
        pixels = split.images[row]
        images.append(
            BenchmarkImage(
                image_id,
                k,
                "positive",
                None,
                f"planted-generator seed={seed} {image_id}",
                _loader(pixels),
                views_for(KINDS, sigmas),
            )
        )
    return Benchmark(
        name=NAME,
        label_space="planted",
        classes=[_class(k) for k in range(len(PLANTED_CLASSES))],
        images=images,
        revision=_revision(seed),
        checksum=_checksum(split),
        positives_source="generator",
        protocols=PROTOCOLS,
        component_names=dict(enumerate(FEATURE_NAMES)),
        facts={"features": {"0": "object (core)", "1": "corner feature (spurious)"}, "sigma": sigmas},
        render_views=renderer(lambda im: masks[im.image_id], lambda im: KINDS, {"paper": float_union}),
        views_key=NOISE_SCHEME,
    )


# See the module docstring: the authors' steps that carry over to images made at the model's size.
PROTOCOLS = protocol_table(
    fixed_paper(
        1.0,
        by="no published protocol (spurbench's own benchmark); Singla & Feizi's noise evaluation (singlasahil14/salient_imagenet, inspection_utils.py) on images generated at the model's size",
        steps=(
            "the images are made at the model's size, so the resize above leaves them as they are: no 256/224 crop and no mask zoom; the generator's exact masks on the images' own grid",
            "the model's mean/std, not ImageNet's (the planted models were trained on their own)",
            "noise: sigma * eps * mask added to the image in [0, 1], eps ~ N(0, 1) per pixel and channel, seeded per image id and shared by all its views; sigma 1.0, not the paper's 0.25",
            "clamped to [0, 1], then normalised",
        ),
        spurious_only_images=False,
    )
)


class PlantedSalient(ScoresViews, ShowsExamples, BenchmarkPlugin):
    name = NAME
    description = "Salient ImageNet's core vs spurious accuracy on generated objects carrying planted features (exact masks; embedded)"
    options_model = PlantedSalientOptions
    default_models = ("planted:cnn", "planted:resnet")
    label_space = "planted"
    task = "views"
    view_metric_specs = METRICS
    headline = ("gap", None, None)
    protocols = PROTOCOLS

    def load(self, options: BenchmarkOptions) -> Benchmark:
        opts = self.parse_options(options)
        assert isinstance(opts, PlantedSalientOptions)
        return planted_salient_benchmark(opts.seed, opts.sigma, opts.limit)

    def reference(self, revision: str) -> Reference | None:
        seed = _seed_of(revision)
        if seed is None:
            return None
        split = _split(seed)
        ids = _ids(split)
        return Reference(
            NAME,
            revision,
            _checksum(split),
            {i: (int(k), "positive") for i, k in zip(ids, split.labels.tolist())},
            facts={"kinds": dict.fromkeys(ids, KINDS)},
            groups={k: _class(k).group for k in range(len(PLANTED_CLASSES))},
        )

    def check_views(self, reference: Reference, views: dict[str, tuple[str, ...]]) -> None:
        check_salient_views(views, reference.facts["kinds"])

    def view_metrics(self, table: ViewTable) -> ViewScores:
        return salient_metrics(table)

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        seed = _seed_of(revision)
        if seed is None:
            return []
        split = _split(seed)
        out = []
        for k in list(worst_classes)[:3]:
            row = int(np.flatnonzero(split.labels == k)[0])
            overlay = mask_overlay(
                split.images[row], {"object (core)": split.object_mask[row], "feature (spurious)": split.feature_mask[row]}
            )
            out.append(
                ExampleImage(overlay, f"{PLANTED_CLASSES[k]}: object mask (core, blue) and feature mask (spurious, red)", GENERATED_BY)
            )
        return out
