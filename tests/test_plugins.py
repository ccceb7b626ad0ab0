"""A third benchmark (and a model family) added from outside the spurbench package, run end to end:
``spurbench run``, ``leaderboard verify`` and ``leaderboard build``, with no edit to spurbench.

``tests/plugin_dist`` is a distribution in miniature: a module and a ``dist-info`` folder whose
``entry_points.txt`` declares ``spurbench.benchmarks`` / ``spurbench.adapters`` entries, found by
``importlib.metadata`` exactly as an installed package's would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spurbench.adapters import ADAPTERS
from spurbench.benchmarks import BENCHMARKS, register_benchmark
from spurbench.cli import main
from spurbench.leaderboard.build import build_board
from spurbench.leaderboard.verify import VerificationError, verify_result
from spurbench.results import read_result

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
    files = build_board([out / "shapes__shapesnet_tiny.json"], tmp_path / "site", board_dir=tmp_path / "board", registry_dir=tmp_path)
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


@pytest.mark.slow
def test_an_entry_point_plugin_works_through_the_console_script(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(DIST), "SPURBENCH_CACHE": str(tmp_path / "cache")}
    exe = [sys.executable, "-m", "spurbench"]

    def spurbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*exe, *args], capture_output=True, text=True, env=env, timeout=300)

    listed = spurbench("ls", "shapesnet:*")
    assert listed.returncode == 0 and "shapes" in listed.stdout and "shapesnet:tiny" in listed.stdout, listed.stderr
    ran = spurbench("run", "-b", "shapes", "-o", str(tmp_path / "out"), "-q", "--bootstrap", "20")  # default model from the plugin
    assert ran.returncode == 0, ran.stderr
    verified = spurbench("leaderboard", "verify", str(tmp_path / "out"))
    assert verified.returncode == 0 and "1 result file(s) verified" in verified.stdout, verified.stderr
    built = spurbench(
        "leaderboard",
        "build",
        "--results",
        str(tmp_path / "out"),
        "--out",
        str(tmp_path / "site"),
        "--board-dir",
        str(tmp_path / "board"),
        "--registry-dir",
        str(tmp_path),
    )
    assert built.returncode == 0 and (tmp_path / "board" / "README.md").read_text().count("shapesnet:tiny") >= 1, built.stderr
