"""Fitting SpuFix from data: source alphas (computed or imported), matched directions, artifacts.

Every model sees each training image once: features stream shard by shard through the feature cache
(``FeatureStream``), one class at a time, with the models loaded once for all classes.

Under torchrun (``spurbench.distributed``) each rank streams a contiguous, batch-aligned part of every
class, the streaming statistics are summed over the ranks and rank 0 finalises them; the result equals
the single-process fit to float64 rounding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from spurbench import distributed
from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import Benchmark
from spurbench.errors import DataError, SpurbenchError
from spurbench.features import check_same_inputs, class_subset, rank_part, stream_part
from spurbench.settings import FeatureSettings
from spurbench.spufix.alphas import SourceAlphas
from spurbench.spufix.artifact import SpuFixArtifact
from spurbench.spufix.npca import NPCA, ClassDirections, DirectionMatcher, accumulate_psi, npca_from


def _summed(what: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda tensor: distributed.all_sum(tensor, what)


def _chosen(npca: NPCA | None, columns: list[int]) -> NPCA:
    """Rank 0's NPCA with only the chosen components (``from_main`` runs it on rank 0, which fitted it)."""
    assert npca is not None
    return npca.select(columns)


def fit_source(
    source: ModelAdapter,
    train: Benchmark,
    components: dict[int, list[int]],
    settings: FeatureSettings,
    on_class: Callable[[str], None] | None = None,
) -> tuple[SourceAlphas, dict[int, NPCA]]:
    """Neural PCA of the source model per class, and the alphas of the given components on the same images.

    Two passes over each class's cached features (covariance, then alphas); one backbone pass per image.
    Under torchrun: the alphas (all rows, image order) on every rank, the NPCAs on rank 0 only.
    """
    weight, _ = source.head
    npcas: dict[int, NPCA] = {}
    alphas: dict[int, torch.Tensor] = {}
    ids: dict[int, list[str]] = {}
    check_same_inputs("source model, training images, components or options", [source], train, settings, sorted(components.items()))
    quiet = settings.model_copy(update={"progress": False})  # the second pass over the same features
    for k in sorted(components):
        if on_class:
            on_class(f"neural PCA of {source.name}, class {k}")
        subset = class_subset(train, k)
        part, _ = rank_part(subset, settings)
        acc = accumulate_psi((feats for _, feats in stream_part(source, part, settings)), weight[k])
        if distributed.active():
            acc.reduce(_summed(f"summing the statistics of class {k}"))
            distributed.check_count(acc.n, len(subset.images), f"class {k}")
        rank_limit = acc.mean.numel()
        bad = [c for c in components[k] if not 0 <= c < rank_limit]
        if bad:
            raise SpurbenchError(f"class {k}: component {bad[0]} out of range (the source model has {rank_limit} components)")
        npca = npca_from(acc, weight[k]) if distributed.is_main() else None  # the eigendecomposition: rank 0 only
        basis: NPCA
        columns: list[int] | slice
        if npca is not None and not distributed.active():
            basis, columns = npca, components[k]
        else:  # rank 0 hands every rank the chosen components (not all D) for its part's alphas
            basis = distributed.from_main(lambda: _chosen(npca, components[k]), f"receiving class {k}'s components")  # noqa: B023 (called at once)
            columns = slice(None)
        rows, row_ids = [], []
        for shard_ids, feats in stream_part(source, part, quiet):
            rows.append(basis.alphas(feats)[:, columns])
            row_ids += shard_ids
        local = torch.cat(rows) if rows else torch.zeros(0, len(components[k]), dtype=torch.float64)
        if distributed.active():  # every rank's rows, in rank order: the class's image order
            gathered = distributed.gather_all((local, row_ids), f"gathering the alphas of class {k}")
            local, row_ids = torch.cat([a for a, _ in gathered]), [i for _, part_ids in gathered for i in part_ids]
        if npca is not None:
            npcas[k] = npca
        alphas[k], ids[k] = local, row_ids
    components = {k: list(v) for k, v in components.items()}
    return SourceAlphas(source.name, components, ids, alphas, source_weights_revision=source.card.weights_revision), npcas


