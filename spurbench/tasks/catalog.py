"""The table of tasks at work: registry name -> :class:`Task`, and which task a plugin, a benchmark or
a result file belongs to."""

from __future__ import annotations

from spurbench.benchmarks import BENCHMARKS, Benchmark, BenchmarkPlugin, get_benchmark
from spurbench.errors import SpurbenchError
from spurbench.results import DEFAULT_KIND, TASKS, TaskResult
from spurbench.tasks.contract import Task


def register_task(task: type[Task]) -> type[Task]:
    """Register a task class under its ``name`` (usable as a class decorator)."""
    return TASKS.register(task.name, task)


def get_task(name: str) -> Task:
    """The task registered as ``name``; UnknownNameError with suggestions otherwise."""
    task = TASKS.get(name)
    if not (isinstance(task, type) and issubclass(task, Task)):
        raise SpurbenchError(f"task {name!r} -> {task!r} is not a subclass of spurbench.tasks.Task")
    return task()


def task_of(plugin: BenchmarkPlugin | None) -> Task:
    """The task that scores a plugin's benchmarks (``plugin.task``); a benchmark of no registered plugin
    is a spurious-AUC benchmark."""
    return get_task(plugin.task if plugin is not None else DEFAULT_KIND)


def task_of_result(result: TaskResult) -> Task:
    """The task a result file belongs to (its ``kind``)."""
    return get_task(result.kind)


def plugin_of(benchmark: Benchmark) -> BenchmarkPlugin | None:
    """The registered plugin a benchmark came from, None for a benchmark built in code."""
    return plugin_named(benchmark.plugin or benchmark.name)


def plugin_named(name: str) -> BenchmarkPlugin | None:
    """The registered plugin ``name``, None where there is none (e.g. a result of a benchmark built in code)."""
    return get_benchmark(name) if name in BENCHMARKS.names() else None


def task_names() -> list[str]:
    return TASKS.names()


__all__ = ["get_task", "plugin_named", "plugin_of", "register_task", "task_names", "task_of", "task_of_result"]
