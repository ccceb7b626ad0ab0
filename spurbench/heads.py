"""Heads turn cached penultimate features into logits: plain linear now, SpuFix variants on top.

Every head is an ``nn.Module`` mapping features [N, D] -> logits [N, C], so the backbone runs once and
any number of heads score the same features.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """The model's own final layer: logits = features @ W.T + b."""

    name = "plain"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.detach().float().clone())
        self.register_buffer("bias", bias.detach().float().clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(features, self.weight, self.bias)


@torch.no_grad()
def class_probabilities(
    head: nn.Module, features: torch.Tensor, columns: torch.Tensor, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probability of each image's own class column over the full label space, and top-1 == column.

    Chunked so that 21k-class heads on tens of thousands of images stay within memory.
    """
    probs, top1 = [], []
    for start in range(0, features.shape[0], chunk):
        logits = head(features[start : start + chunk]).double()
        cols = columns[start : start + chunk].unsqueeze(1)
        log_p = torch.log_softmax(logits, dim=1)
        probs.append(log_p.gather(1, cols).squeeze(1).exp())
        top1.append(logits.argmax(dim=1) == cols.squeeze(1))
    return torch.cat(probs), torch.cat(top1)
