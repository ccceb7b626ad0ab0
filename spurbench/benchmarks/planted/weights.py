"""The planted classifiers' weights files: the seed-0 weights shipped with spurbench, and a writer whose
bytes depend on the tensors alone.

Why ship them: training is bit-reproducible only on one machine (same CPU, torch build and thread
count), so a fresh machine that trained its own printed other numbers than the README. The shipped
files were trained once, uninterrupted, by ``spurbench train -m planted:cnn -m planted:resnet`` (the
recipe of ``training``: ``TRAIN_VERSION`` 2 on generator v1, 2 torch threads, torch 2.14.1 on x86-64)
and are checked against the sha256 below on every load.

Why the writer: safetensors stores its ``__metadata__`` map in the order of a Rust HashMap, which is
random per call, so the same tensors saved with two metadata keys gave one of two files (and two
sha256) at random. That, not the training, was why a run interrupted and started again recorded
other weights than an uninterrupted one. One metadata key has one order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spurbench.errors import DataError
from spurbench.files import atomic_path, file_sha256

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "planted"
SHIPPED_SEED = 0
# (generator version, train version) the shipped files were trained with; bumping either makes the
# seed-0 models train on first use again until new files are shipped (tests/test_planted_weights.py says so).
SHIPPED_VERSIONS = (1, 2)
# Hex sha256 of each shipped file, as trained on the machine named in README "Planted weights".
SHIPPED_SHA256 = {
    "cnn": "4b3b3d7dd729361b07de09266645b783b6b2542f621b50b8034f287906b58ec1",
    "resnet": "41b51b178d6d8a508de3e0863d176c08dc88d368e6ee32b9626664d7eddff26a",
}
METADATA_KEY = "spurbench.planted"


def weights_stem(arch: str, seed: int, generator_version: int, train_version: int, short: str = "") -> str:
    """The file name (less suffix) of one training: what keys the cache, names the shipped files and
    ``spurbench train``'s output. ``short`` marks a shortened training (``-epochs2-per-class40``)."""
    return f"{arch}-generator-v{generator_version}-train-v{train_version}-seed{seed}{short}"


def shipped_file(arch: str, seed: int, versions: tuple[int, int]) -> Path | None:
    """The shipped weights of ``planted:arch`` at ``seed``, or None when none ship for it (another
    seed, or a generator / training recipe newer than the shipped files)."""
    if seed != SHIPPED_SEED or arch not in SHIPPED_SHA256 or versions != SHIPPED_VERSIONS:
        return None
    return SHIPPED_DIR / f"{weights_stem(arch, seed, *versions)}.safetensors"


def verified_shipped(arch: str, path: Path) -> str:
    """``sha256:<hex>`` of a shipped file after checking it against the recorded digest: a missing or
    changed file is a one-line error (never silently retrained: the point of shipping is these bytes)."""
    expected = SHIPPED_SHA256[arch]
    if not path.is_file():
        raise DataError(
            f"the shipped planted:{arch} weights {path} are missing; reinstall spurbench (or train your own: spurbench train -m planted:{arch} --out DIR)"
        )
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"the shipped planted:{arch} weights {path} do not match their recorded sha256 (expected {expected[:16]}…, the file has {actual[:16]}…); reinstall spurbench"
        )
    return f"sha256:{actual}"


def shipped_stats(path: Path) -> dict[str, Any]:
    """The training stats shipped beside the weights (informative: accuracies, seconds, torch build)."""
    try:
        stats = json.loads(path.with_suffix(".json").read_text())
        return stats if isinstance(stats, dict) else {}
    except (OSError, ValueError):
        return {}


def save_weights(state: dict[str, Any], path: Path, recipe: dict[str, Any]) -> None:
    """Write a state dict as safetensors, atomically, with ``recipe`` as one metadata entry: the same
    tensors and recipe give the same bytes on every call (see the module docstring)."""
    # lazy: safetensors' torch bindings import torch, which this module's readers do not need
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(recipe, sort_keys=True)})


__all__ = [
    "SHIPPED_DIR",
    "SHIPPED_SEED",
    "SHIPPED_SHA256",
    "SHIPPED_VERSIONS",
    "save_weights",
    "shipped_file",
    "shipped_stats",
    "verified_shipped",
    "weights_stem",
]
