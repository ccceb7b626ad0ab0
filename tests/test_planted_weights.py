"""The embedded benchmark's models load shipped weights (seed 0), train reproducibly on purpose
(``spurbench train``), and its generator renders the same pixels on every machine (issue 24, section 5)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spurbench.adapters import load_model
from spurbench.benchmarks.planted import models as planted_models
from spurbench.benchmarks.planted import weights as W
from spurbench.benchmarks.planted.training import TRAIN_VERSION, build_model
from spurbench.benchmarks.shared import planted_generator as P
from spurbench.errors import DataError
from spurbench.files import file_sha256
from tests.support.one_line import one_line_error
from tests.test_cli import spurbench
from tests.test_reliability_finding import SIGNALS, _run, _spurbench_env

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("cnn", "resnet")
# sha256 of the pixel bytes of generate_test_sets(0) (clean, then spurious) and generate_training_set(0).
# Computed on this project's 2-core AMD EPYC development machine (numpy 2.4.6, Python 3.11); it must match on
# every machine: the README's numbers and the shipped weights stand on exactly these images.
GENERATOR_PIXELS_SHA256 = "02b02716d085ecde08f30c57e4e6f9ec9e53ef552db62abe973959d55074019b"


def _no_training(*args, **kwargs):
    raise AssertionError("the shipped weights must be used: nothing may train")


def _revision(arch: str) -> str:
    return f"generator-v{P.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed0 shipped sha256:{W.SHIPPED_SHA256[arch]}"


# ---- the weights file writer ----------------------------------------------------------------------


def test_the_same_tensors_are_written_as_the_same_bytes(tmp_path):
    """safetensors orders its metadata map at random per call: the weights of one training, saved twice,
    were two files half of the time (the sha256 that differed after an interrupted run)."""
    net = build_model("cnn", 0)
    digests = set()
    for i in range(16):
        weights, stats = tmp_path / f"w{i}.safetensors", tmp_path / f"w{i}.json"
        planted_models._save(net, {"seed": 0, "epochs": 6, "train_images": 4000, "seconds": i}, weights, stats)
        digests.add(file_sha256(weights))
    assert len(digests) == 1


# ---- shipped weights ------------------------------------------------------------------------------


def test_the_shipped_files_are_the_recorded_ones():
    for arch in ARCHS:
        path = W.shipped_file(arch, 0, (P.GENERATOR_VERSION, TRAIN_VERSION))
        assert path is not None, "the shipped weights were trained with another generator or recipe: train and ship them again"
        assert file_sha256(path) == W.SHIPPED_SHA256[arch], path
    sizes = sum(p.stat().st_size for p in W.SHIPPED_DIR.glob("*.safetensors"))
    assert 0.5e6 < sizes < 1.2e6, sizes
    assert '"data/planted/*"' in (ROOT / "pyproject.toml").read_text()  # installed with the package


def test_the_default_models_load_the_shipped_weights_and_never_train(monkeypatch, tmp_path):
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(planted_models, "train_planted_model", _no_training)
    for arch in ARCHS:
        adapter = load_model(f"planted:{arch}")
        assert adapter.card.weights_revision == _revision(arch)
        assert adapter.training_stats["shipped"] is True and adapter.training_stats["clean_test_accuracy"] >= 0.9
        shipped = W.shipped_file(arch, 0, W.SHIPPED_VERSIONS)
        expected = build_model(arch, 0)
        planted_models._load_state(expected, shipped)
        for name, tensor in expected.state_dict().items():
            assert torch.equal(tensor, adapter.model.state_dict()[name]), name
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # nothing trained into the cache


@pytest.mark.slow  # a fresh interpreter scoring the benchmark (seconds)
def test_a_fresh_cache_run_takes_no_training_step(tmp_path):
    cache = tmp_path / "cache"
    proc = spurbench(
        "run",
        "-m",
        "planted:cnn",
        "--limit",
        "5",
        "-o",
        "res",
        cwd=tmp_path,
        env={"SPURBENCH_CACHE": str(cache), "SPURBENCH_PROGRESS_INTERVAL": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training" not in proc.stderr, proc.stderr
    assert not (cache / "planted").exists()  # nothing trained into the cache
    (result,) = (tmp_path / "res").glob("*.json")
    assert json.loads(result.read_text())["model"]["weights_revision"] == _revision("cnn")


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_a_damaged_shipped_file_is_one_line_and_never_retrained(cli, monkeypatch, tmp_path, damage):
    shipped = tmp_path / "shipped"
    shutil.copytree(W.SHIPPED_DIR, shipped)
    (weights,) = shipped.glob("cnn-*.safetensors")
    if damage == "changed":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
    else:
        weights.unlink()
    monkeypatch.setattr(W, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(planted_models, "train_planted_model", _no_training)
    proc = cli("run", "-m", "planted:cnn", "--limit", "2", "-o", "res", cwd=tmp_path)
    needle = "do not match their recorded sha256" if damage == "changed" else "are missing; reinstall spurbench"
    one_line_error(proc, "shipped planted:cnn weights", needle, out=tmp_path / "res")
    assert not list(Path(str(tmp_path / "cache")).rglob("*.safetensors"))


def test_other_seeds_still_train_on_first_use(monkeypatch, tmp_path):
    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path / "cache"))
    calls = []

    def quick_training(arch, seed, **kwargs):  # the recipe's training is tested below; here: that it runs
        calls.append((arch, seed))
        return build_model(arch, seed), {"arch": arch, "seed": seed, "epochs": 6, "train_images": 4000}

    monkeypatch.setattr(planted_models, "train_planted_model", quick_training)
    adapter = load_model("planted:cnn.seed1")
    assert calls == [("cnn", 1)]
    (cached,) = (tmp_path / "cache" / "planted").glob("*.safetensors")
    assert cached.name == f"cnn-generator-v{P.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed1.safetensors"
    assert adapter.card.weights_revision == f"generator-v{P.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed1 sha256:{file_sha256(cached)}"
    assert load_model("planted:cnn.seed1").training_stats["cache_hit"] is True and calls == [("cnn", 1)]


# ---- spurbench train ------------------------------------------------------------------------------


def test_train_never_writes_into_the_package(cli, monkeypatch, tmp_path):
    monkeypatch.setattr(planted_models, "train_planted_model", _no_training)
    before = {p.name: p.read_bytes() for p in W.SHIPPED_DIR.iterdir()}
    (tmp_path / "link").symlink_to(W.SHIPPED_DIR)
    for out in (W.SHIPPED_DIR, tmp_path / "link", W.SHIPPED_DIR.parent / "new"):
        one_line_error(cli("train", "-m", "planted:cnn", "--out", str(out), cwd=tmp_path), "inside the installed spurbench package")
    assert {p.name: p.read_bytes() for p in W.SHIPPED_DIR.iterdir()} == before
    assert not (W.SHIPPED_DIR.parent / "new").exists()
    one_line_error(
        cli("train", "-m", "planted:cnn", "-m", "timm:resnet18", "--out", "w", cwd=tmp_path),
        "family 'timm' does not train its own weights",
        "planted",
    )
    one_line_error(cli("train", "-m", "planted:vit", "--out", "w", cwd=tmp_path), "unknown planted model")
    assert not (tmp_path / "w").exists()


# The recipe's steps on 1/60 of its work: two epochs, so that the run can be stopped after the first one
SHORT = ["train", "-m", "planted:cnn", "--epochs", "2", "--per-class", "20"]
INTERRUPTED = "interrupted; run the same command to train again from scratch (an unfinished training keeps nothing)"


def _interrupted_after_an_epoch(args: list[str], cwd: Path, cache: Path, sig: int) -> None:
    """tests/test_reliability_finding.py's ``_interrupted``, for a command that writes progress lines: start
    it, wait for its first epoch's line, then press Ctrl-C (SIGINT to its process group) or SIGKILL it."""
    log = cwd / f"stderr-{sig}.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spurbench", *args],
            cwd=cwd,
            env=_spurbench_env(cache),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while "1/2 epochs" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the command ended before it could be interrupted: " + log.read_text()[-2000:]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=300)
    err = log.read_text()
    assert "Traceback" not in err, err
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, err
    else:
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == INTERRUPTED, err


