"""The planted classifiers' architectures and their training (see ``models`` for the adapter and cache).

Why the architectures look like this: the planted benchmark's follow-up (class-wise neural PCA
+ SpuFix) needs a planted feature's evidence to add up in the penultimate features separately
from the object's. Both nets therefore keep a bounded receptive field (10 px: two 3x3 convs with
max pooling; less than the distance between a corner badge and the objects), do everything after
it with 1x1 convolutions, and end in global average pooling -> 512 features -> ``nn.Linear``. The
wide 512-channel penultimate layer and weight decay 0.05 were measured to give the feature a
neural PCA component of its own on both architectures (narrower layers or weight decay 5e-4 did not).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from spurbench.benchmarks.shared import planted_generator as gen
from spurbench.errors import UnknownNameError
from spurbench.registry import suggest
from spurbench.runtime import StageProgress

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
            *_conv_bn_relu(3, 32, 3),
            nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64, 3),
            nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128, 1),
            *_conv_bn_relu(128, FEATURE_DIM, 1),
        )
    if arch == "resnet":  # residual unit + pointwise residual bottleneck; receptive field 10 px
        return nn.Sequential(
            *_conv_bn_relu(3, 32, 3),
            nn.MaxPool2d(2),
            _ResidualUnit(32, 64),
            nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128, 1),
            _Bottleneck(128, 64),
            *_conv_bn_relu(128, FEATURE_DIM, 1),
        )
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


def rich_progress(
    arch: str, seed: int, epochs: int = EPOCHS, why: str = "first use; cached afterwards"
) -> tuple[ProgressCallback | None, Callable[[], None]]:
    """Training progress on stderr: a bar on a terminal, else periodic lines (a CI or SLURM log shows
    the epochs and the loss; see ``spurbench.runtime.StageProgress``). Returns (per-epoch callback, stop)."""
    stage = StageProgress(f"training planted:{arch} (seed {seed}, {why})", epochs, "epochs").__enter__()

    def epoch_done(done: int, total: int, stats: dict[str, float]) -> None:
        stage.advance(done - stage.done, f"loss {stats['loss']:.4f}")

    return epoch_done, lambda: stage.__exit__(*sys.exc_info())  # (called in a finally: no "done" line after a failure)


def train_planted_model(
    arch: str, seed: int = 0, *, progress: ProgressCallback | None = None, epochs: int = EPOCHS, per_class: int | None = None
) -> tuple[PlantedNet, dict[str, Any]]:
    """Train ``arch`` on ``generate_training_set(seed, per_class)``; return the model (eval mode) and stats.

    Deterministic for a given seed, torch build and thread count: everything it draws comes from
    ``seed``, and nothing is kept between runs, so a training interrupted and started again is the
    same training from scratch. ``progress`` is called after every epoch with ``(epoch, epochs,
    {"loss": ...})``. ``epochs`` / ``per_class`` shorten it (quick tries, tests); the defaults are the recipe.
    """
    started = time.perf_counter()
    train = gen.generate_training_set(seed, per_class)
    x, y = to_tensor(train.images), torch.from_numpy(train.labels)
    net = build_model(arch, seed).train()
    with _torch_threads() as threads, _seeded(seed):
        optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        steps_per_epoch = (len(x) + BATCH_SIZE - 1) // BATCH_SIZE
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=LEARNING_RATE, total_steps=epochs * steps_per_epoch, pct_start=0.25
        )
        order = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
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
                progress(epoch + 1, epochs, {"loss": total / len(x)})
        net.eval()
        train_seconds = time.perf_counter() - started
        clean = gen.generate_test_sets(seed).clean
        stats = {
            "arch": arch,
            "seed": seed,
            "generator_version": gen.GENERATOR_VERSION,
            "train_version": TRAIN_VERSION,
            "epochs": epochs,
            "train_images": len(x),
            "seconds": round(train_seconds, 2),
            "torch_threads": threads,
            "torch_version": torch.__version__,
            "train_accuracy": round(_accuracy(net, x, y), 4),
            "clean_test_accuracy": round(_accuracy(net, to_tensor(clean.images), torch.from_numpy(clean.labels)), 4),
        }
    return net, stats
