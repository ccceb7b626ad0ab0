"""GradCAM of a component's contribution alpha_l (not of a logit; a neural PCA component or a single
unit, ``spurbench.basis``), through the maintained ``grad-cam`` package (pytorch-grad-cam). The target layer comes from the adapter
(``ModelAdapter.cam_target_layers``); architecture switches live there, not here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from torch import nn

from spurbench.adapters import ModelAdapter
from spurbench.basis import Basis


class ComponentContributions(nn.Module):
    """images -> alpha_l(x) for the given components of one class, [B, L]: GradCAM's "model"."""

    # the buffers registered in __init__, typed (nn.Module's attribute lookup is untyped)
    mean_rgb: torch.Tensor
    std_rgb: torch.Tensor
    weight_row: torch.Tensor
    psi_mean: torch.Tensor
    directions: torch.Tensor
    scale: torch.Tensor

    def __init__(self, model: ModelAdapter, class_index: int, basis: Basis, components: Sequence[int]):
        super().__init__()
        self.model = model
        # grad-cam takes its device from the model's first parameter; an adapter is not an nn.Module
        self.device_anchor = nn.Parameter(torch.zeros(0, device=model.head[0].device), requires_grad=False)
        config = model.data_config
        self.register_buffer("mean_rgb", torch.tensor(config["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std_rgb", torch.tensor(config["std"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("weight_row", model.head[0][class_index].detach().float().cpu())
        self.register_buffer("psi_mean", basis.mean.float())
        directions = basis.eigenvectors[:, list(components)].float()
        self.register_buffer("directions", directions)
        self.register_buffer("scale", directions.sum(0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        psi = self.model.features((images - self.mean_rgb) / self.std_rgb).float() * self.weight_row
        return (psi - self.psi_mean) @ self.directions * self.scale


def component_cams(model: ModelAdapter, class_index: int, basis: Basis, component: int, images: torch.Tensor) -> np.ndarray:
    """GradCAM maps [N, H, W] in [0, 1] of ``alpha_component`` on ``images`` ([N, 3, H, W] in [0, 1])."""
    wrapper = ComponentContributions(model, class_index, basis, [component])
    layers, reshape = model.cam_target_layers()
    with GradCAM(model=wrapper, target_layers=layers, reshape_transform=reshape) as cam:
        maps = cam(input_tensor=images.float(), targets=[lambda output: output[0]] * images.shape[0])
    return np.asarray(maps, dtype=np.float64)


def mass_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's total mass inside its boolean mask, [N]."""
    total = maps.reshape(len(maps), -1).sum(1)
    inside = (maps * masks).reshape(len(maps), -1).sum(1)
    return np.where(total > 0, inside / np.maximum(total, 1e-300), 0.0)


__all__ = ["ComponentContributions", "component_cams", "mass_inside"]
