"""Static checks of the GitHub Actions workflows in .github/workflows/.

GitHub cannot be run here, so these tests read the YAML and check what matters for the
project: the CPU test matrix, the leaderboard's split between an untrusted pull-request job
(read-only, no secrets, never `pull_request_target`) and a trusted publish job, and the
manual GPU evaluation. The pull-request safety checker is itself tested on workflows that
must fail it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))

PR_EVENTS = ("pull_request", "pull_request_target")


# --------------------------------------------------------------------------- helpers


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(workflow: dict) -> dict:
    """The `on:` block as {event: config or {}}. YAML 1.1 reads a bare `on` key as True."""
    on = workflow["on"] if "on" in workflow else workflow.get(True)
    if on is None:
        return {}
    if isinstance(on, str):
        return {on: {}}
    if isinstance(on, list):
        return {event: {} for event in on}
    return {event: (config or {}) for event, config in on.items()}


def steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def step_index(job: dict, predicate) -> int:
    """Index of the first step matching predicate; fails the test when there is none."""
    for index, step in enumerate(steps(job)):
        if predicate(step):
            return index
    raise AssertionError(
        f"no matching step in {[s.get('name') or s.get('uses') for s in steps(job)]}"
    )


def runs(text: str):
    return lambda step: text in str(step.get("run", ""))


def uses(action: str):
    return lambda step: str(step.get("uses", "")).split("@")[0] == action


def text(node) -> str:
    return json.dumps(node, sort_keys=True, default=str)


_EVENT_TERM = re.compile(r"github\.event_name\s*(==|!=)\s*'([^']*)'")


def may_run_on(job: dict, event: str) -> bool:
    """Whether the job's `if:` leaves it able to run for `event`.

    Conservative: only a plain conjunction (`a && b && ...`) with a term
    `github.event_name != '<event>'` or `github.event_name == '<other event>'` excludes it;
    any other condition (`||`, negations, functions) counts as "may run".
    """
    condition = job.get("if")
    if condition is None:
        return True
    if isinstance(condition, bool):
        return condition
    expression = str(condition).strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2].strip()
    if "||" in expression or "!(" in expression:
        return True
    for term in expression.split("&&"):
        match = _EVENT_TERM.fullmatch(term.strip().strip("()").strip())
        if match is None:
            continue
        operator, name = match.groups()
        if (operator == "!=" and name == event) or (operator == "==" and name != event):
            return False
    return True


def is_read_only(permissions) -> bool:
    """True for permissions that grant no write scope. Absent permissions are not read-only:
    the default GITHUB_TOKEN may have write access, depending on the repository settings."""
    if permissions is None:
        return False
    if isinstance(permissions, str):
        return permissions == "read-all"
    return all(value in ("read", "none") for value in permissions.values())


def pull_request_problems(workflow: dict) -> list[str]:
    """Everything that makes a workflow unsafe to run on code from a pull request."""
    problems = []
    events = triggers(workflow)
    if "pull_request_target" in events:
        problems.append("uses pull_request_target")
    if not any(event in events for event in PR_EVENTS):
        return problems
    # Workflow-level env and defaults reach every job.
    shared = text({"env": workflow.get("env"), "defaults": workflow.get("defaults")})
    for name, job in (workflow.get("jobs") or {}).items():
        if not any(may_run_on(job, event) for event in PR_EVENTS if event in events):
            continue
        job_text = text(job) + shared
        if "secrets." in job_text or "secrets[" in job_text:
            problems.append(f"job {name!r} runs on pull requests and references secrets")
        if "github.token" in job_text:
            problems.append(f"job {name!r} runs on pull requests and references github.token")
        permissions = job.get("permissions", workflow.get("permissions"))
        if not is_read_only(permissions):
            problems.append(f"job {name!r} runs on pull requests with permissions {permissions!r}")
    return problems


def hub_push_is_gated(job: dict) -> bool:
    """Whether the job's `spurbench leaderboard push` step runs only when an HF_TOKEN secret
    exists. Accepted forms:

    * `if: env.HF_TOKEN != ''` with HF_TOKEN set from the secret in the *job's* env (a
      step's own env is not visible to that step's `if`);
    * `if: steps.<id>.outputs.<x> == 'true'` where step <id> gets the secret in its env and
      tests `$HF_TOKEN` in its script.
    """
    push = steps(job)[step_index(job, runs("leaderboard push"))]
    condition = str(push.get("if", ""))
    if not condition:
        return False
    job_env = job.get("env") or {}
    if "env.HF_TOKEN" in condition:
        return "secrets.HF_TOKEN" in str(job_env.get("HF_TOKEN", ""))
    match = re.search(r"steps\.([A-Za-z0-9_-]+)\.outputs\.", condition)
    if match is None:
        return False
    gate = next((s for s in steps(job) if s.get("id") == match.group(1)), None)
    if gate is None or steps(job).index(gate) > steps(job).index(push):
        return False
    gate_env = gate.get("env") or {}
    return "secrets.HF_TOKEN" in str(gate_env.get("HF_TOKEN", "")) and "HF_TOKEN" in str(
        gate.get("run", "")
    )


# --------------------------------------------------------------------------- every workflow


def test_the_three_workflows_exist():
    names = {path.name for path in WORKFLOW_FILES}
    assert {"tests.yml", "leaderboard.yml", "evaluate.yml"} <= names


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_is_well_formed(path):
    workflow = yaml.safe_load(path.read_text())
    assert isinstance(workflow, dict), f"{path.name} is not a mapping"
    assert triggers(workflow), f"{path.name} has no `on:` triggers"
    jobs = workflow.get("jobs")
    assert isinstance(jobs, dict) and jobs, f"{path.name} has no jobs"
    for name, job in jobs.items():
        assert job.get("runs-on"), f"{path.name}: job {name!r} has no runs-on"
        assert steps(job), f"{path.name}: job {name!r} has no steps"
        for step in steps(job):
            assert "run" in step or "uses" in step, f"{path.name}: job {name!r}: empty step {step}"
            if "uses" in step:
                assert "@" in step["uses"], f"{path.name}: unpinned action {step['uses']}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_workflow_is_unsafe_on_pull_requests(path):
    assert pull_request_problems(yaml.safe_load(path.read_text())) == []


def test_the_safety_checker_flags_unsafe_workflows():
    safe = yaml.safe_load(
        """
