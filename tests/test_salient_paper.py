"""``--protocol paper`` of salient-imagenet is Singla & Feizi's own evaluation code
(singlasahil14/salient_imagenet, ``inspection_utils.py``), and planted-salient states which of its
steps carry over to generated images.

Each reference below writes the authors' steps out with the libraries they use (PIL, torchvision,
numpy), from the files on disk, and is compared bit for bit with what spurbench's data path feeds the
model: a real adapter run through ``harness.evaluate``, whose ``features`` records its input. The one
shared piece is the noise eps (``image_noise``): theirs is unseeded, spurbench's seeded per image id.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from timm.models import get_pretrained_cfg
from torchvision import transforms as T

from spurbench.adapters.timm_adapter import timm_data_config
from spurbench.benchmarks.salient_imagenet import SalientImageNet
from spurbench.benchmarks.salient_imagenet.noise import image_noise
from spurbench.harness import evaluate
from spurbench.results import ViewResult
from spurbench.settings import FeatureSettings, RunSettings
from spurbench.testing import TinyAdapter
from tests.support.one_line import one_line_error
from tests.support.salient_fixture import write_tiny_salient

# A config with a test size and 0.5/0.5 normalisation: 300 px train, 384 px test, bicubic.
TEST_SIZE_HALF_MEAN = "tf_efficientnetv2_s.in21k_ft_in1k"
AUTHORS_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # CompleteModel, for every timm model
AUTHORS_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
VIEW = re.compile(r"^noise-(spurious|core|feature-(\d+))@([0-9.]+)$")


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_salient(tmp_path / "salient_imagenet_dataset", tmp_path / "ILSVRC2012" / "train")


class ChannelMeans(TinyAdapter):
    """A classifier whose features are its input's channel means, so predictions follow the pixels (some
    right, some wrong), with any data config; it records every batch it is fed."""

    def __init__(self, data_config: dict, classes: tuple[int, ...], num_classes: int, label_space: str):
        super().__init__(num_classes=num_classes, label_space=label_space)
        self.card = self.card.model_copy(update={"data_config": data_config})
        self.fc = torch.nn.Linear(3, num_classes)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.fill_(-50.0)
            for channel, k in enumerate(classes):  # class k wins where channel `channel` is brightest
                self.fc.weight[k, channel], self.fc.bias[k] = 10.0, 0.0
        self.fed: list[torch.Tensor] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.fed.append(x.clone())
        return x.mean(dim=(2, 3))


def _options(tiny, **options) -> dict:
    return {"data_dir": str(tiny["root"]), "imagenet_train": str(tiny["train_root"]), **options}


def _salient(tiny, **options):
    plugin = SalientImageNet()
    return plugin.load(plugin.parse_options(_options(tiny, **options)))


def _settings(adapter, options: dict, protocol: str, batch_size: int = 8) -> RunSettings:
    features = FeatureSettings(protocol=protocol, batch_size=batch_size, use_cache=False, num_workers=0, progress=False)
    return RunSettings(model=adapter.name, benchmark=SalientImageNet.name, options=options, bootstrap=0, features=features)


def _fed(adapter: ChannelMeans, bench, protocol: str, options: dict) -> tuple[ViewResult, torch.Tensor]:
    result = evaluate(_settings(adapter, options, protocol), model=adapter, benchmark=bench)
    assert isinstance(result, ViewResult)
    fed = torch.cat(adapter.fed)
    adapter.fed.clear()
    return result, fed


def _chosen(view: str, kinds: dict[int, str]) -> tuple[list[int], float]:
    match = VIEW.match(view)
    assert match is not None
    features = [int(match[2])] if match[2] is not None else [f for f, kind in kinds.items() if kind == match[1]]
    return features, float(match[3])


def authors_salient_views(tiny, image_id: str, views: tuple[str, ...]) -> list[torch.Tensor]:
    """The authors' steps for one image: their SalientImageNet dataset item, their noise, CompleteModel."""
    _, wnid, stem = image_id.split("/")
    k = next(k for k, c in tiny["classes"].items() if c["wnid"] == wnid)
    kinds = {f: tiny["classes"][k]["features"][f]["kind"] for f in tiny["classes"][k]["images"][stem]}
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])  # their loader's, for image and mask alike
    image = transform(Image.open(tiny["train_images"][(k, stem)]).convert("RGB"))
    eps = image_noise(image_id, image.shape)
    out = []
    for view in views:
        x = image
        if view != "clean":
            features, sigma = _chosen(view, kinds)
            union = np.zeros(image.shape[1:])  # float64, the max of mask / 255. over the features
            for f in features:
                union = np.maximum(union, np.asarray(Image.open(tiny["masks"][(k, f, stem)])) / 255.0)
            mask = transform(Image.fromarray(np.uint8(union * 255)))  # 8-bit again, then the 256/224 zoom
            noise = 0.0 + sigma * eps
            x = torch.clamp(image + noise * mask, 0.0, 1.0)
        out.append(((x[None] - AUTHORS_MEAN) / AUTHORS_STD)[0])
    return out


