"""The numbers ``discover`` records for one class: its basis with each component's fields, every image's
alpha rows and the top images per component; in one process, or over torchrun's ranks.

Under torchrun (``spurbench.distributed``) each rank streams a batch-aligned part of the class (so its
features are bit-identical to the single process's), the basis statistics are summed over the ranks,
rank 0 finalises the basis and hands every rank the recorded components, the alpha rows are gathered
in image order, and rank 0 merges the top images shard by shard exactly as one process does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from spurbench import distributed
from spurbench.adapters import ModelAdapter
from spurbench.basis import NeuronBasis, fit_neurons_streaming
from spurbench.benchmarks import Benchmark
from spurbench.features import FeatureStream, rank_part, stream_part
from spurbench.settings import BASES, FeatureSettings
from spurbench.spufix.npca import NPCA, accumulate_psi, fit_npca_streaming, npca_from

Fitted = NPCA | NeuronBasis  # a class's basis as discover fits it
Top = tuple[torch.Tensor, list[list[str]]]  # values [n, L] and, per component, the ids of those rows
# basis, fields per component, alphas [N, L], (top, bottom: of -alpha), probability rises [N, L]
Statistics = tuple[Fitted, list[dict], torch.Tensor, tuple[Top, Top], torch.Tensor]
Head = tuple[torch.Tensor, torch.Tensor]  # the model's last layer (W [C, D], b [C]), float64 on the CPU


def top_rows(alphas: torch.Tensor, ids: list[str], best: Top | None, n: int) -> Top:
    """Merge one shard's alphas [B, L] into the running top-n per component (values [n', L], ids per column)."""
    if best is not None:
        values = torch.cat([best[0], alphas])
        names = [[*best[1][c], *ids] for c in range(alphas.shape[1])]
    else:
        values, names = alphas, [list(ids) for _ in range(alphas.shape[1])]
    top = torch.topk(values, min(n, values.shape[0]), dim=0)
    return top.values, [[names[c][int(i)] for i in top.indices[:, c]] for c in range(alphas.shape[1])]


def probability_rises(features: torch.Tensor, alphas: torch.Tensor, head: Head, class_index: int) -> torch.Tensor:
    """[N, L]: how much each component's positive contribution raises P(class) on each image, i.e. P(k | x)
    less P(k | x) with alpha_l clipped at 0 as SpuFix clips it. With m = z_k - logsumexp of the other
    logits, P(k) = sigmoid(m), so the rise is sigmoid(m) - sigmoid(m - max(alpha_l, 0))."""
    weight, bias = head
    logits = torch.nn.functional.linear(features.detach().to(torch.float64).cpu(), weight, bias)
    others = logits.clone()
    others[:, class_index] = -torch.inf
    margin = (logits[:, class_index] - torch.logsumexp(others, dim=1)).unsqueeze(1)
    return torch.sigmoid(margin) - torch.sigmoid(margin - alphas.clamp(min=0))


def float64_head(model: ModelAdapter) -> Head:
    weight, bias = model.head
    return weight.detach().to(torch.float64).cpu(), bias.detach().to(torch.float64).cpu()


def _top_and_bottom(alphas: torch.Tensor, ids: list[str], found: tuple[Top | None, Top | None], counts: tuple[int, int]) -> tuple[Top, Top]:
    """Merge one shard into the running top and bottom images (bottom: the top of -alpha)."""
    return top_rows(alphas, ids, found[0], counts[0]), top_rows(-alphas, ids, found[1], counts[1])


def basis_fields(fitted: Fitted, components: int) -> list[dict]:
    """Per recorded component its basis-specific fields (variance share, and eigenvalue or unit)."""
    if isinstance(fitted, NeuronBasis):
        share = fitted.contribution_var[fitted.neurons] / max(fitted.logit_var, 1e-300)
        return [{"neuron": j, "variance_share": float(share[l])} for l, j in enumerate(fitted.neurons)]
    count = min(components, fitted.eigenvalues.numel())
    scale = fitted.eigenvectors.sum(0) ** 2 * fitted.eigenvalues.clamp(min=0)  # Var(alpha_l) = <1, v_l>^2 lambda_l
    share = scale / scale.sum().clamp(min=1e-300)
    return [{"eigenvalue": float(fitted.eigenvalues[l]), "variance_share": float(share[l].clamp(0, 1))} for l in range(count)]


def _summed_neurons(
    batches: Iterable[torch.Tensor], weight_row: torch.Tensor, count: int, size: int, class_index: int
) -> NeuronBasis | None:
    """``fit_neurons_streaming``'s formulas over the ranks' parts (it needs every row in one process):
    n, sum psi and sum psi^2 summed over the ranks, the per-image logits gathered. Rank 0's basis."""
    w = weight_row.detach().to(torch.float64).cpu()
    sums, logits = torch.zeros(1 + 2 * w.numel(), dtype=torch.float64), []
    for batch in batches:
        psi = batch.detach().to(torch.float64).cpu() * w
        sums += torch.cat([torch.tensor([float(psi.shape[0])], dtype=torch.float64), psi.sum(0), (psi * psi).sum(0)])
        logits.append(psi.sum(1))
    n, total, squares = distributed.all_sum(sums, f"summing the statistics of class {class_index}").split([1, w.numel(), w.numel()])
    every_logit = torch.cat([t for part in distributed.gather_all(logits, f"gathering the logits of class {class_index}") for t in part])
    distributed.check_count(round(float(n)), size, f"class {class_index}")
    if not distributed.is_main():
        return None
    mean = total / n
    var = (squares / n - mean * mean).clamp(min=0)
    neurons = torch.argsort(mean, descending=True)[: min(count, w.numel())].tolist()
    directions = torch.zeros(w.numel(), len(neurons), dtype=torch.float64)
    directions[neurons, range(len(neurons))] = 1.0
    return NeuronBasis(w, neurons, torch.zeros_like(w), directions, mean, var, float(every_logit.var(unbiased=False)), size)


