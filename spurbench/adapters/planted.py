"""``planted:cnn`` and ``planted:resnet``: small classifiers trained on the fly on the planted benchmark.

Both are trained on ``generate_training_set(seed)`` on first use (measured 20-23 s for ``cnn`` and
26-27 s for ``resnet`` on 2 idle CPU cores, data generation included) and
then cached as safetensors (+ a JSON of training stats) under ``cache_dir("planted")``, keyed
by the generator version, ``TRAIN_VERSION``, the seed and the architecture.

Why the architectures look like this: the planted benchmark's follow-up (class-wise neural PCA
+ SpuFix) needs a planted feature's evidence to add up in the penultimate features separately
from the object's. Both nets therefore keep a bounded receptive field (10 px: two 3x3 convs with
max pooling; less than the distance between a corner badge and the objects), do everything after
it with 1x1 convolutions, and end in global average pooling -> 512 features -> ``nn.Linear``. The
wide 512-channel penultimate layer and weight decay 0.05 were measured to give the feature a
neural PCA component of its own on both architectures (narrower layers or weight decay 5e-4 did not).

Model names: ``planted:cnn`` / ``planted:resnet``, optionally with a training seed,
``planted:cnn.seed1``; the seed defaults to 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.benchmarks import planted as gen
from spurbench.cache import content_digest
from spurbench.errors import DataError, UnknownNameError
from spurbench.registry import suggest

log = logging.getLogger(__name__)

# Bump whenever architecture, optimiser or schedule change: it keys the cached weights.
TRAIN_VERSION = 2
ARCHS: tuple[str, ...] = ("cnn", "resnet")
NUM_CLASSES = len(gen.PLANTED_CLASSES)
FEATURE_DIM = 512
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
# Six epochs of small batches reach the clean accuracy that twelve epochs of batch 128 did, in half the time.
EPOCHS = 6
BATCH_SIZE = 32
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.05

ProgressCallback = Callable[[int, int, dict[str, float]], None]  # (epoch done, epochs, stats)


# ---------------------------------------------------------------------------------------------
# architectures
# ---------------------------------------------------------------------------------------------


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class _ResidualUnit(nn.Module):
    """3x3 conv + BN, added to a 1x1 projection of the input, then ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x) + self.shortcut(x))


class _Bottleneck(nn.Module):
    """Pointwise residual bottleneck: x + BN(1x1(ReLU(BN(1x1(x))))), then ReLU."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn_relu(channels, hidden, 1), nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def _trunk(arch: str) -> nn.Sequential:
    if arch == "cnn":  # plain stack; receptive field 10 px
        return nn.Sequential(
            *_conv_bn_relu(3, 32, 3), nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64, 3), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128, 1),
            *_conv_bn_relu(128, FEATURE_DIM, 1),
        )  # fmt: skip
    if arch == "resnet":  # residual unit + pointwise residual bottleneck; receptive field 10 px
        return nn.Sequential(
            *_conv_bn_relu(3, 32, 3), nn.MaxPool2d(2),
            _ResidualUnit(32, 64), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128, 1),
            _Bottleneck(128, 64),
            *_conv_bn_relu(128, FEATURE_DIM, 1),
        )  # fmt: skip
    raise UnknownNameError(f"unknown planted architecture {arch!r}.{suggest(arch, ARCHS)} Known: {', '.join(ARCHS)}.")


class _GlobalMeanPool(torch.autograd.Function):
    """``h.mean(dim=(2, 3))`` with a dense, channels-last gradient.

    Why: autograd's own backward of ``mean`` hands the ReLU before it a stride-0 (broadcast)
    gradient, and CPU ``threshold_backward`` on that runs several times slower than on a dense
    tensor; this alone made a training step ~15 % slower. The forward value is identical.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        ctx.shape = h.shape
        return h.mean(dim=(2, 3))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        n, c, height, width = ctx.shape
        return (grad / (height * width))[:, :, None, None].expand(n, c, height, width).contiguous(memory_format=torch.channels_last)


