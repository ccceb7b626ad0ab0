"""The plugin guide's example model family, ``dotsnet``: ``dotsnet:small`` and ``dotsnet:large`` score
the ``dots`` benchmark (docs/examples/dots_benchmark.py). No training and no download: the backbone
pools fixed image regions, and the head's weights are set by hand so that class 0 ("red") also reads
the grey stripe, the shortcut a model trained on the benchmark's training images would learn.
The guide (docs/extending/models.md) includes this file; tests/test_plugin_guide.py runs it.
"""

# --8<-- [start:imports]
from __future__ import annotations

import torch
from torch import nn

from spurbench.adapters import ModelAdapter, ModelCard
from spurbench.errors import UnknownNameError

# --8<-- [end:imports]

# --8<-- [start:backbone]
SIZE = 16
# spec -> the head's weights: rows are classes (red, green, blue), columns the backbone's features
# (mean red, green and blue of the centre, mean brightness of the left stripe).
HEADS = {
    "small": [[4.0, 0.0, 0.0, 3.0], [0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 4.0, 0.0]],
    "large": [[5.0, 0.0, 0.0, 2.5], [0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]],
}


class RegionPool(nn.Module):
    """The backbone: [B, 3, 16, 16] -> [B, 4], the centre's mean per channel and the left stripe's mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x[:, :, 4:12, 4:12].mean(dim=(2, 3))
        stripe = x[:, :, :, :2].mean(dim=(1, 2, 3))
        return torch.cat([centre, stripe[:, None]], dim=1)


# --8<-- [end:backbone]


# --8<-- [start:adapter]
class DotsNet(ModelAdapter):
    family = "dotsnet"  # models are named "dotsnet:<spec>"

    def __init__(self, card: ModelCard, backbone: nn.Module, fc: nn.Linear):
        # Only stores what ``load`` built: no work in constructors.
        self.card, self.backbone, self.fc = card, backbone, fc

    @classmethod
    def check_spec(cls, spec: str) -> None:
        if spec not in HEADS:
            raise UnknownNameError(f"unknown dotsnet model {spec!r}; known: {', '.join(HEADS)}")

    @classmethod
    def list_names(cls, pattern: str = "*") -> list[str]:
        return [f"dotsnet:{spec}" for spec in HEADS]

    @classmethod
    def load(cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True) -> DotsNet:
        cls.check_spec(spec)
        fc = nn.Linear(4, 3)
        with torch.no_grad():
            if pretrained:
                fc.weight.copy_(torch.tensor(HEADS[spec]))
                fc.bias.zero_()
            else:  # random weights, for tests
                generator = torch.Generator().manual_seed(0)
                fc.weight.copy_(torch.randn(fc.weight.shape, generator=generator))
        if checkpoint is not None:
            from safetensors.torch import load_file  # lazy: only a run with --checkpoint reads one

            fc.load_state_dict(load_file(checkpoint))
        card = ModelCard(
            name=f"dotsnet:{spec}",
            family=cls.family,
            weights_revision=f"hand-set-{spec}" if checkpoint is None else checkpoint,
            num_params=sum(p.numel() for p in fc.parameters()),
            label_space="dots",  # must match the benchmark's label_space
            num_classes=3,
            data_config={
                "input_size": (3, SIZE, SIZE),  # (C, H, W) the model is fed
                "interpolation": "bilinear",
                "mean": (0.0, 0.0, 0.0),  # the backbone reads pixel values in [0, 1]
                "std": (1.0, 1.0, 1.0),
                "crop_pct": 1.0,  # resize to input_size / crop_pct, then centre-crop input_size
                "crop_mode": "center",
            },
        )
        return cls(card, RegionPool().eval(), fc.eval())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # [B, D]: the input of the final linear layer

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc.weight.detach(), self.fc.bias.detach()  # W [C, D], b [C]

    def to(self, device: str | torch.device) -> DotsNet:
        self.backbone.to(device)
        self.fc.to(device)
        return self


# --8<-- [end:adapter]
