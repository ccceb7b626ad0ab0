"""Reproducing the paper's protocol (issue 10): the score it prints, its input sizes, checkpoint
identity by content, and the robust model's temperature.

Facts checked against the authors' code (YanNeu/spurious_imagenet):
- dataset/spurious_score.py computes, per class, ``average_precision_score`` (class images positive,
  spurious images negative) and prints the mean as "Mean SpuriousScore"; "Joint" is the AP of all pooled
  images. Table 2's "mAUC" column comes from it.
- ``get_model`` evaluates a timm model at ``test_input_size`` when its pretrained config has one.
- the robust ResNet-50 is wrapped in ``TemperatureWrapper(model, 0.7155761122703552)`` (logits / T) for
  the plain evaluation; the SpuFix wrapper recomputes logits from the last layer without it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from sklearn.metrics import average_precision_score

from spurbench import cache
from spurbench.adapters.timm_adapter import TimmAdapter, timm_data_config
from spurbench.benchmarks.planted.training import build_model
from spurbench.benchmarks.spurious_imagenet import SpuriousImageNet
from spurbench.harness import evaluate
from spurbench.leaderboard.build import build_board
from spurbench.preprocessing import build_transform, eval_data_config, role_geometry
from spurbench.protocols import MODEL_TRANSFORM
from spurbench.results import read_result, result_filename
from spurbench.settings import FeatureSettings, RunSettings
from spurbench.testing import TinyAdapter, tiny_benchmark
from tests.support.one_line import one_line_error

PAPER = SpuriousImageNet.protocols["paper"]
ROOT = Path(__file__).resolve().parents[1]
PAPER_LIST = ROOT / "model-lists" / "paper.yaml"
COMMITTED = sorted((ROOT / "leaderboard" / "results").glob("planted__*.json"))  # the spurious-AUC results


def _tiny(features: FeatureSettings = FeatureSettings(batch_size=8, progress=False), temperature: float = 1.0) -> RunSettings:
    return RunSettings(model="tiny:net", benchmark="tiny", bootstrap=0, features=features, temperature=temperature)


# The 18 entries of model-lists/paper.yaml whose timm pretrained config has a test size (issue 10, §2).
TEST_SIZE_ENTRIES = {
    **dict.fromkeys(("resnet50.a1_in1k", "resnet101.a1h_in1k", "resnext50_32x4d.a1h_in1k", "resnext101_64x4d.c1_in1k"), 288),
    **dict.fromkeys(
        (
            "convnext_base.fb_in1k",
            "convnext_large.fb_in1k",
            "convnextv2_base.fcmae_ft_in1k",
            "convnextv2_large.fcmae_ft_in1k",
            "convnextv2_huge.fcmae_ft_in1k",
            "convnext_base.fb_in22k_ft_in1k",
            "convnext_large.fb_in22k_ft_in1k",
            "convnext_xlarge.fb_in22k_ft_in1k",
        ),
        288,
    ),
    **dict.fromkeys(
        (
            "tf_efficientnetv2_m.in1k",
            "tf_efficientnetv2_l.in1k",
            "tf_efficientnetv2_m.in21k_ft_in1k",
            "tf_efficientnetv2_l.in21k_ft_in1k",
            "tf_efficientnetv2_m.in21k",
            "tf_efficientnetv2_l.in21k",
        ),
        480,
    ),
}


# ------------------------------------------------------------------------------------------ §2 input size


def _paper_list_specs() -> list[str]:
    entries = yaml.safe_load(PAPER_LIST.read_text())["models"]
    assert len(entries) == 75 and all(e["model"].startswith("timm:") for e in entries)
    return [e["model"].split(":", 1)[1] for e in entries]


def test_every_paper_list_entry_resolves_to_the_authors_input_size():
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    specs = _paper_list_specs()
    assert set(TEST_SIZE_ENTRIES) <= set(specs)
    changed = []
    for spec in specs:
        pretrained_cfg = get_pretrained_cfg(spec).to_dict()
        config = timm_data_config(pretrained_cfg)  # what TimmAdapter puts on the card, from the config alone
        train_size = int(config["input_size"][-1])
        # The authors: test_input_size if the pretrained config has one, else input_size, for both image sets.
        authors = int((pretrained_cfg.get("test_input_size") or pretrained_cfg["input_size"])[-1])
        for role in ("positive", "negative"):
            assert role_geometry(config, PAPER, role)["input_size"] == [3, authors, authors], spec
        # timm's validate.py default: resolve_data_config(..., use_test_size=True), test crop included.
        validate = resolve_data_config({}, pretrained_cfg=pretrained_cfg, use_test_size=True)
        model = role_geometry(config, MODEL_TRANSFORM, "positive")
        assert model == {
            "input_size": list(validate["input_size"]),
            "crop_pct": validate["crop_pct"],
            "interpolation": validate["interpolation"],
        }, spec
        if authors != train_size:
            changed.append(spec)
            assert authors == TEST_SIZE_ENTRIES[spec], spec
    assert sorted(changed) == sorted(TEST_SIZE_ENTRIES)


def test_paper_transforms_produce_the_test_size_for_both_image_sets():
    from timm.models import get_pretrained_cfg

    config = timm_data_config(get_pretrained_cfg("resnet50.a1_in1k").to_dict())
    assert config["input_size"] == (3, 224, 224) and config["test_input_size"] == (3, 288, 288)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, size=(375, 500, 3), dtype=np.uint8))
    for role in ("positive", "negative"):
        assert build_transform(config, PAPER, role)(photo).shape == (3, 288, 288)
    assert build_transform(config, MODEL_TRANSFORM, "positive")(photo).shape == (3, 288, 288)
    # the paper protocol keeps the authors' 224/256 crop of class images; model takes timm's test crop (1.0)
    assert role_geometry(config, PAPER, "positive")["crop_pct"] == pytest.approx(224 / 256)
    assert eval_data_config(config, MODEL_TRANSFORM)["crop_pct"] == 1.0


def test_timm_adapter_card_carries_the_test_size():
    adapter = TimmAdapter.load("resnet18.a1_in1k", pretrained=False)  # random weights: only the config matters
    assert adapter.card.data_config["test_input_size"] == (3, 288, 288)
    x = adapter.transform(Image.new("RGB", (320, 240)))
    assert x.shape == (3, 288, 288)  # the model's own transform is validate.py's: the test size


def test_hf_timm_wrapper_gets_the_same_sizes_as_timm(tmp_path):
    from timm.models import get_pretrained_cfg
    from transformers import TimmWrapperConfig

    from spurbench.adapters.hf_adapter import HFAdapter

    pretrained_cfg = get_pretrained_cfg("resnet18.a1_in1k").to_dict()
    TimmWrapperConfig(architecture="resnet18", num_labels=10, pretrained_cfg=pretrained_cfg).save_pretrained(tmp_path)
    adapter = HFAdapter.load(str(tmp_path), pretrained=False)
    assert adapter.card.data_config == timm_data_config(pretrained_cfg)
    assert role_geometry(adapter.data_config, PAPER, "negative")["input_size"] == [3, 288, 288]
    x = adapter.transform(Image.new("RGB", (300, 200))).unsqueeze(0)
    assert x.shape[-1] == 288 and torch.allclose(adapter.logits(x), adapter.model(pixel_values=x).logits, atol=1e-5)


def test_result_records_the_input_size_actually_used(tmp_path):
    adapter = TinyAdapter()
    # Give the tiny model a test size, as timm configs do: features must be computed at it.
    adapter.card = adapter.card.model_copy(update={"data_config": {**adapter.card.data_config, "test_input_size": (3, 20, 20)}})
    seen: list[tuple[int, ...]] = []
    original = adapter.features
    adapter.features = lambda x: (seen.append(tuple(x.shape[1:])), original(x))[1]  # type: ignore[method-assign]
    result = evaluate(_tiny(features=FeatureSettings(batch_size=8, progress=False, use_cache=False)), model=adapter)
    assert {role: g.input_size for role, g in result.protocol.images.items()} == {"positive": [3, 20, 20], "negative": [3, 20, 20]}
    assert set(seen) == {(3, 20, 20)}


# ---------------------------------------------------------------------------------------------- §1 metric


def test_mean_and_pooled_ap_are_the_authors_mean_and_joint_scores(tmp_path):
    result = evaluate(_tiny(), model=TinyAdapter())
    head = result.heads["plain"]
    per_class, pooled_in, pooled_out = [], [], []
    for row in head.classes:  # the authors' calculate_spurious_score, written out
        in_scores = [head.image_prob[i] for i, r in result.images.items() if r.class_index == row.class_index and r.role == "positive"]
        out_scores = [head.image_prob[i] for i, r in result.images.items() if r.class_index == row.class_index and r.role == "negative"]
        per_class.append(average_precision_score(len(in_scores) * [1] + len(out_scores) * [0], np.concatenate([in_scores, out_scores])))
        pooled_in += in_scores
        pooled_out += out_scores
    joint = average_precision_score(len(pooled_in) * [1] + len(pooled_out) * [0], np.concatenate([pooled_in, pooled_out]))
    assert head.aggregate.mean_ap == pytest.approx(np.mean(per_class), abs=1e-12)
    assert head.aggregate.pooled_ap == pytest.approx(joint, abs=1e-12)
    assert head.aggregate.pooled_ap != pytest.approx(head.aggregate.pooled_auc, abs=1e-3)  # a different number


def _model_lists_with_paper_numbers(folder: Path, mean_ap: float, mean_ap_spufix: float) -> Path:
    folder.mkdir()
    (folder / "planted.yaml").write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "model": "planted:cnn",
                        "display_name": "Planted CNN",
                        "data": "planted",
                        "paper": {"benchmark": "planted", "mean_ap": mean_ap, "mean_ap_spufix": mean_ap_spufix},
                    },
                    {"model": "planted:resnet", "display_name": "Planted ResNet", "data": "planted"},
                ]
            }
        )
    )
    return folder


def _copy_results(folder: Path, protocol: str | None = None) -> list[Path]:
    folder.mkdir()
    for path in COMMITTED:
        raw = json.loads(path.read_text())
        if protocol is not None:
            raw["protocol"]["name"] = protocol
        (folder / path.name).write_text(json.dumps(raw))
    return sorted(folder.glob("*.json"))


def test_board_compares_paper_figures_with_mean_ap(tmp_path):
    model_lists = _model_lists_with_paper_numbers(tmp_path / "model-lists", mean_ap=0.5, mean_ap_spufix=0.6)
    files = build_board(_copy_results(tmp_path / "results"), tmp_path / "site", model_lists_dir=model_lists)
    cnn = read_result(next(p for p in COMMITTED if "planted_cnn" in p.name))
    plain, fixed = cnn.heads["plain"].aggregate, cnn.heads["spufix"].aggregate
    row = next(line for line in files.markdown.read_text().splitlines() if "(`planted:cnn`)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[7:13] == [
        f"{plain.mean_ap:.3f}",
        f"{fixed.mean_ap:.3f}",
        "0.500",
        f"{plain.mean_ap - 0.5:+.3f}",
        "0.600",
        f"{fixed.mean_ap - 0.6:+.3f}",
    ]
    assert f"{plain.mauc - 0.5:+.3f}" not in cells  # never ROC-AUC against the paper's AP
    board = files.markdown.read_text()
    assert "mAUC (ROC-AUC)" in board and "average precision" in board and '"mAUC"' in board
    page = files.html.read_text()
    assert "AP − paper" in page and "average precision" in page


def test_board_gives_no_difference_for_results_under_another_protocol(tmp_path):
    model_lists = _model_lists_with_paper_numbers(tmp_path / "model-lists", mean_ap=0.5, mean_ap_spufix=0.6)
    files = build_board(_copy_results(tmp_path / "results", protocol="model"), tmp_path / "site", model_lists_dir=model_lists)
    row = next(line for line in files.markdown.read_text().splitlines() if "(`planted:cnn`)" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[9:13] == ["0.500", "–", "0.600", "–"]  # the paper's figure for reference, no measured − paper


def test_paper_list_keys_say_they_hold_average_precision():
    from spurbench.model_lists import load_model_list, load_unmapped

    entries = load_model_list(PAPER_LIST) + load_unmapped(PAPER_LIST)
    assert len(entries) == 77
    assert all(e.paper is not None and e.paper.mean_ap is not None and e.paper.benchmark == "spurious-imagenet" for e in entries)
    raw = PAPER_LIST.read_text()
    assert "mauc:" not in raw and "mauc_spufix:" not in raw


# ------------------------------------------------------------------------------------ §3 checkpoint identity


def _planted_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model("cnn", 0)
    if seed:  # different weights, same shapes, same file size
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_content_digest_is_memoised_by_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 1000)
    first = cache.content_digest(path)
    assert first.startswith("sha256:") and len(first) == 7 + 64
    stat = path.stat()
    path.write_bytes(b"b" * 1000)  # same size; put the old mtime back: the memo answers, no re-hash
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.content_digest(path) == first
    monkeypatch.setattr(cache, "_DIGESTS", {})  # a new process: the memo in the cache folder answers
    assert cache.content_digest(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: hashed again
    assert cache.content_digest(path) != first


def test_config_hash_follows_the_checkpoint_content_not_its_path(tmp_path):
    path = _planted_checkpoint(tmp_path / "w.safetensors", 0)

    def config_hash(checkpoint: Path) -> str:
        return RunSettings(model="planted:cnn", checkpoint=str(checkpoint), benchmark="planted", bootstrap=0).config_hash(None)

    before = config_hash(path)
    moved = tmp_path / "elsewhere.safetensors"
    shutil.copy(path, moved)
    assert config_hash(moved) == before  # same bytes, other path
    _planted_checkpoint(path, 1)
    assert config_hash(path) != before


def test_replacing_a_checkpoint_at_the_same_path_re_evaluates(cli, tmp_path):
    path = _planted_checkpoint(tmp_path / "weights.safetensors", 0)
    args = ["run", "-m", "planted:cnn", "--checkpoint", str(path), "--limit", "6", "--bootstrap", "0", "-q", "-o", str(tmp_path / "out")]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    target = tmp_path / "out" / result_filename("planted:cnn", "planted")
    old = read_result(target)
    assert old.model.weights_revision == cache.content_digest(path)
    again = cli(*args, cwd=tmp_path)
    assert "skip planted:cnn" in again.stdout  # unchanged weights: complete

    _planted_checkpoint(path, 1)  # new weights, same path and size
    refused = cli(*args, cwd=tmp_path)  # another configuration: not replaced without --force (issue 23, case 1)
    assert (
        refused.returncode == 2 and f"weights: file {old.model.weights_revision}, this run {cache.content_digest(path)}" in refused.stderr
    ), refused.stderr
    assert read_result(target) == old
    third = cli(*args, "--force", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "skip" not in third.stdout
    new = read_result(target)
    assert new.model.weights_revision == cache.content_digest(path) != old.model.weights_revision
    assert new.config_hash != old.config_hash
    assert new.heads["plain"].image_prob != old.heads["plain"].image_prob  # not served from the old features


def test_missing_checkpoint_is_one_line(cli, tmp_path):
    proc = cli("run", "-m", "planted:cnn", "--checkpoint", str(tmp_path / "nope.safetensors"), "-o", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, "nope.safetensors", "does not exist")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # fits SpuFix end to end (~3 s)
def test_spufix_fit_records_the_source_checkpoint_digest(cli, tmp_path):
    target = _planted_checkpoint(tmp_path / "target.safetensors", 0)
    source = _planted_checkpoint(tmp_path / "source.safetensors", 2)
    (tmp_path / "components.json").write_text(json.dumps({"2": [0]}))
    # The source is another planted:cnn: same name and architecture, other weights (its own checkpoint).
    args = [
        "spufix",
        "fit",
        "-m",
        "planted:cnn",
        "--checkpoint",
        str(target),
        "--source-model",
        "planted:cnn",
        "--source-checkpoint",
        str(source),
        "--train-data",
        "planted",
        "--components",
        str(tmp_path / "components.json"),
        "--limit",
        "12",
        "-q",
        "-o",
        str(tmp_path / "art"),
    ]
    first = cli(*args, "--save-alphas", str(tmp_path / "alphas"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    meta = json.loads((tmp_path / "art" / "spufix.json").read_text())
    assert meta["source_weights_revision"] == cache.content_digest(source)
    assert json.loads((tmp_path / "alphas" / "alphas.json").read_text())["source_weights_revision"] == cache.content_digest(source)
    tensors_before = (tmp_path / "art" / "spufix.safetensors").read_bytes()

    _planted_checkpoint(source, 3)
    second = cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    meta = json.loads((tmp_path / "art" / "spufix.json").read_text())
    assert meta["source_weights_revision"] == cache.content_digest(source)
    assert (tmp_path / "art" / "spufix.safetensors").read_bytes() != tensors_before  # refitted from the new weights


# ---------------------------------------------------------------------------------------- §4 temperature


def test_temperature_is_recorded_and_changes_probabilities_not_predictions(tmp_path):
    plain = evaluate(_tiny(), model=TinyAdapter())
    hot = evaluate(_tiny(temperature=0.7155761122703552), model=TinyAdapter())
    assert plain.heads["plain"].temperature == 1.0 and hot.heads["plain"].temperature == pytest.approx(0.7155761122703552)
    assert hot.config_hash != plain.config_hash
    assert hot.heads["plain"].image_top1 == plain.heads["plain"].image_top1
    image_id = next(iter(plain.heads["plain"].image_prob))
    assert hot.heads["plain"].image_prob[image_id] != pytest.approx(plain.heads["plain"].image_prob[image_id], abs=1e-6)
    # logits / T before the softmax, checked on one image
    adapter, bench = TinyAdapter(), tiny_benchmark()
    image = next(im for im in bench.images if im.image_id == image_id)
    x = build_transform(adapter.data_config, bench.protocols["paper"], image.role)(image.open()).unsqueeze(0)
    expected = torch.softmax(adapter.logits(x).double() / 0.7155761122703552, dim=1)[0, image.class_index].item()
    assert hot.heads["plain"].image_prob[image_id] == pytest.approx(expected, abs=1e-6)


def test_model_list_temperature_reaches_the_result(cli, tmp_path):
    path = _planted_checkpoint(tmp_path / "w.safetensors", 0)
    model_list = tmp_path / "models.yaml"
    model_list.write_text(yaml.safe_dump({"models": [{"model": "planted:cnn", "checkpoint": str(path), "temperature": 0.5}]}))
    proc = cli("run", "--model-list", str(model_list), "--limit", "4", "--bootstrap", "0", "-q", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = read_result(tmp_path / "out" / result_filename("planted:cnn", "planted"))
    assert result.heads["plain"].temperature == 0.5
    assert "T=0.5" in proc.stdout


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_temperature_is_one_line(cli, tmp_path, value):
    proc = cli("run", "-m", "planted:cnn", f"--temperature={value}", "-o", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, "temperature")
    assert not (tmp_path / "out").exists()


def test_bad_model_list_temperature_is_one_line(cli, tmp_path):
    model_list = tmp_path / "models.yaml"
    model_list.write_text(yaml.safe_dump({"models": [{"model": "planted:cnn", "temperature": -2}]}))
    proc = cli("run", "--model-list", str(model_list), "-o", str(tmp_path / "out"), cwd=tmp_path)
    one_line_error(proc, "models[0].temperature")
