"""P7: feature visualisations of all components of a class as one APGD batch versus one attack per
component (goal: batched >= 3x faster on CPU with a small model). Prints both times and the ratio.

Model: the planted benchmark's small CNN with random weights (any differentiable adapter would do;
no training needed for a speed measurement), its 40 px input, 10 components, 200 APGD steps.
"""

from __future__ import annotations

import argparse
import time

import torch

from spurbench.benchmarks.planted import training_benchmark
from spurbench.benchmarks.planted.models import PlantedAdapter
from spurbench.discovery.npfv import visualise
from spurbench.features import class_subset, extract_features
from spurbench.settings import FeatureSettings
from spurbench.spufix.npca import fit_npca


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="cnn", choices=["cnn", "resnet"])
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = PlantedAdapter.load(args.arch, pretrained=False)
    train, _ = training_benchmark(limit=200)
    feats = extract_features(model, class_subset(train, 2), FeatureSettings(use_cache=False, progress=False))
    npca = fit_npca(feats.features.double(), model.head[0][2])
    ranks = list(range(args.components))
    batched = separate = float("inf")
    for _ in range(args.repeats):  # interleaved, best of each
        start = time.perf_counter()
        visualise(model, 2, npca, ranks, steps=args.steps)
        batched = min(batched, time.perf_counter() - start)
        start = time.perf_counter()
        for rank in ranks:
            visualise(model, 2, npca, [rank], steps=args.steps)
        separate = min(separate, time.perf_counter() - start)
    print(f"planted:{args.arch} (random weights), {args.components} components, {args.steps} APGD steps, best of {args.repeats}")
    print(f"one batch:              {batched:.2f} s")
    print(f"one attack per component: {separate:.2f} s")
    print(f"ratio (separate / batched): {separate / batched:.2f}")


if __name__ == "__main__":
    main()
