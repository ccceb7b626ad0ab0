"""Reliability, round 2 (issue 23), the results area: results on disk, the leaderboard's defaults, the
CLI's entry point, ``ls`` and help. Each test names the issue's case it covers.

Case 1 (no silent replacement): a run refuses, in one line, to replace a result made with another
configuration unless ``--force``; ``leaderboard build`` shows one result per model and says which.
Case 6 (build/verify defaults): both read where ``run`` writes; ``build`` writes next to it.
Case 11 (plugin errors): a plugin's own exception is one line naming the plugin, exit 1; ``--debug``.
Case 13 (finding your way): ``--version``, ``ls``, ``ls -b``, help text, ``--limit`` in verify, column names.
Case 14 (worker cap): ``--num-workers`` above the cores is capped with one line, no loader warnings.
Kill and resume: SIGINT and SIGKILL mid-features, then the same command, give the uninterrupted result.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.in_process import run_in_process
from tests.support.one_line import one_line_error
from tests.support.plugin_dist import plugin_installed
from tests.test_cli import spurbench
from tests.test_reliability import COMMITTED, ROOT, TYPER_LINES, _planted_weights, _result_without_provenance

PLUGIN_DIST = ROOT / "tests" / "plugin_dist"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """planted:cnn weights (untrained, deterministic): a run with them trains nothing."""
    return _planted_weights(tmp_path_factory.mktemp("weights") / "cnn.safetensors")


def _smoke_run(weights: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "-m", "planted:cnn", "--checkpoint", str(weights), "--limit", "2", "--bootstrap", "0", "-q", "-o", str(out), *extra]


# ------------------------------------------------------------------ case 1: no run silently replaces a result


def test_case1_run_refuses_a_result_of_another_configuration_unless_forced(cli, weights, tmp_path):
    out = tmp_path / "out"
    first = cli(*_smoke_run(weights, out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (path,) = out.glob("*.json")
    before = path.read_bytes()
    other = cli(*_smoke_run(weights, out, "--bootstrap", "5"), cwd=tmp_path)
    line = one_line_error(other)
    assert str(path) in line and "another configuration" in line and "bootstrap draws: file 0, this run 5" in line and "--force" in line
    assert path.read_bytes() == before  # untouched
    same = cli(*_smoke_run(weights, out), cwd=tmp_path)  # "finished results are skipped" for the same configuration
    assert same.returncode == 0 and "skip planted:cnn" in same.stdout and path.read_bytes() == before, same.stderr
    forced = cli(*_smoke_run(weights, out, "--bootstrap", "5", "--force"), cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(path.read_text())["heads"]["plain"]["aggregate"]["bootstrap_draws"] == 5


def test_case1_a_model_listed_twice_is_refused_before_any_work(cli, weights, tmp_path):
    model_list = tmp_path / "models.yaml"
    model_list.write_text(
        f"models:\n  - model: planted:cnn\n    checkpoint: {weights}\n  - model: planted:cnn\n    checkpoint: {weights}\n    temperature: 2\n"
    )
    proc = cli("run", "--model-list", str(model_list), "--limit", "2", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert "listed twice" in one_line_error(proc)
    assert not (tmp_path / "out").exists()


def test_case1_evaluate_refuses_too(weights, tmp_path):
    """The library's write path holds the same rule (a sweep job evaluates through it)."""
    from spurbench.harness import evaluate
    from spurbench.result_conflicts import ConfigurationConflict
    from spurbench.settings import FeatureSettings, RunSettings

    def settings(temperature: float = 1.0, force: bool = False) -> RunSettings:
        quiet = FeatureSettings(progress=False)
        return RunSettings(
            model="planted:cnn",
            checkpoint=str(weights),
            benchmark="planted",
            options={"limit": 2},
            bootstrap=0,
            temperature=temperature,
            output=tmp_path,
            force=force,
            features=quiet,
        )

    evaluate(settings())
    with pytest.raises(ConfigurationConflict, match="temperature: file 1.0, this run 2.0"):
        evaluate(settings(2.0))
    result = evaluate(settings(2.0, force=True))
    assert result.heads["plain"].temperature == 2.0


