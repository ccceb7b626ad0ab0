"""Heads turn cached penultimate features into logits: plain linear now, SpuFix variants on top.

Every head is an ``nn.Module`` mapping features [N, D] -> logits [N, C], so the backbone runs once and
any number of heads score the same features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spurbench.registry import Registry

PLAIN = "plain"  # the model's own final layer
SPUFIX = "spufix"  # the same layer minus the clipped spurious components


class LinearHead(nn.Module):
    """The model's own final layer: logits = features @ W.T + b."""

    name = PLAIN
    # registered buffers (declared for type checkers: nn.Module's __getattr__ says Tensor | Module)
    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(features, self.weight, self.bias)


@torch.no_grad()
def class_probabilities(
    head: nn.Module, features: torch.Tensor, columns: torch.Tensor, chunk: int = 2048, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probability of each image's own class column over the full label space, and top-1 == column.

    ``temperature``: logits / T before the softmax (changes the probabilities, hence the AUCs; never the
    top-1). Chunked so that 21k-class heads on tens of thousands of images stay within memory.
    """
    prob, top1, _ = probabilities_with(head, features, columns, (), chunk, temperature)
    return prob, top1


@torch.no_grad()
def probabilities_with(
    head: nn.Module, features: torch.Tensor, columns: torch.Tensor, watched: Sequence[int], chunk: int = 2048, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`class_probabilities` and, from the same softmax, the probabilities of the ``watched``
    columns for every image ([N, len(watched)])."""
    probs, top1, seen = [], [], []
    fixed = torch.tensor(list(watched), dtype=torch.long)
    for start in range(0, features.shape[0], chunk):
        logits = head(features[start : start + chunk]).double() / temperature
        cols = columns[start : start + chunk].unsqueeze(1)
        log_p = torch.log_softmax(logits, dim=1)
        probs.append(log_p.gather(1, cols).squeeze(1).exp())
        top1.append(logits.argmax(dim=1) == cols.squeeze(1))
        seen.append(log_p[:, fixed].exp())
    return torch.cat(probs), torch.cat(top1), torch.cat(seen)


class SpuFixHead(nn.Module):
    """The model's linear head minus the clipped spurious components, fused for all classes at once.

    For class k, the coefficients lambda(x) = P_k (w_k * phi(x)) - P_k mean_k are affine in phi, with
    P_k = (U^T U)^-1 U^T. Stacking the rows of all classes gives one matrix A [R, D], offset c [R],
    scale s [R] (= <1, u_l>) and a one-hot scatter [R, C]:

        logits_spufix = phi @ W.T + b - relu(s * (phi @ A.T + c)) @ scatter

    One extra [B, D] x [D, R] matmul; no per-class loop or solve at inference. The dense one-hot scatter
    (R x C, tiny) keeps the module exportable with torch.export / ONNX.
    """

    name = SPUFIX
    # registered buffers (declared for type checkers: nn.Module's __getattr__ says Tensor | Module)
    weight: torch.Tensor
    bias: torch.Tensor
    rows: torch.Tensor
    offsets: torch.Tensor
    scales: torch.Tensor
    class_index: torch.Tensor
    scatter: torch.Tensor

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        rows: torch.Tensor,
        offsets: torch.Tensor,
        scales: torch.Tensor,
        class_index: torch.Tensor,
    ):
        super().__init__()
        num_classes = weight.shape[0]
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())
        self.register_buffer("rows", rows.detach().float().clone())
        self.register_buffer("offsets", offsets.detach().float().clone())
        self.register_buffer("scales", scales.detach().float().clone())
        self.register_buffer("class_index", class_index.detach().long().clone())
        scatter = torch.zeros(rows.shape[0], num_classes)
        scatter[torch.arange(rows.shape[0]), self.class_index] = 1.0
        self.register_buffer("scatter", scatter)

    @classmethod
    def from_directions(
        cls, weight: torch.Tensor, bias: torch.Tensor, directions: dict[int, tuple[torch.Tensor, torch.Tensor]]
    ) -> SpuFixHead:
        """``directions[k] = (mean psi_k [D], unit directions [L, D] as rows)``.

        For the source model these are the class mean and the spurious eigenvectors v_l; for any other
        model the matched directions u_l of ``spurbench.spufix.match_directions``.
        """
        rows, offsets, scales, index = [], [], [], []
        w64 = weight.detach().to(torch.float64).cpu()
        for k in sorted(directions):
            mean, dirs = directions[k]
            u = dirs.detach().to(torch.float64).cpu().T  # [D, L]
            projector = torch.linalg.solve(u.T @ u, u.T)  # P_k [L, D]
            rows.append(projector * w64[k])  # lambda = P (w_k * phi) - P mean
            offsets.append(-(projector @ mean.detach().to(torch.float64).cpu()))
            scales.append(u.sum(0))
            index += [k] * u.shape[1]
        dim = weight.shape[1]
        return cls(
            weight,
            bias,
            torch.cat(rows) if rows else torch.zeros(0, dim, dtype=torch.float64),
            torch.cat(offsets) if offsets else torch.zeros(0, dtype=torch.float64),
            torch.cat(scales) if scales else torch.zeros(0, dtype=torch.float64),
            torch.tensor(index, dtype=torch.long),
        )

    def plain(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(features, self.weight, self.bias)

    def correction(self, features: torch.Tensor) -> torch.Tensor:
        """Per-class amount subtracted from the logits, [B, C]."""
        contributions = torch.relu(self.scales * (torch.nn.functional.linear(features, self.rows) + self.offsets))
        return contributions @ self.scatter

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.plain(features) - self.correction(features)


# Every head a result file may hold, by name: results, reports, boards and verify refer to heads only
# through these names. A new head kind registers here.
HEADS: Registry[type[nn.Module]] = Registry("head", base=nn.Module)
HEADS.register(PLAIN, LinearHead)
HEADS.register(SPUFIX, SpuFixHead)

__all__ = ["HEADS", "PLAIN", "SPUFIX", "LinearHead", "SpuFixHead", "class_probabilities", "probabilities_with"]
