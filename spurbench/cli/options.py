"""The options ``run`` and ``sweep`` share, declared once: :func:`with_run_options` gives a command the
parameters of :func:`run_options` and hands their values to it as one ``RunOptions``
(``spurbench.settings``), so their names, defaults and help cannot drift apart.

(No ``from __future__ import annotations`` here: the shared parameters' types must be objects, for
typer to read them from the signature this module builds.)
"""

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spurbench.cli.common import key_values
from spurbench.errors import SpurbenchError

if TYPE_CHECKING:
    from spurbench.settings import RunOptions

MODEL_LIST = typer.Option(None, "--model-list", help="YAML model list (model-lists/*.yaml) whose models to evaluate.")
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
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps ...")
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
    help="Divide the plain head's logits by T before the softmax (the authors used 0.7156 for their robust ResNet-50). Model-list entries carry their own.",
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


def run_options(
    data_dir: str | None = DATA_DIR,
    imagenet_val: str | None = IMAGENET_VAL,
    imagenet_train: str | None = IMAGENET_TRAIN,
    dataset_repo: str | None = DATASET_REPO,
    revision: str | None = REVISION,
    seed: int | None = SEED,
    option: list[str] | None = OPTION,
    protocol: str = PROTOCOL,
    batch_size: int = BATCH_SIZE,
    device: str = DEVICE,
    limit: int | None = LIMIT,
    output: Path = OUTPUT,
    no_cache: bool = NO_CACHE,
    bootstrap: int = BOOTSTRAP,
    force: bool = FORCE,
    quiet: bool = QUIET,
    spufix: str | None = SPUFIX,
    temperature: float = TEMPERATURE,
    spufix_temperature: float | None = SPUFIX_TEMPERATURE,
    num_workers: int | None = NUM_WORKERS,
    precision: str = PRECISION,
    channels_last: bool = CHANNELS_LAST,
    pixel_cache: Path | None = PIXEL_CACHE,
    pixel_cache_gb: float | None = PIXEL_CACHE_GB,
) -> "RunOptions":
    """The shared options as one ``RunOptions``, whose constructor checks each value in one line."""
    # lazy: keeps spurbench --help fast (the library imports torch)
    from spurbench.settings import FeatureSettings, RunOptions

    if pixel_cache is None and pixel_cache_gb is not None:
        raise SpurbenchError("--pixel-cache-gb bounds a pixel cache: give its folder with --pixel-cache DIR")
    named = {
        "data_dir": data_dir,
        "imagenet_val": imagenet_val,
        "imagenet_train": imagenet_train,
        "dataset_repo": dataset_repo,
        "revision": revision,
        "seed": seed,
        "limit": limit,
    }
    features = FeatureSettings.model_validate(
        {
            "protocol": protocol,
            "batch_size": batch_size,
            "device": device,
            "use_cache": not no_cache,
            "progress": not quiet,
            "num_workers": num_workers,
            "precision": precision,
            "channels_last": channels_last,
            "pixel_cache": pixel_cache,
            **({} if pixel_cache_gb is None else {"pixel_cache_gb": pixel_cache_gb}),
        }
    )
    return RunOptions(
        named_options={key: value for key, value in named.items() if value is not None},
        text_options=key_values(option),
        features=features,
        bootstrap=bootstrap,
        temperature=temperature,
        spufix_temperature=spufix_temperature,
        spufix=spufix,
        output=output,
        force=force,
    )


def with_run_options(**overrides: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the parameters of :func:`run_options` after its own, and call it with their values
    as one ``RunOptions``, its parameter ``run_options``. ``overrides``: another ``typer.Option`` for a
    shared parameter whose help says something else in this command."""
    shared = [p.replace(default=overrides.get(p.name, p.default)) for p in inspect.signature(run_options).parameters.values()]
    unknown = set(overrides) - {p.name for p in shared}
    if unknown:
        raise TypeError(f"with_run_options: no shared option {sorted(unknown)}")

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command).parameters.values() if p.name != "run_options"]

        def call(**values: Any) -> None:
            given = run_options(**{p.name: values.pop(p.name) for p in shared})
            command(**values, run_options=given)

        wrapper: Any = functools.wraps(command)(call)
        # typer reads the parameters from the signature, and their types from ``__annotations__`` (the
        # command's own as strings, resolved in its module, which ``__wrapped__`` names)
        wrapper.__signature__ = inspect.Signature([*own, *shared])
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
        return wrapper

    return decorate