def test_case1_a_sweep_job_refuses_too_and_sweep_force_replaces(cli, weights, tmp_path):
    """The sweep refuses such a file when it plans; its jobs write through ``evaluate``, which holds the rule too."""
    from spurbench.sweeps.jobs import read_status

    model_list = tmp_path / "models.yaml"
    model_list.write_text(f"models:\n  - model: planted:cnn\n    checkpoint: {weights}\n")
    args = ["sweep", "--model-list", str(model_list), "--limit", "2", "--executor", "debug", "-o", "out"]
    assert cli(*args, "--bootstrap", "0", cwd=tmp_path).returncode == 0
    path = tmp_path / "out" / "planted__planted_cnn.json"
    before = path.read_bytes()
    refused = cli(*args, "--bootstrap", "5", cwd=tmp_path)  # refused when planned, before any job is queued
    assert "another configuration (bootstrap draws: file 0, this run 5)" in refused.stdout + refused.stderr
    assert read_status(tmp_path / "out", "planted__planted_cnn").state == "done"  # no job was submitted
    assert path.read_bytes() == before
    # (a job that meets such a file anyway fails in evaluate's same line: test_case1_evaluate_refuses_too)
    assert cli(*args, "--bootstrap", "5", "--force", cwd=tmp_path).returncode == 0
    assert json.loads(path.read_text())["heads"]["plain"]["aggregate"]["bootstrap_draws"] == 5


@pytest.mark.slow
def test_case1_model_list_run_after_the_default_run_keeps_the_spufix_results(cli, trained, tmp_path):
    """The issue's own sequence: the default run (plain + SpuFix demo), then --model-list model-lists/planted.yaml."""
    cache, _ = trained
    env = {"SPURBENCH_CACHE": str(cache)}
    out = tmp_path / "out"
    default = cli("run", "--limit", "4", "--bootstrap", "0", "-q", "-o", str(out), cwd=tmp_path, env=env)
    assert default.returncode == 0, default.stderr
    files = {p: p.read_bytes() for p in sorted(out.glob("*.json"))}
    assert len(files) == 2 and all("spufix" in json.loads(b)["heads"] for b in files.values())
    listed = cli(
        "run",
        "--model-list",
        str(ROOT / "model-lists" / "planted.yaml"),
        "--limit",
        "4",
        "--bootstrap",
        "0",
        "-q",
        "-o",
        str(out),
        cwd=tmp_path,
        env=env,
    )
    line = one_line_error(listed)
    assert "another configuration" in line and "heads: file plain+spufix, this run plain" in line
    assert {p: p.read_bytes() for p in sorted(out.glob("*.json"))} == files


