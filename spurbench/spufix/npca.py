"""Class-wise neural PCA (paper sec. 4.1) and matched directions for transferring SpuFix (sec. 5, App. C).

For class k with last-layer row w_k and penultimate features phi:
    psi_k(x)   = w_k * phi(x)                          (elementwise)
    v_l        = eigenvectors of Cov(psi_k) over class k's training images, eigenvalue descending
    alpha_l(x) = <1, v_l> <psi_k(x) - mean psi_k, v_l>
so that f_k(x) = sum_l alpha_l(x) + <1, mean psi_k> + b_k.

All statistics stream over feature batches in float64 (Chan et al.'s pairwise update), so memory is
O(D^2) for NPCA and O(L * D') for matched directions, independent of the number of images. Under
torchrun each rank accumulates its part of the images and ``reduce`` merges the ranks' statistics
exactly (``all_sum`` is ``spurbench.distributed.all_sum``; the identity on one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch

AllSum = Callable[[torch.Tensor], torch.Tensor]  # sums a float64 tensor over the ranks


class ClassDirections(NamedTuple):
    """What SpuFix clips for one class: the mean of psi_k [D] and unit directions [L, D] as rows (for the
    source model its spurious eigenvectors v_l, for another model the matched directions u_l). In the
    order ``SpuFixHead.from_directions`` and ``SpuFixArtifact.directions`` take it."""

    mean: torch.Tensor
    directions: torch.Tensor


def _as_batches(features: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    if isinstance(features, torch.Tensor):
        yield features
    else:
        yield from features


class CovarianceAccumulator:
    """Streaming mean and covariance (float64) of row vectors."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, rows: torch.Tensor) -> None:
        rows = rows.detach().to(torch.float64).cpu()
        m = rows.shape[0]
        if m == 0:
            return
        batch_mean = rows.mean(0)
        centred = rows - batch_mean
        batch_m2 = centred.T @ centred
        delta = batch_mean - self.mean
        total = self.n + m
        self.m2 += batch_m2 + torch.outer(delta, delta) * (self.n * m / total)
        self.mean += delta * (m / total)
        self.n = total

    def reduce(self, all_sum: AllSum) -> None:
        """Merge the accumulators of all ranks into this one (Chan et al.'s combination, exact):
        n = sum n_r, mean = sum n_r mean_r / n, m2 = sum [m2_r + n_r (mean_r - mean)(mean_r - mean)^T].
        Merging centred m2 rather than summing raw outer products avoids cancellation when the mean is
        large next to the spread; the result equals one accumulator over all rows to rounding (1e-16)."""
        first = all_sum(torch.cat([torch.tensor([float(self.n)], dtype=torch.float64), self.mean * self.n]))
        n = round(float(first[0]))  # counts are exact in float64 below 2^53
        mean = first[1:] / n if n else torch.zeros_like(self.mean)
        delta = self.mean - mean
        self.m2 = all_sum(self.m2 + torch.outer(delta, delta) * self.n)
        self.n, self.mean = n, mean

    def covariance(self) -> torch.Tensor:
        if self.n < 2:
            raise ValueError("neural PCA needs at least two images of the class")
        return self.m2 / self.n  # population covariance, as in the paper's (1/|I_k|) sum


@dataclass
class NPCA:
    """Class-wise neural PCA of one class."""

    weight_row: torch.Tensor  # w_k [D], float64
    mean: torch.Tensor  # mean of psi_k [D], float64
    eigenvalues: torch.Tensor  # [D], descending
    eigenvectors: torch.Tensor  # [D, D], column l = v_l
    num_images: int

    def psi(self, features: torch.Tensor) -> torch.Tensor:
        return features.to(torch.float64) * self.weight_row

    def alphas(self, features: torch.Tensor) -> torch.Tensor:
        """alpha_l(x) for every component l: [N, D], columns in eigenvalue order."""
        projections = (self.psi(features) - self.mean) @ self.eigenvectors
        return projections * self.eigenvectors.sum(0)  # <1, v_l> = column sums

    @property
    def constant(self) -> torch.Tensor:
        """<1, mean psi_k>: the logit part that does not depend on x (besides b_k)."""
        return self.mean.sum()

    def select(self, columns: list[int]) -> NPCA:
        """The same NPCA with only the given components: its ``alphas`` are those columns of the full one."""
        return NPCA(self.weight_row, self.mean, self.eigenvalues[columns], self.eigenvectors[:, columns].contiguous(), self.num_images)


def accumulate_psi(batches: Iterable[torch.Tensor], weight_row: torch.Tensor) -> CovarianceAccumulator:
    """Streaming mean and covariance of psi_k = w_k * phi over penultimate-feature batches [B, D]."""
    w = weight_row.detach().to(torch.float64).cpu()
    acc = CovarianceAccumulator(w.numel())
    for batch in batches:
        acc.update(batch.detach().to(torch.float64).cpu() * w)
    return acc


