"""What ``spurbench spufix fit`` decides: ``SpuFixFitSettings``, which ``runs.fit_spufix`` takes."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator, model_validator

from spurbench.adapters import check_model_name
from spurbench.errors import SpurbenchError
from spurbench.settings.command import Location
from spurbench.settings.run import check_checkpoint
from spurbench.settings.training import TrainingSettings


class SpuFixFitSettings(TrainingSettings):
    """One SpuFix fit for ``model``: source alphas (computed by the source model on the training split,
    or loaded from ``source_alphas``), then the target's SpuFix directions.

    The source model is the target itself unless ``source_model`` or ``source_checkpoint`` names
    another; its components come from the ``components`` file (default: the paper's 322 for
    ImageNet), or from the benchmark's ground truth (``components_from_ground_truth``, a demo)."""

    source_model: str | None = None  # FAMILY:SPEC of the model that computes the source alphas
    source_checkpoint: Location | None = None  # local .safetensors weights for the source model
    source_alphas: Path | None = None  # precomputed source alphas (``--source``)
    components: Path | None = None  # JSON {class: [component ranks]}
    components_from_ground_truth: bool = False
    save_alphas: Path | None = None  # also write the source alphas here (rank 0)
    output: Path | None = None  # where the artifact is saved (rank 0); None: returned only

    @field_validator("source_model")
    @classmethod
    def _loadable_source(cls, name: str | None) -> str | None:
        if name is not None:
            check_model_name(name)
        return name

    @field_validator("source_checkpoint")
    @classmethod
    def _existing_source_checkpoint(cls, checkpoint: str | None) -> str | None:
        if checkpoint is not None:
            check_checkpoint(checkpoint)
        return checkpoint

    @model_validator(mode="after")
    def _one_source(self) -> SpuFixFitSettings:
        if self.source_alphas is not None and self.source_model is not None:
            raise SpurbenchError("give either --source (precomputed alphas) or --source-model, not both")
        return self
