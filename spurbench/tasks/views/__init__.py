"""The views task (``task.py``): its scoring, verification, board part and report tables."""

from spurbench.tasks.views.scoring import score_view_heads, view_table
from spurbench.tasks.views.task import Views

__all__ = ["Views", "score_view_heads", "view_table"]
