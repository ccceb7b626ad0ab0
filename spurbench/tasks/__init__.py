"""Tasks: what a benchmark is scored for ("spurious-auc", "views", or a plugin's own). Each task owns
its scoring, result file, verification, board part, headline and report tables (``contract.py``);
the table of tasks is ``spurbench.results.TASKS`` (entry-point group ``spurbench.tasks``). This file
only hands names on."""

from spurbench.results import TASKS, TaskResult
from spurbench.tasks.board import BoardSection, Column, ModelPart, TaskBoard
from spurbench.tasks.catalog import get_task, plugin_named, plugin_of, register_task, task_names, task_of, task_of_result
from spurbench.tasks.common import benchmark_info
from spurbench.tasks.contract import EvaluationContext, Headline, Task
from spurbench.tasks.verification import VerificationError

__all__ = [
    "TASKS",
    "BoardSection",
    "Column",
    "EvaluationContext",
    "Headline",
    "ModelPart",
    "Task",
    "TaskBoard",
    "TaskResult",
    "VerificationError",
    "benchmark_info",
    "get_task",
    "plugin_named",
    "plugin_of",
    "register_task",
    "task_names",
    "task_of",
    "task_of_result",
]
