"""SpuFix components chosen from a benchmark's ground truth, and the demo built on it.

A generated benchmark knows which training images carry which spurious feature
(:class:`~spurbench.benchmarks.base.GroundTruth`). That knowledge stands in for the person who, in
real use, looks at a component's top images and labels it spurious: :func:`ground_truth_choices`
picks the components, :func:`ground_truth_artifacts` fits SpuFix for a source model with them and
transfers it to every other model from the source's alphas alone (matched directions, paper
eq. 9-11). What ``spurbench run`` does with no arguments, on the default benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import GroundTruth
from spurbench.features import class_subset, extract_features
from spurbench.heads import SpuFixHead
from spurbench.metrics import batched_roc_auc
from spurbench.settings import FeatureSettings
from spurbench.spufix.artifact import SpuFixArtifact
from spurbench.spufix.fit import fit_source, fit_transfer, self_artifact
from spurbench.spufix.npca import NPCA, ClassDirections, fit_npca


def component_precision(alphas: np.ndarray, carriers: np.ndarray, top: int = 25) -> np.ndarray:
    """Per neural PCA component: the fraction of feature carriers among the ``top`` images with the
    largest alpha. ``alphas`` [N, L] of one class's training images, ``carriers`` [N] bool."""
    order = np.argsort(-alphas, axis=0, kind="stable")[:top]  # [top, L]
    return np.asarray(carriers, dtype=bool)[order].mean(axis=0)


@dataclass(frozen=True)
class ComponentChoice:
    """How the ground truth picked one seeded class's SpuFix components (see ``ground_truth_choices``)."""

    class_index: int
    components: list[int]  # ranks of the chosen components, in the order they were added; may be empty
    precisions: list[float]  # their precision@25 on the training images
    most_precise_component: int
    best_precision: float  # precision@25 of the most precise component: does neural PCA find the feature?
    validation_auc_plain: float
    validation_auc_spufix: float  # with all chosen components (of every seeded class) clipped