def _two_results_of_one_model(folder: Path) -> tuple[Path, Path]:
    """Two valid results of planted:cnn on planted, b.json the newer (provenance is not verified)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = next(p for p in COMMITTED if p.name == "planted__planted_cnn.json")
    older, newer = folder / "b-older.json", folder / "a-newer.json"  # file-name order is the other way round
    raw = json.loads(source.read_text())
    older.write_text(json.dumps(raw))
    raw["provenance"]["date"] = "2999-01-01T00:00:00+00:00"
    newer.write_text(json.dumps(raw))
    return older, newer


def test_case1_build_shows_the_newest_of_several_results_and_says_so(cli, tmp_path):
    older, newer = _two_results_of_one_model(tmp_path / "results")
    proc = cli(
        "leaderboard",
        "build",
        "--results",
        str(tmp_path / "results"),
        "--out",
        str(tmp_path / "board"),
        "--model-lists-dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        f"note: planted:cnn on planted: 2 results; showing {newer} (the newest, computed 2999-01-01T00:00:00+00:00), not {older}"
    ], proc.stderr
    board = tmp_path / "board"
    assert "latest result: 2999-01-01" in (board / "README.md").read_text()
    assert [row["model"] for row in json.loads((board / "leaderboard.json").read_text())] == ["planted:cnn"]


# ------------------------------------------------------- case 6: build and verify follow the user, not the repo


def _results_where_run_writes(cwd: Path) -> Path:
    folder = cwd / "spurbench-results"
    folder.mkdir(parents=True)
    for path in COMMITTED:
        shutil.copy(path, folder)
    return folder


def test_case6_verify_and_build_read_where_run_writes_and_build_writes_next_to_it(cli, tmp_path):
    results = _results_where_run_writes(tmp_path)
    verified = cli("leaderboard", "verify", cwd=tmp_path)
    assert verified.returncode == 0 and f"{len(COMMITTED)} result file(s) verified" in verified.stdout, verified.stderr
    built = cli("leaderboard", "build", "--model-lists-dir", str(ROOT / "model-lists"), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    board = tmp_path / "spurbench-results-board"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spurbench-results", "spurbench-results-board"]
    assert {"README.md", "leaderboard.csv", "index.html", "leaderboard.json"} <= {p.name for p in board.iterdir()}
    assert sorted(p.name for p in results.iterdir()) == sorted(p.name for p in COMMITTED)  # nothing written among the results
    # the Markdown names the folder it really read
    assert "from the verified result files in `spurbench-results/`" in (board / "README.md").read_text()


def test_case6_the_repository_board_is_written_only_when_named(cli, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "leaderboard" / "results", repo / "leaderboard" / "results")
    (repo / "leaderboard" / "README.md").write_text("the tracked board\n")
    (repo / "leaderboard" / "scatter-planted.png").write_bytes(b"tracked")
    proc = cli("leaderboard", "build", "leaderboard/results", "--model-lists-dir", str(ROOT / "model-lists"), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "leaderboard" / "README.md").read_text() == "the tracked board\n"
    assert (repo / "leaderboard" / "scatter-planted.png").read_bytes() == b"tracked"
    assert (repo / "leaderboard" / "results-board" / "README.md").exists()
    named = cli(
        "leaderboard",
        "build",
        "leaderboard/results",
        "--out",
        "leaderboard/site",
        "--board-dir",
        "leaderboard",
        "--model-lists-dir",
        str(ROOT / "model-lists"),
        cwd=repo,
    )
    assert named.returncode == 0, named.stderr
    assert "from the verified result files in `results/`" in (repo / "leaderboard" / "README.md").read_text()  # as the tracked board says
    # the older spelling still works
    old = cli(
        "leaderboard",
        "build",
        "--results",
        "leaderboard/results",
        "--out",
        str(tmp_path / "old"),
        "--model-lists-dir",
        str(ROOT / "model-lists"),
        cwd=repo,
    )
    assert old.returncode == 0 and (tmp_path / "old" / "README.md").exists(), old.stderr


def test_case6_no_results_where_run_writes_says_where_it_looked(cli, tmp_path):
    for command in ("verify", "build"):
        line = one_line_error(cli("leaderboard", command, cwd=tmp_path))
        assert "spurbench-results" in line and "spurbench run" in line
    results = _results_where_run_writes(tmp_path)
    line = one_line_error(cli("leaderboard", "build", "--out", str(results), cwd=tmp_path))
    assert "among the results" in line
    assert sorted(p.name for p in results.iterdir()) == sorted(p.name for p in COMMITTED)


# ------------------------------------------------------------- case 11: a plugin's own exception is one line


def _plugin_cli(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The console script with the example plugin (tests/plugin_dist) installed through its entry points."""
    return spurbench(*args, cwd=tmp_path, env={"PYTHONPATH": str(PLUGIN_DIST), "SPURBENCH_CACHE": str(tmp_path / "cache"), **(env or {})})


@pytest.mark.slow
def test_case11_a_plugins_exception_is_one_line_naming_the_plugin_and_debug_shows_the_traceback(tmp_path):
    # brightness 1000 does not fit the plugin's uint8 images: numpy raises OverflowError inside the plugin
    args = ["run", "-b", "shapes", "-O", "brightness=1000", "-q", "-o", str(tmp_path / "out")]
    proc = _plugin_cli(tmp_path, *args)
    line = one_line_error(proc, code=1)
    assert "plugin spurbench-shapes failed in shapes_benchmark._image: OverflowError:" in line and "--debug" in line
    with plugin_installed():  # (the console script's path is the line above; the debug switches need no process of their own)
        env = {"SPURBENCH_CACHE": str(tmp_path / "cache")}
        debugs = (run_in_process(["--debug", *args], tmp_path, env), run_in_process(args, tmp_path, {**env, "SPURBENCH_DEBUG": "1"}))
    for debug in debugs:
        assert debug.returncode == 1 and "Traceback" in debug.stderr and 'shapes_benchmark.py", line' in debug.stderr, debug.stderr[-2000:]
        assert debug.stderr.strip().splitlines()[-1].startswith("error: plugin spurbench-shapes failed in shapes_benchmark._image")
    assert not (tmp_path / "out").exists()


