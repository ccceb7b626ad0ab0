"""``spurbench train``: train a model family's own weights on purpose (families that train them, e.g. the
embedded benchmark's classifiers), into a folder of the user's; the shipped weights are never replaced."""

from __future__ import annotations

from pathlib import Path

import typer

from spurbench.cli.common import app, console
from spurbench.errors import SpurbenchError


@app.command()
def train(
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="FAMILY:SPEC of a family that trains its own weights, repeatable; a seed is part of the spec (e.g. NAME.seed1).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Folder for each model's weights (.safetensors) and training stats (.json). Never inside the installed package.",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, max=1000, help="Train this many epochs instead of the recipe's (a quick try; the file name says so)."
    ),
    per_class: int | None = typer.Option(
        None,
        "--per-class",
        min=10,
        max=100_000,
        help="Training images per class instead of the recipe's (a quick try; the file name says so).",
    ),
) -> None:
    """Train models again, deterministically: on one machine the same command writes the same bytes, also
    after an interruption (a training starts again from scratch). Load the result with
    `spurbench run -m FAMILY:SPEC --checkpoint FILE`."""
    # lazy: keeps spurbench --help fast (the adapters import torch)
    from spurbench.adapters import ADAPTERS, split_name
    from spurbench.files import file_sha256

    trainers = []
    for name in model:  # every name checked before the first training starts
        family, spec = split_name(name)
        adapter = ADAPTERS.get(family)
        adapter.check_spec(spec)
        if not hasattr(adapter, "train_weights"):
            trainable = [f for f in ADAPTERS.names() if hasattr(ADAPTERS.get(f), "train_weights")]
            raise SpurbenchError(
                f"{name}: family {family!r} does not train its own weights (families that do: {', '.join(trainable) or 'none'})"
            )
        trainers.append((name, adapter, spec))
    for name, adapter, spec in trainers:
        path = adapter.train_weights(spec, out, epochs=epochs, per_class=per_class)
        console.print(f"{name}: {path} (sha256:{file_sha256(path)})", markup=False, highlight=False, soft_wrap=True)