def ground_truth_choices(
    model: ModelAdapter,
    truth: GroundTruth,
    settings: FeatureSettings,
    max_rank: int = 64,
    min_precision: float = 0.5,
    min_gain: float = 0.005,
    max_components: int = 3,
) -> dict[int, ComponentChoice]:
    """Per class with a seeded feature: the neural PCA components of ``model`` to clip, from a benchmark's ground truth.

    Neural PCA is fitted per seeded class on ``truth.train`` (the same images SpuFix is then fitted
    on: component ranks depend on the images). Like a person
    labelling components by their top images, only components whose top-25 training images mostly carry
    the feature (precision >= ``min_precision``) are candidates. Components are then added greedily,
    each time the (class, component) whose clipping, together with those already chosen, gives the
    highest mean AUC of the seeded classes on the *validation* split (never the test images), scored
    as the benchmark scores them (softmax over all classes, so that clipping one class's logit and its
    effect on the other classes' probabilities are both counted), while that mean rises by at least
    ``min_gain``; at most ``max_components`` per class. A class where no candidate helps gets none,
    and a class's AUC can still move when another class's logit is corrected (the softmax couples them).

    Why not simply the most precise component: the component of the class's overall evidence often
    ranks carriers first as well (they have the highest logits), but clipping it lowers clean images as
    much as feature-only ones; and which components carry the feature depends on the trained weights,
    which differ between CPUs. ``settings``: how the features are computed (``FeatureStream``).
    """
    train_bench, val_bench, carriers = truth.train, truth.validation, truth.carriers
    weight, bias = (t.detach().cpu().double() for t in model.head)
    known = sorted(truth.features)

    val = extract_features(model, val_bench, settings)
    val_features = val.features.double()
    image_of = {im.image_id: im for im in val_bench.images}
    rows = {  # seeded class -> (rows of its class images, rows of its feature-only images)
        k: tuple(
            np.array(
                [i for i, image_id in enumerate(val.image_ids) if (image_of[image_id].class_index, image_of[image_id].role) == (k, role)]
            )
            for role in ("positive", "negative")
        )
        for k in known
    }

    precision: dict[int, np.ndarray] = {}
    npcas: dict[int, NPCA] = {}
    candidates: list[tuple[int, int]] = []  # (class, component) whose top training images mostly carry the feature
    for k in known:
        train = extract_features(model, class_subset(train_bench, k), settings)
        npcas[k] = npca = fit_npca(train.features.double(), weight[k])
        carries = np.array([carriers.get(i) == truth.features[k] for i in train.image_ids])
        precision[k] = component_precision(npca.alphas(train.features.double())[:, :max_rank].numpy(), carries)
        candidates += [(k, int(c)) for c in np.flatnonzero(precision[k] >= min_precision)]

    def known_aucs(chosen: list[tuple[int, int]]) -> np.ndarray:
        # Scored through the SpuFix head itself (the source's own directions, paper eq. 8), as evaluate does.
        picked = {k: [c for j, c in chosen if j == k] for k in {j for j, _ in chosen}}
        directions: dict[int, tuple[torch.Tensor, torch.Tensor]] = {
            k: ClassDirections(npcas[k].mean, npcas[k].eigenvectors[:, comps].T.contiguous()) for k, comps in picked.items()
        }
        head = SpuFixHead.from_directions(weight, bias, directions).double()
        log_p = torch.log_softmax(head(val_features), dim=1).numpy()
        return np.array([batched_roc_auc(log_p[rows[k][0], k][None], log_p[rows[k][1], k][None])[0] for k in known])

    chosen: list[tuple[int, int]] = []
    plain = current = known_aucs([])
    while True:
        per_class = {k: sum(1 for j, _ in chosen if j == k) for k in known}
        left = [pair for pair in candidates if pair not in chosen and per_class[pair[0]] < max_components]
        if not left:
            break
        scored = [(known_aucs([*chosen, pair]), pair) for pair in left]  # in (class, rank) order: ties keep the first
        best_aucs, best = max(scored, key=lambda item: item[0].mean())
        if best_aucs.mean() < current.mean() + min_gain:
            break
        chosen.append(best)
        current = best_aucs

    choices: dict[int, ComponentChoice] = {}
    for i, k in enumerate(known):
        components = [c for j, c in chosen if j == k]
        most_precise = int(np.argmax(precision[k]))
        choices[k] = ComponentChoice(
            k,
            components,
            [float(precision[k][c]) for c in components],
            most_precise,
            float(precision[k][most_precise]),
            float(plain[i]),
            float(current[i]),
        )
    return choices


def ground_truth_components(model: ModelAdapter, truth: GroundTruth, settings: FeatureSettings, max_rank: int = 64) -> dict[int, list[int]]:
    """{seeded class: [components]}: the components of :func:`ground_truth_choices`, as a components table
    (classes where no component helped are left out)."""
    choices = ground_truth_choices(model, truth, settings, max_rank)
    return {k: list(c.components) for k, c in choices.items() if c.components}


def ground_truth_artifacts(
    targets: list[ModelAdapter],
    source: ModelAdapter,
    truth: GroundTruth,
    settings: FeatureSettings,
    on_class: Callable[[str], None] | None = None,
) -> dict[str, SpuFixArtifact]:
    """{target name: SpuFix artifact}: the source's own SpuFix, and a matched-direction transfer for
    every other target, all from the source's alphas on ``truth.train``, components from the ground truth."""
    choices = ground_truth_choices(source, truth, settings)
    table = {k: list(c.components) for k, c in choices.items() if c.components}
    alphas, npcas = fit_source(source, truth.train, table, settings, on_class=on_class)
    alphas.extra = {"component_choice": {str(k): vars(c) for k, c in choices.items()}}
    artifacts: dict[str, SpuFixArtifact] = {}
    for target in targets:
        if target.name == source.name:
            artifact = self_artifact(source, npcas, alphas)
        else:
            artifact = fit_transfer(target, truth.train, alphas, settings, on_class=on_class)
        artifact.extra = {"components_from": f"{truth.train.name} ground truth (demo)", **alphas.extra}
        artifacts[target.name] = artifact
    return artifacts


__all__ = ["ComponentChoice", "component_precision", "ground_truth_artifacts", "ground_truth_choices", "ground_truth_components"]
