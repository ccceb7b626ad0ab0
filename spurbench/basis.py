"""The two bases in which ``discover`` splits a class logit into contributions, with one contract.

A basis of class k is a set of directions V = [v_1 .. v_L] in the space of psi_k = w_k * phi(x) and an
offset m, and component l contributes

    alpha_l(x) = <1, v_l> <psi_k(x) - m, v_l>.

- **Neural PCA** (``spurbench.spufix.npca.NPCA``, paper 1 sec. 4.1): V are the eigenvectors of
  Cov(psi_k) over the class's training images and m is their mean, so f_k = sum_l alpha_l + const.
- **Neurons** (``NeuronBasis``, Salient ImageNet, paper 2 sec. 3): V are unit vectors e_j of single
  penultimate units and m = 0, so alpha_j(x) = w_kj phi_j(x), the unit's contribution to the logit.
  The units are the class's top ones by mean(phi_j w_kj) over its training images.

Feature visualisation (``spurbench.discovery.npfv``) and GradCAM (``spurbench.discovery.gradcam``) only need V and m, so
both bases share them, and everything downstream (pages, labels, export).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from spurbench.errors import SpurbenchError
from spurbench.files import atomic_path


class Basis(Protocol):
    """What a contribution basis of one class provides (``NPCA`` and ``NeuronBasis`` both do)."""

    weight_row: torch.Tensor  # w_k [D], float64
    mean: torch.Tensor  # the offset m [D], float64
    eigenvectors: torch.Tensor  # [D, L], column l = v_l
    num_images: int

    def alphas(self, features: torch.Tensor) -> torch.Tensor: ...


@dataclass
class NeuronBasis:
    """The top penultimate units of one class by mean contribution phi_j w_kj, as a basis."""

    weight_row: torch.Tensor  # w_k [D], float64
    neurons: list[int]  # unit indices, by mean contribution descending
    mean: torch.Tensor  # zeros [D]: a unit's contribution is not centred (Salient ImageNet ranks raw means)
    eigenvectors: torch.Tensor  # [D, L] unit vectors e_j of ``neurons``
    contribution_mean: torch.Tensor  # mean psi_k [D] over the class's images
    contribution_var: torch.Tensor  # Var(psi_kj) [D]
    logit_var: float  # Var(sum_j psi_kj) = Var(f_k)
    num_images: int

    def alphas(self, features: torch.Tensor) -> torch.Tensor:
        """w_kj phi_j(x) of each selected unit: [N, L], columns in ``neurons`` order."""
        return (features.to(torch.float64) * self.weight_row)[:, self.neurons]

    @property
    def constant(self) -> torch.Tensor:
        """<1, mean psi_k>: the class's mean logit less its bias (as ``NPCA.constant``)."""
        return self.contribution_mean.sum()


def fit_neurons_streaming(batches: Iterable[torch.Tensor], weight_row: torch.Tensor, count: int) -> NeuronBasis:
    """The ``count`` units with the largest mean phi_j w_kj over class k's feature batches [B, D]."""
    w = weight_row.detach().to(torch.float64).cpu()
    n, total, squares, logits = 0, torch.zeros_like(w), torch.zeros_like(w), []
    for batch in batches:
        psi = batch.detach().to(torch.float64).cpu() * w
        n += psi.shape[0]
        total += psi.sum(0)
        squares += (psi * psi).sum(0)
        logits.append(psi.sum(1))
    if n < 2:
        raise ValueError("the neuron basis needs at least two images of the class")
    mean = total / n
    var = (squares / n - mean * mean).clamp(min=0)
    neurons = torch.argsort(mean, descending=True)[: min(count, w.numel())].tolist()
    directions = torch.zeros(w.numel(), len(neurons), dtype=torch.float64)
    directions[neurons, range(len(neurons))] = 1.0
    logit_var = float(torch.cat(logits).var(unbiased=False))
    return NeuronBasis(w, neurons, torch.zeros_like(w), directions, mean, var, logit_var, n)


@dataclass
class LinearBasis:
    """A class's basis as ``discover`` saves it (``save_basis``) and ``mine`` reads it back: the
    directions of its recorded components only, and the offset. alpha_l by the one formula above."""

    weight_row: torch.Tensor  # w_k [D], float64
    mean: torch.Tensor  # the offset m [D], float64
    eigenvectors: torch.Tensor  # [D, L], column l = v_l
    num_images: int
    scale: torch.Tensor | None = None  # [L] the factor <1, u_l> when the columns are not the directions themselves

    def alphas(self, features: torch.Tensor) -> torch.Tensor:
        """alpha_l(x) of the saved components: [N, L]."""
        scale = self.eigenvectors.sum(0) if self.scale is None else self.scale
        return ((features.to(torch.float64) * self.weight_row - self.mean) @ self.eigenvectors) * scale


def artifact_basis(weight_row: torch.Tensor, mean: torch.Tensor, directions: torch.Tensor, num_images: int) -> LinearBasis:
    """A SpuFix artifact's class as a basis: its unit directions u_l (rows of ``directions`` [L, D], the
    source's eigenvectors or matched directions, not orthogonal in general) contribute
    alpha_l = <1, u_l> [P (psi - m)]_l with P = (U^T U)^-1 U^T, exactly what ``SpuFixHead`` clips."""
    u = directions.detach().to(torch.float64).cpu().T  # [D, L]
    projector = torch.linalg.solve(u.T @ u, u.T)  # [L, D]
    return LinearBasis(
        weight_row.detach().to(torch.float64).cpu(), mean.detach().to(torch.float64).cpu(), projector.T.contiguous(), num_images, u.sum(0)
    )


def save_basis(path: Path, basis: Basis, count: int) -> None:
    """The first ``count`` directions of ``basis`` with its offset and weight row, as safetensors (atomically)."""
    tensors = {
        "weight_row": basis.weight_row.to(torch.float64).contiguous(),
        "offset": basis.mean.to(torch.float64).contiguous(),
        "directions": basis.eigenvectors[:, :count].to(torch.float64).contiguous(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"num_images": str(basis.num_images)})


def load_basis(path: Path) -> LinearBasis:
    """What ``save_basis`` wrote; a one-line SpurbenchError if the file is missing or not one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (safe_open handles are not iterable)
            meta = handle.metadata() or {}
        return LinearBasis(tensors["weight_row"], tensors["offset"], tensors["directions"], int(meta["num_images"]))
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise SpurbenchError(f"{path}: not a saved basis ({type(exc).__name__}: {exc})") from None


__all__ = ["Basis", "LinearBasis", "NeuronBasis", "artifact_basis", "fit_neurons_streaming", "load_basis", "save_basis"]