class PlantedNet(nn.Module):
    """Trunk -> global average pooling -> ``fc`` (the final linear layer)."""

    def __init__(self, arch: str):
        super().__init__()
        self.arch = arch
        self.trunk = _trunk(arch)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return _GlobalMeanPool.apply(self.trunk(x.contiguous(memory_format=torch.channels_last)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build_model(arch: str, seed: int = 0) -> PlantedNet:
    """A randomly initialised ``arch`` (deterministic in ``seed``), in eval mode, channels-last."""
    with _seeded(seed):
        net = PlantedNet(arch)
    return net.to(memory_format=torch.channels_last).eval()


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # Fork the global RNG so that building a model never disturbs the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _torch_threads() -> Iterator[int]:
    # Tiny convolutions: more than a few threads only adds overhead; restore the caller's setting.
    before = torch.get_num_threads()
    threads = max(1, min(os.cpu_count() or 1, 8))
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> normalised float [N, 3, H, W], exactly as ``preprocessing`` does it."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def _accuracy(net: PlantedNet, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    net.eval()
    hits = sum(int((net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return hits / max(len(x), 1)


def _rich_progress(arch: str, seed: int) -> tuple[ProgressCallback | None, Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal, else nothing (quiet in CI and pipes)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(f"training planted:{arch} (seed {seed}, first use; cached afterwards)"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("train", total=EPOCHS)
    progress.start()
    return (lambda done, total, stats: progress.update(task, completed=done)), progress.stop


def train_planted_model(arch: str, seed: int = 0, *, progress: ProgressCallback | None = None) -> tuple[PlantedNet, dict[str, Any]]:
    """Train ``arch`` on ``generate_training_set(seed)``; return the model (eval mode) and stats.

    Deterministic for a given seed, torch build and thread count. ``progress`` is called after
    every epoch with ``(epoch, epochs, {"loss": ...})``.
    """
    started = time.perf_counter()
    train = gen.generate_training_set(seed)
    x, y = to_tensor(train.images), torch.from_numpy(train.labels)
    net = build_model(arch, seed).train()
    with _torch_threads() as threads, _seeded(seed):
        optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        steps_per_epoch = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, total_steps=EPOCHS * steps_per_epoch, pct_start=0.25)
        order = torch.Generator().manual_seed(seed)
        for epoch in range(EPOCHS):
            net.train()
            total = 0.0
            for idx in torch.randperm(len(x), generator=order).split(BATCH_SIZE):
                loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(idx)
            if progress is not None:
                progress(epoch + 1, EPOCHS, {"loss": total / len(x)})
        net.eval()
        train_seconds = time.perf_counter() - started
        clean = gen.generate_test_sets(seed).clean
        stats = {
            "arch": arch,
            "seed": seed,
            "generator_version": gen.GENERATOR_VERSION,
            "train_version": TRAIN_VERSION,
            "epochs": EPOCHS,
            "train_images": len(x),
            "seconds": round(train_seconds, 2),
            "torch_threads": threads,
            "torch_version": torch.__version__,
            "train_accuracy": round(_accuracy(net, x, y), 4),
            "clean_test_accuracy": round(_accuracy(net, to_tensor(clean.images), torch.from_numpy(clean.labels)), 4),
        }
    return net, stats


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------


def cache_paths(arch: str, seed: int) -> tuple[Path, Path]:
    """(weights.safetensors, stats.json) of the cached model."""
    from spurbench.cache import cache_dir

    stem = f"{arch}-generator-v{gen.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed{seed}"
    folder = cache_dir("planted")
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


def _save(net: PlantedNet, stats: dict[str, Any], weights: Path, stats_path: Path) -> None:
    from safetensors.torch import save_file

    from spurbench.cache import atomic_path

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"arch": net.arch, "train_version": str(TRAIN_VERSION)})
    stats["weights_sha256"] = content_digest(weights)  # checked on every load: damaged weights are retrained
    with atomic_path(stats_path) as tmp:
        tmp.write_text(json.dumps(stats, indent=2) + "\n")


def _load_state(net: PlantedNet, path: Path) -> None:
    from spurbench.adapters._common import load_checkpoint_into, read_safetensors

    # One-line errors for an unreadable file and for keys / shapes that do not fit the architecture.
    load_checkpoint_into(net, read_safetensors(path), path, f"planted architecture {net.arch!r}")
    net.to(memory_format=torch.channels_last).eval()


def _read_stats(path: Path) -> dict[str, Any]:
    try:
        stats = json.loads(path.read_text())
        return stats if isinstance(stats, dict) else {}
    except (OSError, ValueError):
        return {}


def load_or_train(arch: str, seed: int = 0, *, progress: ProgressCallback | None = None) -> tuple[PlantedNet, dict[str, Any]]:
    """The trained model from the cache, training (and caching) it first if needed."""
    weights, stats_path = cache_paths(arch, seed)
    if weights.exists():
        stats = _read_stats(stats_path)
        if stats.get("weights_sha256") == content_digest(weights):
            net = build_model(arch, seed)
            _load_state(net, weights)
            return net, {**stats, "cache_hit": True}
        sys.stderr.write(f"note: cached planted:{arch} weights {weights} do not match their recorded digest; training again\n")
    log.info("training planted:%s (seed %d) on first use; cached at %s", arch, seed, weights)
    stop: Callable[[], None] = lambda: None
    if progress is None:
        progress, stop = _rich_progress(arch, seed)
    try:
        net, stats = train_planted_model(arch, seed, progress=progress)
    finally:
        stop()
    _save(net, stats, weights, stats_path)
    return net, {**stats, "cache_hit": False}


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
    """Adapter of the planted benchmark's own classifiers (family ``planted``).

    ``pretrained=True`` loads the cached weights or trains them on first use;
    ``pretrained=False`` gives a random initialisation (no training; for contract tests);
    ``checkpoint`` loads a safetensors state dict of the same architecture instead.
    """

    family = "planted"

    @classmethod
    def check_spec(cls, spec: str) -> None:
        parse_spec(spec)

    def __init__(self, spec: str, *, checkpoint: str | None = None, pretrained: bool = True, progress: ProgressCallback | None = None):
        self.arch, self.seed = parse_spec(spec)
        self.training_stats: dict[str, Any] = {}
        if checkpoint is not None:
            path = Path(checkpoint)
            if not path.is_file():
                raise DataError(f"checkpoint not found: {checkpoint}")
            self.model = build_model(self.arch, self.seed)
            _load_state(self.model, path)
            revision: str | None = content_digest(path)
        elif pretrained:
            self.model, self.training_stats = load_or_train(self.arch, self.seed, progress=progress)
            # The content digest of the cached weights (CPU-dependent: see the README), not a fixed name.
            revision = f"generator-v{gen.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed{self.seed} {self.training_stats['weights_sha256']}"
        else:
            self.model = build_model(self.arch, self.seed)
            revision = None
        size = gen.IMAGE_SIZE
        self.card = ModelCard(
            name=f"planted:{spec}",
            family="planted",
            weights_revision=revision,
            label_space="planted",
            num_classes=NUM_CLASSES,
            num_params=sum(p.numel() for p in self.model.parameters()),
            data_config={"input_size": (3, size, size), "interpolation": "bilinear", "mean": MEAN, "std": STD, "crop_pct": 1.0, "crop_mode": "center"},
        )

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.fc.weight.detach(), self.model.fc.bias.detach()

    def to(self, device: str | torch.device) -> "PlantedAdapter":
        self.model.to(device)
        return self

    @property
    def class_names(self) -> list[str]:
        return list(gen.PLANTED_CLASSES)


__all__ = [
    "ARCHS",
    "TRAIN_VERSION",
    "PlantedAdapter",
    "PlantedNet",
    "build_model",
    "cache_paths",
    "load_or_train",
    "parse_spec",
    "to_tensor",
    "train_planted_model",
]