def test_case11_only_a_plugins_frames_make_a_plugin_error():
    """The rule: the innermost frame that is spurbench's or a plugin's decides; other libraries' frames do not."""
    import numpy as np

    from spurbench.registry import plugin_in_traceback

    plugins = {"numpy_user": "a-plugin"}

    def traceback_of(call):
        try:
            call()
        except Exception as exc:
            return exc.__traceback__
        raise AssertionError("no exception")

    assert plugin_in_traceback(traceback_of(lambda: np.zeros(2, np.uint8).__setitem__(0, 1000)), plugins) is None  # no plugin frame
    scope: dict = {"__name__": "numpy_user.sub", "np": np}
    exec("def bad():\n    a = np.zeros(2, np.uint8)\n    a[0] = 1000\n", scope)
    assert plugin_in_traceback(traceback_of(scope["bad"]), plugins) == ("a-plugin", "numpy_user.sub.bad")
    spurbench_scope: dict = {"__name__": "spurbench.fake", "bad": scope["bad"]}
    exec("def calls_back():\n    raise KeyError('spurbench bug')\n", spurbench_scope)
    scope["calls_back"] = spurbench_scope["calls_back"]
    exec("def plugin_calls_spurbench():\n    calls_back()\n", scope)
    assert (
        plugin_in_traceback(traceback_of(scope["plugin_calls_spurbench"]), plugins) is None
    )  # raised in spurbench's code: a spurbench bug


# ------------------------------------------------------------------------ case 13: finding your way


def test_case13_version(cli, tmp_path):
    from spurbench._version import __version__

    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"spurbench {__version__}", (proc.stdout, proc.stderr)


def test_case13_ls_lists_families_and_benchmarks_and_listed_models_only_when_asked(cli, tmp_path):
    plain = cli("ls", cwd=ROOT)
    assert plain.returncode == 0, plain.stderr
    assert "planted (default)" in plain.stdout and "timm" in plain.stdout
    assert "Planted CNN" not in plain.stdout and "Rob. ResNet50" not in plain.stdout  # model-list entries stay out ...
    assert f"model lists in {ROOT / 'model-lists'}: paper.yaml (" in plain.stdout  # ... but are counted
    flagged = cli("ls", "--listed-models", cwd=ROOT)
    assert "  planted:cnn  (Planted CNN, data: planted)" in flagged.stdout.splitlines()
    outside = cli("ls", cwd=tmp_path)
    assert outside.returncode == 0 and f"model lists: none in {tmp_path / 'model-lists'}" in outside.stdout


def test_case13_ls_never_cuts_names_at_80_columns(tmp_path):
    import timm

    names = [f"timm:{n}" for n in timm.list_models("*clip_336*", pretrained=True)]
    assert names and max(map(len, names)) > 40
    proc = spurbench("ls", "timm:*clip_336*", "--limit", "1000", cwd=tmp_path, env={"COLUMNS": "80"})  # stdout is a pipe
    assert proc.returncode == 0, proc.stderr
    lines = {line.strip() for line in proc.stdout.splitlines()}
    assert set(names) <= lines, sorted(set(names) - lines)[:3]


def test_case13_ls_lists_a_benchmarks_options(cli, tmp_path):
    proc = cli("ls", "-b", "salient-imagenet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "  seed: int (>= 0, < 1000000000) (default: 0, also --seed)  planted-salient's generator seed" in lines
    assert not any("upstream_mask_zoom" in line for line in lines)  # retired: --protocol paper zooms as the authors' code does
    assert any(line.startswith("  paper: Singla & Feizi's code") for line in lines)
    assert not any(line.strip().startswith("token") for line in lines)  # never a command-line option
    assert "unknown benchmark 'plantd'" in one_line_error(cli("ls", "-b", "plantd", cwd=tmp_path))


@pytest.mark.parametrize("typer_path", TYPER_LINES, ids=lambda p: "typer-bundled-click" if p is None else "typer-with-click-package")
def test_case13_help_shows_flags_without_a_type_and_paragraphs_unwrapped(tmp_path, typer_path):
    # (a wide terminal: a paragraph the source had wrapped must come out as one line)
    proc = spurbench(
        "run",
        "--help",
        cwd=tmp_path,
        env={"COLUMNS": "400", **({"PYTHONPATH": os.pathsep.join([typer_path, str(ROOT)])} if typer_path else {})},
    )
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout
    flags = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("│ --")}
    assert {"--force", "--quiet", "--no-cache", "--help"} <= flags
    # a docstring paragraph is one line for the terminal to wrap, not the source's line breaks
    assert re.search(
        r"Where the benchmark knows its ground truth, it also fits SpuFix on the first default model with components", proc.stdout
    )
    quiet = next(line for line in proc.stdout.splitlines() if "--quiet" in line)
    assert "No progress while it works" in quiet
    imagenet_train = next(line for line in proc.stdout.splitlines() if "--imagenet-train" in line)
    assert "ILSVRC2012 train folder" in imagenet_train


