"""The ``salient-imagenet`` plugin on a tiny layout in the authors' formats (tests/support/salient_fixture.py):
the views each image gets, the mask noise as the paper defines it on the real masks and images,
run -> verify through the CLI, planted-salient as its embedded default, and bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from spurbench.benchmarks.salient_imagenet import SalientImageNet
from spurbench.benchmarks.salient_imagenet.layout import load_mask
from spurbench.benchmarks.salient_imagenet.noise import image_noise
from spurbench.errors import DataError, SpurbenchError
from spurbench.harness import evaluate
from spurbench.leaderboard.verify import VerificationError, verify_result
from spurbench.preprocessing import build_transform
from spurbench.results import ViewResult
from spurbench.settings import FeatureSettings, RunSettings
from spurbench.testing import TinyAdapter
from tests.support.one_line import one_line_error
from tests.support.salient_fixture import write_tiny_salient


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_salient(tmp_path / "salient_imagenet_dataset", tmp_path / "ILSVRC2012" / "train")


QUIET = FeatureSettings(progress=False, use_cache=False)


def _load(tiny, **options):
    plugin = SalientImageNet()
    return plugin.load(plugin.parse_options({"data_dir": str(tiny["root"]), "imagenet_train": str(tiny["train_root"]), **options}))


def test_each_image_gets_the_views_its_masks_give(tiny) -> None:
    bench = _load(tiny, sigma=[0.25, 0.5])
    assert bench.name == "salient-imagenet" and bench.revision == f"layout-{bench.checksum[:12]}"
    by_id = {im.image_id: im for im in bench.images}
    for k, truth in tiny["classes"].items():
        for stem, features in truth["images"].items():
            image = by_id[f"salient-imagenet/{truth['wnid']}/{stem}"]
            kinds = {truth["features"][f]["kind"] for f in features}
            for sigma in ("0.25", "0.5"):
                assert (f"noise-spurious@{sigma}" in image.views) == ("spurious" in kinds)  # D_S(i)
                assert (f"noise-core@{sigma}" in image.views) == ("core" in kinds)  # D_C(i)
                assert {v for v in image.views if v.startswith("noise-feature-") and v.endswith(sigma)} == {
                    f"noise-feature-{f}@{sigma}" for f in features
                }
            assert image.views[0] == "clean" and image.class_index == k
    assert len(bench.images) == sum(len(t["images"]) for t in tiny["classes"].values())


def test_noise_lands_on_the_union_of_the_real_masks(tiny) -> None:
    bench = _load(tiny)
    image = next(im for im in bench.images if "noise-spurious@0.25" in im.views and "noise-core@0.25" in im.views)
    _wnid, stem = image.image_id.split("/")[1:]
    k = image.class_index
    features = tiny["classes"][k]["images"][stem]
    # --protocol model at 224 px: the masks on their own grid (paper's zoom: tests/test_salient_paper.py)
    x = build_transform(
        {"input_size": (3, 224, 224), "mean": (0.0,) * 3, "std": (1.0,) * 3}, bench.protocols["model"], "positive", normalize=False
    )(image.open())
    views = dict(zip(image.views, bench.render_views(image, x, bench.protocols["model"])))
    masks = {f: torch.from_numpy(load_mask(tiny["masks"][(k, f, stem)])) for f in features}
    spurious = torch.stack([m for f, m in masks.items() if tiny["classes"][k]["features"][f]["kind"] == "spurious"]).amax(0)
    eps = image_noise(image.image_id, x.shape)
    assert torch.allclose(views["noise-spurious@0.25"], (x + 0.25 * eps * spurious).clamp(0, 1))
    outside = spurious == 0
    assert torch.equal(views["noise-spurious@0.25"][:, outside], x[:, outside]) and outside.any() and (~outside).any()


def test_run_verify_and_tampering(tiny, cli, tmp_path) -> None:
    options = {"data_dir": str(tiny["root"]), "imagenet_train": str(tiny["train_root"])}
    settings = RunSettings(
        model="tiny:net", benchmark=SalientImageNet.name, options=options, output=tmp_path / "out", bootstrap=0, features=QUIET
    )
    result = evaluate(settings, model=TinyAdapter(num_classes=1000, label_space="imagenet-1k"))
    assert isinstance(result, ViewResult)
    (path,) = (tmp_path / "out").glob("salient-imagenet__*.json")
    proc = cli("leaderboard", "verify", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(path.read_text())
    first = next(iter(data["images"]))
    data["images"][first]["views"] = [v for v in data["images"][first]["views"] if not v.startswith("noise-core")]
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError, match="views|rows"):  # a dropped view: the rows no longer line up
        verify_result(path)
    data["images"][first]["views"] = result.images[first].views  # restored; now another checksum
    data["benchmark"]["checksum"] = "f" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError, match="checksum"):
        verify_result(path)


def test_without_data_it_is_planted_salient(cli, tmp_path) -> None:
    plugin = SalientImageNet()
    assert plugin.benchmark_name(plugin.parse_options({})) == "planted-salient"
    bench = plugin.load(plugin.parse_options({"limit": 2}))
    assert bench.name == "planted-salient" and bench.label_space == "planted"


def test_bad_input_is_one_line(tiny, cli, tmp_path) -> None:
    def run(*extra: str) -> None:
        return cli(
            "run",
            "--benchmark",
            "salient-imagenet",
            "--model",
            "timm:tf_efficientnet_lite0",
            "--data-dir",
            str(tiny["root"]),
            *extra,
            "-o",
            str(tmp_path / "o"),
            cwd=tmp_path,
        )

    proc = run()
    one_line_error(proc, "--imagenet-train")
    train = ("--imagenet-train", str(tiny["train_root"]))
    (_k, _stem), image = next(iter(tiny["train_images"].items()))
    image.rename(image.with_suffix(".moved"))
    one_line_error(run(*train), str(image))  # a missing train image, named
    image.with_suffix(".moved").rename(image)
    bogus = tiny["root"] / "n99999999"
    bogus.mkdir()
    one_line_error(run(*train), "n99999999")  # not an ImageNet-1k wnid
    bogus.rmdir()
    tiny["annotations"].unlink()
    proc = run(*train)
    one_line_error(proc, "discover_spurious_features.csv")  # the annotation CSV is missing
    assert proc.returncode == 2 and not list(Path(tmp_path / "o").glob("*.json"))


def test_a_mask_not_224_is_one_line_when_read(tiny) -> None:
    mask = next(iter(tiny["masks"].values()))
    Image.new("L", (200, 224), 128).save(mask, "JPEG")
    with pytest.raises(DataError) as info:
        options = {"data_dir": str(tiny["root"]), "imagenet_train": str(tiny["train_root"])}
        settings = RunSettings(model="tiny:net", benchmark=SalientImageNet.name, options=options, bootstrap=0, features=QUIET)
        evaluate(settings, model=TinyAdapter(num_classes=1000, label_space="imagenet-1k"), benchmark=_load(tiny))
    assert "\n" not in str(info.value) and str(mask) in str(info.value) and "200x224" in str(info.value)
    for bad in ([0.0], [0.25, 0.25]):
        with pytest.raises(SpurbenchError, match="sigma"):
            _load(tiny, sigma=bad)


def test_options_of_the_real_data_need_the_data(cli, tmp_path) -> None:
    proc = cli("run", "--benchmark", "salient-imagenet", "--imagenet-train", str(tmp_path), "-o", str(tmp_path / "o"), cwd=tmp_path)
    one_line_error(proc, "--data-dir")
    proc = cli("run", "--benchmark", "planted-salient", "--protocol", "model", "-o", str(tmp_path / "o"), cwd=tmp_path)
    one_line_error(proc, "--protocol paper")
