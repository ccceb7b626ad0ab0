"""What ``spurbench mine`` decides: ``MiningSettings``, which ``mining.pipeline.mine`` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, model_validator

from spurbench.errors import SpurbenchError
from spurbench.settings.command import CommandSettings, Location

Predicted = Literal["top1", "top5", "none"]  # keep pool images the model predicts as the class: top-1 (the paper), top-5, or all
PREDICTED: tuple[Predicted, ...] = ("top1", "top5", "none")
PER_COMPONENT = 75  # as many candidates as the paper's benchmark has per component
# Near-duplicates: on the generated pool, distinct images of one kind reach cosine 0.995 (0.98 dropped
# 190-237 distinct candidates per component, 0.995 still 11-46, 0.999 none; see the README)
DEDUP_COSINE = 0.999
BOUNDS = "--per-component must be at least 1, --dedup-cosine in (0, 1], --require-predicted top1, top5 or none"


def _known_rule(rule: Any) -> Any:
    if rule not in PREDICTED:
        raise SpurbenchError(f"--require-predicted {rule!r}: expected one of {', '.join(PREDICTED)}")
    return rule


def _positive(count: int) -> int:
    if count < 1:
        raise SpurbenchError(BOUNDS)
    return count


def _cosine(threshold: float) -> float:
    if not 0 < threshold <= 1:  # (NaN too)
        raise SpurbenchError(BOUNDS)
    return threshold


class MiningSettings(CommandSettings):
    """One mining of ``pool`` into ``out``: ranked by the bases of a discovery (``discovery``, with the
    ``components`` file `spurbench label export` writes) or of a SpuFix artifact (``spufix``: a folder
    or ``hf://ORG/NAME[@REV]``; default components: all it clips)."""

    discovery: Path | None = None
    spufix: str | None = None
    components: Path | None = None
    pool: Location  # a folder of images, a Hub dataset hf://ORG/NAME[@REVISION], or a benchmark that generates a pool
    out: Path
    per_component: Annotated[int, AfterValidator(_positive)] = PER_COMPONENT  # candidates kept per (class, component)
    require_predicted: Annotated[Predicted, BeforeValidator(_known_rule)] = "top1"
    dedup_cosine: Annotated[float, AfterValidator(_cosine)] = (
        DEDUP_COSINE  # within a component, drop a candidate this close to a higher one
    )

    @model_validator(mode="after")
    def _one_kind_of_bases(self) -> MiningSettings:
        if (self.discovery is None) == (self.spufix is None):
            raise SpurbenchError("give the bases to rank by: --discovery DIR (with --components) or --spufix ARTIFACT")
        if self.discovery is not None and self.components is None:
            raise SpurbenchError("--discovery needs --components (the file `spurbench label export` writes)")
        return self
