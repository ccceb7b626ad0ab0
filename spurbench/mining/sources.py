"""Where ``mine`` takes the classes' bases from: a discovery folder (its saved bases, for the labelled
components) or a SpuFix artifact fitted for the model (its directions), checked against the model,
with the reference images shown beside each component's candidates. Never refitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spurbench.adapters import ModelAdapter
from spurbench.basis import LinearBasis, artifact_basis
from spurbench.discovery.index import TrainingSplit, read_index
from spurbench.errors import SpurbenchError
from spurbench.mining.checks import artifact_columns, check_basis_width, discovery_bases, resolve_components
from spurbench.spufix.artifact import SpuFixArtifact


@dataclass
class RankingSource:
    """Where the classes' bases come from, a discovery or a SpuFix artifact, already checked against the
    model: per class its basis, and per (class, component) the basis column, the unit and the
    reference images (absolute paths) to show beside its candidates."""

    description: str
    discovery: Path | None
    spufix: str | None
    basis: str
    training: TrainingSplit | None
    bases: dict[int, LinearBasis]
    columns: dict[tuple[int, int], int]
    class_names: dict[int, str]
    neurons: dict[tuple[int, int], int | None] = field(default_factory=dict)
    references: dict[tuple[int, int], tuple[list[Path], Path | None]] = field(default_factory=dict)
    names: dict[tuple[int, int], str] = field(default_factory=dict)  # the features people named

    def wanted(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for k, rank in sorted(self.columns):
            out.setdefault(k, []).append(rank)
        return out


def from_discovery(
    folder: Path, components: dict[int, list[int]], model: ModelAdapter, names: dict[int, dict[int, str]] | None = None
) -> RankingSource:
    """The bases ``discover`` saved in ``folder`` for these components (discovery ranks, or units), with
    the names of their features (``names``, keyed like ``components``: what a components file gives)."""
    folder = Path(folder)
    index = read_index(folder)
    if (index.model.name, index.model.weights_revision) != (model.name, model.card.weights_revision):
        raise SpurbenchError(
            f"{folder}: a discovery of {index.model.name} ({index.model.weights_revision}), not of {model.name} ({model.card.weights_revision})"
        )
    wanted = resolve_components(index, components)
    bases = discovery_bases(folder, index, wanted)
    for k, basis in bases.items():
        check_basis_width(f"{folder}: class {k}", basis.weight_row.numel(), model.name, model.head[0].shape[1])
    source = RankingSource(
        f"discovery {folder}",
        folder.resolve(),
        None,
        index.basis,
        index.training,
        bases,
        {(k, r): r for k, ranks in wanted.items() for r in ranks},
        {k: index.classes[str(k)].class_name for k in wanted},
    )
    named = names or {}
    source.names = {  # named by the listed rank or unit; resolve_components keeps the listed order
        (k, r): named[k][listed] for k, ranks in wanted.items() for listed, r in zip(components[k], ranks) if listed in named.get(k, {})
    }
    for k, ranks in wanted.items():
        for r in ranks:
            component = index.classes[str(k)].components[r]
            source.neurons[(k, r)] = component.neuron
            source.references[(k, r)] = (
                [folder / t.file for t in component.top_images],
                folder / component.npfv.file if component.npfv else None,
            )
    return source


def from_artifact(
    artifact: SpuFixArtifact,
    location: str,
    components: dict[int, list[int]] | None,
    model: ModelAdapter,
    names: dict[int, dict[int, str]] | None = None,
) -> RankingSource:
    """The bases of a SpuFix artifact fitted for ``model`` (its directions: never refitted); every
    component it clips unless ``components`` names some of them (source ranks). A feature's name is the
    one ``names`` gives (a components file's), else the artifact's."""
    if (artifact.target_model, artifact.target_weights_revision) != (model.name, model.card.weights_revision):
        raise SpurbenchError(
            f"{location}: a SpuFix artifact for {artifact.target_model} ({artifact.target_weights_revision}), not for {model.name} ({model.card.weights_revision})"
        )
    columns = artifact_columns(artifact, location, components)
    wanted = sorted({k for k, _ in columns})
    weight = model.head[0]
    for k in wanted:
        check_basis_width(f"{location}: class {k}", artifact.directions[k].directions.shape[1], model.name, weight.shape[1])
    bases = {
        k: artifact_basis(weight[k], artifact.directions[k].mean, artifact.directions[k].directions, artifact.images_per_class.get(k, 0))
        for k in wanted
    }
    class_names = model.class_names or []
    given = {(k, c): n for by in (artifact.component_names, names or {}) for k, named in by.items() for c, n in named.items()}
    return RankingSource(
        f"SpuFix artifact {location}",
        None,
        location,
        "npca",
        None,
        bases,
        columns,
        {k: class_names[k] if k < len(class_names) else str(k) for k in wanted},
        names={key: given[key] for key in columns if key in given},
    )


__all__ = ["RankingSource", "from_artifact", "from_discovery"]
