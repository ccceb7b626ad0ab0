"""The spurious-AUC task (``task.py``): its scoring, verification, board part, report tables and plots."""

from spurbench.tasks.spurious_auc.scoring import score_heads
from spurbench.tasks.spurious_auc.task import SpuriousAUC

__all__ = ["SpuriousAUC", "score_heads"]
