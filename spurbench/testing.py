"""A tiny model and a tiny benchmark, for testing code against spurbench's contracts in seconds,
with no download and no training.

Importing this module registers both, as the model family ``tiny`` (``tiny:net``) and the benchmark
plugin ``tiny`` (its options are :func:`tiny_benchmark`'s arguments), so a ``RunSettings`` names them
like any other. A benchmark plugin's author runs the tiny model on their benchmark; a model family's
author runs their adapter on the tiny benchmark::

    from spurbench.harness import evaluate
    from spurbench.settings import FeatureSettings, RunSettings
    from spurbench.testing import TinyAdapter

    quick = FeatureSettings(progress=False)
    result = evaluate(RunSettings(model="tiny:net", benchmark="my-benchmark", bootstrap=0, features=quick))
    result = evaluate(
        RunSettings(model=my_adapter.name, benchmark="tiny", options={"label_space": my_adapter.label_space}, bootstrap=0),
        model=my_adapter,  # a loaded adapter; the settings name it
    )

A loaded benchmark can be passed too (``benchmark=tiny_benchmark(...)``, or a plugin's benchmark with
some images changed); the settings name its plugin and options, whose protocols it must have.

spurbench's own tests and speed scripts use the same pair. Both are deterministic: the model's
weights come from seed 0 and every image from its own seed. This module does not import pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from spurbench.adapters import ADAPTERS
from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.benchmarks import BenchmarkOptions, BenchmarkPlugin, register_benchmark
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

__all__ = ["SIZE", "TinyAdapter", "TinyBenchmark", "TinyOptions", "tiny_benchmark"]

SIZE = 16
"""Side in pixels of the tiny benchmark's images and of the tiny model's input."""


class TinyAdapter(ModelAdapter):
    """One convolution, a global average pool and a linear head: a real ``ModelAdapter`` small enough
    for any test. ``forward_calls`` counts feature passes, so a test can tell whether a cache was used."""

    family = "tiny"

    def __init__(
        self, spec: str = "net", *, checkpoint: str | None = None, pretrained: bool = True, num_classes: int = 4, label_space: str = "toy"
    ) -> None:
        torch.manual_seed(0)  # the same weights in every process
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
        self.fc = nn.Linear(8, num_classes)
        self.forward_calls = 0
        self.card = ModelCard(
            name=f"tiny:{spec}",
            family="tiny",
            weights_revision="seed0",
            label_space=label_space,
            num_classes=num_classes,
            num_params=sum(p.numel() for p in [*self.backbone.parameters(), *self.fc.parameters()]),
            data_config={
                "input_size": (3, SIZE, SIZE),
                "interpolation": "bilinear",
                "mean": (0.5,) * 3,
                "std": (0.25,) * 3,
                "crop_pct": 1.0,
                "crop_mode": "center",
            },
        )

    @classmethod
    def load(
        cls, spec: str = "net", *, checkpoint: str | None = None, pretrained: bool = True, num_classes: int = 4, label_space: str = "toy"
    ) -> TinyAdapter:
        return cls(spec, checkpoint=checkpoint, pretrained=pretrained, num_classes=num_classes, label_space=label_space)

    def cam_target_layers(self) -> tuple[list[nn.Module], None]:
        return [self.backbone[0]], None  # the one convolution: a 16 x 16 map

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return self.backbone(x)

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc.weight.detach(), self.fc.bias.detach()

    def to(self, device: str | torch.device) -> TinyAdapter:
        self.backbone.to(device)
        self.fc.to(device)
        return self


ADAPTERS.register(TinyAdapter.family, TinyAdapter)


def _image(seed: int, bright: float) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(bright, 40, size=(SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _loader(seed: int, bright: float) -> Callable[[], Image.Image]:
    return lambda: _image(seed, bright)


def _unreadable() -> Image.Image:
    return Image.open("/nonexistent/broken.png")


def tiny_benchmark(
    num_classes: int = 4, per_role: int = 12, label_space: str = "toy", name: str = "tiny", broken: str | None = None
) -> Benchmark:
    """``per_role`` positives and negatives for each of ``num_classes`` classes, as random images.

    Class k's positives and negatives differ in brightness, so AUCs are not all 0.5. Image ids are
    ``"{role}/{k}/{i}"``; the image named by ``broken`` cannot be read, for testing how a failure
    to read one image is reported."""
    classes = [BenchmarkClass(index=k, name=f"class{k}", components=(k + 10,), group=None) for k in range(num_classes)]
    roles: tuple[Literal["positive"], Literal["negative"]] = ("positive", "negative")
    images = []
    for k in range(num_classes):
        for role in roles:
            for i in range(per_role):
                seed = k * 1000 + (role == "negative") * 100 + i
                image_id = f"{role}/{k}/{i}"
                loader = _unreadable if image_id == broken else _loader(seed, 60 + 30 * k + (role == "negative") * 50)
                images.append(BenchmarkImage(image_id, k, role, k + 10 if role == "negative" else None, f"tiny:{image_id}", loader))
    return Benchmark(
        name=name,
        label_space=label_space,
        classes=classes,
        images=images,
        revision="v1",
        checksum="tiny",
        protocols=TinyBenchmark.protocols,
    )


class TinyOptions(BenchmarkOptions):
    """:func:`tiny_benchmark`'s arguments (``limit``: at most that many images per class and role)."""

    num_classes: int = 4
    per_role: int = 12
    label_space: str = "toy"
    name: str = "tiny"
    broken: str | None = None


@register_benchmark
class TinyBenchmark(BenchmarkPlugin):
    """:func:`tiny_benchmark` as a registered plugin, so settings can name it."""

    name = "tiny"
    description = "random images of a few classes, for tests (spurbench.testing)"
    options_model = TinyOptions
    protocols = protocol_table(fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM)

    def load(self, options: BenchmarkOptions) -> Benchmark:
        assert isinstance(options, TinyOptions)
        per_role = options.per_role if options.limit is None else min(options.per_role, options.limit)
        return tiny_benchmark(options.num_classes, per_role, options.label_space, options.name, options.broken)

    def benchmark_name(self, options: BenchmarkOptions) -> str:
        assert isinstance(options, TinyOptions)
        return options.name

    def reference(self, revision: str) -> None:
        return None  # random images: nothing for ``leaderboard verify`` to check them against