@pytest.fixture(scope="module")
def uninterrupted_training(tmp_path_factory) -> Path:
    """The short training run once without interruption (own cache): the folder both signals' runs must equal."""
    root = tmp_path_factory.mktemp("uninterrupted-training")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPURBENCH_PROGRESS_INTERVAL", "0")  # as the interrupted runs
        _run([*SHORT, "--out", "whole"], root, root / "cache")
    return root / "whole"


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS)
def test_train_interrupted_and_run_again_writes_the_same_bytes(uninterrupted_training, monkeypatch, tmp_path, sig):
    monkeypatch.setenv("SPURBENCH_PROGRESS_INTERVAL", "0")  # a progress line per epoch: when to interrupt
    cache = tmp_path / "cache"
    _interrupted_after_an_epoch([*SHORT, "--out", "again"], tmp_path, cache, sig)
    assert not list((tmp_path / "again").glob("*.safetensors"))  # nothing half-trained is kept: it starts from scratch
    _run([*SHORT, "--out", "again"], tmp_path, cache)
    (whole,) = uninterrupted_training.glob("*.safetensors")
    assert whole.name == f"cnn-generator-v{P.GENERATOR_VERSION}-train-v{TRAIN_VERSION}-seed0-epochs2-per-class20.safetensors"
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(p.name for p in uninterrupted_training.iterdir())
    assert (tmp_path / "again" / whole.name).read_bytes() == whole.read_bytes()