def _parallel_basis(
    basis: str, model: ModelAdapter, part: Benchmark, size: int, class_index: int, components: int, settings: FeatureSettings
) -> tuple[Fitted | None, list[dict], Fitted]:
    """(rank 0's basis or None, its fields, the basis every rank's alphas use) from the summed statistics."""
    weight = model.head[0][class_index]
    batches = (feats for _, feats in stream_part(model, part, settings))
    if basis == "neurons":
        fitted: Fitted | None = _summed_neurons(batches, weight, components, size, class_index)
    else:
        acc = accumulate_psi(batches, weight)
        acc.reduce(lambda tensor: distributed.all_sum(tensor, f"summing the statistics of class {class_index}"))
        distributed.check_count(acc.n, size, f"class {class_index}")
        fitted = npca_from(acc, weight) if distributed.is_main() else None  # the eigendecomposition: rank 0 only

    def finish() -> tuple[list[dict], Fitted]:
        assert fitted is not None  # from_main runs this on rank 0, which fitted the basis
        fields = basis_fields(fitted, components)
        return fields, fitted if isinstance(fitted, NeuronBasis) else fitted.select(
            list(range(len(fields)))
        )  # the recorded components only

    fields, shared = distributed.from_main(finish, f"receiving class {class_index}'s basis")
    return fitted, fields, shared


def _parallel_statistics(
    model: ModelAdapter, subset: Benchmark, class_index: int, components: int, top: tuple[int, int], basis: str, settings: FeatureSettings
) -> Statistics | None:
    part, _ = rank_part(subset, settings)
    fitted, fields, shared = _parallel_basis(basis, model, part, len(subset.images), class_index, components, settings)
    count, rows, rises, ids, head = len(fields), [], [], [], float64_head(model)
    for shard_ids, feats in stream_part(model, part, settings.model_copy(update={"progress": False})):
        rows.append(shared.alphas(feats)[:, :count])
        rises.append(probability_rises(feats, rows[-1], head, class_index))
        ids += shard_ids
    empty = torch.zeros(0, count, dtype=torch.float64)
    local = (torch.cat(rows) if rows else empty, torch.cat(rises) if rises else empty)
    gathered = distributed.gather_all((local, ids), f"gathering the alphas of class {class_index}")
    if fitted is None:  # not rank 0
        return None
    everything, ids = torch.cat([a for (a, _), _ in gathered]), [i for _, part_ids in gathered for i in part_ids]
    # the top and bottom images as one process finds them: merged shard by shard (its shards), in image order
    found: tuple[Top | None, Top | None] = (None, None)
    shard = settings.shard_size
    for i in range(0, len(ids), shard):
        found = _top_and_bottom(everything[i : i + shard], ids[i : i + shard], found, top)
    assert found[0] is not None and found[1] is not None
    return fitted, fields, everything, (found[0], found[1]), torch.cat([r for (_, r), _ in gathered])


def class_statistics(
    model: ModelAdapter, subset: Benchmark, class_index: int, components: int, top: tuple[int, int], basis: str, settings: FeatureSettings
) -> Statistics | None:
    """(basis, fields per component, alpha rows [N, L] in image order, (top, bottom) images per component,
    probability rises [N, L]) of one class from its cached features, ``top`` = (top count, bottom count);
    under torchrun on rank 0, None on the other ranks."""
    if distributed.active():
        return _parallel_statistics(model, subset, class_index, components, top, basis, settings)
    weight = model.head[0][class_index]
    batches = (feats for _, feats in FeatureStream.open(model, subset, settings))
    fitted = fit_neurons_streaming(batches, weight, components) if basis == "neurons" else fit_npca_streaming(batches, weight)
    fields = basis_fields(fitted, components)
    count, parts, rises, head = len(fields), [], [], float64_head(model)
    found: tuple[Top | None, Top | None] = (None, None)
    for ids, feats in FeatureStream.open(model, subset, settings.model_copy(update={"progress": False})):
        alphas = fitted.alphas(feats)[:, :count]
        parts.append(alphas)  # [N, count]: a few floats per image, for the mean and quantiles
        rises.append(probability_rises(feats, alphas, head, class_index))
        found = _top_and_bottom(alphas, ids, found, top)
    assert found[0] is not None and found[1] is not None
    return fitted, fields, torch.cat(parts), (found[0], found[1]), torch.cat(rises)


__all__ = ["BASES", "Statistics", "basis_fields", "class_statistics", "top_rows"]
