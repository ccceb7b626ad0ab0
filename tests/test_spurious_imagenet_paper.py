"""Spurious ImageNet's ``--protocol paper`` against a written-out reference of its authors' evaluation
(YanNeu/spurious_imagenet; facts read from their code, not copied):

- ``dataset/spurious_score.py`` ``get_model``: the input size is the timm config's ``test_input_size``
  where it has one, else ``input_size``; the model is wrapped to normalise with the config's own
  mean/std; probabilities are the softmax of the logits.
- ``dataset/spurious_dataset.py``: images through torchvision's ``default_loader`` (PIL, RGB);
  spurious-only images with ``get_imageNet_augmentation(type='no_crop')`` and ImageNet-val images with
  ``type='test'``, both bicubic.
- ``utils/datasets/augmentations/imagenet_augmentation.py``: ``no_crop`` = ``Resize(size)`` + ToTensor;
  ``test`` = ``Resize(int(256/224 * size))`` + ``CenterCrop(size)`` + ToTensor.
- ``calculate_spurious_score``: per class, average precision of val (1) against spurious (0) scores,
  their mean, and the AP of all scores pooled.

The model's config has a test size (256 px, trained at 224) and 0.5/0.5 normalisation, so a wrong
size rule or mean/std shows. Random weights: only the arithmetic is compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as photos
from sklearn.metrics import average_precision_score
from torchvision import transforms as T
from torchvision.datasets.folder import default_loader

from spurbench.adapters.timm_adapter import TimmAdapter
from spurbench.benchmarks import load_benchmark
from spurbench.dataloading import input_batches
from spurbench.harness import evaluate
from spurbench.label_spaces import synsets as imagenet_synsets
from spurbench.preprocessing import eval_data_config, normalize_on_device
from spurbench.settings import FeatureSettings, RunSettings
from tests.support.hub_fixture import offline_hub

MODEL = "mobilenetv1_100.ra4_e3600_r224_in1k"  # test_input_size 256, mean/std 0.5
CLASSES = (1, 309)


def _photo(name: str) -> Image.Image:
    array = getattr(photos, name)()
    return Image.fromarray(array if array.ndim == 3 else np.stack([array] * 3, -1)).convert("RGB")


@pytest.fixture
def layout(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """Real photos: non-square JPEG val images per class; square PNG spurious-only images (the authors' ship
    square ones) of another size than the model's, so that both resizes do work."""
    offline_hub(tmp_path, monkeypatch)
    val, spurious = tmp_path / "val", tmp_path / "spurious" / "images"
    spurious.mkdir(parents=True)
    (spurious / "timestamp.txt").write_text("1667000000\n")
    sources = iter(["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "cat"])
    for k in CLASSES:
        (val / imagenet_synsets()[k]).mkdir(parents=True)
        for i in range(2):
            photo = _photo(next(sources))
            photo.crop((0, 0, photo.width, int(photo.height * 0.8))).save(
                val / imagenet_synsets()[k] / f"ILSVRC2012_val_{k * 10 + i:08d}.JPEG", quality=90
            )
        folder = spurious / f"spurious_class_{k}_comp_0"
        folder.mkdir()
        for i, side in enumerate((300, 181)):
            _photo(next(sources)).resize((side, side), Image.BILINEAR).save(folder / f"{i:04d}.png")
    return val, spurious.parent


def _authors_inputs(paths_and_roles: list[tuple[str, str]], config: dict) -> torch.Tensor:
    size = int((config.get("test_input_size") or config["input_size"])[-1])
    val = T.Compose([T.Resize(int(256 / 224 * size), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor()])
    spurious = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.ToTensor()])
    normalise = T.Normalize(config["mean"], config["std"])  # their NormalizationWrapper: (x - mean) / std
    return torch.stack([normalise((val if role == "positive" else spurious)(default_loader(path))) for path, role in paths_and_roles])


def test_paper_pixels_size_and_normalisation_equal_the_authors_steps(layout):
    val, data_dir = layout
    bench = load_benchmark("spurious-imagenet", data_dir=str(data_dir), imagenet_val=str(val))
    adapter = TimmAdapter.load(MODEL, pretrained=False)
    config = adapter.data_config
    assert config["test_input_size"] == (3, 256, 256) and tuple(config["mean"]) == (0.5, 0.5, 0.5)
    pixels = torch.cat(list(input_batches(bench, list(range(len(bench.images))), config, "paper", 3, workers=0)))
    ours = normalize_on_device(pixels, eval_data_config(config, bench.protocols["paper"]))
    theirs = _authors_inputs([(im.origin, im.role) for im in bench.images], config)
    assert ours.shape == theirs.shape == (8, 3, 256, 256)
    assert torch.equal(ours, theirs)  # bit for bit: the same PIL resizes, x / 255, (x - mean) / std in float32


def test_paper_probabilities_and_average_precision_equal_the_authors_score(layout, tmp_path):
    val, data_dir = layout
    options = {"data_dir": str(data_dir), "imagenet_val": str(val)}
    bench = load_benchmark("spurious-imagenet", options)
    adapter = TimmAdapter.load(MODEL, pretrained=False)
    torch.manual_seed(0)
    with torch.no_grad():  # random weights, but a classifier whose outputs vary across images
        adapter.model.get_classifier().weight.normal_(0, 0.5)
    features = FeatureSettings(batch_size=8, num_workers=0, use_cache=False, progress=False)
    settings = RunSettings(model=adapter.name, benchmark="spurious-imagenet", options=options, bootstrap=0, features=features)
    result = evaluate(settings, model=adapter, benchmark=bench)
    head = result.heads["plain"]
    with torch.no_grad():
        probabilities = torch.softmax(
            adapter.model(_authors_inputs([(im.origin, im.role) for im in bench.images], adapter.data_config)), dim=1
        )
    theirs = {im.image_id: float(probabilities[i, im.class_index]) for i, im in enumerate(bench.images)}
    assert head.image_prob == pytest.approx(theirs, abs=1e-6)  # one batch of 8 either way; float order may differ
    per_class, pooled_in, pooled_out = [], [], []
    for k in sorted(CLASSES):
        in_scores = [theirs[im.image_id] for im in bench.images if im.class_index == k and im.role == "positive"]
        out_scores = [theirs[im.image_id] for im in bench.images if im.class_index == k and im.role == "negative"]
        per_class.append(average_precision_score(len(in_scores) * [1] + len(out_scores) * [0], in_scores + out_scores))
        pooled_in, pooled_out = pooled_in + in_scores, pooled_out + out_scores
    assert head.aggregate.mean_ap == pytest.approx(np.mean(per_class), abs=1e-9)
    assert head.aggregate.pooled_ap == pytest.approx(
        average_precision_score(len(pooled_in) * [1] + len(pooled_out) * [0], pooled_in + pooled_out), abs=1e-9
    )
    assert result.protocol.declared == bench.protocols["paper"] and result.protocol.images["positive"].input_size == [3, 256, 256]


def test_ls_names_each_protocol_of_a_benchmark_in_its_own_words(cli, tmp_path):
    out = cli("ls", "-b", "spurious-imagenet", cwd=tmp_path).stdout
    assert "protocols of benchmark spurious-imagenet" in out
    assert (
        "paper: Neuhaus et al.'s evaluation code (YanNeu/spurious_imagenet, dataset/spurious_score.py): size the weights' test_input_size"
        in out
    )
    assert "model: timm's validate.py: each model's own timm eval transform" in out
