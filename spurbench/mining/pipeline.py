"""Mining a new spurious benchmark from an unlabelled pool (paper 1 sec. 6): ``spurbench mine``.

For every labelled spurious component l of a class k, the pool's images are ranked by the
component's contribution alpha_l (the class's basis as ``discover`` saved it: never refitted), keeping
those the model predicts as k (top-1 by default, as the paper; ``top5`` or ``none``), and dropping
near-duplicates within the component (feature cosine >= ``dedup_cosine``, the higher-alpha one kept).
An image may be a candidate of several (class, component) pairs; each records it.

One backbone pass over the pool, through the feature cache (resumable: a killed run continues from
its finished shards; ranking again with other components forwards nothing). A second read of the
cached features collects the features of the few candidates for the duplicate check. Everything
lands in ``--out``: ``candidates.json`` (written atomically, last), thumbnails of the candidates and a
reference strip per component (its top training images and its feature visualisation, copied from
the discovery) for the people who verify the candidates (``spurbench label OUT --mode verify``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from spurbench._version import __version__
from spurbench.adapters import ModelAdapter, load_model
from spurbench.discovery.index import read_index
from spurbench.errors import SpurbenchError
from spurbench.features import FeatureStream
from spurbench.files import atomic_path, plain, remove_stale_temporaries
from spurbench.mining.checks import (
    artifact_columns,
    check_apart,
    check_components_file,
    check_made_with,
    discovery_bases,
    resolve_components,
)
from spurbench.mining.index import INDEX_FILE, Candidate, ComponentCandidates, MiningIndex, PoolRecord
from spurbench.mining.pool import Pool, resolve_pool
from spurbench.mining.sources import RankingSource, from_artifact, from_discovery
from spurbench.mining.thumbnails import THUMBS_DIR, thumbnail_and_digest
from spurbench.results import check_output_dir
from spurbench.settings import DEDUP_COSINE, MiningSettings
from spurbench.spufix.artifact import SpuFixArtifact, load_artifact
from spurbench.spufix.components import ComponentsFile, read_components

REFERENCE_DIR = "reference"
HEADROOM = 4  # candidates kept per component before the duplicate check, per wanted candidate


def _passes(logits: torch.Tensor, k: int, rule: str) -> torch.Tensor:
    if rule == "none":
        return torch.ones(logits.shape[0], dtype=torch.bool)
    top = logits.topk(1 if rule == "top1" else min(5, logits.shape[1]), dim=1).indices
    return (top == k).any(1)


def _deduplicate(order: list[str], feats: dict[str, torch.Tensor], threshold: float, want: int) -> tuple[list[str], int]:
    """Greedy in ``order`` (alpha descending): keep an image unless it is within ``threshold`` cosine of one kept."""
    if not order:
        return [], 0
    unit = torch.nn.functional.normalize(torch.stack([feats[i] for i in order]).double(), dim=1)
    cosine = (unit @ unit.T).numpy()  # one matrix product for the few hundred ranked images, not one per image
    closest = np.full(len(order), -np.inf)  # each image's highest cosine to any kept image so far
    kept: list[str] = []
    dropped = 0
    for position, image_id in enumerate(order):
        if closest[position] >= threshold:
            dropped += 1
            continue
        kept.append(image_id)
        np.maximum(closest, cosine[position], out=closest)
        if len(kept) == want:
            break
    return kept, dropped


def _copy_reference(path: Path, out: Path) -> str:
    target = out / REFERENCE_DIR / path.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
    return target.relative_to(out).as_posix()


def checked_bases(settings: MiningSettings) -> tuple[ComponentsFile | None, SpuFixArtifact | None]:
    """What the files and names can tell, checked before the model loads (loading may download its
    weights or, for a model trained on first use, train it): the components file (read), and the SpuFix
    artifact (loaded) or the discovery the pool is ranked by, made with the model named."""
    discovery, spufix, components = settings.discovery, settings.spufix, settings.components
    listed = read_components(components) if components is not None else None
    table = listed.table if listed is not None else None
    if discovery is not None:
        index = read_index(discovery)
        check_made_with(f"{discovery}: a discovery of", index.model.name, index.model.weights_revision, settings.model, settings.checkpoint)
        if components is not None and listed is not None:  # (always: MiningSettings refuses a discovery without components)
            check_components_file(components, listed, index, discovery)
            discovery_bases(discovery, index, resolve_components(index, listed.table))
        return listed, None
    assert spufix is not None  # MiningSettings: the bases come from a discovery or a SpuFix artifact
    artifact = load_artifact(spufix)
    check_made_with(
        f"{spufix}: a SpuFix artifact for", artifact.target_model, artifact.target_weights_revision, settings.model, settings.checkpoint
    )
    if listed is not None and listed.basis != "npca":
        raise SpurbenchError(f"{components}: lists {listed.basis}, but a SpuFix artifact's components are neural PCA ranks")
    if listed is not None and listed.model not in (None, artifact.source_model):  # the artifact's ranks are its source model's
        raise SpurbenchError(
            f"{components}: lists components of a discovery of {listed.model}, but {spufix} was fitted from {artifact.source_model}'s components"
        )
    artifact_columns(artifact, spufix, table)
    return listed, artifact


def mine(
    settings: MiningSettings, *, model: ModelAdapter | None = None, source: RankingSource | None = None, pool: Pool | None = None
) -> MiningIndex:
    """What ``spurbench mine`` does: rank the pool by every (class, component) the settings name and
    write the candidates under ``settings.out``. ``model``, ``source`` (the bases, as
    ``mining.sources`` builds them) and ``pool`` are objects loaded already, else they are loaded from
    the settings, every file checked before the model loads."""
    settings.features.check_machine()
    check_output_dir(settings.out)
    check_apart(settings.out, settings.pool)
    listed, artifact = checked_bases(settings) if source is None else (None, None)
    pool = pool if pool is not None else resolve_pool(settings.pool)
    model = model if model is not None else load_model(settings.model, checkpoint=settings.checkpoint)
    if source is None:
        source = _source(settings, listed, artifact, model)
    return rank_pool(model, source, pool, settings)


def _source(settings: MiningSettings, listed: ComponentsFile | None, artifact: SpuFixArtifact | None, model: ModelAdapter) -> RankingSource:
    if settings.discovery is not None and listed is not None:
        return from_discovery(settings.discovery, listed.table, model, listed.names)
    assert artifact is not None and settings.spufix is not None  # checked_bases loaded it
    return from_artifact(artifact, settings.spufix, listed.table if listed else None, model, listed.names if listed else None)


def rank_pool(model: ModelAdapter, source: RankingSource, pool: Pool, settings: MiningSettings) -> MiningIndex:
    """Rank ``pool`` for every (class, component) of ``source`` and write the candidates under ``settings.out``."""
    out, features = settings.out, settings.features
    per_component, require_predicted, dedup_cosine = settings.per_component, settings.require_predicted, settings.dedup_cosine
    remove_stale_temporaries(out)  # of a killed run: mining again leaves what an uninterrupted run leaves
    wanted = source.wanted()
    weight, bias = (t.detach().cpu().double() for t in model.head)
    keep = per_component * HEADROOM
    best: dict[tuple[int, int], tuple[torch.Tensor, list[str]]] = {}
    for ids, feats in FeatureStream.open(model, pool.benchmark, features):
        logits = feats.double() @ weight.T + bias
        for k, ranks in wanted.items():
            alphas = source.bases[k].alphas(feats)[:, [source.columns[(k, r)] for r in ranks]]  # [B, L]
            passing = _passes(logits, k, require_predicted)
            alphas = torch.where(passing[:, None], alphas, torch.full_like(alphas, -torch.inf))
            for j, rank in enumerate(ranks):
                values, names = best.get((k, rank), (torch.empty(0, dtype=torch.float64), []))
                values, names = torch.cat([values, alphas[:, j]]), [*names, *ids]
                top = torch.topk(values, min(keep, len(names)))
                finite = torch.isfinite(top.values)
                best[(k, rank)] = (top.values[finite], [names[int(i)] for i in top.indices[finite]])
    wanted_ids = {i for _, names in best.values() for i in names}
    stats: dict[str, tuple[torch.Tensor, int, torch.Tensor]] = {}  # candidate -> (features, top-1 class, softmax)
    for ids, feats in FeatureStream.open(model, pool.benchmark, features.model_copy(update={"progress": False})):
        rows = [r for r, i in enumerate(ids) if i in wanted_ids]
        if rows:
            probs = torch.softmax(feats[rows].double() @ weight.T + bias, dim=1)
            for r, p in zip(rows, probs):
                stats[ids[r]] = (feats[r], int(p.argmax()), p)
    by_id = {im.image_id: im for im in pool.benchmark.images}
    (out / THUMBS_DIR).mkdir(parents=True, exist_ok=True)
    records = []
    for (k, rank), (values, names) in sorted(best.items()):
        alpha_of = dict(zip(names, values.tolist()))
        kept, dropped = _deduplicate(names, {i: stats[i][0] for i in names}, dedup_cosine, per_component)
        cands = []
        for position, image_id in enumerate(kept, 1):
            thumb, digest = thumbnail_and_digest(pool, by_id[image_id], out)
            _, top1, probs = stats[image_id]
            cands.append(
                Candidate(
                    image_id=image_id,
                    source=by_id[image_id].origin,
                    digest=digest,
                    rank=position,
                    alpha=alpha_of[image_id],
                    predicted=top1,
                    probability=float(probs[k]),
                    thumbnail=thumb,
                )
            )
        tops, npfv = source.references.get((k, rank), ([], None))
        records.append(
            ComponentCandidates(
                class_index=k,
                class_name=source.class_names[k],
                component=rank,
                neuron=source.neurons.get((k, rank)),
                component_name=source.names.get((k, rank)),
                reference=[_copy_reference(p, out) for p in tops],
                npfv=_copy_reference(npfv, out) if npfv else None,
                candidates=cands,
                dropped_duplicates=dropped,
            )
        )
    result = MiningIndex(
        spurbench_version=__version__,
        model=model.card.model_copy(update={"data_config": plain(model.data_config)}),
        discovery=str(source.discovery) if source.discovery else None,
        spufix=source.spufix,
        basis=source.basis,
        training=source.training,
        pool=PoolRecord(
            name=pool.benchmark.name,
            source=pool.source,
            spec=pool.spec,
            revision=pool.benchmark.revision,
            num_images=len(pool.benchmark.images),
            unreadable=pool.unreadable,
        ),
        require_predicted=require_predicted,
        per_component=per_component,
        dedup_cosine=dedup_cosine,
        components=records,
    )
    with atomic_path(out / INDEX_FILE) as tmp:
        tmp.write_text(result.model_dump_json(indent=1) + "\n")
    return result


__all__ = ["DEDUP_COSINE", "HEADROOM", "REFERENCE_DIR", "checked_bases", "mine", "rank_pool"]
