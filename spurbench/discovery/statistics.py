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
Statistics = tuple[Fitted, list[dict], torch.Tensor, Top]  # basis, fields per component, alphas [N, L], top


def top_rows(alphas: torch.Tensor, ids: list[str], best: Top | None, n: int) -> Top:
    """Merge one shard's alphas [B, L] into the running top-n per component (values [n', L], ids per column)."""
    if best is not None:
        values = torch.cat([best[0], alphas])
        names = [[*best[1][c], *ids] for c in range(alphas.shape[1])]
    else:
        values, names = alphas, [list(ids) for _ in range(alphas.shape[1])]
    top = torch.topk(values, min(n, values.shape[0]), dim=0)
    return top.values, [[names[c][int(i)] for i in top.indices[:, c]] for c in range(alphas.shape[1])]


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
    model: ModelAdapter, subset: Benchmark, class_index: int, components: int, top: int, basis: str, settings: FeatureSettings
) -> Statistics | None:
    part, _ = rank_part(subset, settings)
    fitted, fields, shared = _parallel_basis(basis, model, part, len(subset.images), class_index, components, settings)
    count, rows, ids = len(fields), [], []
    for shard_ids, feats in stream_part(model, part, settings.model_copy(update={"progress": False})):
        rows.append(shared.alphas(feats)[:, :count])
        ids += shard_ids
    local = torch.cat(rows) if rows else torch.zeros(0, count, dtype=torch.float64)
    gathered = distributed.gather_all((local, ids), f"gathering the alphas of class {class_index}")
    if fitted is None:  # not rank 0
        return None
    everything, ids = torch.cat([a for a, _ in gathered]), [i for _, part_ids in gathered for i in part_ids]
    # the top images as one process finds them: merged shard by shard (its shards), in image order
    best, shard = None, settings.shard_size
    for i in range(0, len(ids), shard):
        best = top_rows(everything[i : i + shard], ids[i : i + shard], best, top)
    assert best is not None
    return fitted, fields, everything, best


def class_statistics(
    model: ModelAdapter, subset: Benchmark, class_index: int, components: int, top: int, basis: str, settings: FeatureSettings
) -> Statistics | None:
    """(basis, fields per component, alpha rows [N, L] in image order, top images per component) of one
    class from its cached features; under torchrun on rank 0, None on the other ranks."""
    if distributed.active():
        return _parallel_statistics(model, subset, class_index, components, top, basis, settings)
    weight = model.head[0][class_index]
    batches = (feats for _, feats in FeatureStream.open(model, subset, settings))
    fitted = fit_neurons_streaming(batches, weight, components) if basis == "neurons" else fit_npca_streaming(batches, weight)
    fields = basis_fields(fitted, components)
    count, parts, best = len(fields), [], None
    for ids, feats in FeatureStream.open(model, subset, settings.model_copy(update={"progress": False})):
        alphas = fitted.alphas(feats)[:, :count]
        parts.append(alphas)  # [N, count]: a few floats per image, for the mean and quantiles
        best = top_rows(alphas, ids, best, top)
    assert best is not None
    return fitted, fields, torch.cat(parts), best


__all__ = ["BASES", "Statistics", "basis_fields", "class_statistics", "top_rows"]
