"""Checks of the GitHub Actions workflows in .github/workflows/.

Security is zizmor's job (a dev dependency, run offline with its pedantic persona): template
injection, dangerous triggers such as `pull_request_target`, excessive permissions, persisted
credentials. The zizmor tests run it over the workflows and over unsafe ones it must flag.

The rest checks what zizmor cannot know, from the YAML: the CPU test matrix and the README's
test command (with the strict docs build), the leaderboard's split between an untrusted pull-request
job (no secrets) and a trusted publish job that deploys the docs site with the board under it, and
the manual GPU evaluation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))

# Tags, not commit SHAs: a SHA cannot be looked up or checked offline, where these tests run,
# so the unpinned-uses audit only demands that every `uses:` names a ref.
ZIZMOR_CONFIG = """\
rules:
  unpinned-uses:
    config:
      policies:
        "*": ref-pin
"""


# --------------------------------------------------------------------------- helpers


def zizmor(tmp_path: Path, *inputs: Path, format: str = "plain") -> subprocess.CompletedProcess:
    beside_python = Path(sys.executable).with_name("zizmor")
    exe = str(beside_python) if beside_python.exists() else shutil.which("zizmor")
    if exe is None:
        pytest.fail("zizmor is not installed; it is a dev dependency: pip install -e '.[dev]'")
    config = tmp_path / "zizmor.yml"
    config.write_text(ZIZMOR_CONFIG)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZIZMOR_")}
    return subprocess.run(
        [
            exe,
            "--offline",
            "--persona",
            "pedantic",
            "--strict-collection",
            "--config",
            str(config),
            "--format",
            format,
            "--color",
            "never",
            "--no-progress",
            *map(str, inputs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict) -> dict:
    """The `on:` block as {event: config or {}}. YAML 1.1 reads a bare `on` key as True."""
    on = workflow["on"] if "on" in workflow else workflow.get(True)
    if isinstance(on, str):
        return {on: {}}
    if isinstance(on, list):
        return {event: {} for event in on}
    return {event: (config or {}) for event, config in (on or {}).items()}


def steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def step_index(job: dict, predicate) -> int:
    """Index of the first step matching predicate; fails the test when there is none."""
    for index, step in enumerate(steps(job)):
        if predicate(step):
            return index
    names = [step.get("name") or step.get("uses") for step in steps(job)]
    raise AssertionError(f"no matching step in {names}")


BOARD_BUILD = "spurbench leaderboard build leaderboard/results --out leaderboard/site --board-dir leaderboard"  # the defaults never write the repository's board: it is named by path


def runs(text: str):
    return lambda step: text in str(step.get("run", ""))


def uses(action: str):
    return lambda step: str(step.get("uses", "")).split("@")[0] == action


def text(node) -> str:
    return json.dumps(node, sort_keys=True, default=str)


# --------------------------------------------------------------------------- zizmor


def test_zizmor_finds_nothing_in_the_workflows(tmp_path):
    result = zizmor(tmp_path, WORKFLOWS)
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output
    assert "No findings" in result.stdout, output
    for path in WORKFLOW_FILES:
        assert f"completed {path}" in result.stderr, f"zizmor did not audit {path.name}:\n{output}"


UNSAFE = """\
name: greet
on: pull_request_target
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "Thanks for ${{ github.event.pull_request.title }}"
"""

# (workflow, text to replace, replacement, the audit that must fire)
BREAKAGES = [
    (None, None, UNSAFE, "dangerous-triggers"),
    (None, None, UNSAFE, "template-injection"),
    ("leaderboard.yml", "\n  pull_request:\n", "\n  pull_request_target:\n", "dangerous-triggers"),
    ("evaluate.yml", '--model "$model"', "--model ${{ inputs.models }}", "template-injection"),
    ("tests.yml", "permissions:\n  contents: read\n", "permissions: write-all\n", "excessive-permissions"),
    ("tests.yml", "\n        with:\n          persist-credentials: false\n", "\n", "artipacked"),
]


@pytest.mark.parametrize(
    "name, old, new, audit",
    [pytest.param(*case, id=f"{case[0] or 'unsafe.yml'}-{case[3]}") for case in BREAKAGES],
)
def test_zizmor_flags_unsafe_workflows(tmp_path, name, old, new, audit):
    if name is None:
        workflow, name = new, "unsafe.yml"
    else:
        original = (WORKFLOWS / name).read_text()
        assert original.count(old) == 1, f"{old!r} is no longer in {name}"
        workflow = original.replace(old, new)
    path = tmp_path / name
    path.write_text(workflow)
    result = zizmor(tmp_path, path, format="json")
    assert result.returncode != 0, result.stderr
    found = {finding["ident"] for finding in json.loads(result.stdout)}
    assert audit in found, f"{audit} not in {found}\n{result.stderr}"


# --------------------------------------------------------------------------- every workflow


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_job_has_a_runner_steps_and_a_timeout(path):
    for name, job in yaml.safe_load(path.read_text())["jobs"].items():
        assert job.get("runs-on") and steps(job), f"{path.name}: job {name!r}"
        assert isinstance(job.get("timeout-minutes"), int), f"{path.name}: job {name!r}"


# --------------------------------------------------------------------------- tests.yml


def test_tests_workflow_runs_the_readme_test_command():
    workflow = load("tests.yml")
    events = triggers(workflow)
    assert "push" in events and "pull_request" in events
    assert workflow["concurrency"]["cancel-in-progress"] is True

    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    versions = job["strategy"]["matrix"]["python-version"]
    assert versions == ["3.10", "3.11", "3.12"]
    assert all(isinstance(v, str) for v in versions), "unquoted 3.10 is the float 3.1"

    setup = steps(job)[step_index(job, uses("actions/setup-python"))]
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"] == "pyproject.toml"

    browser = step_index(job, runs("install -y --no-install-recommends chromium chromium-driver"))
    install = step_index(job, runs('pip install -e ".[dev,imagenet-w,docs]"'))
    script = steps(job)[install]["run"]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in script
    # The same old typer line as the README's test command, in the same folder.
    readme = (ROOT / "README.md").read_text()
    old_typer = re.search(r"--no-deps --target (\S+) (typer==\S+ click==\S+)", readme)
    assert old_typer and f"--no-deps --target {old_typer[1]} {old_typer[2]}" in script
    assert f"SPURBENCH_OLD_TYPER_PATH={old_typer[1]} .venv/bin/python -m pytest -q" in readme
    pytest_step = step_index(job, runs("python -m pytest -q"))
    assert steps(job)[pytest_step]["run"].strip() == "python -m pytest -q"
    assert steps(job)[pytest_step]["env"]["SPURBENCH_OLD_TYPER_PATH"] == old_typer[1]
    upload = step_index(job, uses("actions/upload-artifact"))
    assert browser < pytest_step and install < pytest_step < upload
    # The docs site builds strictly (a broken link or anchor fails) before the tests run.
    docs = step_index(job, runs("mkdocs build --strict"))
    assert install < docs < pytest_step
    assert steps(job)[upload]["if"] == "always()"
    assert steps(job)[upload]["with"]["path"].rstrip("/") == "test-artifacts"
    # Artifact names must be unique across the matrix.
    assert "matrix.python-version" in steps(job)[upload]["with"]["name"]


# --------------------------------------------------------------------------- leaderboard.yml


def test_leaderboard_triggers():
    events = triggers(load("leaderboard.yml"))
    assert events["pull_request"]["paths"] == ["leaderboard/results/**"]
    assert events["push"]["branches"] == ["main"]
    # docs/** and mkdocs.yml: the publish job deploys the docs site with the board.
    assert set(events["push"]["paths"]) == {"leaderboard/results/**", "spurbench/**", "model-lists/**", "docs/**", "mkdocs.yml"}
    assert "workflow_dispatch" in events


def test_leaderboard_pull_request_job_verifies_then_builds_without_secrets():
    workflow = load("leaderboard.yml")
    assert set(workflow["jobs"]) == {"verify", "publish"}
    job = workflow["jobs"]["verify"]
    assert "if" not in job
    # It runs the contributor's code: read-only, and no secret or token in reach.
    assert job["permissions"] == {"contents": "read"}
    assert "secrets" not in text(job) + text(workflow.get("env"))
    assert "github.token" not in text(job) + text(workflow.get("env"))
    verify = step_index(job, runs("spurbench leaderboard verify"))
    build = step_index(job, runs(BOARD_BUILD))
    upload = step_index(job, uses("actions/upload-artifact"))
    assert verify < build < upload
    assert "mkdocs" not in text(job) and "[docs]" not in text(job)  # the board builds without the docs
    assert "leaderboard/site" in steps(job)[upload]["with"]["path"]
    # The results must also pass the target branch's verifier, not only the one the PR ships.
    base = "${{ github.event.pull_request.base.sha }}"
    base_checkout = step_index(job, lambda step: step.get("with", {}).get("ref") == base)
    base_verify = step_index(job, runs("/tmp/base-venv/bin/spurbench leaderboard verify"))
    assert base_checkout < base_verify < build


def test_leaderboard_publish_job():
    workflow = load("leaderboard.yml")
    job = workflow["jobs"]["publish"]
    # Never on a pull request: the write scopes and the HF_TOKEN secret are here.
    assert job["if"] == "github.event_name != 'pull_request' && github.ref == 'refs/heads/main'"
    assert job["permissions"] == {"contents": "write", "pages": "write", "id-token": "write"}

    build = step_index(job, runs(BOARD_BUILD))
    commit = step_index(job, runs("git commit"))
    script = steps(job)[commit]["run"]
    for path in ("leaderboard/README.md", "leaderboard/leaderboard.csv", "leaderboard/*.png"):
        assert path in script
    assert "git diff --cached --quiet" in script and "git push" in script
    assert "[skip ci]" in script and "github-actions[bot]" in script

    configure = step_index(job, uses("actions/configure-pages"))
    upload = step_index(job, uses("actions/upload-pages-artifact"))
    deploy = step_index(job, uses("actions/deploy-pages"))
    assert build < commit and build < configure < upload < deploy
    assert job["environment"]["name"] == "github-pages"
    # One site: the docs (built strictly) with the board under it, at site/leaderboard/.
    install = step_index(job, runs('pip install -e ".[docs]"'))
    docs = step_index(job, runs("mkdocs build --strict -d site"))
    board_under_site = step_index(job, runs("cp -R leaderboard/site site/leaderboard"))
    assert build < install < docs < board_under_site < upload
    assert steps(job)[upload]["with"]["path"] == "site"
    # The board never needs the docs: it is built and committed before the docs tools are installed.
    assert commit < install
    assert "mkdocs" not in text(steps(job)[:install])

    push = step_index(job, runs("spurbench leaderboard push --repo"))
    assert build < push
    assert "vars.LEADERBOARD_HUB_REPO || 'spurbench/leaderboard'" in text(steps(job)[push])
    # Only when an HF_TOKEN secret exists: `secrets` cannot be used in an `if`, and a step's
    # own env is invisible to its `if`, so an earlier step turns the check into an output.
    assert steps(job)[push]["if"] == "steps.hub.outputs.enabled == 'true'"
    gate = step_index(job, lambda step: step.get("id") == "hub")
    assert gate < push
    assert steps(job)[gate]["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert '[ -n "$HF_TOKEN" ]' in steps(job)[gate]["run"]
    assert 'echo "enabled=true" >> "$GITHUB_OUTPUT"' in steps(job)[gate]["run"]


# --------------------------------------------------------------------------- evaluate.yml


def test_evaluate_workflow():
    workflow = load("evaluate.yml")
    events = triggers(workflow)
    assert set(events) == {"workflow_dispatch"}
    inputs = events["workflow_dispatch"]["inputs"]
    assert inputs["models"]["required"] is True
    assert inputs["benchmark"]["default"] == "spurious-imagenet"
    assert inputs["spufix"]["required"] is False

    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    labels = job["runs-on"]
    labels = [labels] if isinstance(labels, str) else labels
    assert "self-hosted" in labels and "gpu" in labels

    run = step_index(job, runs("spurbench run"))
    script = steps(job)[run]["run"]
    for flag in ("--model", "--benchmark", "--device cuda", "-o leaderboard/results", "--spufix"):
        assert flag in script
    assert "secrets.HF_TOKEN" in text(steps(job)[run].get("env"))
    verify = step_index(job, runs("spurbench leaderboard verify"))
    create = step_index(job, uses("peter-evans/create-pull-request"))
    assert run < verify < create
    options = steps(job)[create]["with"]
    assert options["branch"] == "evaluate/${{ github.run_id }}"
    assert "inputs.models" in options["title"]