def self_artifact(source: ModelAdapter, npcas: dict[int, NPCA], source_alphas: SourceAlphas) -> SpuFixArtifact:
    """SpuFix for the source model itself: the class means and its spurious eigenvectors (paper eq. 8)."""
    directions = {
        k: ClassDirections(npca.mean, npca.eigenvectors[:, source_alphas.components[k]].T.contiguous()) for k, npca in npcas.items()
    }
    return SpuFixArtifact(
        source_model=source.name,
        source_weights_revision=source.card.weights_revision,
        target_model=source.name,
        target_weights_revision=source.card.weights_revision,
        components=source_alphas.components,
        images_per_class={k: n.num_images for k, n in npcas.items()},
        directions=directions,
    )


def _alphas_digest(source_alphas: SourceAlphas) -> list:
    tensors = {
        k: hashlib.sha256(a.to(torch.float64).contiguous().numpy().tobytes()).hexdigest() for k, a in sorted(source_alphas.alphas.items())
    }
    return [
        source_alphas.source_model,
        source_alphas.source_weights_revision,
        sorted(source_alphas.components.items()),
        sorted(source_alphas.image_ids.items()),
        tensors,
    ]


def fit_transfer(
    target: ModelAdapter,
    train: Benchmark,
    source_alphas: SourceAlphas,
    settings: FeatureSettings,
    on_class: Callable[[str], None] | None = None,
) -> SpuFixArtifact:
    """Matched directions (paper eq. 9-10) for every class, streaming the target's features with the alphas.
    Under torchrun each rank streams its part with its rows of the alphas; the sums are summed over the ranks."""
    weight, _ = target.head
    directions = {}
    check_same_inputs("target model, training images, source alphas or options", [target], train, settings, _alphas_digest(source_alphas))
    for k in sorted(source_alphas.alphas):
        if on_class:
            on_class(f"matching directions of {target.name}, class {k}")
        subset = class_subset(train, k)
        expected = source_alphas.image_ids[k]
        got = [im.image_id for im in subset.images]
        if got != expected:
            first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
            raise DataError(
                f"class {k}: the source alphas cover {len(expected)} images, the training data {len(got)}; "
                f"first difference at row {first} ({expected[first] if first < len(expected) else '-'} vs {got[first] if first < len(got) else '-'})"
            )
        matcher = DirectionMatcher(source_alphas.alphas[k].shape[1], weight[k])
        part, row = rank_part(subset, settings)
        for shard_ids, feats in stream_part(target, part, settings):
            matcher.update(source_alphas.alphas[k][row : row + len(shard_ids)], feats)
            row += len(shard_ids)
        if distributed.active():
            matcher.reduce(_summed(f"summing the cross-covariances of class {k}"))
            distributed.check_count(matcher.n, len(subset.images), f"class {k}")
        directions[k] = matcher.result()  # on every rank (cheap, from the same sums); rank 0's is written
    return SpuFixArtifact(
        source_model=source_alphas.source_model,
        source_weights_revision=source_alphas.source_weights_revision,
        target_model=target.name,
        target_weights_revision=target.card.weights_revision,
        components=source_alphas.components,
        images_per_class={k: len(v) for k, v in source_alphas.image_ids.items()},
        directions=directions,
    )


def import_upstream_alphas(
    alphas_dir: str | Path, train: Benchmark, components: dict[int, list[int]], source_model: str = "upstream:robust_resnet50"
) -> SourceAlphas:
    """Convert upstream's per-class alpha tensors (``spurious_alphas_train_<kkk>.pt``, [N_k, D]) to SourceAlphas.

    Rows follow the class's training images sorted by file name (the ImageFolder order upstream used);
    a row count that differs from the training folder's image count is an error.
    """
    alphas_dir = Path(alphas_dir)
    if not alphas_dir.is_dir():
        raise SpurbenchError(f"alphas folder {alphas_dir} does not exist")
    alphas, ids = {}, {}
    for k in sorted(components):
        path = alphas_dir / f"spurious_alphas_train_{k:03d}.pt"
        if not path.is_file():
            raise DataError(f"{alphas_dir}: no alphas for class {k} ({path.name})")
        try:
            tensor = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
        except Exception as exc:
            raise DataError(f"{path}: not a plain tensor file ({type(exc).__name__})") from None
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
            raise DataError(f"{path}: expected a 2-d tensor [images, components]")
        rows = [im.image_id for im in train.images if im.class_index == k]
        if tensor.shape[0] != len(rows):
            raise DataError(f"{path}: {tensor.shape[0]} alpha rows but {len(rows)} training images of class {k} in {train.repo}")
        alphas[k] = tensor[:, components[k]].to(torch.float64)
        ids[k] = rows
    return SourceAlphas(source_model, components, ids, alphas, {"imported_from": str(alphas_dir)})
