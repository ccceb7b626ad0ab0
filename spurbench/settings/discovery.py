"""What ``spurbench discover`` decides: ``DiscoverySettings``, which ``discovery.pipeline.discover`` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

from spurbench.errors import SpurbenchError
from spurbench.settings.training import TrainingSettings

BasisKind = Literal["npca", "neurons"]  # neural PCA components (paper 1) or single penultimate units (Salient ImageNet)
BASES: tuple[BasisKind, ...] = ("npca", "neurons")
NPFV_STEPS = 200  # APGD steps of a component's feature visualisation (``discovery.npfv.STEPS``)
COUNTS = "--components-per-class and --top-images must be at least 1, --bottom-images and --npfv-steps at least 0"


def _known_basis(basis: Any) -> Any:
    if basis not in BASES:
        raise SpurbenchError(f"--basis {basis!r}: expected one of {', '.join(BASES)}")
    return basis


def _at_least(bound: int) -> AfterValidator:
    def check(count: int) -> int:
        if count < bound:
            raise SpurbenchError(COUNTS)
        return count

    return AfterValidator(check)


class DiscoverySettings(TrainingSettings):
    """One discovery: the model, its training split, and what is recorded per class into ``out``
    (``discovery.json``, ``images/``). A folder holding part of the same discovery is continued."""

    out: Path
    classes: list[int] | None = None  # class indices to analyse; None: every class of the training split
    basis: Annotated[BasisKind, BeforeValidator(_known_basis)] = "npca"
    components_per_class: Annotated[int, _at_least(1)] = 10  # the leading neural PCA components, or the top neurons
    top_images: Annotated[int, _at_least(1)] = 8  # training images with the largest contribution, per component
    bottom_images: Annotated[int, _at_least(0)] = 4  # the class's images with the smallest contribution: the label page's contrast strip
    npfv_steps: Annotated[int, _at_least(0)] = NPFV_STEPS  # 0: no feature visualisation
    robust: bool = False  # the user says the model is adversarially robust: its feature visualisations are worth a large place
