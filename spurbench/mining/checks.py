"""What ``mine`` checks from files and names before it loads the model (which may download its weights
or, for a model trained on first use, train it): the discovery or artifact was made with the model and weights
named, the components file lists that discovery's kind of component and only components it has, the
saved bases are sound, and ``--out`` and the pool folder do not overlap."""

from __future__ import annotations

from pathlib import Path

from spurbench.basis import LinearBasis
from spurbench.cache import content_digest
from spurbench.discovery.index import DiscoveryIndex, class_basis
from spurbench.errors import SpurbenchError
from spurbench.files import real_inside
from spurbench.mining.pool import HUB_PREFIX
from spurbench.spufix.artifact import SpuFixArtifact
from spurbench.spufix.components import ComponentsFile


def check_made_with(what: str, name: str, revision: str | None, model: str, checkpoint: str | None) -> None:
    """``what`` (a discovery or artifact, made with ``name`` at ``revision``) fits ``--model`` and
    ``--checkpoint``, as far as names and the checkpoint's digest tell (the loaded model's revision is
    compared again once it is loaded)."""
    if name != model:
        raise SpurbenchError(f"{what} {name} ({revision}), not {model}; mine with --model {name}")
    if checkpoint is not None and Path(checkpoint).is_file():
        digest = content_digest(checkpoint)
        if digest != revision:
            raise SpurbenchError(f"{what} {name} ({revision}), not of the weights in --checkpoint {checkpoint} ({digest})")
    elif checkpoint is None and (revision or "").startswith("sha256:"):  # the digest a local checkpoint gives
        raise SpurbenchError(f"{what} {name} with the weights of a local checkpoint ({revision}); pass that file as --checkpoint")


def check_components_file(components: Path, found: ComponentsFile, index: DiscoveryIndex, folder: Path) -> None:
    """The components file was exported from this discovery, or at least lists its kind of component."""
    if found.basis != index.basis:
        if found.named_basis is None:  # the paper's form: plain ranks
            raise SpurbenchError(
                f"{components}: names no basis, so it lists neural PCA ranks, but {folder} is a discovery of neurons; "
                'export its labels with `spurbench label export` (which names the basis), or add "basis": "neurons"'
            )
        raise SpurbenchError(
            f"{components}: lists {found.basis} components, but {folder} is a discovery of {index.basis} components; export the components of this discovery"
        )
    if found.model is not None and found.model != index.model.name:
        raise SpurbenchError(f"{components}: exported from a discovery of {found.model}, but {folder} is a discovery of {index.model.name}")
    if found.model is not None and found.weights_revision is not None and found.weights_revision != index.model.weights_revision:
        raise SpurbenchError(
            f"{components}: exported from a discovery of {found.model} ({found.weights_revision}), but {folder} is one of its weights {index.model.weights_revision}"
        )


def resolve_components(index: DiscoveryIndex, components: dict[int, list[int]]) -> dict[int, list[int]]:
    """The components file's entries as discovery ranks (a neuron-basis export lists units), checked."""
    out: dict[int, list[int]] = {}
    for k, listed in sorted(components.items()):
        if not 0 <= k < index.model.num_classes:
            raise SpurbenchError(f"components file: class {k} is not a class of {index.model.name} (it has {index.model.num_classes})")
        record = index.classes.get(str(k))
        if record is None:
            raise SpurbenchError(f"components file: class {k} is not in the discovery (discovered: {len(index.classes)} classes)")
        by_id = {(c.neuron if index.basis == "neurons" else c.rank): c.rank for c in record.components}
        missing = [c for c in listed if c not in by_id]
        if missing:
            raise SpurbenchError(f"components file: class {k} has no discovered component {missing[0]}")
        out[k] = [by_id[c] for c in listed]
    if not out:
        raise SpurbenchError("components file: lists no components; nothing to mine")
    return out


def discovery_bases(folder: Path, index: DiscoveryIndex, wanted: dict[int, list[int]]) -> dict[int, LinearBasis]:
    """The saved bases of the wanted classes, each checked (shapes, finite values) as it is read."""
    return {k: class_basis(folder, index, k) for k in wanted}


def artifact_columns(artifact: SpuFixArtifact, location: str, components: dict[int, list[int]] | None) -> dict[tuple[int, int], int]:
    """(class, source rank) -> the artifact's direction row, for ``components`` (default: every one it clips)."""
    wanted = components if components is not None else artifact.components
    columns = {}
    for k, ranks in sorted(wanted.items()):
        if k not in artifact.components:
            raise SpurbenchError(f"components: class {k} has no components in the SpuFix artifact {location}")
        missing = [r for r in ranks if r not in artifact.components[k]]
        if missing:
            raise SpurbenchError(
                f"components: class {k} component {missing[0]} is not in the SpuFix artifact (it has {artifact.components[k]})"
            )
        columns.update({(k, r): artifact.components[k].index(r) for r in ranks})
    if not columns:
        raise SpurbenchError(f"{location}: the SpuFix artifact clips no components; nothing to mine")
    return columns


def check_basis_width(what: str, width: int, model_name: str, features: int) -> None:
    """A basis over ``width`` features ranks images of a model with ``features`` only if they are equal."""
    if width != features:
        raise SpurbenchError(f"{what}: its basis is {width} features wide, but {model_name} has {features} features")


def check_apart(out: Path, pool: str) -> None:
    """``--out`` and a local pool folder must not overlap (real paths, either way): thumbnails written
    into the pool would become pool images next time and change its revision, and a pool inside
    ``--out`` would be mixed with what ``mine`` writes."""
    if pool.startswith(HUB_PREFIX) or not Path(pool).is_dir():
        return  # a Hub pool or a generating benchmark: no folder of the user's to write into
    if real_inside(pool, out):
        raise SpurbenchError(
            f"--out {out}: lies inside the pool {pool} it mines (its thumbnails would become pool images); choose a folder outside the pool"
        )
    if real_inside(out, pool):
        raise SpurbenchError(
            f"--pool {pool}: lies inside --out {out} (what mine writes would mix with the pool); choose an --out outside the pool"
        )


__all__ = [
    "artifact_columns",
    "check_apart",
    "check_basis_width",
    "check_components_file",
    "check_made_with",
    "discovery_bases",
    "resolve_components",
]
