"""P8: `discover` processes one class at a time from the feature cache, so its peak memory does not
grow with the number of classes (goal: peak ratio <= 1.1 for 4x as many classes).

Runs ``spurbench.discover`` (the real path: Benchmark -> FeatureStream with its feature
cache -> per class neural PCA, statistics, top images, NPFV) in a fresh process for C and 4C classes
and prints the peak resident memory of each and their ratio. The model is a fixed random projection
of 32 px pixels to D features with a linear head (``p4_streaming_memory.ProjectionAdapter``), so the
O(D^2) covariance is the per-class working set; images are generated when read.

    python perf/p8_discover_memory.py [--classes 2] [--images 200] [--dim 2048] [--basis npca]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
from p4_streaming_memory import SIZE, ProjectionAdapter
from PIL import Image

from spurbench.adapters import ADAPTERS
from spurbench.benchmarks import BenchmarkOptions, BenchmarkPlugin, register_benchmark
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table


def many_class_benchmark(classes: int, per_class: int) -> Benchmark:
    def loader(seed: int) -> Image.Image:
        return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))

    images = [
        BenchmarkImage(f"train/{k}/{i}", k, "positive", None, f"generated {k}/{i}", lambda s=k * 100_000 + i: loader(s))
        for k in range(classes)
        for i in range(per_class)
    ]
    return Benchmark(
        "p8-train",
        "imagenet-1k",
        [BenchmarkClass(index=k, name=f"class{k}") for k in range(classes)],
        images,
        revision="p8",
        checksum="p8",
        protocols=protocol_table(fixed_paper(224 / 256, by="the authors' code"), MODEL_TRANSFORM),
    )


ADAPTERS.register(ProjectionAdapter.family, ProjectionAdapter)  # so settings can name it


@register_benchmark
class ManyClasses(BenchmarkPlugin):
    """``many_class_benchmark`` as a registered plugin, so settings can name it (the script passes the loaded one)."""

    name = "p8-many-classes"
    description = "generated images of many ImageNet classes, for the discover memory measurement (perf/p8)"
    protocols = protocol_table(fixed_paper(224 / 256, by="the authors' code"), MODEL_TRANSFORM)

    def load(self, options: BenchmarkOptions) -> Benchmark:
        return many_class_benchmark(2, 200)

    def reference(self, revision: str) -> None:
        return None


def child(classes: int, per_class: int, dim: int, basis: str) -> dict[str, float]:
    from spurbench.discovery.pipeline import discover
    from spurbench.settings import DiscoverySettings, FeatureSettings

    model = ProjectionAdapter.load(str(dim))
    settings = DiscoverySettings(
        model=model.name,
        benchmark=ManyClasses.name,
        out=tempfile.mkdtemp(prefix="spurbench-p8-"),
        components_per_class=10,
        top_images=5,
        npfv_steps=10,
        basis=basis,
        features=FeatureSettings(progress=False),
    )
    index = discover(settings, model=model, train=many_class_benchmark(classes, per_class))
    return {"classes": len(index.classes), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(classes: int, per_class: int, dim: int, basis: str) -> dict[str, float]:
    env = {**os.environ, "SPURBENCH_CACHE": tempfile.mkdtemp(prefix="spurbench-p8-cache-")}  # cold feature cache per run
    args = [sys.executable, __file__, "--child", "--classes", str(classes), "--images", str(per_class), "--dim", str(dim), "--basis", basis]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=2, help="C; the second run uses 4 C (the model has 10 classes)")
    parser.add_argument("--images", type=int, default=200, help="training images per class")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--basis", default="npca", choices=["npca", "neurons"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.classes, args.images, args.dim, args.basis)))
        return
    small = run_child(args.classes, args.images, args.dim, args.basis)
    large = run_child(4 * args.classes, args.images, args.dim, args.basis)
    print(f"P8: discover --basis {args.basis}, D = {args.dim}, {args.images} images per class, 10 components, 10 NPFV steps")
    print(f"  {small['classes']:2d} classes: peak {small['peak_mib']:6.0f} MiB")
    print(f"  {large['classes']:2d} classes: peak {large['peak_mib']:6.0f} MiB")
    print(f"P8 ratio (peak memory at 4x classes / at 1x): {large['peak_mib'] / small['peak_mib']:.3f}  (goal: <= 1.1)")


if __name__ == "__main__":
    main()
