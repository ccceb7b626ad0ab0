"""The discovery folder's index: ``discovery.json`` (model card, training split, per class and component
the statistics and top images) and the saved per-class bases, read back with checks.

The index is what ``label`` shows and ``mine`` ranks by; ``class_basis`` reads a class's saved basis
(its recorded components' directions, never refitted) and refuses one with NaNs or the wrong shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import torch
from pydantic import Field

from spurbench.basis import LinearBasis, load_basis
from spurbench.errors import SpurbenchError
from spurbench.files import atomic_path
from spurbench.results import ModelInfo
from spurbench.schemas import Strict, read_model

FORMAT_VERSION: Final = 1
INDEX_FILE = "discovery.json"
BASES_DIR = "bases"


class TopImage(Strict):
    image_id: str
    alpha: float  # the component's contribution to the class logit on this image
    file: str  # path relative to the discovery folder
    cam_file: str | None = None  # GradCAM of alpha_l on it, overlaid (None: the model names no CAM layer)


class NPFVRecord(Strict):
    """The component's feature visualisation (``spurbench.discovery.npfv``), made by the index's model."""

    file: str
    alpha: float  # the contribution it reaches (without alpha_l's constant mean term)
    eps: float  # its L2 budget around the grey image
    steps: int
    cam_file: str | None = None  # GradCAM of alpha_l on the visualisation, overlaid


class ComponentRecord(Strict):
    rank: int  # 0-based position in the class's list (npca: eigenvalue order, what `spufix fit --components` refers to)
    neuron: int | None = None  # basis "neurons": the penultimate unit this component is (None for npca)
    eigenvalue: float | None = None  # basis "npca": the component's eigenvalue (None for neurons)
    # Var(alpha_l) / Var(class logit) over the class's images: the npca shares of all D components sum to
    # 1; a unit's can exceed 1 (units are correlated, their variances do not add up to the logit's)
    variance_share: float = Field(ge=0)
    alpha_mean: float
    alpha_quantiles: dict[str, float]  # "q05", "q25", "q50", "q75", "q95"
    top_images: list[TopImage]
    npfv: NPFVRecord | None = None  # None when discovered with --npfv-steps 0
    bottom_images: list[TopImage] = Field(default_factory=list)  # the class's lowest alpha_l, lowest first (none before --bottom-images)
    positive_share: float | None = Field(default=None, ge=0, le=1)  # share of the class's images with alpha_l > 0 (None: older discovery)
    # mean over the class's images of how much alpha_l's positive part raises P(class), in probability
    # (0-1): what SpuFix, which clips it, would take away (None: older discovery)
    probability_effect: float | None = None


class ClassRecord(Strict):
    class_index: int
    class_name: str
    num_images: int
    logit_mean: float  # mean of the class logit over its training images
    components: list[ComponentRecord]
    basis_file: str | None = None  # its components' directions and offset (safetensors), what `mine` ranks by


class TrainingSplit(Strict):
    benchmark: str
    name: str
    revision: str | None
    checksum: str | None
    source: str | None


class DiscoveryIndex(Strict):
    format: Literal[1] = FORMAT_VERSION
    spurbench_version: str
    basis: Literal["npca", "neurons"] = "npca"
    model: ModelInfo
    training: TrainingSplit
    components_per_class: int
    top_images: int
    bottom_images: int = 0  # per component, the contrast strip's lowest-alpha images (0 in discoveries made before it)
    npfv_steps: int  # APGD steps of the feature visualisations; 0: none
    robust: bool = False  # the user said the model is adversarially robust (`discover --robust`): the label page shows the NPFV large
    classes: dict[str, ClassRecord] = Field(default_factory=dict)  # class index -> its components

    def same_discovery(self, other: DiscoveryIndex) -> bool:
        """The same model, weights, training images and settings (so its classes can be continued)."""
        keys = ("basis", "components_per_class", "top_images", "bottom_images", "npfv_steps")
        return (
            all(getattr(self, k) == getattr(other, k) for k in keys)
            and (self.model.name, self.model.weights_revision) == (other.model.name, other.model.weights_revision)
            and self.training == other.training
        )


def read_index(folder: Path) -> DiscoveryIndex:
    """The index of a discovery folder; a one-line SpurbenchError if the folder is not one."""
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise SpurbenchError(f"{folder}: not a discovery folder (no {INDEX_FILE}; run `spurbench discover` first)")
    return read_model(path, DiscoveryIndex, "discovery index")


def class_basis(folder: Path, index: DiscoveryIndex, class_index: int) -> LinearBasis:
    """The saved basis of one discovered class (its recorded components' directions, not refitted)."""
    record = index.classes.get(str(class_index))
    if record is None:
        raise SpurbenchError(f"{folder}: the discovery has no class {class_index}")
    if record.basis_file is None:
        raise SpurbenchError(f"{folder}: class {class_index} was discovered before bases were saved; run discover again into a new folder")
    path = Path(folder) / record.basis_file
    basis = load_basis(path)
    width, count = basis.weight_row.numel(), len(record.components)
    if basis.weight_row.ndim != 1 or basis.mean.shape != (width,) or basis.eigenvectors.shape != (width, count):
        shapes = ", ".join(str(list(t.shape)) for t in (basis.weight_row, basis.mean, basis.eigenvectors))
        raise SpurbenchError(
            f"{path}: class {class_index}'s saved basis has shapes {shapes}, not [D], [D], [D, {count}] for its {count} components"
        )
    # a NaN would rank no pool image for its component, silently: refuse the basis, naming where it is
    for name, tensor in (("weight row", basis.weight_row), ("offset", basis.mean)):
        if not torch.isfinite(tensor).all():
            raise SpurbenchError(
                f"{path}: class {class_index}: the saved {name} holds NaN or inf; discover the class again into a new folder"
            )
    broken = (~torch.isfinite(basis.eigenvectors)).any(0).nonzero().flatten().tolist()
    if broken:
        raise SpurbenchError(
            f"{path}: class {class_index} component {record.components[broken[0]].rank}: its saved direction holds NaN or inf; discover the class again into a new folder"
        )
    return basis


def write_index(folder: Path, index: DiscoveryIndex) -> None:
    with atomic_path(Path(folder) / INDEX_FILE) as tmp:
        tmp.write_text(index.model_dump_json(indent=1) + "\n")


__all__ = [
    "BASES_DIR",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "ClassRecord",
    "ComponentRecord",
    "DiscoveryIndex",
    "NPFVRecord",
    "TopImage",
    "TrainingSplit",
    "class_basis",
    "read_index",
    "write_index",
]
