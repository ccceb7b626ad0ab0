"""P11: decode once per sweep. Data-path time of 4 models that share one preprocessing, with the pixel
cache, against 4 x one model's without it (goal: ratio <= 0.35); and what the data path sustains per
CPU core next to the model forward, as the loader workers a GPU needs.

Images: real photos (scikit-image / scikit-learn samples), each saved as its own JPEG from a random
crop of one photo, so every file decodes on its own. Models: four timm architectures (random weights,
speed only) whose preprocessing is the same under ``--protocol`` although their mean/std differ (the
cache stores pixels before normalisation). Data-path time = iterating ``dataloading.input_batches``
(decode, resize, crop, collate; or read the cache), i.e. all the loader does; the forward and the
normalisation on the device are excluded.

Workers per GPU: ``--gpu-images-per-s`` (the model's forward rate on the GPU) / the per-core rate.
This machine has no GPU, so that GPU rate is an ASSUMPTION given as an argument and the worker count
an ESTIMATE; measure the forward rate on the GPU (e.g. perf/p3_data_path.py --device cuda) and pass it.

    python perf/p11_shared_decode.py [--images 400] [--num-workers N] [--gpu-images-per-s 2500]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spurbench import load_model
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.dataloading import input_batches, pixel_cache_key
from spurbench.pixelcache import PixelCache
from spurbench.preprocessing import normalize_on_device
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table
from spurbench.runtime import default_workers

MODELS = ["timm:tf_efficientnet_lite0", "timm:mobilenetv3_large_100", "timm:efficientnet_b0", "timm:regnety_002"]


def crop_benchmark(n: int, folder: Path, seed: int = 0) -> Benchmark:
    """``n`` distinct JPEGs (quality 90), each a random crop (60-100 % of each side) of a real photo."""
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(p) for p in (skdata.coffee(), skdata.chelsea(), skdata.astronaut(), skdata.rocket(), *load_sample_images().images)]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(photo[y : y + ch, x : x + cw]).convert("RGB").save(path, quality=90)
        role = "positive" if i % 2 == 0 else "negative"
        images.append(
            BenchmarkImage(f"{role}/{i}", i % 4, role, None if role == "positive" else 0, str(path), lambda p=path: Image.open(p))
        )
    classes = [BenchmarkClass(index=k, name=f"class{k}", components=(0,)) for k in range(4)]
    return Benchmark(
        "photo-crops",
        "imagenet-1k",
        classes,
        images,
        revision="speed",
        checksum=f"crops-{n}-{seed}",
        protocols=protocol_table(fixed_paper(224 / 256, by="the authors' code"), MODEL_TRANSFORM),
    )


def data_path_seconds(
    bench: Benchmark, config: dict, protocol: str, batch_size: int, workers: int, cache: PixelCache | None = None
) -> float:
    start = time.perf_counter()
    for _ in input_batches(bench, list(range(len(bench.images))), config, protocol, batch_size, workers=workers, pixel_cache=cache):
        pass
    return time.perf_counter() - start


def forward_rate(name: str, config: dict, pixels: torch.Tensor, batch_size: int) -> float:
    adapter = load_model(name, pretrained=False)
    batches = [normalize_on_device(pixels[i : i + batch_size], config) for i in range(0, len(pixels), batch_size)]
    with torch.no_grad():
        adapter.features(batches[0])  # warm-up
        start = time.perf_counter()
        for batch in batches:
            adapter.features(batch)
    return len(pixels) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--protocol", default="paper")
    parser.add_argument(
        "--num-workers", type=int, default=None, help="loader workers for the ratio (default: spurbench's, available cores - 1)"
    )
    parser.add_argument("--forward-models", nargs="*", default=["timm:tf_efficientnet_lite0", "timm:resnet50"])
    parser.add_argument(
        "--gpu-images-per-s",
        type=float,
        default=2500.0,
        help="ASSUMED forward rate of the model on the GPU (default: about a ResNet-50 at 224 px in bf16 on one A100-class GPU)",
    )
    args = parser.parse_args()
    workers = default_workers() if args.num_workers is None else args.num_workers

    with tempfile.TemporaryDirectory(prefix="spurbench-p11-") as tmp:
        measure(args, workers, Path(tmp))


def measure(args: argparse.Namespace, workers: int, folder: Path) -> None:
    bench = crop_benchmark(args.images, folder / "jpegs")
    configs = {name: load_model(name, pretrained=False).data_config for name in MODELS}
    keys = {name: pixel_cache_key(bench, config, args.protocol) for name, config in configs.items()}
    assert len({str(k) for k in keys.values()}) == 1, "the four models must share one preprocessing"
    first = configs[MODELS[0]]
    data_path_seconds(bench, first, args.protocol, args.batch_size, workers)  # warm-up: JPEG files in the page cache, workers forked once

    alone = {name: data_path_seconds(bench, config, args.protocol, args.batch_size, workers) for name, config in configs.items()}
    cache = PixelCache.open(folder / "pixels", 5.0)
    shared = {name: data_path_seconds(bench, config, args.protocol, args.batch_size, workers, cache) for name, config in configs.items()}
    ratio = sum(shared.values()) / sum(alone.values())

    # One core: this process with one torch thread, as a loader worker runs (torch's intra-op threads
    # only add barrier waits to the collate copy, 3x slower on a loaded 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_core = args.images / data_path_seconds(bench, first, args.protocol, args.batch_size, 0)  # decode + resize in this one process
    read_per_core = args.images / data_path_seconds(bench, first, args.protocol, args.batch_size, 0, cache)  # the pixel cache, read back
    torch.set_num_threads(threads)
    pixels = torch.cat(
        list(input_batches(bench, list(range(len(bench.images))), first, args.protocol, args.batch_size, workers=0, pixel_cache=cache))
    )
    forward = {
        name: forward_rate(name, load_model(name, pretrained=False).data_config, pixels, args.batch_size) for name in args.forward_models
    }

    n, size = args.images, "x".join(str(v) for v in pixels.shape[2:])
    print(
        f"{n} JPEG photos (random crops of real photos) -> {size} px, protocol {args.protocol}, batch {args.batch_size}, {workers} loader worker(s), torch threads {torch.get_num_threads()}"
    )
    print(f"models sharing one preprocessing (mean/std differ): {', '.join(MODELS)}")
    print(
        "data-path seconds per model, without the pixel cache: "
        + ", ".join(f"{t:.2f}" for t in alone.values())
        + f"  (sum {sum(alone.values()):.2f})"
    )
    print(
        "data-path seconds per model, shared pixel cache:      "
        + ", ".join(f"{t:.2f}" for t in shared.values())
        + f"  (sum {sum(shared.values()):.2f}; the first decodes and writes)"
    )
    print(f"P11 ratio (4 models, shared pixel cache / 4 x one model without) = {ratio:.3f}  (goal <= 0.35)")
    print(
        f"data path per CPU core: decode + resize {per_core:.1f} images/s; pixel-cache read {read_per_core:.1f} images/s (measured: one process, one thread)"
    )
    for name, rate in forward.items():
        print(
            f"model forward on this CPU ({torch.get_num_threads()} threads): {name} {rate:.1f} images/s (measured); one decoding core = {per_core / rate:.2f} x its forward rate"
        )
    need = math.ceil(args.gpu_images_per_s / per_core)
    print(
        f"ESTIMATE (no GPU measured; GPU forward rate ASSUMED {args.gpu_images_per_s:.0f} images/s, --gpu-images-per-s): "
        f"{need} loader workers per GPU decoding JPEGs ({args.gpu_images_per_s:.0f} / {per_core:.1f}), "
        f"{math.ceil(args.gpu_images_per_s / read_per_core)} when reading the pixel cache"
    )


if __name__ == "__main__":
    main()
