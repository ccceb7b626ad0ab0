"""One contract per task: the table of tasks, reading a result through its task, the tasks' answers on
the committed results, and no task branch outside the tasks (a plugin's capabilities: test_capabilities.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spurbench.benchmarks import ScoresViews, get_benchmark, require
from spurbench.errors import SpurbenchError, UnknownNameError
from spurbench.report import headline, summary_table, worst_classes_table
from spurbench.results import TASKS, Result, ViewResult, read_result
from spurbench.tasks import Task, get_task, task_of, task_of_result
from tests.support.one_line import one_line_error

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "leaderboard" / "results").glob("*.json"))


def test_the_table_of_tasks_gives_each_task_and_refuses_others(monkeypatch) -> None:
    assert {"spurious-auc", "views"} <= set(TASKS.names())
    auc, views = get_task("spurious-auc"), get_task("views")
    assert isinstance(auc, Task) and auc.result_model is Result and views.result_model is ViewResult and views.capability is ScoresViews
    assert task_of(None).name == "spurious-auc"  # a benchmark built in code, of no plugin
    assert [task_of(get_benchmark(n)).name for n in ("planted", "planted-salient")] == ["spurious-auc", "views"]
    with pytest.raises(UnknownNameError, match="unknown task 'view'.* Did you mean: views"):
        get_task("view")
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    TASKS.register("not-a-task", "spurbench.testing:TinyAdapter")
    with pytest.raises(SpurbenchError) as failure:
        get_task("not-a-task")
    one_line_error(failure, "task 'not-a-task'", "is not a subclass of spurbench.tasks.Task")


def test_a_result_is_read_by_its_task_and_written_back_byte_for_byte(tmp_path) -> None:
    kinds = set()
    for path in COMMITTED:
        result = read_result(path)
        kinds.add(type(result).__name__)
        assert type(result) is task_of_result(result).result_model
        assert result.model_dump_json(indent=1) + "\n" == path.read_text()  # same fields, same order: the files do not change
    assert kinds == {"Result", "ViewResult"}
    auc = next(p for p in COMMITTED if p.name.startswith("planted__"))
    data = json.loads(auc.read_text())
    data["kind"] = "view"
    (tmp_path / "r.json").write_text(json.dumps(data))
    with pytest.raises(SpurbenchError) as failure:
        read_result(tmp_path / "r.json")
    one_line_error(failure, "invalid result file at kind: 'view' is no registered task.")
    del data["kind"]  # a file without a kind is a spurious-AUC result
    (tmp_path / "r.json").write_text(json.dumps(data))
    assert read_result(tmp_path / "r.json") == read_result(auc)


def test_each_task_answers_for_its_results() -> None:
    for path in COMMITTED:
        result = read_result(path)
        task = task_of_result(result)
        plain = result.heads["plain"]
        if isinstance(result, Result):
            assert headline(result) == ("mAUC", plain.aggregate.mauc)
            line = task.headline_of(result)
            assert (line.header, line.low, line.high) == ("mAUC [95% CI]", plain.aggregate.mauc_ci_low, plain.aggregate.mauc_ci_high)
            assert task.worst_classes(result)[0] == min(plain.classes, key=lambda c: c.auc).class_index
            assert task.like_with_like(result) == () and result.recorded_facts() == {"bootstrap": plain.aggregate.bootstrap_draws}
        else:
            key = require(get_benchmark(result.benchmark.name), ScoresViews).headline[0]
            assert headline(result) == (key, plain.metrics[key]) and task.headline_of(result).signed
            assert set(task.like_with_like(result)) == {v for image in result.images.values() for v in image.views}
            assert result.recorded_facts() == {}
        assert summary_table(result).row_count >= 1 and worst_classes_table(result, n=3).row_count == 3


# Modules that only ask tasks: no branch on a task kind in them (harness.py joins once it calls
# ``Task.evaluate_features``; result_conflicts.py once it asks the task for the facts it compares).
# Every module that runs, checks, reports or publishes results, whatever their task: they ask the task.
TASK_FREE = [
    *(ROOT / "spurbench" / name for name in ("harness.py", "report.py", "result_conflicts.py", "runs.py")),
    *(p for folder in ("leaderboard", "sweeps", "cli") for p in sorted((ROOT / "spurbench" / folder).glob("*.py"))),
]
TASK_BRANCH = re.compile(r"ViewResult|isinstance\([^)]*\bResult\)|\.task\s*[!=]=|[\"'](views|spurious-auc)[\"']")


def test_no_module_that_asks_tasks_branches_on_one() -> None:
    found = [
        f"{p.name}:{n}: {line.strip()}"
        for p in TASK_FREE
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if TASK_BRANCH.search(line)
    ]
    assert not found, "\n".join(found)
    assert TASK_BRANCH.search('if plugin.task == "views":') and TASK_BRANCH.search("isinstance(r, Result)")  # the pattern can fail
