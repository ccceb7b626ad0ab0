"""A benchmark, a model family and a task added from outside the spurbench package, run end to end:
``spurbench run``, reading the result back, its headline, ``leaderboard verify`` and ``leaderboard
build``, with no edit to spurbench.

``tests/plugin_dist`` is a distribution in miniature: modules and a ``dist-info`` folder whose
``entry_points.txt`` declares ``spurbench.benchmarks`` / ``spurbench.adapters`` / ``spurbench.tasks``
entries, found by ``importlib.metadata`` exactly as an installed package's would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spurbench.adapters import ADAPTERS
from spurbench.benchmarks import BENCHMARKS, register_benchmark
from spurbench.cli import main
from spurbench.leaderboard.build import build_board
from spurbench.leaderboard.verify import VerificationError, verify_result
from spurbench.report import headline
from spurbench.results import TASKS, read_result
from tests.support.plugin_dist import plugin_installed

DIST = Path(__file__).parent / "plugin_dist"


@pytest.fixture
def shapes_registered(monkeypatch):
    """The documented registration call (README "Adding a benchmark"), undone afterwards."""
    monkeypatch.syspath_prepend(str(DIST))
    import shapes_benchmark

    register_benchmark(shapes_benchmark.ShapesBenchmark)
    ADAPTERS.register("shapesnet", shapes_benchmark.ShapesNet)
    yield shapes_benchmark
    BENCHMARKS.unregister("shapes")
    ADAPTERS.unregister("shapesnet")


@pytest.fixture
def installed():
    """The distribution as if installed (``plugin_installed``), for the test's length."""
    with plugin_installed():
        yield


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_a_registered_benchmark_runs_verifies_and_renders(shapes_registered, tmp_path, capsys) -> None:
    out = tmp_path / "results"
    assert _run(["run", "-b", "shapes", "-o", str(out), "-q", "--bootstrap", "20", "-O", "brightness=90"]) == 0
    result = read_result(out / "shapes__shapesnet_tiny.json")
    assert result.benchmark.revision == "v1-b90" and result.benchmark.component_names == {"0": "grey stripe"}
    assert set(result.heads["plain"].extra_metrics) == {"mauc_plain", "mauc_striped"}  # the base contract's group means
    assert [c.group for c in result.heads["plain"].classes] == ["striped", "plain", "plain"]
    verify_result(out / "shapes__shapesnet_tiny.json")
    files = build_board([out / "shapes__shapesnet_tiny.json"], tmp_path / "site", board_dir=tmp_path / "board", model_lists_dir=tmp_path)
    page = files.html.read_text()
    assert "board-shapes" in page and "shapesnet:tiny" in page and "grey stripe" in page
    # The plugin's options model is the plugin's: an unknown key is a one-line error.
    capsys.readouterr()
    assert _run(["run", "-b", "shapes", "-o", str(out), "-q", "-O", "brightnes=1"]) == 2
    err = capsys.readouterr().err
    assert "benchmark 'shapes' has no option 'brightnes'. Did you mean: brightness?" in err and "Traceback" not in err


def test_verify_uses_the_plugins_reference(shapes_registered, tmp_path) -> None:
    out = tmp_path / "results"
    assert _run(["run", "-b", "shapes", "-o", str(out), "-q", "--bootstrap", "0"]) == 0
    path = out / "shapes__shapesnet_tiny.json"
    data = json.loads(path.read_text())
    data["benchmark"]["revision"] = "v2"  # a revision the plugin does not know
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError, match="unknown revision 'v2' of benchmark 'shapes'"):
        verify_result(path)
    data["benchmark"]["revision"] = "v1-b128"
    data["heads"]["plain"]["extra_metrics"]["mauc_plain"] = 0.123  # the plugin's extra metric is recomputed too
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError, match="extra_metrics"):
        verify_result(path)


