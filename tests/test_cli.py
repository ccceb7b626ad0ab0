"""The CLI as a user meets it: one-line errors, non-zero exits, no tracebacks, no result files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def spurbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "spurbench", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


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
def test_bad_names_fail_in_one_line(tmp_path, args, needles):
    proc = spurbench(*args, "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))


def test_missing_data_dir(tmp_path):
    proc = spurbench("run", "--benchmark", "spurious-imagenet", "--model", "planted:cnn", "--data-dir", str(tmp_path / "nope"), "--imagenet-val", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(proc, str(tmp_path / "nope"))


def test_malformed_data_dir(tmp_path):
    bad = tmp_path / "upstream"
    (bad / "not-a-class-folder").mkdir(parents=True)
    (bad / "not-a-class-folder" / "x.png").write_bytes(b"")
    proc = spurbench("run", "--benchmark", "spurious-imagenet", "--model", "planted:cnn", "--data-dir", str(bad), "--imagenet-val", str(tmp_path), cwd=tmp_path)
    assert_one_line_error(proc, "not-a-class-folder")


def test_unknown_data_group_in_a_registry(tmp_path):
    reg = tmp_path / "models.yaml"
    reg.write_text("models:\n  - model: planted:cnn\n    data: imagenet-2k\n")
    for args in (["run", "--registry", str(reg)], ["ls", "--registry-dir", str(tmp_path)]):
        proc = spurbench(*args, cwd=tmp_path)
        assert_one_line_error(proc, "models.yaml", "models[0].data", "imagenet-2k")
    assert not (tmp_path / "spurbench-results").exists()


def test_result_for_an_unknown_benchmark(tmp_path):
    source = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "planted__planted_cnn.json"
    raw = json.loads(source.read_text())
    raw["benchmark"]["name"] = "imagenet-z"
    (tmp_path / "r.json").write_text(json.dumps(raw))
    for command in ("verify", "build"):
        args = [str(tmp_path / "r.json")] if command == "verify" else ["--results", str(tmp_path), "--out", str(tmp_path / "site")]
        proc = spurbench("leaderboard", command, *args, cwd=tmp_path)
        assert_one_line_error(proc, "unknown benchmark 'imagenet-z'")
    assert not (tmp_path / "site" / "index.html").exists()


def test_malformed_registry_file(tmp_path):
    reg = tmp_path / "models.yaml"
    reg.write_text("models:\n  - model: [unclosed\n")
    proc = spurbench("run", "--registry", str(reg), cwd=tmp_path)
    assert_one_line_error(proc, "models.yaml", "malformed YAML")


def test_help_explains_run(tmp_path):
    proc = spurbench("run", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for option in ("--model", "--registry", "--benchmark", "--data-dir", "--imagenet-val", "--dataset-repo", "--revision", "--protocol", "--batch-size", "--device", "--limit", "--output", "--no-cache"):
        assert option in proc.stdout
