"""Neural PCA feature visualisation (NPFV, paper sec. 4.2): an image that maximises one component's
contribution to its class logit, alpha_l(x) = <1, v_l> <w_k * phi(x), v_l> (the constant mean term of
alpha_l is dropped: it does not change the maximiser).

As the authors do it: start from a grey image (0.5) plus a random L2 start, stay within an L2 budget of
eps = 30 at 224 px (scaled with the image side for other input sizes), 200 steps of APGD (initial step
2 * eps, momentum 0.75, checkpoint halving; ``spurbench.discovery.apgd``) and keep the best iterate. All
components of a class are optimised as one batch. The visualisations are meaningful for adversarially
robust models (the papers use a robust ResNet-50); for others they run the same but look like noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from spurbench.adapters import ModelAdapter
from spurbench.basis import Basis
from spurbench.discovery.apgd import apgd, project
from spurbench.runtime import StageProgress
from spurbench.settings import NPFV_STEPS

EPS_AT_224 = 30.0
STEPS = NPFV_STEPS  # (the settings' default: one number)


@dataclass
class Visualisation:
    images: torch.Tensor  # [L, 3, H, W] in [0, 1], one per component
    alphas: torch.Tensor  # [L] the contribution each reaches (without the constant mean term)
    eps: float
    steps: int


def budget(input_size: Sequence[int]) -> float:
    """The L2 budget at this input size: 30 at 224 x 224, proportional to the side (sqrt of the pixel count)."""
    return EPS_AT_224 * math.sqrt(input_size[-1] * input_size[-2]) / 224


def visualise(
    model: ModelAdapter, class_index: int, basis: Basis, components: Sequence[int], steps: int = STEPS, seed: int = 0, device: str = "cpu"
) -> Visualisation:
    """NPFVs of ``components`` (columns of ``basis``: neural PCA or neurons) of ``class_index`` (one APGD
    batch); deterministic for a given ``seed``."""
    config = model.data_config
    size = tuple(config["input_size"])
    mean = torch.tensor(config["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1)
    weight_row = model.head[0][class_index].detach().float().to(device)
    directions = basis.eigenvectors[:, list(components)].float().to(device)  # [D, L]
    scale = directions.sum(0)  # <1, v_l>
    model.to(device)

    def objective(x: torch.Tensor) -> torch.Tensor:
        psi = model.features((x - mean) / std).float() * weight_row
        return (psi * directions.T).sum(1) * scale  # row i: alpha of component components[i] on image i

    eps = budget(size)
    center = torch.full((len(components), *size), 0.5, device=device)
    noise = torch.randn(center.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    start = project(
        center + noise * (0.5 * eps / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)), center, eps
    )  # random L2 start, radius eps / 2
    # APGD evaluates the objective about once per step: counting the calls gives the lines a log needs
    # (no bar on a terminal: discover shows its own per-class display there).
    stage = StageProgress(f"NPFV {model.name} class {class_index}", steps, "steps", bar=False)

    def counted(x: torch.Tensor) -> torch.Tensor:
        stage.advance(0 if stage.done >= steps else 1)
        return objective(x)

    with torch.enable_grad(), stage:
        result = apgd(counted, start, center, eps, steps)
    return Visualisation(result.best.detach().cpu(), result.best_value.detach().cpu(), eps, steps)


__all__ = ["EPS_AT_224", "STEPS", "Visualisation", "budget", "visualise"]
