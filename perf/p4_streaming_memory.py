"""P4: the matched-direction fit streams, so its peak memory does not grow with the image count.

Runs ``spurbench.spufix.fit.fit_transfer`` (the real data path: Benchmark -> FeatureStream with its
feature cache -> DirectionMatcher) in a fresh process for N and 4N images of one class, and reports
the growth of the peak resident memory during the fit. For contrast, the same fit done by first
collecting all features and calling ``match_directions`` once (what a non-streaming implementation
does) is measured too: its growth is ~ N x D x 8 bytes, which shows the measurement can see it.

Images are generated on the fly (32 px); the model is a fixed random projection of the pixels to
D = 4096 features with a linear head, so that only the fit's own memory varies.

    python perf/p4_streaming_memory.py [--images 2000] [--dim 4096]
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
import torch
from PIL import Image

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

SIZE = 32
CLASS = 7


class ProjectionAdapter(ModelAdapter):
    """features = relu(pixels @ R), R fixed and random; a linear head on top."""

    family = "projection"

    def __init__(self, dim: int):
        g = torch.Generator().manual_seed(0)
        self.projection = torch.randn(3 * SIZE * SIZE, dim, generator=g) / (3 * SIZE * SIZE) ** 0.5
        self.weight, self.bias = torch.randn(10, dim, generator=g), torch.zeros(10)
        self.card = ModelCard(
            name=f"projection:{dim}",
            family="projection",
            weights_revision="seed0",
            label_space="imagenet-1k",
            num_classes=10,
            num_params=self.projection.numel(),
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
    def load(cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True) -> ProjectionAdapter:
        return cls(int(spec))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.flatten(1) @ self.projection)

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight, self.bias

    def to(self, device: str | torch.device) -> ProjectionAdapter:
        return self


def one_class_benchmark(n: int) -> Benchmark:
    def loader(i: int) -> Image.Image:  # generated when read, never held: memory must not scale with n here
        return Image.fromarray(np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))

    images = [BenchmarkImage(f"train/{CLASS}/{i}", CLASS, "positive", None, f"generated {i}", lambda i=i: loader(i)) for i in range(n)]
    return Benchmark(
        "p4-train",
        "imagenet-1k",
        [BenchmarkClass(index=CLASS, name="class7")],
        images,
        revision=f"n{n}",
        checksum=f"n{n}",
        protocols=protocol_table(fixed_paper(224 / 256, by="the authors' code"), MODEL_TRANSFORM),
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(n: int, dim: int, mode: str) -> dict[str, float]:
    from spurbench.features import FeatureStream
    from spurbench.settings import FeatureSettings
    from spurbench.spufix.fit import SourceAlphas, fit_transfer
    from spurbench.spufix.npca import match_directions

    quiet = FeatureSettings(progress=False)

    target = ProjectionAdapter.load(str(dim))
    bench = one_class_benchmark(n)
    alphas = torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    source = SourceAlphas("source:any", {CLASS: [0, 1, 2]}, {CLASS: [im.image_id for im in bench.images]}, {CLASS: alphas})
    # Warm up every code path on a few images first, so the baseline includes allocator/thread pools.
    fit_transfer(
        target,
        one_class_benchmark(64),
        SourceAlphas("s", {CLASS: [0, 1, 2]}, {CLASS: [f"train/{CLASS}/{i}" for i in range(64)]}, {CLASS: alphas[:64]}),
        quiet,
    )
    before = peak_rss_mib()
    if mode == "streaming":
        artifact = fit_transfer(target, bench, source, quiet)
        directions = artifact.directions[CLASS].directions
    else:  # collect everything, then one call: what the streaming fit avoids
        feats = torch.cat([f for _, f in FeatureStream.open(target, bench, quiet)])
        directions = match_directions(alphas, feats, target.weight[CLASS]).directions
    return {"images": n, "growth_mib": peak_rss_mib() - before, "peak_mib": peak_rss_mib(), "directions_norm": float(directions.norm())}


def run_child(n: int, dim: int, mode: str) -> dict[str, float]:
    env = {**os.environ, "SPURBENCH_CACHE": tempfile.mkdtemp(prefix="spurbench-p4-")}  # cold feature cache per run
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n), "--dim", str(dim), "--mode", mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="N; the second run uses 4 N")
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="streaming", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.dim, args.mode)))
        return
    n = args.images
    print(f"P4: peak memory growth of the matched-direction fit, D = {args.dim}, images generated on the fly")
    ratios = {}
    for mode in ("streaming", "collect-then-fit"):
        small, large = run_child(n, args.dim, mode), run_child(4 * n, args.dim, mode)
        ratios[mode] = large["peak_mib"] / small["peak_mib"]
        print(
            f"  {mode:17s} peak {small['peak_mib']:6.0f} MiB at {n} images (fit +{small['growth_mib']:.1f}), "
            f"{large['peak_mib']:6.0f} MiB at {4 * n} (fit +{large['growth_mib']:.1f}); peak ratio {ratios[mode]:.3f}"
        )
    print(f"  (all features of {4 * n} images in float32: {4 * n * args.dim * 4 / 2**20:.0f} MiB)")
    print(
        f"P4 ratio (streaming fit, process peak memory at 4N / at N): {ratios['streaming']:.3f}  (goal: 1, independent of the image count)"
    )


if __name__ == "__main__":
    main()
