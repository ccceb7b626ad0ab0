"""Names of ``spurbench.benchmarks.shared.spurious_negatives`` handed on where callers import them: the
Spurious ImageNet format lives there, shared with ``spurious-folder`` (no plugin imports another)."""

from spurbench.benchmarks.shared.spurious_negatives import (
    DEFAULT_DATASET_REPO,
    Negatives,
    load_negatives,
)

__all__ = ["DEFAULT_DATASET_REPO", "Negatives", "load_negatives"]
