"""Reliability suite (issue 11): bad inputs and faults, through the real CLI, for every command.

Each bad-input case must end in one line on stderr, exit status 2, no traceback and no result file.
Each corruption case (a damaged cache entry) must end in a result identical to the undamaged run.
The count of cases is reported in the README under "Reliability".

Round 2 (issue 23, "Nothing silently wrong"): each case of the issue and where its tests live. Every one
of these tests was run against the code before its fix and failed there (the exceptions are named).

- Served files stay inside their folder (symlinks to files and folders, relative and absolute, at every
  level; a folder whose served subfolder leads out is refused at start): test_reliability_pages.py
  ``test_a_label_folder_whose_images_lead_out_is_refused_at_start``, ``..._mining_folder_...``,
  ``test_the_pages_refuse_to_start_through_the_cli``, ``test_the_{label,verify}_page_serves_no_file_outside_the_folder``.
- Read folders stay inside themselves (pools, --data-dir layouts, ImageNet val, spurious-folder):
  test_reliability_newuser.py ``test_a_pool_link_out_of_the_pool_is_refused`` and the tests after it.
- 1 a run replaced results of another configuration: test_reliability_results.py ``test_case1_*``.
- 2 a plugin's positives silently cropped: test_reliability_newuser.py ``test_a_benchmark_must_state_each_roles_geometry``,
  ``test_a_plugin_without_geometry_is_refused_in_one_line_when_it_loads``, ``test_built_in_plugins_keep_their_geometry``.
- 3 a page obeyed a malformed body: test_reliability_pages.py ``test_a_malformed_{label,verdict}_body_*`` and the
  property-based ``test_the_{label,verify}_page_from_its_schema`` (schemathesis).
- 4 malformed inputs coerced: test_reliability_finding.py ``test_discover_refuses_a_range_that_runs_backwards``,
  ``test_components_are_plain_integers``, ``test_mine_and_spufix_fit_refuse_ranks_that_are_not_integers``,
  ``test_mine_refuses_components_of_another_kind_or_discovery``, ``test_a_nan_in_a_saved_basis_is_named``; here
  ``test_malformed_spufix_artifacts_are_refused[boolean component|float component]`` and
  ``test_malformed_source_alphas_are_one_line``.
- 5 outputs where they must not land: test_reliability_pages.py ``test_export_never_writes_over_the_folders_own_files``;
  test_reliability_finding.py ``test_mine_out_and_pool_do_not_overlap``, ``test_sweep_retry_refuses_a_record_that_leads_out_of_the_output``,
  ``test_sweep_retry_reports_a_truncated_record``.
- 6 build rewrote the tracked board: test_reliability_results.py ``test_case6_*``.
- 7 fast keys lost labels; O(1) saves: test_reliability_pages.py ``test_keys_faster_than_saves_*`` (Chromium, 10,000
  records) and the ledger tests (migration, torn line, bad line, other server); perf/p12_label_save.py.
- 8 silent no-ops: test_reliability_pages.py ``test_export_of_nothing_is_an_error_not_an_empty_file``,
  ``test_labels_of_components_the_discovery_lacks_are_named_in_a_warning``; test_reliability_finding.py
  ``test_an_empty_components_file_is_refused_by_spufix_fit_and_mine``.
- 9 expensive work before cheap checks: test_reliability_finding.py ``test_mine_checks_the_files_before_the_model_loads``;
  test_reliability_pages.py ``test_bad_folders_ports_and_outs_fail_before_torch_is_imported``.
- Tracebacks: test_reliability_finding.py ``test_discover_bounds_a_class_range_before_building_it``,
  ``test_a_deeply_nested_json_file_is_one_line``, ``test_a_basis_wider_than_the_features_is_one_line``,
  ``test_sweep_when_its_jobs_folder_is_a_file``; test_reliability_newuser.py ``test_an_invalid_hub_repo_id_is_one_line``,
  ``test_an_invalid_hub_pool_id_is_one_line``.
- 10 no progress without a terminal: test_reliability_newuser.py ``test_progress_*``, ``test_feature_extraction_*``,
  ``test_a_run_into_a_pipe_shows_stages_and_counts``.
- 11 plugin errors and ground truth: test_reliability_results.py ``test_case11_*``; test_reliability_newuser.py
  ``test_a_ground_truth_without_spurious_only_validation_images_is_refused_when_handed_over``.
- 12 the Hub when there is none: test_reliability_newuser.py ``test_no_hub_fails_fast_and_quietly_naming_local_weights``,
  ``test_a_model_of_another_label_space_is_told_where_it_can_run``.
- 13 finding your way: test_reliability_results.py ``test_case13_*``.
- 14 DataLoader warnings: test_reliability_results.py ``test_case14_*``.
- 15 a CPU-only install: README only ("Two commands on a fresh machine").
- Kill and resume (SIGINT and SIGKILL): test_reliability_results.py ``test_kill_mid_features_then_the_same_command_gives_the_uninterrupted_result``
  (run); test_reliability_finding.py ``test_{discover,mine,spufix_fit}_killed_and_run_again_equals_an_uninterrupted_run``.
  These and the kill/resume tests are the exception above: resuming already worked, so they guard, not fix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from spurbench.benchmarks.planted.training import build_model
from tests.support.one_line import one_line_error
from tests.test_cli import spurbench
from tests.test_cli_spurious_imagenet import MODEL, _checkpoint
from tests.test_spurious_imagenet import make_upstream, make_val

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "leaderboard" / "results").glob("planted__*.json"))  # the spurious-AUC results
# .ci/run installs a typer of the line before 0.29 (which used the separate click package) here:
OLD_TYPER = str(Path(os.environ["SPURBENCH_OLD_TYPER_PATH"]).resolve()) if os.environ.get("SPURBENCH_OLD_TYPER_PATH") else None
TYPER_LINES = [None] + ([OLD_TYPER] if OLD_TYPER else [])


def _subprocess_cli(*args: str, cwd: Path, typer_path: str | None = None) -> subprocess.CompletedProcess:
    """The console script in a fresh interpreter, optionally with another typer line first on the path."""
    extra = {"PYTHONPATH": os.pathsep.join([typer_path, str(ROOT)])} if typer_path else {}
    return spurbench(*args, cwd=cwd, env=extra)


def _planted_weights(path: Path, poison: str | None = None) -> Path:
    torch.manual_seed(0)
    state = {k: v.contiguous().clone() for k, v in build_model("cnn", 0).state_dict().items()}
    if poison == "head":
        state["fc.weight"][0, 0] = float("nan")
    elif poison == "features":
        first = next(k for k in state if k.endswith("weight") and state[k].ndim == 4)
        state[first][0, 0, 0, 0] = float("inf")
    save_file(state, str(path))
    return path


# ------------------------------------------------------------------------------- run: usage and options

USAGE_CASES = {
    "batch size 0": (["run", "--batch-size", "0"], ["--batch-size"]),
    "limit 0": (["run", "--limit", "0"], ["--limit"]),
    "negative bootstrap": (["run", "--bootstrap", "-5"], ["--bootstrap"]),
    "unknown flag": (["run", "--frobnicate"], ["--frobnicate"]),
    "unknown command": (["frobnicate"], ["frobnicate"]),
    "spufix fit without --model": (["spufix", "fit", "--train-data", "planted"], ["--model"]),
    "float where an int belongs": (["run", "--limit", "two"], ["--limit"]),
}


@pytest.mark.parametrize("typer_path", TYPER_LINES, ids=lambda p: "typer-bundled-click" if p is None else "typer-with-click-package")
@pytest.mark.parametrize("case", sorted(USAGE_CASES))
def test_usage_errors_are_one_line_exit_2(cli, tmp_path, case, typer_path):
    args, needles = USAGE_CASES[case]
    output = ["--output", str(tmp_path / "out")] if args[0] == "run" else []
    # The installed typer runs in this process; another typer line needs a fresh interpreter with it first on the path.
    proc = cli(*args, *output, cwd=tmp_path) if typer_path is None else _subprocess_cli(*args, *output, cwd=tmp_path, typer_path=typer_path)
    one_line_error(proc, *needles, out=tmp_path / "out")


def test_help_exits_0(cli, tmp_path):
    for args in ([], ["--help"], ["run", "--help"], ["spufix", "fit", "--help"], ["leaderboard", "verify", "--help"]):
        proc = cli(*args, cwd=tmp_path)
        assert proc.returncode == 0 and "Usage" in proc.stdout, (args, proc.stderr)


RUN_CASES = {
    "bootstrap over the verify cap": (["--bootstrap", "100000000"], ["--bootstrap", "10000"]),
    "device gpu0": (["--device", "gpu0"], ["gpu0"]),
    "device cuda:7": (["--device", "cuda:7"], ["cuda:7"]),
    "markup in a model name": (["--model", "planted:[bold]cnn[/bold]"], ["planted:[bold]cnn[/bold]"]),
    "newline in a model name": (["--model", "planted:cnn\nx"], ["planted:cnn\\nx"]),
    "temperature nan": (["--temperature", "nan"], ["temperature"]),
    "spufix temperature 0": (["--spufix-temperature", "0"], ["--spufix-temperature"]),
    "missing checkpoint": (["--checkpoint", "missing.safetensors"], ["missing.safetensors", "does not exist"]),
    "pickled checkpoint": (["--checkpoint", "weights.pt"], ["weights.pt", ".safetensors"]),
    "garbage checkpoint": (["--checkpoint", "garbage.safetensors"], ["garbage.safetensors", "not a readable safetensors"]),
    "checkpoint of another architecture": (
        ["--model", "planted:resnet", "--checkpoint", "cnn.safetensors"],
        ["cnn.safetensors", "does not fit"],
    ),
    "NaN in the classifier": (["--checkpoint", "nan-head.safetensors"], ["classifier weights contain NaN or inf"]),
    "inf in the backbone": (["--checkpoint", "inf-features.safetensors"], ["non-finite features", "planted-generator"]),
    "missing SpuFix artifact": (["--spufix", "no-such-artifact"], ["no-such-artifact"]),
    "unknown benchmark": (["--benchmark", "imagenet-x"], ["imagenet-x"]),
}


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run-inputs")
    _planted_weights(folder / "cnn.safetensors")
    _planted_weights(folder / "nan-head.safetensors", "head")
    _planted_weights(folder / "inf-features.safetensors", "features")
    (folder / "weights.pt").write_bytes(b"\x80\x04not really a pickle")
    (folder / "garbage.safetensors").write_bytes(b"\x00" * 64)
    return folder


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_run_bad_inputs(cli, run_inputs, tmp_path, case):
    extra, needles = RUN_CASES[case]
    args = ["run", "--limit", "2", "--bootstrap", "0", "-q", "--output", str(tmp_path / "out")]
    if "--model" not in extra:
        args += ["--model", "planted:cnn"]
    if "--checkpoint" not in extra and "--model" not in extra:
        args += ["--checkpoint", str(run_inputs / "cnn.safetensors")]
    one_line_error(cli(*args, *extra, cwd=run_inputs), *needles, out=tmp_path / "out")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_run_on_cuda_without_one(cli, run_inputs, tmp_path):
    proc = cli(
        "run",
        "-m",
        "planted:cnn",
        "--checkpoint",
        str(run_inputs / "cnn.safetensors"),
        "--device",
        "cuda",
        "-o",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    one_line_error(proc, "no CUDA device", out=tmp_path / "out")


@pytest.mark.parametrize("kind", ["a file", "under /proc"])
def test_unwritable_output_fails_before_any_work(cli, run_inputs, tmp_path, kind):
    out = tmp_path / "taken"
    if kind == "a file":
        out.write_text("not a folder")
    else:
        out = Path("/proc/spurbench-out")
    start = time.monotonic()
    proc = cli("run", "-m", "planted:cnn", "--checkpoint", str(run_inputs / "cnn.safetensors"), "-o", str(out), cwd=tmp_path)
    one_line_error(proc, "output folder")
    assert time.monotonic() - start < 30  # refused up front, not after the forward pass


def test_model_list_typo_is_refused_with_a_suggestion(cli, tmp_path):
    (tmp_path / "models.yaml").write_text("models:\n  - model: planted:cnn\n    chekpoint: w.safetensors\n")
    proc = cli("run", "--model-list", str(tmp_path / "models.yaml"), "-o", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, "unknown key 'chekpoint'", "Did you mean: checkpoint", out=tmp_path / "out")


@pytest.mark.slow
def test_ctrl_c_exits_130_and_says_how_to_resume(run_inputs, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SPURBENCH_CACHE": str(cache)}
    proc = subprocess.Popen(
        # all images and the largest bootstrap: seconds of work left when the features start
        [
            sys.executable,
            "-m",
            "spurbench",
            "run",
            "-m",
            "planted:cnn",
            "--checkpoint",
            str(run_inputs / "cnn.safetensors"),
            "--bootstrap",
            "10000",
            "-q",
            "-o",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts jobs in the background (as CI may) leaves SIGINT ignored, and an ignored
        # signal stays ignored across exec: give the child the default a terminal user's process has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        start_new_session=True,  # its own process group, so the signal reaches only the run
    )
    deadline = time.monotonic() + 120
    while not any((cache / "features").glob("*/manifest.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # wait until the run is computing features: Ctrl-C then lands mid-run
    # Like a terminal, signal the whole process group (the DataLoader worker too). A SIGINT that lands
    # inside CPython's at-fork handlers is reported as "Exception ignored" and lost, so press again,
    # as a user would, while the run goes on.
    for _ in range(5):
        time.sleep(0.5)
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; run the same command to resume" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------ a bad benchmark image


@pytest.fixture(scope="module")
def si_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("si")
    upstream = make_upstream(root / "upstream", {(1, 3): 4, (309, 0): 4})
    val = make_val(root / "val", [1, 309], per_class=3)
    return root, upstream, val, _checkpoint(root / "ck.safetensors")


def _si_args(data_dir: Path, val: Path, ckpt: Path, out: Path) -> list[str]:
    return [
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--data-dir",
        str(data_dir),
        "--imagenet-val",
        str(val),
        "--model",
        MODEL,
        "--checkpoint",
        str(ckpt),
        "--bootstrap",
        "20",
        "-q",
        "--output",
        str(out),
    ]


def test_corrupt_image_in_a_worker_is_one_line_naming_the_file(cli, si_data, tmp_path):
    _root, upstream, val, ckpt = si_data
    broken = tmp_path / "upstream"
    shutil.copytree(upstream, broken)
    victim = sorted((broken / "spurious_class_309_comp_0").iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:40])  # a truncated image
    proc = cli(*_si_args(broken, val, ckpt, tmp_path / "out"), "--no-cache", cwd=tmp_path)
    one_line_error(proc, victim.name, out=tmp_path / "out")


def test_dataset_build_decodes_every_image(cli, si_data, tmp_path):
    _, upstream, _, _ = si_data
    broken = tmp_path / "upstream"
    shutil.copytree(upstream, broken)
    victim = next(p for p in sorted((broken / "spurious_class_1_comp_3").iterdir()) if p.suffix == ".jpg")
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 2 // 3])  # header intact, scan data cut: verify() alone accepts it
    proc = cli("dataset", "build", "--from-upstream", str(broken), "--out", str(tmp_path / "built"), cwd=tmp_path)
    one_line_error(proc, victim.name)
    assert not (tmp_path / "built" / "spurbench.json").exists()


# -------------------------------------------------------------------------- damaged cache entries are repaired


def _result_without_provenance(path: Path) -> dict:
    raw = json.loads(path.read_text())
    raw.pop("provenance")
    return raw


def _feature_dirs(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "features").iterdir() if p.name.startswith("spurious-imagenet-"))


def _zero_a_row(folder: Path) -> None:
    shard = folder / "shard-00000.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-64:] = bytes(64)  # the last row's data bytes: the header (ids, shape) stays valid
    shard.write_bytes(bytes(raw))


def _corrupt_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{not json")


def _wrong_width(folder: Path) -> None:
    shard = folder / "shard-00000.safetensors"
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt") as handle:
        meta = handle.metadata()
    feats = load_file(str(shard))["features"]
    save_file({"features": feats[:, :-1].contiguous()}, str(shard), metadata=meta)


@pytest.mark.parametrize("damage", [_zero_a_row, _corrupt_manifest, _wrong_width], ids=["zeroed row", "corrupt manifest", "wrong width"])
def test_damaged_feature_cache_gives_the_undamaged_result(cli, si_data, tmp_path, damage):
    _root, upstream, val, ckpt = si_data
    cache = tmp_path / "cache"
    env = {"SPURBENCH_CACHE": str(cache)}
    first = cli(*_si_args(upstream, val, ckpt, tmp_path / "a"), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    (folder,) = _feature_dirs(cache)
    damage(folder)
    second = cli(*_si_args(upstream, val, ckpt, tmp_path / "b"), cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr
    assert "note: feature cache" in second.stderr and "recomputing" in second.stderr
    (a,), (b,) = list((tmp_path / "a").glob("*.json")), list((tmp_path / "b").glob("*.json"))
    assert _result_without_provenance(a) == _result_without_provenance(b)


def test_damaged_cached_weights_of_a_trained_seed_are_retrained(monkeypatch, tmp_path, capsys):
    """Seeds other than the shipped seed 0 train on first use and are cached; damaged cached weights are
    trained again with a note (damaged shipped weights are an error instead: tests/test_planted_weights.py)."""
    from spurbench.adapters import load_model
    from spurbench.benchmarks.planted import models as planted_models

    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path / "cache"))
    trainings = []

    def quick_training(arch, seed, **kwargs):  # the recipe's own training is tested elsewhere; here: when it runs
        trainings.append((arch, seed))
        return build_model(arch, seed), {"arch": arch, "seed": seed, "epochs": 1, "train_images": 10}

    monkeypatch.setattr(planted_models, "train_planted_model", quick_training)
    first = load_model("planted:cnn.seed1")
    (weights,) = (tmp_path / "cache" / "planted").glob("cnn-*seed1.safetensors")
    state = load_file(str(weights))
    state["fc.weight"][0, 0] += 1.0  # a flipped bit's worth of damage, header intact
    save_file(state, str(weights))
    again = load_model("planted:cnn.seed1")
    assert trainings == [("cnn", 1), ("cnn", 1)]
    assert "do not match their recorded digest; training again" in capsys.readouterr().err
    assert again.model.fc.weight.equal(first.model.fc.weight) and load_file(str(weights))["fc.weight"].equal(first.model.fc.weight)


# ------------------------------------------------------------------------------------- SpuFix artifacts


def _artifact(folder: Path, weights: Path, revision: str | None = "checkpoint") -> Path:
    """A valid artifact for planted:cnn with ``weights``: class 2, two orthonormal directions."""
    from spurbench.cache import content_digest
    from spurbench.spufix.artifact import SpuFixArtifact

    generator = torch.Generator().manual_seed(0)
    width = build_model("cnn", 0).fc.weight.shape[1]
    dirs = torch.linalg.qr(torch.randn(width, 2, generator=generator, dtype=torch.float64))[0].T.contiguous()
    SpuFixArtifact(
        source_model="planted:cnn",
        target_model="planted:cnn",
        target_weights_revision=content_digest(weights) if revision == "checkpoint" else revision,
        components={2: [0, 3]},
        images_per_class={2: 50},
        directions={2: (torch.randn(width, generator=generator, dtype=torch.float64), dirs)},
    ).save(folder)
    return folder


def _edit_json(folder: Path, edit) -> None:
    meta = json.loads((folder / "spufix.json").read_text())
    edit(meta)
    (folder / "spufix.json").write_text(json.dumps(meta))


def _edit_tensors(folder: Path, edit, rehash: bool = True) -> None:
    from spurbench.cache import content_digest

    tensors = load_file(str(folder / "spufix.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "spufix.safetensors"))
    if rehash:  # a forger who also updates the digest: the tensor checks must still catch it
        _edit_json(folder, lambda m: m.__setitem__("tensors_sha256", content_digest(folder / "spufix.safetensors").removeprefix("sha256:")))


ARTIFACT_CASES = {
    "not JSON": (lambda f: (f / "spufix.json").write_text("{"), "not valid JSON"),
    "duplicate key": (
        lambda f: (f / "spufix.json").write_text((f / "spufix.json").read_text().replace('"format": 2,', '"format": 2, "format": 2,')),
        "duplicate key",
    ),
    "old format": (lambda f: _edit_json(f, lambda m: m.__setitem__("format", 1)), "format 1"),
    "unknown JSON key": (lambda f: _edit_json(f, lambda m: m.__setitem__("componets", {})), "componets"),
    "components differ from tensors": (
        lambda f: _edit_json(f, lambda m: m.__setitem__("components", {"2": [0]})),
        "do not fit 1 component",
    ),
    "components of another class": (
        lambda f: _edit_json(f, lambda m: (m.__setitem__("components", {"3": [0, 3]}), m.__setitem__("images_per_class", {"3": 50}))),
        "does not match the components",
    ),
    "negative component": (lambda f: _edit_json(f, lambda m: m.__setitem__("components", {"2": [0, -3]})), "components"),
    # issue 23: pydantic's lax mode read ``true`` as the rank 1 and ``3.0`` as 3
    "boolean component": (lambda f: _edit_json(f, lambda m: m.__setitem__("components", {"2": [0, True]})), "components.2.1"),
    "float component": (lambda f: _edit_json(f, lambda m: m.__setitem__("components", {"2": [0, 3.0]})), "components.2.1"),
    "tensors changed, digest kept": (
        lambda f: _edit_tensors(f, lambda t: t["mean.2"].mul_(1e30), rehash=False),
        "does not match the digest",
    ),
    "float16 tensors": (lambda f: _edit_tensors(f, lambda t: t.__setitem__("mean.2", t["mean.2"].half())), "float16"),
    "int32 tensors": (lambda f: _edit_tensors(f, lambda t: t.__setitem__("directions.2", t["directions.2"].int())), "int32"),
    "scaled directions": (lambda f: _edit_tensors(f, lambda t: t["directions.2"].mul_(1e30)), "unit vectors"),
    "NaN in the mean": (lambda f: _edit_tensors(f, lambda t: t["mean.2"].__setitem__(0, float("nan"))), "NaN or inf"),
    "singular directions": (
        lambda f: _edit_tensors(f, lambda t: t["directions.2"].__setitem__(1, t["directions.2"][0])),
        "linearly dependent",
    ),
    "missing tensor": (lambda f: _edit_tensors(f, lambda t: t.pop("mean.2")), "missing 'mean.2'"),
    "wrong width": (
        lambda f: _edit_tensors(
            f,
            lambda t: (
                t.__setitem__("mean.2", t["mean.2"][:-1].contiguous()),
                t.__setitem__("directions.2", torch.nn.functional.normalize(t["directions.2"][:, :-1], dim=1).contiguous()),
            ),
        ),
        "width",
    ),
    "class outside the model": (
        lambda f: (
            _edit_tensors(f, lambda t: (t.__setitem__("mean.99", t.pop("mean.2")), t.__setitem__("directions.99", t.pop("directions.2")))),
            _edit_json(f, lambda m: (m.__setitem__("components", {"99": [0, 3]}), m.__setitem__("images_per_class", {"99": 50}))),
        ),
        "class 99",
    ),
    "truncated tensors file": (
        lambda f: (f / "spufix.safetensors").write_bytes((f / "spufix.safetensors").read_bytes()[:100]),
        "does not match the digest",
    ),
}


@pytest.mark.parametrize("case", sorted(ARTIFACT_CASES))
def test_malformed_spufix_artifacts_are_refused(cli, run_inputs, tmp_path, case):
    edit, needle = ARTIFACT_CASES[case]
    folder = _artifact(tmp_path / "artifact", run_inputs / "cnn.safetensors")
    edit(folder)
    args = [
        "run",
        "-m",
        "planted:cnn",
        "--checkpoint",
        str(run_inputs / "cnn.safetensors"),
        "--spufix",
        str(folder),
        "--limit",
        "2",
        "--bootstrap",
        "0",
        "-q",
        "-o",
        str(tmp_path / "out"),
    ]
    one_line_error(cli(*args, cwd=tmp_path), needle, out=tmp_path / "out")


def test_a_valid_artifact_scores_and_one_for_other_weights_is_refused(cli, run_inputs, tmp_path):
    ckpt = run_inputs / "cnn.safetensors"
    args = ["run", "-m", "planted:cnn", "--checkpoint", str(ckpt), "--limit", "2", "--bootstrap", "0", "-q", "-o", str(tmp_path / "out")]
    proc = cli(*args, "--spufix", str(_artifact(tmp_path / "other", ckpt, revision="sha256:" + "0" * 64)), cwd=tmp_path)
    one_line_error(proc, "fitted on weights", out=tmp_path / "out")
    proc = cli(*args, "--spufix", str(_artifact(tmp_path / "artifact", ckpt)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------ spufix, dataset


def test_spufix_fit_and_import_bad_inputs(cli, run_inputs, tmp_path):
    (tmp_path / "components.json").write_text("{not json")
    ckpt = str(run_inputs / "cnn.safetensors")
    cases = [
        (
            [
                "spufix",
                "fit",
                "-m",
                "planted:cnn",
                "--checkpoint",
                ckpt,
                "--train-data",
                "planted",
                "--components",
                str(tmp_path / "components.json"),
            ],
            "not valid JSON",
        ),
        (["spufix", "fit", "-m", "planted:cnn", "--checkpoint", ckpt, "--train-data", "planted", "--device", "gpu0"], "gpu0"),
        (["spufix", "fit", "-m", "planted:cnn", "--checkpoint", ckpt, "--train-data", str(tmp_path / "no-train")], "no-train"),
        (
            [
                "spufix",
                "fit",
                "-m",
                "planted:cnn",
                "--source",
                str(tmp_path),
                "--source-model",
                "planted:resnet",
                "--train-data",
                "planted",
            ],
            "not both",
        ),
        (["spufix", "import-alphas", str(tmp_path / "no-alphas"), "--train-data", str(tmp_path)], "no-alphas"),
        (["dataset", "build", "--from-upstream", str(tmp_path / "nope"), "--out", str(tmp_path / "built")], "nope"),
        (["ls", "--model-lists-dir", str(tmp_path / "model-lists")], "malformed YAML"),
    ]
    (tmp_path / "model-lists").mkdir()
    (tmp_path / "model-lists" / "bad.yaml").write_text("models: [\n")
    for args, needle in cases:
        one_line_error(cli(*args, cwd=tmp_path), needle)
    assert not list(tmp_path.glob("spufix-*"))  # no half-written artifact


def _source_alphas(folder: Path) -> Path:
    from spurbench.spufix.fit import SourceAlphas

    alphas = {2: torch.arange(6, dtype=torch.float64).reshape(3, 2)}
    return SourceAlphas("planted:cnn", {2: [0, 3]}, {2: ["a", "b", "c"]}, alphas).save(folder)


SOURCE_ALPHAS_CASES = {  # issue 23: each was a KeyError / TypeError / safetensors traceback
    "not JSON": (lambda f: (f / "alphas.json").write_text("{"), "not a valid source-alphas file"),
    "missing key": (lambda f: _edit_alphas(f, lambda m: m.pop("image_ids")), "image_ids"),
    "boolean rank": (lambda f: _edit_alphas(f, lambda m: m.__setitem__("components", {"2": [0, True]})), "components.2.1"),
    "rows and ids differ": (lambda f: _edit_alphas(f, lambda m: m.__setitem__("image_ids", {"2": ["a"]})), "3 alpha rows but 1 image ids"),
    "columns and components differ": (
        lambda f: _edit_alphas(f, lambda m: m.__setitem__("components", {"2": [0]})),
        "2 alpha columns but 1 components",
    ),
    "truncated tensors": (
        lambda f: (f / "alphas.safetensors").write_bytes((f / "alphas.safetensors").read_bytes()[:40]),
        "not a readable safetensors file",
    ),
    "NaN alphas": (
        lambda f: save_file({"alphas.2": torch.full((3, 2), float("nan"), dtype=torch.float64)}, str(f / "alphas.safetensors")),
        "finite",
    ),
}


def _edit_alphas(folder: Path, edit) -> None:
    meta = json.loads((folder / "alphas.json").read_text())
    edit(meta)
    (folder / "alphas.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", sorted(SOURCE_ALPHAS_CASES))
def test_malformed_source_alphas_are_one_line(tmp_path, case):
    from spurbench.errors import SpurbenchError
    from spurbench.spufix.fit import SourceAlphas

    edit, needle = SOURCE_ALPHAS_CASES[case]
    folder = _source_alphas(tmp_path / "alphas")
    assert SourceAlphas.load(folder).components == {2: [0, 3]}  # the untouched folder loads
    edit(folder)
    with pytest.raises(SpurbenchError, match=None) as caught:
        SourceAlphas.load(folder)
    assert needle in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


# ------------------------------------------------------------------------------- leaderboard verify, build


def _tampered_file(tmp_path: Path, text_edit=None, edit=None) -> Path:
    text = COMMITTED[0].read_text()
    if edit is not None:
        raw = json.loads(text)
        edit(raw)
        text = json.dumps(raw)
    if text_edit is not None:
        text = text_edit(text)
    path = tmp_path / COMMITTED[0].name
    path.write_text(text)
    return path


def _first(raw: dict, role: str, confident: bool = False) -> str:
    head = raw["heads"]["plain"]
    return next(i for i, r in raw["images"].items() if r["role"] == role and (not confident or head["image_prob"][i] > 0.9))


def _flip_confident_positives(raw: dict) -> None:
    """Mark confident class images as not top-1 and recompute every metric to match: only the
    softmax's own constraint (p > 1/2 implies top-1) can catch it."""
    import numpy as np

    from spurbench.metrics import ClassScores, aggregate_metrics, class_metrics

    head = raw["heads"]["plain"]
    for image_id, record in raw["images"].items():
        if record["role"] == "positive" and head["image_prob"][image_id] > 0.9:
            head["image_top1"][image_id] = False
    per_class = []
    for row in head["classes"]:
        ids = {
            role: [i for i, r in raw["images"].items() if r["class_index"] == row["class_index"] and r["role"] == role]
            for role in ("positive", "negative")
        }
        scores = ClassScores(
            row["class_index"],
            *(np.array([head["image_prob"][i] for i in ids[r]]) for r in ("positive", "negative")),
            *(np.array([head["image_top1"][i] for i in ids[r]]) for r in ("positive", "negative")),
        )
        per_class.append(scores)
        row.update(class_metrics(scores).model_dump())
    head["aggregate"].update(aggregate_metrics(per_class, draws=head["aggregate"]["bootstrap_draws"]).model_dump())


