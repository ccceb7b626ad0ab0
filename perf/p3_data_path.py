"""P3: end-to-end ``evaluate`` throughput vs the raw model forward on the same images (goal: ratio >= 0.9).

Raw forward = the adapter's ``logits`` on already-decoded, already-transformed tensors in memory.
End to end = ``spurbench.evaluate`` without the feature cache: JPEG decode, transform, forward, heads,
metrics, result. The data path must keep the model busy, so the ratio should be close to 1.

    python perf/p3_data_path.py [--model timm:tf_efficientnet_lite0] [--images-per-role 24]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PhotoBenchmark, photo_benchmark

from spurbench import evaluate, load_model
from spurbench.preprocessing import build_transform
from spurbench.settings import FeatureSettings, RunSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="timm:tf_efficientnet_lite0")
    parser.add_argument("--images-per-role", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    adapter = load_model(args.model, pretrained=False, device=args.device)  # speed only: random weights
    bench = photo_benchmark(per_role=args.images_per_role)
    n = len(bench.images)

    tensors = [build_transform(adapter.data_config, bench.protocols["paper"], im.role)(im.open()) for im in bench.images]
    # Same batches as evaluate() forms (positives and negatives are transformed differently but are the same size).
    batches = [torch.stack(tensors[i : i + args.batch_size]).to(args.device) for i in range(0, n, args.batch_size)]
    with torch.no_grad():
        adapter.logits(batches[0])  # warm-up
        start = time.perf_counter()
        for batch in batches:
            adapter.logits(batch)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        raw = time.perf_counter() - start

    features = FeatureSettings(use_cache=False, batch_size=args.batch_size, device=args.device, progress=False)
    options = {"per_role": args.images_per_role}
    settings = RunSettings(model=adapter.name, benchmark=PhotoBenchmark.name, options=options, bootstrap=1000, features=features)
    evaluate(settings, model=adapter, benchmark=bench)  # warm-up
    start = time.perf_counter()
    evaluate(settings, model=adapter, benchmark=bench)
    end_to_end = time.perf_counter() - start

    print(
        f"model {args.model} (random weights), {n} JPEG photos, batch {args.batch_size}, device {args.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"raw forward:  {n / raw:8.1f} images/s ({raw:.2f} s)")
    print(f"evaluate():   {n / end_to_end:8.1f} images/s ({end_to_end:.2f} s)")
    print(f"P3 ratio (evaluate throughput / raw forward throughput) = {raw / end_to_end:.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
