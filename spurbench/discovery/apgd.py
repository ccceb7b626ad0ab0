"""APGD (Croce & Hein, ICML 2020) in the L2 ball, maximising an arbitrary differentiable objective.

Why written here: the maintained attack libraries (torchattacks, ART) implement APGD for their own
classification losses (cross-entropy, DLR) only; the feature visualisations need APGD on a neural PCA
component's contribution. This is the algorithm of the paper, for a batch of independent problems:

* start: ``x0`` projected onto the feasible set (the L2 ball of radius ``eps`` around ``center``,
  intersected with the [0, 1] box); first step size 2 * eps; momentum 0.75;
* step: z = P(x_k + eta * g / ||g||_2);  x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1}));
* checkpoints w_j = ceil(p_j * steps) with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
  At each, a problem halves its step size and restarts from its best point when fewer than 75 % of the
  steps since the last checkpoint improved its objective, or when its step size and its best value
  are both unchanged since the previous checkpoint;
* the result is the best iterate of each problem (its objective never decreases over the steps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

MOMENTUM = 0.75
RHO = 0.75  # fraction of improving steps below which a checkpoint halves the step size


@dataclass
class APGDResult:
    best: torch.Tensor  # [B, ...] the best iterate of each problem
    best_value: torch.Tensor  # [B] its objective
    history: torch.Tensor  # [steps + 1, B] best objective so far, after each step (non-decreasing)


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD checks its progress (the paper's schedule)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 9)) for q in p if q <= 1 + 1e-12} - {0})  # round: 0.22 + 0.19 is 0.41000000000000003


def project(x: torch.Tensor, center: torch.Tensor, eps: float) -> torch.Tensor:
    """Onto {||x - center||_2 <= eps} intersected with [0, 1]: the ball first, then the box, alternated
    a few times (both sets are convex; for images inside the box the ball projection rarely leaves it)."""
    for _ in range(5):
        delta = x - center
        norms = delta.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (x.dim() - 1)))
        x = (center + delta * torch.clamp(eps / norms, max=1.0)).clamp(0, 1)
    return x


def apgd(
    objective: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, center: torch.Tensor, eps: float, steps: int = 200
) -> APGDResult:
    """Maximise ``objective`` (a batch [B, ...] -> values [B], differentiable) from ``x0`` within the ball."""

    def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        values = objective(x)
        (grad,) = torch.autograd.grad(values.sum(), x)
        return values.detach(), grad.detach()

    def normalised(grad: torch.Tensor) -> torch.Tensor:
        return grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (grad.dim() - 1)))

    batch = x0.shape[0]
    x = project(x0.detach(), center, eps)
    value, grad = value_and_grad(x)
    best, best_value = x.clone(), value.clone()
    eta = torch.full((batch,), 2.0 * eps, dtype=x.dtype, device=x.device)
    shape = (-1, *([1] * (x.dim() - 1)))
    previous = x
    x = project(x + eta.view(shape) * normalised(grad), center, eps)
    history = [best_value.clone()]
    marks = set(checkpoints(steps))
    improved = torch.zeros(batch, device=x.device)
    since = 0
    eta_at_mark, best_at_mark = eta.clone(), best_value.clone()
    for step in range(1, steps + 1):
        new_value, grad = value_and_grad(x)
        improved += (new_value > value).float()
        better = new_value > best_value
        best[better], best_value[better] = x[better], new_value[better]
        history.append(best_value.clone())
        value = new_value
        since += 1
        if step in marks:
            few = improved < RHO * since
            stuck = (eta == eta_at_mark) & (best_value == best_at_mark)
            halve = few | stuck
            eta_at_mark, best_at_mark = eta.clone(), best_value.clone()
            eta = torch.where(halve, eta / 2, eta)
            x = torch.where(halve.view(shape), best, x)  # restart from the best point, without momentum
            previous = torch.where(halve.view(shape), x, previous)
            value = torch.where(halve, best_value, value)
            if halve.any():
                _, grad_best = value_and_grad(x)
                grad = torch.where(halve.view(shape), grad_best, grad)
            improved.zero_()
            since = 0
        if step == steps:
            break
        z = project(x + eta.view(shape) * normalised(grad), center, eps)
        x, previous = project(x + MOMENTUM * (z - x) + (1 - MOMENTUM) * (x - previous), center, eps), x
    return APGDResult(best=best, best_value=best_value, history=torch.stack(history))


__all__ = ["APGDResult", "apgd", "checkpoints", "project"]
