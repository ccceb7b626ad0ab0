"""The CLI as a user meets it: one-line errors, non-zero exits, no tracebacks, no result files.

The cases call the entry point ``spurbench.cli.main`` in this process (the fixture ``cli`` in
``conftest.py``): the same
code path as the console script, without an interpreter and torch start-up per case. Only the test of
the console script itself starts one. ``spurbench`` (a subprocess) and ``assert_one_line_error`` are
shared with other test modules.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.one_line import one_line_error


def spurbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m spurbench ARGS`` in a fresh interpreter, offline."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "spurbench", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["run", "--model", "timmm:resnet18"], ["unknown model family 'timmm'", "Did you mean: timm"]),
        (["run", "--model", "resnet18"], ["FAMILY:SPEC"]),
        (["run", "--model", "planted:cnnn"], ["planted:cnn", "Did you mean"]),
        (["run", "--benchmark", "spurious-imagenett", "--model", "planted:cnn"], ["unknown benchmark", "spurious-imagenet"]),
        (["run", "--protocol", "fancy", "--model", "planted:cnn", "--limit", "2"], ["protocol"]),
    ],
)
def test_bad_names_fail_in_one_line(cli, tmp_path, args, needles):
    proc = cli(*args, "--output", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_missing_data_dir(cli, tmp_path):
    proc = cli(
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--model",
        "timm:resnet18.a1_in1k",
        "--data-dir",
        str(tmp_path / "nope"),
        "--imagenet-val",
        str(tmp_path),
        cwd=tmp_path,
    )
    one_line_error(proc, str(tmp_path / "nope"))


def test_malformed_data_dir(cli, tmp_path):
    bad = tmp_path / "upstream"
    (bad / "not-a-class-folder").mkdir(parents=True)
    (bad / "not-a-class-folder" / "x.png").write_bytes(b"")
    proc = cli(
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--model",
        "timm:resnet18.a1_in1k",
        "--data-dir",
        str(bad),
        "--imagenet-val",
        str(tmp_path),
        cwd=tmp_path,
    )
    one_line_error(proc, "not-a-class-folder")


def test_unknown_data_group_in_a_model_list(cli, tmp_path):
    model_list = tmp_path / "models.yaml"
    model_list.write_text("models:\n  - model: planted:cnn\n    data: imagenet-2k\n")
    for args in (["run", "--model-list", str(model_list)], ["ls", "--model-lists-dir", str(tmp_path)]):
        proc = cli(*args, cwd=tmp_path)
        one_line_error(proc, "models.yaml", "models[0].data", "imagenet-2k")
    assert not (tmp_path / "spurbench-results").exists()


@pytest.mark.parametrize(
    "args, old",
    [
        (["run", "--registry", "models.yaml"], "--registry"),
        (["sweep", "--registry", "models.yaml"], "--registry"),
        (["ls", "--registry-models"], "--registry-models"),
        (["ls", "--registry-dir", "lists"], "--registry-dir"),
        (["leaderboard", "build", "--registry-dir", "lists"], "--registry-dir"),
    ],
)
def test_model_lists_are_not_called_registry(cli, tmp_path, args, old):
    """The word "registry" names the table of plugins only: the old model-list options are unknown options, not aliases."""
    proc = cli(*args, cwd=tmp_path)
    one_line_error(proc, f"No such option: {old}")


def test_result_for_an_unknown_benchmark(cli, tmp_path):
    source = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "planted__planted_cnn.json"
    raw = json.loads(source.read_text())
    raw["benchmark"]["name"] = "imagenet-z"
    (tmp_path / "r.json").write_text(json.dumps(raw))
    for command in ("verify", "build"):
        args = [str(tmp_path / "r.json")] if command == "verify" else ["--results", str(tmp_path), "--out", str(tmp_path / "site")]
        proc = cli("leaderboard", command, *args, cwd=tmp_path)
        one_line_error(proc, "unknown benchmark 'imagenet-z'")
    assert not (tmp_path / "site" / "index.html").exists()


def test_malformed_model_list_file(cli, tmp_path):
    model_list = tmp_path / "models.yaml"
    model_list.write_text("models:\n  - model: [unclosed\n")
    proc = cli("run", "--model-list", str(model_list), cwd=tmp_path)
    one_line_error(proc, "models.yaml", "malformed YAML")


def test_help_explains_run(cli, tmp_path):
    proc = cli("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for option in (
        "--model",
        "--model-list",
        "--benchmark",
        "--data-dir",
        "--imagenet-val",
        "--dataset-repo",
        "--revision",
        "--protocol",
        "--batch-size",
        "--device",
        "--limit",
        "--output",
        "--no-cache",
    ):
        assert option in proc.stdout


@pytest.mark.slow
def test_console_script_and_python_m_exit_2_with_one_line(tmp_path):
    """The installed ``spurbench`` script and ``python -m spurbench`` reach ``main``: the point of a subprocess."""
    script = Path(sys.executable).with_name("spurbench")
    if not script.exists():
        pytest.skip("no console script beside this interpreter (package not installed into it)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(script), "run", "--model", "resnet18"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    one_line_error(proc, "FAMILY:SPEC")
    proc = spurbench("run", "--model", "resnet18", cwd=tmp_path)
    assert proc.returncode == 2
    one_line_error(proc, "FAMILY:SPEC")


def test_ls_asks_the_model_libraries(cli, tmp_path) -> None:
    import open_clip
    import timm

    listed = cli("ls", "timm:resnet18.*", "--limit", "100", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    expected = [f"timm:{name}" for name in timm.list_models("resnet18.*", pretrained=True)]
    assert expected and all(name in listed.stdout for name in expected)
    assert "timm:resnet50" not in listed.stdout  # the pattern filters
    clip = cli("ls", "open_clip:RN50/*", cwd=tmp_path)
    tags = [f"open_clip:RN50/{tag}" for arch, tag in open_clip.list_pretrained() if arch == "RN50"]
    assert tags and all(tag in clip.stdout for tag in tags) and "ViT-B-32" not in clip.stdout
    plain = cli("ls", cwd=tmp_path)  # no pattern: benchmarks with their default models, and the families
    assert "planted (default)" in plain.stdout and "planted:cnn" in plain.stdout and "spurious-imagenet" in plain.stdout
    assert all(family in plain.stdout for family in ("timm", "open_clip", "hf"))


def test_run_and_sweep_declare_their_shared_options_once() -> None:
    """Both commands take every option of ``cli.options.run_options``, from that one declaration: the same
    flags and help, except where a sweep's job reads an option otherwise (its device, output and quiet)."""
    import inspect

    import typer

    from spurbench.cli import app
    from spurbench.cli.options import run_options

    commands = typer.main.get_command(app).commands
    params = {name: {p.name: p for p in commands[name].params} for name in ("run", "sweep")}
    shared = list(inspect.signature(run_options).parameters)
    assert len(shared) == 24 and all(name in params["run"] and name in params["sweep"] for name in shared)
    for name in shared:
        run, sweep = params["run"][name], params["sweep"][name]
        assert run.opts == sweep.opts and run.default == sweep.default, name
        assert (run.help == sweep.help) == (name not in ("device", "output", "quiet")), name
