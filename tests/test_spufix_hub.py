"""SpuFix artifacts on the Hub: push, pull, pinning by revision, `--spufix auto`, `spufix fit --push`.

All through the real huggingface_hub client talking HTTP to the local file-backed Hub of
tests/support/hub_server.py; the CLI runs as a subprocess against the same server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from spurbench.benchmarks.planted.training import build_model
from spurbench.errors import SpurbenchError
from spurbench.results import read_result, result_filename
from spurbench.settings import FeatureSettings
from spurbench.spufix.artifact import auto_location, load_artifact, push_artifact
from spurbench.spufix.fit import fit_source, fit_transfer
from spurbench.spufix.npca import ClassDirections
from spurbench.testing import TinyAdapter
from tests.support.hub_server import LocalHub, local_hub
from tests.support.one_line import one_line_error
from tests.test_spufix_fit import COMPONENTS, WideTiny, _train

SETTINGS = FeatureSettings(batch_size=4, progress=False)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    with local_hub(tmp_path, monkeypatch) as h:
        yield h


def _artifact(tmp_path: Path, name: str = "artifact"):
    alphas, _ = fit_source(TinyAdapter(), _train(), COMPONENTS, SETTINGS)
    artifact = fit_transfer(WideTiny(), _train(), alphas, SETTINGS)
    return artifact, artifact.save(tmp_path / name)


def _same(a, b) -> bool:
    return a.components == b.components and all(
        torch.equal(a.directions[k].mean, b.directions[k].mean) and torch.equal(a.directions[k].directions, b.directions[k].directions)
        for k in a.directions
    )


def test_push_then_pull_pinned_by_revision(hub, tmp_path):
    artifact, folder = _artifact(tmp_path)
    url = push_artifact(folder, "org/spufix-tiny")
    first_sha = hub.commits("org/spufix-tiny")[-1]  # artifact and model card in one commit
    assert url.endswith(first_sha) or first_sha in url
    stored = hub.files("org/spufix-tiny")
    assert {"spufix.safetensors", "spufix.json", "README.md"} <= set(stored)
    assert "tiny:wide" in stored["README.md"].decode() and b"pickle" not in stored["spufix.safetensors"]

    pulled = load_artifact("hf://org/spufix-tiny")
    assert pulled.target_model == "tiny:wide" and _same(pulled, artifact)

    # a second fit with other components replaces main; the first stays reachable by its sha
    artifact.components = {0: [1, 3], 3: [2]}  # other ranks, as many as there are directions
    artifact.directions = {k: ClassDirections(m, d.flip(0)) for k, (m, d) in artifact.directions.items()}
    push_artifact(artifact.save(tmp_path / "second"), "org/spufix-tiny")
    assert load_artifact("hf://org/spufix-tiny").components == {0: [1, 3], 3: [2]}
    old = load_artifact(f"hf://org/spufix-tiny@{first_sha}")
    assert old.components == COMPONENTS and _same(old, load_artifact(folder))
    assert load_artifact("hf://org/spufix-tiny", revision=first_sha).components == COMPONENTS


def test_pull_of_a_missing_repo_is_one_clear_error(hub):
    with pytest.raises(SpurbenchError, match="no SpuFix artifact at hf://org/none"):
        load_artifact("hf://org/none")


def test_push_refuses_a_folder_that_is_not_an_artifact(hub, tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(SpurbenchError, match="not a SpuFix artifact"):
        push_artifact(tmp_path / "junk", "org/junk")
    from huggingface_hub import HfApi

    assert not HfApi().repo_exists("org/junk")  # refused before anything was created


def _planted_checkpoint(tmp_path: Path) -> Path:
    """Random planted:cnn weights as a checkpoint: a real target model without training."""
    path = tmp_path / "cnn-random.safetensors"
    save_file({k: v.contiguous() for k, v in build_model("cnn", 0).state_dict().items()}, str(path))
    return path


@pytest.mark.slow  # fits SpuFix end to end (~3 s)
def test_cli_fit_push_then_run_auto(cli, hub, tmp_path):
    checkpoint = _planted_checkpoint(tmp_path)
    components = tmp_path / "components.json"
    components.write_text(json.dumps({"2": [0], "8": [0, 1]}))
    repo = auto_location("planted:cnn")[len("hf://") :]
    env = {**hub.env, "SPURBENCH_CACHE": str(tmp_path / "cache")}
    fit = cli(
        "spufix",
        "fit",
        "--model",
        "planted:cnn",
        "--checkpoint",
        str(checkpoint),
        "--train-data",
        "planted",
        "--limit",
        "12",
        "--components",
        str(components),
        "-o",
        str(tmp_path / "art"),
        "--push",
        repo,
        "-q",
        cwd=tmp_path,
        env=env,
    )
    assert fit.returncode == 0, fit.stderr
    assert "pushed" in fit.stdout
    assert json.loads(hub.files(repo)["spufix.json"])["components"] == {"2": [0], "8": [0, 1]}

    run = cli(
        "run",
        "--model",
        "planted:cnn",
        "--checkpoint",
        str(checkpoint),
        "--spufix",
        "auto",
        "--limit",
        "4",
        "--bootstrap",
        "0",
        "-q",
        "-o",
        str(tmp_path / "out"),
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    result = read_result(tmp_path / "out" / result_filename("planted:cnn", "planted"))
    assert set(result.heads) == {"plain", "spufix"}


def test_cli_auto_without_a_published_artifact_fails_in_one_line(cli, hub, tmp_path):
    checkpoint = _planted_checkpoint(tmp_path)
    proc = cli(
        "run",
        "--model",
        "planted:cnn",
        "--checkpoint",
        str(checkpoint),
        "--spufix",
        "auto",
        "-o",
        str(tmp_path / "out"),
        cwd=tmp_path,
        env={**hub.env, "SPURBENCH_CACHE": str(tmp_path / "cache")},
    )
    one_line_error(proc, "--spufix auto", "planted:cnn", "hf://spurbench/spufix-planted-cnn", "spufix fit")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
