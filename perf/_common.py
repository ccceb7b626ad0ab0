"""Shared set-up for the speed scripts: a benchmark of real JPEG photos on disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from spurbench.benchmarks import BenchmarkOptions, BenchmarkPlugin, register_benchmark
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table


def photo_benchmark(num_classes: int = 4, per_role: int = 24, folder: Path | None = None) -> Benchmark:
    """Real photos (scikit-image / scikit-learn samples) written as JPEGs, so decoding is part of the data path.

    Classes are ImageNet-1k indices 0..num_classes-1; labels are meaningless, only speed is measured.
    """
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos = [skdata.coffee(), skdata.chelsea(), skdata.astronaut(), skdata.rocket(), *load_sample_images().images]
    folder = Path(folder or tempfile.mkdtemp(prefix="spurbench-photos-"))
    paths = []
    for i, arr in enumerate(photos):
        path = folder / f"photo{i}.jpg"
        Image.fromarray(np.asarray(arr)).convert("RGB").save(path, quality=92)
        paths.append(path)
    images = []
    n = 0
    for k in range(num_classes):
        for role in ("positive", "negative"):
            for i in range(per_role):
                path = paths[n % len(paths)]
                n += 1
                images.append(
                    BenchmarkImage(f"{role}/{k}/{i}", k, role, None if role == "positive" else 0, str(path), lambda p=path: Image.open(p))
                )
    classes = [BenchmarkClass(index=k, name=f"class{k}", components=(0,)) for k in range(num_classes)]
    return Benchmark(
        "photos",
        "imagenet-1k",
        classes,
        images,
        revision="speed",
        checksum="speed",
        protocols=PhotoBenchmark.protocols,
    )


class PhotoOptions(BenchmarkOptions):
    num_classes: int = 4
    per_role: int = 24


@register_benchmark
class PhotoBenchmark(BenchmarkPlugin):
    """``photo_benchmark`` as a registered plugin, so settings can name it (the scripts pass the loaded benchmark)."""

    name = "photos"
    description = "real photos written as JPEGs, for speed measurements (perf/)"
    options_model = PhotoOptions
    protocols = protocol_table(fixed_paper(224 / 256, by="the authors' code"), MODEL_TRANSFORM)

    def load(self, options: BenchmarkOptions) -> Benchmark:
        assert isinstance(options, PhotoOptions)
        return photo_benchmark(options.num_classes, options.per_role)

    def reference(self, revision: str) -> None:
        return None
