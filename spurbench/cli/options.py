"""The options ``run`` and ``sweep`` share: one definition each, so their names, defaults and help
cannot drift apart, and one place that turns them into benchmark option values and checks them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from spurbench.cli.common import key_values
from spurbench.errors import SpurbenchError

REGISTRY = typer.Option(None, "--registry", help="YAML model list (registry/*.yaml) to sweep.")
DATA_DIR = typer.Option(
    None, "--data-dir", help="Local copy of the benchmark's images (e.g. an unpacked upstream zip or a built dataset folder)."
)
IMAGENET_VAL = typer.Option(
    None,
    "--imagenet-val",
    help="Local ILSVRC2012 val folder, for benchmarks whose class images are ImageNet-val (else the gated Hub dataset).",
)
IMAGENET_TRAIN = typer.Option(
    None,
    "--imagenet-train",
    help="Local ILSVRC2012 train folder (or 'hub': the gated Hub split), for benchmarks whose images are ImageNet train images.",
)
DATASET_REPO = typer.Option(None, "--dataset-repo", help="Hub dataset repo of the benchmark's images (default: the one its plugin names).")
REVISION = typer.Option(None, "--revision", help="Pinned Hub revision of the benchmark's dataset.")
SEED = typer.Option(None, "--seed", help="Generator seed, for generated benchmarks.")
OPTION = typer.Option(None, "--option", "-O", help="Any other benchmark option, KEY=VALUE (repeatable; unknown keys are errors).")
PROTOCOL = typer.Option("paper", "--protocol", help="paper: the paper's preprocessing; model: each model's own timm data config.")
BATCH_SIZE = typer.Option(64, "--batch-size", min=1, help="Images per forward pass.")
LIMIT = typer.Option(None, "--limit", min=1, help="At most N images per class and role (smoke runs).")
OUTPUT = typer.Option(
    Path("spurbench-results"), "--output", "-o", help="Folder for result JSON files (`leaderboard verify` and `build` read it by default)."
)
NO_CACHE = typer.Option(False, "--no-cache", help="Do not read or write the feature cache.")
BOOTSTRAP = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap draws for the mAUC 95% CI (0 = none).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress while it works; errors, notes and the result tables still print.")
FORCE = typer.Option(
    False,
    "--force",
    help="Re-run models whose result file is already complete, and replace a result file made with another configuration (refused without it).",
)
SPUFIX = typer.Option(
    None,
    "--spufix",
    help="SpuFix artifact for the model: a folder, hf://ORG/NAME\\[@REV], or 'auto' (Hub org lookup by model name). Plain and SpuFix are scored from one forward pass.",
)
TEMPERATURE = typer.Option(
    1.0,
    "--temperature",
    help="Divide the plain head's logits by T before the softmax (the authors used 0.7156 for their robust ResNet-50). Registry entries carry their own.",
)
SPUFIX_TEMPERATURE = typer.Option(
    None, "--spufix-temperature", help="T for the SpuFix head (default: --temperature; the authors used 1 for SpuFix)."
)
NUM_WORKERS = typer.Option(
    None,
    "--num-workers",
    help="Data-loader processes decoding images (default: available cores - 1; 0: in the main process; at most one per available core).",
)
PRECISION = typer.Option(
    "fp32",
    "--precision",
    help="fp32, bf16 or fp16: autocast for the backbone (features, heads and metrics stay float32/64). Recorded in the result and its config hash.",
)
CHANNELS_LAST = typer.Option(
    False,
    "--channels-last",
    help="Model and inputs in channels-last memory format (faster convolutions on most GPUs; same results up to float rounding).",
)
PIXEL_CACHE = typer.Option(
    None,
    "--pixel-cache",
    help="Folder of decoded, resized uint8 images shared by models with the same preprocessing (a sweep decodes each image once per preprocessing).",
)
PIXEL_CACHE_GB = typer.Option(
    None,
    "--pixel-cache-gb",
    help="Size bound of --pixel-cache in GB (default 20); least recently used entries are deleted to stay under it.",
)


def benchmark_values(named: dict[str, Any], option: list[str] | None, benchmark: str | Sequence[str] | None) -> dict[str, Any]:
    """The option values of the benchmark(s) named (None: the default one): the named options that were
    given, then every ``-O KEY=VALUE`` read as its option's type (``benchmarks.option_values``)."""
    given = {k: v for k, v in named.items() if v is not None}
    raw = key_values(option)
    if not raw:
        return given
    # lazy: keeps spurbench --help fast (the plugins import torch)
    from spurbench.benchmarks import default_benchmark, get_benchmark
    from spurbench.benchmarks.option_values import shared_option_values

    names = [benchmark] if isinstance(benchmark, str) else list(benchmark or [default_benchmark()])
    return {**given, **shared_option_values([get_benchmark(name) for name in names], raw)}


def check_run_options(
    protocol: str,
    bootstrap: int,
    temperature: float,
    spufix_temperature: float | None,
    num_workers: int | None,
    precision: str,
    device: str,
    check_device: bool = True,
) -> None:
    """One-line errors for bad values, before any model loads (``check_device``: the device is this
    machine's; a SLURM sweep's jobs run elsewhere)."""
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench import runtime
    from spurbench.harness import check_bootstrap, check_temperature
    from spurbench.preprocessing import check_protocol

    check_protocol(protocol)
    runtime.check_workers(num_workers)
    if check_device:
        runtime.check_device(device)
        runtime.check_precision(precision, device)
    elif precision not in runtime.PRECISIONS:  # the jobs' device checks the rest where it runs
        raise SpurbenchError(f"unknown precision {precision!r}; choose one of {', '.join(runtime.PRECISIONS)}")
    check_bootstrap(bootstrap)
    check_temperature(temperature)
    if spufix_temperature is not None:
        check_temperature(spufix_temperature, "--spufix-temperature")


def check_pixel_cache(pixel_cache: Path | None, pixel_cache_gb: float | None) -> None:
    if pixel_cache is None and pixel_cache_gb is not None:
        raise SpurbenchError("--pixel-cache-gb bounds a pixel cache: give its folder with --pixel-cache DIR")