def _expected_top1() -> dict[str, bool]:
    """The plugin model's top-1 on each class image, computed here from the images and the weights
    (the images are drawn at the model's size: resizing and cropping change nothing)."""
    import accuracy_task
    import shapes_benchmark

    model = shapes_benchmark.ShapesNet.load("tiny")
    bench = accuracy_task.ShapesAccuracy().load(accuracy_task.ShapesAccuracy().parse_options({}))
    out = {}
    for image in bench.images:
        x = torch.from_numpy(np.asarray(image.open(), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        logits = model.fc(model.features((x - 0.5) / 0.25))
        out[image.image_id] = int(logits.argmax()) == image.class_index
    return out


def test_a_plugin_task_runs_reads_back_verifies_and_renders(installed, tmp_path, capsys) -> None:
    import accuracy_task

    assert "accuracy" in TASKS.names() and "shapes-accuracy" in BENCHMARKS.names()  # from entry points only
    out = tmp_path / "results"
    assert _run(["run", "-b", "shapes-accuracy", "-o", str(out)]) == 0  # the plugin's default model
    printed = " ".join(capsys.readouterr().out.split())  # (titles wrap in a narrow table)
    assert "shapesnet:tiny on shapes-accuracy: top-1 accuracy" in printed and "classes lowest on accuracy" in printed  # the task's tables
    path = out / "shapes-accuracy__shapesnet_tiny.json"
    result = read_result(path)
    assert isinstance(result, accuracy_task.AccuracyResult) and result.kind == "accuracy"
    top1 = _expected_top1()
    plain = result.heads["plain"]
    assert plain.image_top1 == top1 and len(top1) == 24 and plain.accuracy == sum(top1.values()) / 24
    assert headline(result) == ("accuracy", plain.accuracy)
    verify_result(path)
    assert _run(["run", "-b", "shapes", "-o", str(out), "--bootstrap", "20", "-q"]) == 0  # a spurious-AUC result beside it
    capsys.readouterr()
    assert _run(["leaderboard", "verify", str(out)]) == 0 and "2 result file(s) verified" in capsys.readouterr().out
    board = tmp_path / "board"
    site = str(tmp_path / "site")
    assert _run(["leaderboard", "build", str(out), "--out", site, "--board-dir", str(board), "--model-lists-dir", str(tmp_path)]) == 0
    markdown = (board / "README.md").read_text()
    assert f"| 1 | shapesnet:tiny (`shapesnet:tiny`) | {plain.accuracy:.3f} |" in markdown  # its own section and columns
    assert "## shapes-accuracy (revision `v1-b128`, protocol `paper`)" in markdown and "shapes-accuracy: top-1 accuracy" in markdown
    page = (tmp_path / "site" / "index.html").read_text()
    assert 'id="board-shapes-accuracy"' in page and 'id="board-shapes"' in page and 'id="across"' in page
    # the task's own verification: a changed number is found
    data = json.loads(path.read_text())
    data["heads"]["plain"]["accuracy"] = 1.0 - data["heads"]["plain"]["accuracy"]
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError, match=r"heads\.plain\.accuracy: stored"):
        verify_result(path)


# ``python -m spurbench ARGS`` for each command, each in a process of its own: a fork of one interpreter
# that has imported the heavy third-party libraries once and no spurbench module (a fresh interpreter
# per command spent most of this test's time importing torch and timm again).
FORKED_COMMANDS = """
import json, os, runpy, sys, tempfile, traceback
import numpy, pandas, PIL.Image, pydantic, rich, sklearn.metrics, timm, torch, typer
assert not any(name.split(".")[0] == "spurbench" for name in sys.modules)
outcomes = []
for args in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.argv, code = ["spurbench", *args], 1
            try:
                runpy.run_module("spurbench", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        status = os.waitpid(pid, 0)[1]
        out.seek(0)
        err.seek(0)
        outcomes.append({"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read(), "stderr": err.read()})
print(json.dumps(outcomes))
"""


@pytest.mark.slow
def test_an_entry_point_plugin_works_through_the_console_script(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(DIST), "SPURBENCH_CACHE": str(tmp_path / "cache")}
    out, site, board = (str(tmp_path / name) for name in ("out", "site", "board"))
    commands = [
        ["ls", "shapesnet:*"],
        ["run", "-b", "shapes", "-o", out, "-q", "--bootstrap", "20"],  # default model from the plugin
        ["run", "-b", "shapes-accuracy", "-o", out, "-q"],  # a benchmark of the plugin's own task
        ["leaderboard", "verify", out],
        ["leaderboard", "build", "--results", out, "--out", site, "--board-dir", board, "--model-lists-dir", str(tmp_path)],
    ]
    done = subprocess.run(
        [sys.executable, "-c", FORKED_COMMANDS, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    listed, ran, ran_task, verified, built = json.loads(done.stdout)
    assert listed["returncode"] == 0 and "shapes" in listed["stdout"] and "shapesnet:tiny" in listed["stdout"], listed["stderr"]
    assert ran["returncode"] == 0 and ran_task["returncode"] == 0, ran["stderr"] + ran_task["stderr"]
    assert verified["returncode"] == 0 and "2 result file(s) verified" in verified["stdout"], verified["stderr"]
    assert built["returncode"] == 0, built["stderr"]
    markdown = (tmp_path / "board" / "README.md").read_text()
    assert markdown.count("shapesnet:tiny") >= 2 and "## shapes-accuracy (revision" in markdown and "## shapes (revision" in markdown