# ---- the generator ---------------------------------------------------------------------------------


@pytest.mark.slow  # renders 6000 images (seconds)
def test_the_generator_renders_the_recorded_pixels():
    tests, train = P.generate_test_sets(0), P.generate_training_set(0)
    digest = hashlib.sha256()
    for images in (tests.clean.images, tests.spurious.images, train.images):
        digest.update(images.tobytes())
    assert digest.hexdigest() == GENERATOR_PIXELS_SHA256


def test_a_shipped_digest_mismatch_is_a_data_error(monkeypatch, tmp_path):
    fake = tmp_path / "x.safetensors"
    fake.write_bytes(b"not weights")
    with pytest.raises(DataError, match="do not match their recorded sha256"):
        W.verified_shipped("cnn", fake)


# ---- what the README's numbers are stable to --------------------------------------------------------

# A probability may move by this much across CPUs and library builds (float32 features; seen: the 7th digit).
JITTER = 1e-6


def _committed(arch: str) -> dict:
    return json.loads((ROOT / "leaderboard" / "results" / f"planted__planted_{arch}.json").read_text())


@pytest.mark.parametrize("arch", ARCHS)
def test_no_class_auc_of_the_committed_results_hangs_on_a_float_jitter(arch):
    """No positive and negative of one class lie within 2 x JITTER of each other, for either head: every
    class AUC and AP (and so mAUC, mean AP and the worst-classes table) is exactly the same on a machine
    whose probabilities differ by less than JITTER."""
    result = _committed(arch)
    for head in result["heads"].values():
        prob = head["image_prob"]
        for k in range(len(P.PLANTED_CLASSES)):
            pos = [prob[i] for i, m in result["images"].items() if m["class_index"] == k and m["role"] == "positive"]
            neg = [prob[i] for i, m in result["images"].items() if m["class_index"] == k and m["role"] == "negative"]
            gaps = np.abs(np.subtract.outer(pos, neg))
            assert gaps.min() > 2 * JITTER, (arch, k, gaps.min())


@pytest.mark.slow  # scores 2000 generated images with each shipped model (seconds)
@pytest.mark.parametrize("arch", ARCHS)
def test_the_shipped_weights_give_the_committed_probabilities_within_the_jitter(arch):
    """On any machine: the shipped weights' plain-head probabilities are the committed ones to within JITTER
    (with the test above: the README's class AUCs exactly)."""
    from spurbench.benchmarks.planted import evaluation_benchmark
    from spurbench.benchmarks.planted.training import to_tensor

    result = _committed(arch)
    adapter = load_model(f"planted:{arch}")
    images = evaluation_benchmark(0).images
    x = to_tensor(np.stack([np.asarray(im.open()) for im in images]))
    with torch.no_grad():
        log_p = torch.log_softmax(adapter.logits(x).double(), dim=1)
    prob = log_p[torch.arange(len(images)), torch.tensor([im.class_index for im in images])].exp()
    committed = torch.tensor([result["heads"]["plain"]["image_prob"][im.image_id] for im in images], dtype=torch.float64)
    assert float((prob - committed).abs().max()) < JITTER


@pytest.mark.parametrize("arch", ARCHS)
def test_the_committed_results_name_the_shipped_weights(arch):
    assert _committed(arch)["model"]["weights_revision"] == _revision(arch), "regenerate the committed results from the shipped weights"