on:
  pull_request:
permissions:
  contents: read
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - run: echo ok
"""
    )
    assert pull_request_problems(safe) == []

    target = yaml.safe_load(
        """
on: pull_request_target
permissions: read-all
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - run: echo ok
"""
    )
    assert "uses pull_request_target" in pull_request_problems(target)

    with_secret = {
        True: {"pull_request": {"paths": ["leaderboard/results/**"]}},
        "permissions": {"contents": "read"},
        "jobs": {
            "check": {
                "runs-on": "ubuntu-latest",
                "steps": [{"run": "echo $T", "env": {"T": "${{ secrets.X }}"}}],
            }
        },
    }
    assert any("secrets" in p for p in pull_request_problems(with_secret))

    shared_secret = {**safe, "env": {"T": "${{ secrets.X }}"}}
    assert any("secrets" in p for p in pull_request_problems(shared_secret))

    explicit_token = {
        **safe,
        "jobs": {"check": {**safe["jobs"]["check"], "env": {"T": "${{ github.token }}"}}},
    }
    assert any("github.token" in p for p in pull_request_problems(explicit_token))

    writable = {**safe, "permissions": {"contents": "write"}}
    assert any("permissions" in p for p in pull_request_problems(writable))
    no_permissions = {key: value for key, value in safe.items() if key != "permissions"}
    assert any("permissions" in p for p in pull_request_problems(no_permissions))

    # A job whose `if` rules pull requests out may use secrets; a condition that does not
    # (an `||`, or a check of another event's name) must not fool the checker.
    def guarded(condition):
        job = {
            **with_secret["jobs"]["check"],
            "if": condition,
            "permissions": {"contents": "write"},
        }
        return {**with_secret, "jobs": {"check": job}}

    assert pull_request_problems(guarded("github.event_name != 'pull_request'")) == []
    assert (
        pull_request_problems(
            guarded("${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}")
        )
        == []
    )
    assert pull_request_problems(guarded("github.event_name != 'pull_request' || always()")) != []
    assert pull_request_problems(guarded("github.event_name != 'push'")) != []
    assert pull_request_problems(guarded("github.event_name == 'pull_request'")) != []


# --------------------------------------------------------------------------- tests.yml


def test_tests_workflow():
    workflow = load("tests.yml")
    events = triggers(workflow)
    assert "push" in events and "pull_request" in events
    assert workflow["permissions"] == {"contents": "read"}
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

    browser = step_index(
        job, runs("apt-get install -y --no-install-recommends chromium chromium-driver")
    )
    install = step_index(job, runs('pip install -e ".[dev]"'))
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in steps(job)[install]["run"]
    pytest_step = step_index(job, runs("python -m pytest -q"))
    upload = step_index(job, uses("actions/upload-artifact"))
    assert browser < pytest_step and install < pytest_step < upload
    assert steps(job)[upload]["if"] == "always()"
    assert steps(job)[upload]["with"]["path"].rstrip("/") == "test-artifacts"
    # Artifact names must be unique across the matrix.
    assert "matrix.python-version" in steps(job)[upload]["with"]["name"]


# --------------------------------------------------------------------------- leaderboard.yml


def test_leaderboard_triggers():
    events = triggers(load("leaderboard.yml"))
    assert "pull_request_target" not in events
    assert events["pull_request"]["paths"] == ["leaderboard/results/**"]
    assert events["push"]["branches"] == ["main"]
    assert set(events["push"]["paths"]) == {"leaderboard/results/**", "spurbench/**", "registry/**"}
    assert "workflow_dispatch" in events


def test_leaderboard_pull_request_job_verifies_then_builds_without_secrets():
    workflow = load("leaderboard.yml")
    pr_jobs = {
        name: job for name, job in workflow["jobs"].items() if may_run_on(job, "pull_request")
    }
    assert set(pr_jobs) == {"verify"}
    job = pr_jobs["verify"]
    assert job["permissions"] == {"contents": "read"}
    assert "secrets" not in text(job) and "github.token" not in text(job)
    verify = step_index(job, runs("spurbench leaderboard verify"))
    build = step_index(
        job,
        runs("spurbench leaderboard build --results leaderboard/results --out leaderboard/site"),
    )
    upload = step_index(job, uses("actions/upload-artifact"))
    assert verify < build < upload
    assert "leaderboard/site" in steps(job)[upload]["with"]["path"]
    # the results must also pass the target branch's verifier, not only the one the PR ships
    base_checkout = next(s for s in steps(job) if s.get("with", {}).get("ref") == "${{ github.event.pull_request.base.sha }}")
    assert base_checkout["with"]["persist-credentials"] is False
    base_verify = step_index(job, runs("/tmp/base-venv/bin/spurbench leaderboard verify"))
    assert base_verify < build
    checkout = steps(job)[step_index(job, uses("actions/checkout"))]
    assert checkout["with"]["persist-credentials"] is False


def test_leaderboard_publish_job():
    workflow = load("leaderboard.yml")
    job = workflow["jobs"]["publish"]
    assert not may_run_on(job, "pull_request")
    assert may_run_on(job, "push") and may_run_on(job, "workflow_dispatch")
    assert job["permissions"] == {"contents": "write", "pages": "write", "id-token": "write"}
    # Write access exists only here, never at workflow level.
    assert is_read_only(workflow["permissions"])

    build = step_index(job, runs("spurbench leaderboard build"))
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
    assert steps(job)[upload]["with"]["path"] == "leaderboard/site"
    assert job["environment"]["name"] == "github-pages"

    push = step_index(job, runs("spurbench leaderboard push --repo"))
    assert build < push
    assert "vars.LEADERBOARD_HUB_REPO || 'spurbench/leaderboard'" in text(steps(job)[push])
    assert hub_push_is_gated(job)


def test_hub_gate_checker_rejects_ungated_or_step_env_conditions():
    push = {
        "run": "spurbench leaderboard push --repo x",
        "env": {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"},
    }
    assert not hub_push_is_gated({"steps": [push]})
    # A step's own env is invisible to its `if`: this would never push.
    assert not hub_push_is_gated({"steps": [{**push, "if": "env.HF_TOKEN != ''"}]})
    assert hub_push_is_gated(
        {
            "env": {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"},
            "steps": [{**push, "if": "env.HF_TOKEN != ''"}],
        }
    )
    gate = {
        "id": "hub",
        "env": {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"},
        "run": '[ -n "$HF_TOKEN" ]',
    }
    gated = {**push, "if": "steps.hub.outputs.enabled == 'true'"}
    assert hub_push_is_gated({"steps": [gate, gated]})
    assert not hub_push_is_gated({"steps": [gated, gate]})
    assert not hub_push_is_gated({"steps": [{**gate, "env": {}}, gated]})


# --------------------------------------------------------------------------- evaluate.yml


def test_evaluate_workflow():
    workflow = load("evaluate.yml")
    events = triggers(workflow)
    assert set(events) == {"workflow_dispatch"}
    inputs = events["workflow_dispatch"]["inputs"]
    assert inputs["models"]["required"] is True
    assert inputs["benchmark"]["default"] == "spurious-imagenet"
    assert inputs["spufix"]["required"] is False
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}

    (job,) = workflow["jobs"].values()
    labels = job["runs-on"]
    labels = [labels] if isinstance(labels, str) else labels
    assert "self-hosted" in labels and "gpu" in labels

    run = step_index(job, runs("spurbench run"))
    script = steps(job)[run]["run"]
    for flag in ("--model", "--benchmark", "--device cuda", "-o leaderboard/results", "--spufix"):
        assert flag in script
    # Inputs reach scripts through env, never spliced into shell text.
    for step in steps(job):
        assert "inputs." not in str(step.get("run", ""))
    verify = step_index(job, runs("spurbench leaderboard verify"))
    create = step_index(job, uses("peter-evans/create-pull-request"))
    assert run < verify < create
    options = steps(job)[create]["with"]
    assert options["branch"] == "evaluate/${{ github.run_id }}"
    assert "inputs.models" in options["title"]
