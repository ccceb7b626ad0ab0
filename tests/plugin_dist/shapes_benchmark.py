"""A third-party spurbench plugin, outside the spurbench package: a benchmark and a model family.

Installed like any distribution that declares entry points (here: a dist-info folder on the path;
``accuracy_task.py`` adds a task and a benchmark of it):

    [spurbench.benchmarks]
    shapes = shapes_benchmark:ShapesBenchmark
    [spurbench.adapters]
    shapesnet = shapes_benchmark:ShapesNet
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
import torch
from PIL import Image
from pydantic import Field
from torch import nn

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage, BenchmarkOptions, BenchmarkPlugin, Reference
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

CLASSES = ["red", "green", "blue"]
PER_ROLE = 8
SIZE = 16


class ShapesOptions(BenchmarkOptions):
    brightness: int = 128  # of the spurious-only images
    per_role: int = Field(PER_ROLE, ge=1, le=1000)  # images per class and role
    # Slow storage: opening an image waits this long (in the loader worker), using no CPU. The SLURM tests'
    # long jobs span a time limit this way instead of computing for minutes beside the other tests.
    seconds_per_image: float = Field(0.0, ge=0, le=10)


def _opened(array: np.ndarray, seconds: float) -> Image.Image:
    if seconds:
        time.sleep(seconds)
    return Image.fromarray(array)


def _image(seed: int, colour: int | None, stripe: bool, brightness: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, size=(SIZE, SIZE, 3), dtype=np.uint8)
    if colour is not None:
        image[4:12, 4:12, colour] = 220  # the object: a coloured square
    if stripe:
        image[:, :2] = brightness  # the spurious feature: a grey stripe on the left
    return image


def _revision(brightness: int, per_role: int) -> str:
    return f"v1-b{brightness}" if per_role == PER_ROLE else f"v1-b{brightness}-n{per_role}"


def _benchmark(brightness: int = 128, limit: int | None = None, per_role: int = PER_ROLE, seconds_per_image: float = 0.0) -> Benchmark:
    images, digest = [], hashlib.sha256()
    for k, name in enumerate(CLASSES):
        for role in ("positive", "negative"):
            for i in range(per_role)[:limit]:
                array = _image(
                    100 * k + 10 * (role == "negative") + i, k if role == "positive" else None, role == "negative" or k == 0, brightness
                )
                digest.update(array.tobytes())
                images.append(
                    BenchmarkImage(
                        f"shapes/{name}/{role}/{i}",
                        k,
                        role,
                        0 if role == "negative" else None,
                        f"shapes {name} {role} {i}",
                        lambda a=array: _opened(a, seconds_per_image),
                    )
                )
    classes = [BenchmarkClass(k, name, components=(0,), group="striped" if k == 0 else "plain") for k, name in enumerate(CLASSES)]
    return Benchmark(
        "shapes",
        "shapes",
        classes,
        images,
        revision=_revision(brightness, per_role),
        checksum=digest.hexdigest(),
        protocols=protocol_table(fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM),
        component_names={0: "grey stripe"},
    )


class ShapesBenchmark(BenchmarkPlugin):
    name = "shapes"
    description = "three coloured squares; spurious-only images show a grey stripe (a plugin test)"
    options_model = ShapesOptions
    label_space = "shapes"
    default_models = ("shapesnet:tiny",)
    protocols = protocol_table(
        fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM
    )  # drawn at the model's size: nothing to crop

    def load(self, options: BenchmarkOptions) -> Benchmark:
        options = self.parse_options(options)
        return _benchmark(options.brightness, options.limit, options.per_role, options.seconds_per_image)

    def reference(self, revision: str) -> Reference | None:
        brightness, _, per_role = revision.removeprefix("v1-b").partition("-n")
        if not revision.startswith("v1-b") or not brightness.isdigit() or not (per_role or str(PER_ROLE)).isdigit():
            return None
        bench = _benchmark(int(brightness), per_role=int(per_role or PER_ROLE))
        if bench.revision != revision:
            return None
        return Reference(self.name, revision, bench.checksum, {im.image_id: (im.class_index, im.role) for im in bench.images})


class ShapesNet(ModelAdapter):
    family = "shapesnet"

    def __init__(self, spec: str, net: nn.Module, head: nn.Linear):
        self.net, self.fc = net.eval(), head
        config = {
            "input_size": (3, SIZE, SIZE),
            "interpolation": "bilinear",
            "mean": (0.5,) * 3,
            "std": (0.25,) * 3,
            "crop_pct": 1.0,
            "crop_mode": "center",
        }
        self.card = ModelCard(
            name=f"shapesnet:{spec}",
            family=self.family,
            weights_revision=f"seed0-{spec}",
            label_space="shapes",
            num_classes=3,
            num_params=sum(p.numel() for p in [*net.parameters(), *head.parameters()]),
            data_config=config,
        )

    @classmethod
    def load(cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True) -> ShapesNet:
        generator = torch.Generator().manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head = nn.Linear(6, 3)
        with torch.no_grad():
            for p in [*net.parameters(), *head.parameters()]:
                p.copy_(torch.randn(p.shape, generator=generator))
        return cls(spec, net, head)

    @classmethod
    def list_names(cls, pattern: str = "*") -> list[str]:
        return ["shapesnet:tiny"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc.weight.detach(), self.fc.bias.detach()

    def to(self, device):
        self.net.to(device)
        self.fc.to(device)
        return self
