"""``planted:cnn`` and ``planted:resnet``: small classifiers trained on the planted benchmark.

Seed 0 (the default) loads the weights shipped with spurbench (``weights``: checked against their
recorded sha256, never trained). Other seeds are trained on ``generate_training_set(seed)`` when first
loaded (``PlantedAdapter.load``: an explicit step with a progress bar; measured 20-23 s for ``cnn`` and
26-27 s for ``resnet`` on 2 idle CPU cores, data generation included), then cached as safetensors (+ a
JSON of training stats) under ``<cache>/planted``, keyed by the generator version, ``TRAIN_VERSION``,
the seed and the architecture. ``spurbench train`` (``PlantedAdapter.train_weights``) trains any seed
on purpose into a folder. The adapter family is registered through spurbench's ``spurbench.adapters``
entry point.

Model names: ``planted:cnn`` / ``planted:resnet``, optionally with a training seed,
``planted:cnn.seed1``; the seed defaults to 0.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch

from spurbench.adapters.base import DeclaredModel, ModelAdapter, ModelCard
from spurbench.adapters.common import load_checkpoint_into, read_safetensors
from spurbench.benchmarks.planted.training import (
    ARCHS,
    EPOCHS,
    MEAN,
    NUM_CLASSES,
    STD,
    TRAIN_VERSION,
    PlantedNet,
    ProgressCallback,
    build_model,
    rich_progress,
    train_planted_model,
)
from spurbench.benchmarks.planted.weights import save_weights, shipped_file, shipped_stats, verified_shipped, weights_stem
from spurbench.benchmarks.shared import planted_generator as gen
from spurbench.cache import content_digest, make_cache_dir
from spurbench.errors import DataError, SpurbenchError, UnknownNameError
from spurbench.files import atomic_path, real_inside, remove_stale_temporaries
from spurbench.registry import suggest

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


VERSIONS = (gen.GENERATOR_VERSION, TRAIN_VERSION)


def cache_paths(arch: str, seed: int) -> tuple[Path, Path]:
    """(weights.safetensors, stats.json) of the cached model (creates the cache folder)."""
    stem = weights_stem(arch, seed, *VERSIONS)
    folder = make_cache_dir("planted")
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def _recipe(arch: str, seed: int, stats: dict[str, Any]) -> dict[str, Any]:
    # What the file's metadata records: the recipe only (no timings), so equal trainings give equal bytes.
    return {
        "arch": arch,
        "seed": seed,
        "generator_version": gen.GENERATOR_VERSION,
        "train_version": TRAIN_VERSION,
        "epochs": stats["epochs"],
        "train_images": stats["train_images"],
    }


def _save(net: PlantedNet, stats: dict[str, Any], weights: Path, stats_path: Path) -> None:
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_weights(state, weights, _recipe(net.arch, int(stats["seed"]), stats))
    stats["weights_sha256"] = content_digest(weights)  # checked on every load: damaged weights are retrained
    with atomic_path(stats_path) as tmp:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")


def _load_state(net: PlantedNet, path: Path) -> None:
    # One-line errors for an unreadable file and for keys / shapes that do not fit the architecture.
    load_checkpoint_into(net, read_safetensors(path), path, f"planted architecture {net.arch!r}")
    net.to(memory_format=torch.channels_last).eval()


def _read_stats(path: Path) -> dict[str, Any]:
    try:
        stats = json.loads(path.read_text())
        return stats if isinstance(stats, dict) else {}
    except (OSError, ValueError):
        return {}


def _train(arch: str, seed: int, progress: ProgressCallback | None, why: str, **shorter: Any) -> tuple[PlantedNet, dict[str, Any]]:
    def stop() -> None:  # nothing to close when the caller brought its own progress
        return None

    if progress is None:
        progress, stop = rich_progress(arch, seed, shorter.get("epochs", EPOCHS), why)
    try:
        return train_planted_model(arch, seed, progress=progress, **shorter)
    finally:
        stop()


def load_or_train(arch: str, seed: int = 0, *, progress: ProgressCallback | None = None) -> tuple[PlantedNet, dict[str, Any]]:
    """The shipped model (seed 0), else the trained model from the cache, training (and caching) it first if needed."""
    shipped = shipped_file(arch, seed, VERSIONS)
    if shipped is not None:
        digest = verified_shipped(arch, shipped)  # before building anything: a damaged file is one line
        net = build_model(arch, seed)
        _load_state(net, shipped)
        return net, {**shipped_stats(shipped), "weights_sha256": digest, "shipped": True, "cache_hit": False}
    weights, stats_path = cache_paths(arch, seed)
    if weights.exists():
        stats = _read_stats(stats_path)
        if stats.get("weights_sha256") == content_digest(weights):
            net = build_model(arch, seed)
            _load_state(net, weights)
            return net, {**stats, "cache_hit": True}
        sys.stderr.write(f"note: cached planted:{arch} weights {weights} do not match their recorded digest; training again\n")
    # An interrupted training kept nothing but, after a SIGKILL, a temporary: it starts again from scratch.
    remove_stale_temporaries(weights.parent)
    log.info("training planted:%s (seed %d) on first use; cached at %s", arch, seed, weights)
    net, stats = _train(arch, seed, progress, "first use; cached afterwards")
    _save(net, stats, weights, stats_path)
    return net, {**stats, "cache_hit": False}


def train_into(
    arch: str, seed: int, out: Path, *, epochs: int = EPOCHS, per_class: int | None = None, progress: ProgressCallback | None = None
) -> Path:
    """Train ``planted:arch`` at ``seed`` on purpose and write ``<stem>.safetensors`` (+ its stats JSON) into
    ``out``; the weights path. ``epochs`` / ``per_class`` shorten the training (the name then says so)."""
    check_train_out(out)
    per_class = gen.TRAIN_PER_CLASS if per_class is None else per_class
    short = "" if (epochs, per_class) == (EPOCHS, gen.TRAIN_PER_CLASS) else f"-epochs{epochs}-per-class{per_class}"
    out.mkdir(parents=True, exist_ok=True)  # (no sweep of stale temporaries here: the folder is the user's)
    stem = weights_stem(arch, seed, *VERSIONS, short)
    net, stats = _train(arch, seed, progress, "spurbench train", epochs=epochs, per_class=per_class)
    _save(net, stats, out / f"{stem}.safetensors", out / f"{stem}.json")
    return out / f"{stem}.safetensors"


def check_train_out(out: Path) -> None:
    """``spurbench train``'s output folder, checked before any training: never inside the installed
    package (whose shipped weights it would replace), never a file."""
    package = Path(__file__).resolve().parents[2]
    if real_inside(package, out):
        raise SpurbenchError(
            f"--out {out} is inside the installed spurbench package ({package}); its shipped weights are not replaced: pass another folder"
        )
    if out.exists() and not out.is_dir():
        raise SpurbenchError(f"--out {out} is not a folder")


# ---------------------------------------------------------------------------------------------
# adapter
# ---------------------------------------------------------------------------------------------

_SPEC = re.compile(r"^(?P<arch>[a-z]+)(?:\.seed(?P<seed>\d{1,9}))?$")


def parse_spec(spec: str) -> tuple[str, int]:
    """``"cnn"`` -> ("cnn", 0); ``"resnet.seed1"`` -> ("resnet", 1)."""
    match = _SPEC.match(spec)
    if not match or match["arch"] not in ARCHS:
        names = [f"planted:{a}" for a in ARCHS]
        raise UnknownNameError(
            f"unknown planted model 'planted:{spec}'.{suggest(f'planted:{spec}', names)} Known: {', '.join(names)} (optionally .seedN, e.g. planted:cnn.seed1)."
        )
    return match["arch"], int(match["seed"] or 0)


class PlantedAdapter(ModelAdapter):
    """Adapter of the planted benchmark's own classifiers (family ``planted``); build it with :meth:`load`."""

    family = "planted"

    def __init__(self, spec: str, net: PlantedNet, seed: int, weights_revision: str | None, training_stats: dict[str, Any] | None = None):
        self.arch, self.seed, self.model = net.arch, seed, net
        self.training_stats = dict(training_stats or {})
        size = gen.IMAGE_SIZE
        self.card = ModelCard(
            name=f"planted:{spec}",
            family="planted",
            weights_revision=weights_revision,
            label_space="planted",
            num_classes=NUM_CLASSES,
            num_params=sum(p.numel() for p in net.parameters()),
            data_config={
                "input_size": (3, size, size),
                "interpolation": "bilinear",
                "mean": MEAN,
                "std": STD,
                "crop_pct": 1.0,
                "crop_mode": "center",
            },
        )

    @classmethod
    def check_spec(cls, spec: str) -> None:
        parse_spec(spec)

    @classmethod
    def declared(cls, spec: str) -> DeclaredModel:
        parse_spec(spec)
        return DeclaredModel(f"planted:{spec}", "planted", NUM_CLASSES)

    @classmethod
    def load(
        cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True, progress: ProgressCallback | None = None
    ) -> PlantedAdapter:
        """``pretrained=True``: the cached weights, trained first (with a progress bar) if there are none;
        ``pretrained=False``: a random initialisation (no training; for contract tests);
        ``checkpoint``: a safetensors state dict of the same architecture instead."""
        arch, seed = parse_spec(spec)
        if checkpoint is not None:
            path = Path(checkpoint)
            if not path.is_file():
                raise DataError(f"checkpoint not found: {checkpoint}")
            net = build_model(arch, seed)
            _load_state(net, path)
            return cls(spec, net, seed, content_digest(path))
        if pretrained:
            net, stats = load_or_train(arch, seed, progress=progress)
            # The recipe and the content digest of the weights used: shipped (seed 0, the same bytes on
            # every machine) or trained here (CPU-dependent: see the README).
            source = " shipped" if stats.get("shipped") else ""
            revision = f"generator-v{gen.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed{seed}{source} {stats['weights_sha256']}"
            return cls(spec, net, seed, revision, stats)
        return cls(spec, build_model(arch, seed), seed, None)

    @classmethod
    def train_weights(cls, spec: str, out: Path, *, epochs: int | None = None, per_class: int | None = None) -> Path:
        """``spurbench train``: train ``planted:spec`` on purpose into the folder ``out`` (see :func:`train_into`)."""
        arch, seed = parse_spec(spec)
        return train_into(arch, seed, out, epochs=EPOCHS if epochs is None else epochs, per_class=per_class)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.fc.weight.detach(), self.model.fc.bias.detach()

    def cam_target_layers(self) -> tuple[list[torch.nn.Module], None]:
        # The trunk's last block: 10 x 10 cells at 40 px (after two 2x2 poolings), 512 channels.
        return [self.model.trunk[-1]], None

    def to(self, device: str | torch.device) -> PlantedAdapter:
        self.model.to(device)
        return self

    @property
    def class_names(self) -> list[str]:
        return list(gen.PLANTED_CLASSES)


__all__ = ["PlantedAdapter", "cache_paths", "check_train_out", "load_or_train", "parse_spec", "train_into"]
