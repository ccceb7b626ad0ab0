"""Rich tables for the terminal, built from a result (what ``spurbench run`` prints at the end) by the
task that owns the result, and any result's headline."""

from __future__ import annotations

from rich.table import Table

from spurbench.heads import PLAIN
from spurbench.results import TaskResult
from spurbench.tasks import task_of_result


def summary_table(result: TaskResult) -> Table:
    """One column per head, one row per metric; each row label says what the number is."""
    return task_of_result(result).summary_table(result)


def worst_classes_table(result: TaskResult, n: int = 10, head: str = PLAIN) -> Table:
    """The ``n`` worst classes of ``head``, as the result's task ranks them."""
    return task_of_result(result).classes_table(result, n, head)


def headline(result: TaskResult) -> tuple[str, float | None]:
    """The benchmark's headline metric of the plain head: (its name, its value)."""
    return task_of_result(result).headline(result)


__all__ = ["headline", "summary_table", "worst_classes_table"]