def npca_from(acc: CovarianceAccumulator, weight_row: torch.Tensor) -> NPCA:
    """Neural PCA from the (merged) statistics of psi_k: eigenvectors by eigenvalue, descending."""
    w = weight_row.detach().to(torch.float64).cpu()
    eigenvalues, eigenvectors = torch.linalg.eigh(acc.covariance())
    order = torch.argsort(eigenvalues, descending=True)
    return NPCA(w, acc.mean.clone(), eigenvalues[order], eigenvectors[:, order], acc.n)


def fit_npca_streaming(batches: Iterable[torch.Tensor], weight_row: torch.Tensor) -> NPCA:
    """Neural PCA of class k from an iterator of penultimate-feature batches [B, D] of its training images."""
    return npca_from(accumulate_psi(batches, weight_row), weight_row)


def fit_npca(features: torch.Tensor | Iterable[torch.Tensor], weight_row: torch.Tensor) -> NPCA:
    """Neural PCA of class k from its training images' features [N, D] (or an iterator of batches)."""
    return fit_npca_streaming(_as_batches(features), weight_row)


class DirectionMatcher:
    """Streaming u_l = sum_x alpha_l(x) (psi'(x) - mean psi'), the covariance maximiser of paper eq. 9-10.

    sum_x alpha_l (psi' - mean) = sum_x alpha_l psi' - mean * sum_x alpha_l, so three running sums suffice.
    """

    def __init__(self, num_components: int, target_weight_row: torch.Tensor):
        self.w = target_weight_row.detach().to(torch.float64).cpu()
        self.n = 0
        self.alpha_psi = torch.zeros(num_components, self.w.numel(), dtype=torch.float64)
        self.alpha_sum = torch.zeros(num_components, dtype=torch.float64)
        self.psi_sum = torch.zeros(self.w.numel(), dtype=torch.float64)

    def update(self, source_alphas: torch.Tensor, target_features: torch.Tensor) -> None:
        if source_alphas.shape[0] != target_features.shape[0]:
            raise ValueError(f"{source_alphas.shape[0]} source alpha rows but {target_features.shape[0]} target feature rows")
        alphas = source_alphas.detach().to(torch.float64).cpu()
        psi = target_features.detach().to(torch.float64).cpu() * self.w
        self.alpha_psi += alphas.T @ psi
        self.alpha_sum += alphas.sum(0)
        self.psi_sum += psi.sum(0)
        self.n += psi.shape[0]

    def reduce(self, all_sum: AllSum) -> None:
        """Sum the running sums of all ranks into this matcher (they are plain sums: the merge is exact)."""
        sizes = [1, self.alpha_sum.numel(), self.psi_sum.numel(), self.alpha_psi.numel()]
        flat = torch.cat([torch.tensor([float(self.n)], dtype=torch.float64), self.alpha_sum, self.psi_sum, self.alpha_psi.flatten()])
        n, self.alpha_sum, self.psi_sum, alpha_psi = all_sum(flat).split(sizes)
        self.n, self.alpha_psi = round(float(n)), alpha_psi.reshape(self.alpha_psi.shape).clone()
        self.alpha_sum, self.psi_sum = self.alpha_sum.clone(), self.psi_sum.clone()

    def result(self) -> ClassDirections:
        """The target's class mean psi' and the unit directions u_l."""
        if self.n == 0:
            raise ValueError("no images were seen")
        mean = self.psi_sum / self.n
        directions = self.alpha_psi - torch.outer(self.alpha_sum, mean)
        norms = directions.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError("a source component has zero covariance with the target features")
        return ClassDirections(mean=mean, directions=directions / norms)


def match_directions_streaming(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], target_weight_row: torch.Tensor) -> ClassDirections:
    """Like ``match_directions`` over an iterator of (source_alphas [B, L], target_features [B, D']) pairs."""
    matcher: DirectionMatcher | None = None
    for alphas, feats in batches:
        if matcher is None:
            matcher = DirectionMatcher(alphas.shape[1], target_weight_row)
        matcher.update(alphas, feats)
    if matcher is None:
        raise ValueError("no images were seen")
    return matcher.result()


def match_directions(source_alphas: torch.Tensor, target_features: torch.Tensor, target_weight_row: torch.Tensor) -> ClassDirections:
    """The target's class mean psi' [D'] and matched unit directions u_l [L, D'] (same images, same order)."""
    return match_directions_streaming([(source_alphas, target_features)], target_weight_row)


def projection_coefficients(directions: torch.Tensor, mean: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """lambda(x) = (U^T U)^-1 U^T (psi'(x) - mean): coordinates in the non-orthogonal basis U (App. C.1). [N, L]"""
    u = directions.to(torch.float64).T  # [D', L]
    return torch.linalg.solve(u.T @ u, u.T @ (psi.to(torch.float64) - mean).T).T