VERIFY_CASES = {
    "probability above 1": (
        dict(edit=lambda raw: raw["heads"]["plain"]["image_prob"].__setitem__(_first(raw, "negative"), 1.5)),
        "image_prob",
    ),
    "negative probability": (
        dict(edit=lambda raw: raw["heads"]["plain"]["image_prob"].__setitem__(_first(raw, "negative"), -0.1)),
        "image_prob",
    ),
    "NaN probability": (
        dict(edit=lambda raw: raw["heads"]["plain"]["image_prob"].__setitem__(_first(raw, "negative"), float("nan"))),
        "NaN",
    ),
    "duplicate key": (
        dict(text_edit=lambda t: t.replace('"config_hash"', '"config_hash": "x", "config_hash"', 1)),
        "duplicate key 'config_hash'",
    ),
    "revision of 5000 digits": (
        dict(edit=lambda raw: raw["benchmark"].__setitem__("revision", "generator-v1-seed" + "9" * 5000)),
        "unknown revision",
    ),
    "confident positives not top-1, metrics recomputed": (dict(edit=_flip_confident_positives), "impossible for a softmax"),
    "not JSON": (dict(text_edit=lambda t: t[: len(t) // 2]), "invalid JSON"),
    "temperature 0": (dict(edit=lambda raw: raw["heads"]["plain"].__setitem__("temperature", 0)), "temperature"),
}


@pytest.mark.parametrize("case", sorted(VERIFY_CASES))
def test_verify_rejects_the_impossible(cli, tmp_path, case):
    kwargs, needle = VERIFY_CASES[case]
    path = _tampered_file(tmp_path, **kwargs)
    one_line_error(cli("leaderboard", "verify", str(path), cwd=tmp_path), str(path), needle)


def test_leaderboard_build_refuses_a_tampered_result_and_writes_nothing(cli, tmp_path):
    path = _tampered_file(tmp_path, edit=lambda raw: raw["heads"]["plain"]["image_prob"].__setitem__(_first(raw, "negative"), 2.0))
    proc = cli(
        "leaderboard",
        "build",
        "--results",
        str(path),
        "--out",
        str(tmp_path / "site"),
        "--board-dir",
        str(tmp_path / "board"),
        cwd=tmp_path,
    )
    one_line_error(proc, str(path))
    assert not (tmp_path / "site").exists() and not (tmp_path / "board").exists()


def test_board_markdown_escapes_names(tmp_path):
    from spurbench.leaderboard.build import build_board

    results = tmp_path / "results"
    results.mkdir()
    for path in COMMITTED:
        shutil.copy(path, results)
    (tmp_path / "model-lists").mkdir()
    (tmp_path / "model-lists" / "x.yaml").write_text(
        'models:\n  - model: planted:cnn\n    display_name: "<script>alert(1)</script> | *CNN*"\n    data: planted\n'
    )
    board = build_board(
        sorted(results.glob("*.json")), tmp_path / "site", board_dir=tmp_path / "board", model_lists_dir=tmp_path / "model-lists"
    )
    row = next(line for line in board.markdown.read_text().splitlines() if "planted:cnn" in line)
    assert "<script>" not in row and "\\<script\\>" in row and "\\| \\*CNN\\*" in row
    assert row.count(" | ") == 12  # 13 cells: the name's pipe did not add a column
    page = board.html.read_text()
    assert page.index("&lt;script&gt;alert(1)") < page.index("<script>")  # escaped; the only <script> is the page's own