def test_case13_verify_says_a_limited_run_is_why(cli, weights, tmp_path):
    assert cli(*_smoke_run(weights, tmp_path / "out"), cwd=tmp_path).returncode == 0
    line = one_line_error(cli("leaderboard", "verify", str(tmp_path / "out"), cwd=tmp_path))
    assert "made with --limit 2, a smoke run" in line


def test_case13_the_worst_classes_table_names_its_columns_for_every_benchmark():
    from rich.console import Console

    from spurbench.report import worst_classes_table
    from spurbench.results import read_result

    console = Console(record=True, width=200)
    console.print(worst_classes_table(read_result(COMMITTED[0])))
    text = console.export_text()
    assert "val→k" not in text and "recall" in text and "spurious→k" in text


# --------------------------------------------------------------------- case 14: the loader's workers are capped


@pytest.mark.slow
def test_case14_num_workers_above_the_cores_is_capped_in_one_line(weights, tmp_path):
    from spurbench.runtime import available_cores

    asked = available_cores() + 3
    proc = spurbench(
        *_smoke_run(weights, tmp_path / "out", "--num-workers", str(asked)), cwd=tmp_path, env={"SPURBENCH_CACHE": str(tmp_path / "cache")}
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "worker processes" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "--num-workers" in line] == [
        f"note: --num-workers {asked}: this process may use {available_cores()} cores; using {available_cores()} loader workers"
    ]


# ------------------------------------------------------------------- kill and resume: identical results


def _run_args(weights: Path, out: Path) -> list[str]:
    return ["run", "-m", "planted:cnn", "--checkpoint", str(weights), "--bootstrap", "200", "-q", "-o", str(out)]


def _start_run(weights: Path, out: Path, cache: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPURBENCH_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "spurbench", *_run_args(weights, out)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # see test_reliability: a background shell ignores SIGINT
        start_new_session=True,
    )


def _wait_for_features(proc: subprocess.Popen, cache: Path) -> None:
    deadline = time.monotonic() + 180
    while not any((cache / "features").glob("*/manifest.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before its features started"


@pytest.fixture(scope="module")
def uninterrupted_result(weights, tmp_path_factory) -> dict:
    """The run without interruption (own cache), once for both signals."""
    root = tmp_path_factory.mktemp("uninterrupted-run")
    done = run_in_process(_run_args(weights, root / "reference"), root, {"SPURBENCH_CACHE": str(root / "cache-reference")})
    assert done.returncode == 0, done.stderr
    (expected,) = list((root / "reference").glob("*.json"))
    return _result_without_provenance(expected)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_kill_mid_features_then_the_same_command_gives_the_uninterrupted_result(weights, uninterrupted_result, tmp_path, how):
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = _start_run(weights, out, cache, tmp_path)
    _wait_for_features(proc, cache)
    if how == "SIGKILL":
        os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: whatever is on disk stays half-written
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    else:
        for _ in range(5):  # a SIGINT inside CPython's at-fork handlers is lost: press again, as a user would
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        assert proc.returncode == 130
    proc.communicate(timeout=60)
    assert not out.exists() or not list(out.glob("*.json"))  # no result from the interrupted run
    resumed = run_in_process(_run_args(weights, out), tmp_path, {"SPURBENCH_CACHE": str(cache)})  # (need not be its own process)
    assert resumed.returncode == 0, resumed.stderr
    (got,) = list(out.glob("*.json"))
    assert _result_without_provenance(got) == uninterrupted_result