def model_protocol_views(tiny, image_id: str, views: tuple[str, ...], config: dict) -> list[torch.Tensor]:
    """``--protocol model`` (spurbench's own): the model's test size, the 224/256 crop of the grid the
    masks were made on (bilinear), the float masks fitted to that size, the model's mean/std; no zoom."""
    _, wnid, stem = image_id.split("/")
    k = next(k for k, c in tiny["classes"].items() if c["wnid"] == wnid)
    kinds = {f: tiny["classes"][k]["features"][f]["kind"] for f in tiny["classes"][k]["images"][stem]}
    size = config["test_input_size"][-1]
    image = T.Compose([T.Resize(int(size / 0.875), interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(size), T.ToTensor()])(
        Image.open(tiny["train_images"][(k, stem)]).convert("RGB")
    )
    eps = image_noise(image_id, image.shape)
    mean, std = torch.tensor(config["mean"]).view(3, 1, 1), torch.tensor(config["std"]).view(3, 1, 1)
    out = []
    for view in views:
        x = image
        if view != "clean":
            features, sigma = _chosen(view, kinds)
            masks = [
                torch.from_numpy(np.asarray(Image.open(tiny["masks"][(k, f, stem)]), dtype=np.float32) / np.float32(255.0))
                for f in features
            ]
            mask = F.interpolate(torch.stack(masks).amax(0)[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
            x = (image + sigma * eps * mask[None]).clamp(0.0, 1.0)
        out.append((x - mean) / std)
    return out


def _rows(bench, reference) -> torch.Tensor:
    return torch.stack([v for image in bench.images for v in reference(image.image_id, image.views)])


def test_paper_is_the_authors_code_bit_for_bit(tiny) -> None:
    config = timm_data_config(get_pretrained_cfg(TEST_SIZE_HALF_MEAN).to_dict())
    assert config["mean"] == (0.5, 0.5, 0.5) and config["test_input_size"] == (3, 384, 384)  # the case that matters
    bench = _salient(tiny, sigma=[0.25, 0.5])
    adapter = ChannelMeans(config, (1, 309, 817), 1000, "imagenet-1k")
    result, fed = _fed(adapter, bench, "paper", _options(tiny, sigma=[0.25, 0.5]))
    expected = _rows(bench, lambda image_id, views: authors_salient_views(tiny, image_id, views))
    assert fed.shape == expected.shape and fed.shape[-2:] == (224, 224)
    assert torch.equal(fed, expected)
    assert result.protocol.input_size == [3, 224, 224] and result.protocol.declared.normalization == "imagenet"


def test_the_mask_zoom_goes_through_8_bit_pil(tiny) -> None:
    """The float zoom of before differs from the authors' 8-bit one: the test above would see it."""
    bench = _salient(tiny)
    image = next(im for im in bench.images if "noise-spurious@0.25" in im.views)
    x = torch.full((3, 224, 224), 0.5)
    view = dict(zip(image.views, bench.render_views(image, x, bench.protocols["paper"])))["noise-spurious@0.25"]
    stem = image.image_id.split("/")[2]
    k = image.class_index
    spurious = [f for f in tiny["classes"][k]["images"][stem] if tiny["classes"][k]["features"][f]["kind"] == "spurious"]
    union = np.zeros((224, 224))
    for f in spurious:
        union = np.maximum(union, np.asarray(Image.open(tiny["masks"][(k, f, stem)])) / 255.0)
    mask = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(Image.fromarray(np.uint8(union * 255)))
    assert torch.equal(view, (x + 0.25 * image_noise(image.image_id, x.shape) * mask).clamp(0, 1))


def test_model_protocol_is_the_models_size_and_mean(tiny) -> None:
    config = timm_data_config(get_pretrained_cfg(TEST_SIZE_HALF_MEAN).to_dict())
    bench = _salient(tiny, limit=2)  # 384 px views are slow to render on two cores: a few images show it
    result, fed = _fed(ChannelMeans(config, (1, 309, 817), 1000, "imagenet-1k"), bench, "model", _options(tiny, limit=2))
    expected = _rows(bench, lambda image_id, views: model_protocol_views(tiny, image_id, views, config))
    assert fed.shape[-2:] == (384, 384) and torch.equal(fed, expected)
    assert result.protocol.input_size == [3, 384, 384] and result.protocol.declared.normalization == "model"


def test_metrics_are_the_authors_accuracies_of_the_rows(tiny) -> None:
    """Per class, their notebooks' core accuracy (noise on the spurious masks, images with one) and
    spurious accuracy (noise on the core masks); the paper's numbers are class means, the gap their
    difference."""
    config = timm_data_config(get_pretrained_cfg(TEST_SIZE_HALF_MEAN).to_dict())
    result, _ = _fed(ChannelMeans(config, (1, 309, 817), 1000, "imagenet-1k"), _salient(tiny), "paper", _options(tiny))
    head = result.heads["plain"]
    correct = dict(zip(result.row_ids(), head.rows.correct))
    assert 0 < sum(head.rows.correct) < len(head.rows.correct)  # some right, some wrong: the sums below can differ
    per_class: dict[str, list[float]] = {"core_accuracy": [], "spurious_accuracy": []}
    for k in tiny["classes"]:
        for view, metric in (("noise-spurious@0.25", "core_accuracy"), ("noise-core@0.25", "spurious_accuracy")):
            hits = [correct[f"{i}::{view}"] for i, image in result.images.items() if image.class_index == k and view in image.views]
            row = next(c for c in head.classes if c.class_index == k)
            assert row.metrics[metric] == pytest.approx(sum(hits) / len(hits), abs=1e-12)
            per_class[metric].append(sum(hits) / len(hits))
    core, spurious = (sum(v) / len(v) for v in per_class.values())
    assert head.metrics["core_accuracy"] == pytest.approx(core, abs=1e-12)
    assert head.metrics["spurious_accuracy"] == pytest.approx(spurious, abs=1e-12)
    assert head.metrics["gap"] == pytest.approx(core - spurious, abs=1e-12)


def test_protocols_state_what_runs(tiny) -> None:
    bench = _salient(tiny)
    paper, model = bench.protocols["paper"], bench.protocols["model"]
    assert (
        paper.size == 224
        and paper.normalization == "imagenet"
        and paper.positive.interpolation == "bilinear"
        and paper.positive.crop_pct == 224 / 256
    )
    assert "singlasahil14/salient_imagenet" in paper.by and any("8-bit" in s and "Resize(256)" in s for s in paper.steps)
    assert model.size == "test" and model.normalization == "model" and not any("Resize(256)" in s for s in model.steps)
    assert "upstream_mask_zoom" not in bench.facts and not bench.revision.endswith("zoom")


def test_the_retired_zoom_option_says_what_to_use(tiny, cli, tmp_path) -> None:
    for data in ((), ("--data-dir", str(tiny["root"]), "--imagenet-train", str(tiny["train_root"]))):
        proc = cli("run", "-b", "salient-imagenet", *data, "-O", "upstream_mask_zoom=true", "-o", str(tmp_path / "out"), cwd=tmp_path)
        one_line_error(proc, "upstream_mask_zoom is retired", "--protocol paper", out=tmp_path / "out")


def authors_planted_views(split, row: int, image_id: str, views: tuple[str, ...], mean, std) -> list[torch.Tensor]:
    """The authors' steps that carry over to a generated image at the model's size: no resize or zoom,
    the exact masks through 8 bits (a no-op for binary masks), noise, clamp, the model's mean/std."""
    image = T.ToTensor()(Image.fromarray(split.images[row]).convert("RGB"))
    masks = {0: split.object_mask[row], 1: split.feature_mask[row]}
    kinds = {0: "core", 1: "spurious"}
    eps = image_noise(image_id, image.shape)
    out = []
    for view in views:
        x = image
        if view != "clean":
            features, sigma = _chosen(view, kinds)
            union = np.zeros(image.shape[1:])
            for f in features:
                union = np.maximum(union, masks[f].astype(np.float64))
            mask = T.ToTensor()(Image.fromarray(np.uint8(union * 255)))
            x = torch.clamp(image + (0.0 + sigma * eps) * mask, 0.0, 1.0)
        out.append((x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))
    return out


def test_planted_salient_paper_is_the_authors_steps_that_carry_over() -> None:
    from spurbench.benchmarks.planted.models import PlantedAdapter
    from spurbench.benchmarks.shared.planted_generator import (
        PLANTED_CLASSES,
        generate_carrier_set,
    )

    plugin = SalientImageNet()
    bench = plugin.load(plugin.parse_options({"limit": 2}))
    paper = bench.protocols["paper"]
    assert set(bench.protocols) == {"paper"} and paper.size == "test" and paper.normalization == "model"
    assert "no published protocol" in paper.by and "singlasahil14/salient_imagenet" in paper.by
    described = paper.describe()
    assert "no 256/224" in described and "the model's mean/std" in described and "clamp" in described
    net = PlantedAdapter.load("cnn", pretrained=False)
    adapter = ChannelMeans(net.data_config, (0, 1, 2), net.card.num_classes, "planted")
    _, fed = _fed(adapter, bench, "paper", {"limit": 2})
    split = generate_carrier_set(0)
    seen: dict[int, int] = {}
    rows = {}
    for row, label in enumerate(split.labels.tolist()):
        rows[f"planted-salient/{PLANTED_CLASSES[label]}/{seen.get(label, 0)}"] = row
        seen[label] = seen.get(label, 0) + 1
    config = net.data_config
    expected = _rows(
        bench, lambda image_id, views: authors_planted_views(split, rows[image_id], image_id, views, config["mean"], config["std"])
    )
    assert fed.shape[-1] == config["input_size"][-1] and torch.equal(fed, expected)


@pytest.mark.slow
def test_a_real_timm_model_is_fed_224_imagenet_under_paper_and_its_own_under_model(tiny) -> None:
    """tf_efficientnetv2_s.in21k_ft_in1k (random weights): 300 px train, 384 px test, mean/std 0.5."""
    from spurbench.adapters.timm_adapter import TimmAdapter

    adapter = TimmAdapter.load(TEST_SIZE_HALF_MEAN, pretrained=False)
    fed: list[torch.Tensor] = []
    features = adapter.features
    adapter.features = lambda x: (fed.append(x.clone()), features(x))[1]  # type: ignore[method-assign]
    bench = _salient(tiny, limit=1)
    for protocol, size, reference in (
        ("paper", 224, lambda image_id, views: authors_salient_views(tiny, image_id, views)),
        ("model", 384, lambda image_id, views: model_protocol_views(tiny, image_id, views, adapter.data_config)),
    ):
        result = evaluate(_settings(adapter, _options(tiny, limit=1), protocol, batch_size=16), model=adapter, benchmark=bench)
        got = torch.cat(fed)
        fed.clear()
        assert got.shape[-2:] == (size, size) and result.protocol.input_size == [3, size, size]
        assert torch.equal(got, _rows(bench, reference))
