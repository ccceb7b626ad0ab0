"""SpuFix on the embedded ``planted`` benchmark, end to end, with components from the ground truth.

What ``spurbench run`` does with no arguments: neural PCA of the source model (``planted:cnn``) on
the planted classes' training images, components per planted class chosen from the generator's
ground truth (:func:`spurbench.benchmarks.planted.ground_truth_choices`: a demo shortcut for the
person who labels components in real use), SpuFix for the source itself, and SpuFix *transferred*
to every other model from the source's alphas alone (matched directions, paper eq. 9-11).
"""

from __future__ import annotations

from typing import Any, Callable

from spurbench.adapters.base import ModelAdapter
from spurbench.spufix.artifact import SpuFixArtifact

DEFAULT_SOURCE = "planted:cnn"


def planted_demo_artifacts(
    targets: list[ModelAdapter], source: ModelAdapter, on_class: Callable[[str], None] | None = None, **feature_kwargs: Any
) -> dict[str, SpuFixArtifact]:
    """{target name: SpuFix artifact}: the source's own SpuFix, and a matched-direction transfer for
    every other target, all from the source's alphas on ``training_benchmark(seed=source.seed)``."""
    from spurbench.benchmarks.planted import ground_truth_choices, training_benchmark
    from spurbench.spufix.fit import fit_source, fit_transfer, self_artifact

    seed = int(getattr(source, "seed", 0))
    choices = ground_truth_choices(source, seed=seed, **feature_kwargs)
    table = {k: list(c.components) for k, c in choices.items() if c.components}
    train = training_benchmark(seed=seed)
    alphas, npcas = fit_source(source, train, table, on_class=on_class, **feature_kwargs)
    alphas.extra = {"component_choice": {str(k): vars(c) for k, c in choices.items()}}
    artifacts: dict[str, SpuFixArtifact] = {}
    for target in targets:
        if target.name == source.name:
            artifact = self_artifact(source, npcas, alphas)
        else:
            artifact = fit_transfer(target, train, alphas, on_class=on_class, **feature_kwargs)
        artifact.extra = {"components_from": "planted generator ground truth (demo)", **alphas.extra}
        artifacts[target.name] = artifact
    return artifacts


__all__ = ["DEFAULT_SOURCE", "planted_demo_artifacts"]
