"""A tiny in-test model and benchmark, for testing the pipeline stages without downloads or training."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage
from spurbench.protocols import MODEL_TRANSFORM, protocol_table, fixed_paper

SIZE = 16


class TinyAdapter(ModelAdapter):
    family = "tiny"

    def __init__(self, spec: str = "net", *, checkpoint=None, pretrained: bool = True, num_classes: int = 4, label_space: str = "toy"):
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
        self.fc = nn.Linear(8, num_classes)
        self.forward_calls = 0
        self.card = ModelCard(
            name=f"tiny:{spec}",
            family="tiny",
            weights_revision="seed0",
            label_space=label_space,
            num_classes=num_classes,
            num_params=sum(p.numel() for p in [*self.backbone.parameters(), *self.fc.parameters()]),
            data_config={"input_size": (3, SIZE, SIZE), "interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.25,) * 3, "crop_pct": 1.0, "crop_mode": "center"},
        )

    @classmethod
    def load(cls, spec: str = "net", *, checkpoint=None, pretrained: bool = True, **kw) -> TinyAdapter:
        return cls(spec, checkpoint=checkpoint, pretrained=pretrained, **kw)

    def cam_target_layers(self):
        return [self.backbone[0]], None  # the one convolution: a 16 x 16 map

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        return self.backbone(x)

    @property
    def head(self):
        return self.fc.weight.detach(), self.fc.bias.detach()

    def to(self, device):
        self.backbone.to(device)
        self.fc.to(device)
        return self


def _image(seed: int, bright: float) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(bright, 40, size=(SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def tiny_benchmark(num_classes: int = 4, per_role: int = 12, label_space: str = "toy", name: str = "tiny", broken: str | None = None) -> Benchmark:
    """Random images; class k's positives and negatives differ in brightness so AUCs are not all 0.5."""
    classes = [BenchmarkClass(index=k, name=f"class{k}", components=(k + 10,), group=None) for k in range(num_classes)]
    images = []
    for k in range(num_classes):
        for role in ("positive", "negative"):
            for i in range(per_role):
                seed = k * 1000 + (role == "negative") * 100 + i
                image_id = f"{role}/{k}/{i}"
                loader = (lambda s=seed, b=60 + 30 * k + (role == "negative") * 50: _image(s, b))
                if image_id == broken:
                    loader = lambda: Image.open("/nonexistent/broken.png")
                images.append(BenchmarkImage(image_id, k, role, k + 10 if role == "negative" else None, f"tiny:{image_id}", loader))
    return Benchmark(name=name, label_space=label_space, classes=classes, images=images, revision="v1", checksum="tiny", protocols=protocol_table(fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM))
