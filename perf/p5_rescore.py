"""P5: re-scoring 12.5k images from cached features: no forward pass, goal under 5 s.

12,500 images = 100 classes x (75 spurious-only + 50 val) as in Spurious ImageNet, a 1000-class head on
2048-d features (ResNet-50 sized). The first evaluate() fills the feature cache; the timed second one
must take every feature from the cache (the adapter counts forward calls) and redo heads, metrics,
the 1000-draw bootstrap and the result file.

    python perf/p5_rescore.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spurbench import evaluate
from spurbench.adapters import ADAPTERS
from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.benchmarks import BenchmarkOptions, BenchmarkPlugin, register_benchmark
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table
from spurbench.settings import FeatureSettings, RunSettings

DIM, CLASSES = 2048, 1000


class ProjectionAdapter(ModelAdapter):
    """A cheap stand-in backbone: a fixed random projection of an 8x8 image to 2048 features."""

    family = "speed"

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.proj = torch.randn(3 * 8 * 8, DIM, generator=gen) / 8
        self.weight = torch.randn(CLASSES, DIM, generator=gen) / DIM**0.5
        self.bias = torch.zeros(CLASSES)
        self.forward_calls = 0
        cfg = {
            "input_size": (3, 8, 8),
            "interpolation": "bilinear",
            "mean": (0.5,) * 3,
            "std": (0.5,) * 3,
            "crop_pct": 1.0,
            "crop_mode": "center",
        }
        self.card = ModelCard(
            name="speed:projection",
            family="speed",
            weights_revision="seed0",
            label_space="imagenet-1k",
            num_classes=CLASSES,
            num_params=self.proj.numel() + self.weight.numel(),
            data_config=cfg,
        )

    @classmethod
    def load(cls, spec: str = "projection", *, checkpoint: str | None = None, pretrained: bool = True) -> ProjectionAdapter:
        return cls()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return torch.relu(x.flatten(1) @ self.proj)

    @property
    def head(self):
        return self.weight, self.bias

    def to(self, device):
        return self


ADAPTERS.register(ProjectionAdapter.family, ProjectionAdapter)  # so settings can name it


def benchmark_12k() -> Benchmark:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(64, 8, 8, 3), dtype=np.uint8)
    images = []
    for k in range(100):
        cls = k * 10  # spread over the 1000 classes
        for role, count in (("positive", 50), ("negative", 75)):
            for i in range(count):
                arr = pixels[(k * 7 + i) % 64]
                images.append(
                    BenchmarkImage(
                        f"{role}/{cls}/{i}", cls, role, 0 if role == "negative" else None, "generated", lambda a=arr: Image.fromarray(a)
                    )
                )
    classes = [BenchmarkClass(index=k * 10, name=f"class{k * 10}", components=(0,)) for k in range(100)]
    return Benchmark(
        "speed-12k",
        "imagenet-1k",
        classes,
        images,
        revision="v1",
        checksum="speed",
        protocols=Speed12k.protocols,
    )


@register_benchmark
class Speed12k(BenchmarkPlugin):
    """``benchmark_12k`` as a registered plugin, so settings can name it."""

    name = "speed-12k"
    description = "12,500 generated images in 100 ImageNet classes, for the re-scoring measurement"
    protocols = protocol_table(fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM)

    def load(self, options: BenchmarkOptions) -> Benchmark:
        return benchmark_12k()

    def reference(self, revision: str) -> None:
        return None


def main() -> None:
    os.environ.setdefault("SPURBENCH_CACHE", tempfile.mkdtemp(prefix="spurbench-p5-"))
    adapter, bench = ProjectionAdapter.load("projection"), benchmark_12k()
    out = tempfile.mkdtemp(prefix="spurbench-p5-out-")
    features = FeatureSettings(batch_size=256, progress=False)
    evaluate(RunSettings(model=adapter.name, benchmark=Speed12k.name, features=features), model=adapter, benchmark=bench)  # fills the cache
    calls = adapter.forward_calls
    start = time.perf_counter()
    settings = RunSettings(model=adapter.name, benchmark=Speed12k.name, features=features, output=Path(out))
    result = evaluate(settings, model=adapter, benchmark=bench)
    elapsed = time.perf_counter() - start
    forwards = adapter.forward_calls - calls
    print(f"{len(bench.images)} images, {CLASSES}-class head, {DIM}-d features, bootstrap 1000 draws")
    print(f"forward passes during re-scoring: {forwards}")
    print(f"re-scoring time: {elapsed:.2f} s  (goal < 5 s; mAUC {result.heads['plain'].aggregate.mauc:.3f})")
    print(f"P5 ratio (time / 5 s budget) = {elapsed / 5:.3f}  (goal < 1, and 0 forward passes)")
    sys.exit(0 if forwards == 0 and elapsed < 5 else 1)


if __name__ == "__main__":
    main()
