"""Views benchmarks: each image seen in several views from one decode, a views result per (model,
benchmark), its metrics recomputed by ``leaderboard verify``; here through ``planted-salient``
(Salient ImageNet's core/spurious accuracy on generated images with exact masks)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from spurbench.benchmarks.base import BenchmarkClass, BenchmarkImage, ViewTable
from spurbench.benchmarks.planted.models import PlantedAdapter
from spurbench.benchmarks.salient_imagenet.metrics import salient_metrics
from spurbench.benchmarks.salient_imagenet.noise import image_noise, render, views_for
from spurbench.benchmarks.salient_imagenet.planted import PlantedSalient, planted_salient_benchmark
from spurbench.benchmarks.shared.planted_generator import PLANTED_FEATURE_IDS, generate_carrier_set
from spurbench.errors import SpurbenchError
from spurbench.harness import evaluate
from spurbench.leaderboard.verify import VerificationError, verify_result
from spurbench.results import ViewResult, read_result
from spurbench.settings import FeatureSettings, RunSettings

QUIET = FeatureSettings(progress=False, use_cache=False)


def _settings(model, output=None, features: FeatureSettings = QUIET, **options) -> RunSettings:
    """``model`` on planted-salient (``options``: its options)."""
    return RunSettings(model=model.name, benchmark=PlantedSalient.name, options=options, output=output, bootstrap=0, features=features)


def test_noise_is_mask_weighted_clamped_and_seeded_by_the_image_id() -> None:
    x = torch.rand(3, 6, 5, generator=torch.Generator().manual_seed(1))
    masks = {0: torch.zeros(6, 5), 1: torch.zeros(6, 5), 2: torch.zeros(6, 5)}
    masks[0][:2] = 1.0  # core
    masks[1][4:, :2] = 0.5  # spurious, soft
    masks[2][5:, 3:] = 1.0  # spurious
    kinds = {0: "core", 1: "spurious", 2: "spurious"}
    image = BenchmarkImage("im-1", 0, "positive", None, "x", lambda: None, views_for(kinds, [0.25, 1.0]))  # type: ignore[arg-type,return-value]
    assert image.views == (
        "clean",
        "noise-spurious@0.25",
        "noise-core@0.25",
        "noise-feature-0@0.25",
        "noise-feature-1@0.25",
        "noise-feature-2@0.25",
        "noise-spurious@1",
        "noise-core@1",
        "noise-feature-0@1",
        "noise-feature-1@1",
        "noise-feature-2@1",
    )
    out = dict(zip(image.views, render(image, x, masks, kinds)))
    eps = image_noise("im-1", x.shape)
    spurious_mask = torch.maximum(masks[1], masks[2])  # paper eq. 2: the pixel-wise max of the class's spurious masks
    assert torch.equal(out["clean"], x)
    assert torch.allclose(out["noise-spurious@0.25"], (x + 0.25 * eps * spurious_mask).clamp(0, 1))
    assert torch.allclose(out["noise-core@1"], (x + 1.0 * eps * masks[0]).clamp(0, 1))
    assert torch.allclose(out["noise-feature-1@1"], (x + eps * masks[1]).clamp(0, 1))
    assert torch.equal(out["noise-core@1"][:, 2:], x[:, 2:])  # no noise outside the mask
    assert out["noise-core@1"].min() >= 0 and out["noise-core@1"].max() <= 1 and not torch.equal(out["noise-core@1"][:, :2], x[:, :2])
    # the same id draws the same noise in any process, another id other noise
    assert torch.equal(image_noise("im-1", (3, 6, 5)), eps) and not torch.equal(image_noise("im-2", (3, 6, 5)), eps)
    # masks on another grid are resized to the input (a model that does not take 224 px)
    big = render(image, torch.rand(3, 12, 10), dict(masks.items()), kinds)
    assert big[0].shape == (3, 12, 10)


def _table(rows: list[tuple[str, int, str, bool, float]], classes: list[BenchmarkClass]) -> ViewTable:
    return ViewTable(
        image_ids=[r[0] for r in rows],
        views=[r[2] for r in rows],
        class_index=np.array([r[1] for r in rows]),
        correct=np.array([r[3] for r in rows]),
        prob=np.array([r[4] for r in rows]),
        watched={},
        classes=classes,
    )


def test_core_and_spurious_accuracy_follow_the_paper() -> None:
    classes = [BenchmarkClass(0, "a", group="g1"), BenchmarkClass(1, "b", group="g2")]
    rows = [
        # class 0: a (spurious + core masks), b (spurious only), c (core only)
        ("a", 0, "clean", True, 0.9),
        ("a", 0, "noise-spurious@0.25", True, 0.8),
        ("a", 0, "noise-core@0.25", False, 0.2),
        ("b", 0, "clean", True, 0.7),
        ("b", 0, "noise-spurious@0.25", False, 0.3),
        ("c", 0, "clean", False, 0.4),
        ("c", 0, "noise-core@0.25", False, 0.1),
        # class 1: d (spurious only)
        ("d", 1, "clean", False, 0.3),
        ("d", 1, "noise-spurious@0.25", True, 0.6),
    ]
    scores = salient_metrics(_table(rows, classes))
    a = scores.classes[0]
    assert a["clean_accuracy"] == pytest.approx(2 / 3)
    assert a["core_accuracy"] == pytest.approx(1 / 2)  # D_S = {a, b}, noise on s
    assert a["core_drop"] == pytest.approx(1 / 2 - 1)  # against the clean accuracy of D_S, not of all images
    assert a["spurious_accuracy"] == pytest.approx(0.0) and a["spurious_drop"] == pytest.approx(0 - 1 / 2)  # D_C = {a, c}
    assert a["gap"] == pytest.approx(0.5)
    assert a["core_prob_drop"] == pytest.approx((0.8 + 0.3) / 2 - (0.9 + 0.7) / 2)
    b = scores.classes[1]
    assert b["core_accuracy"] == 1.0 and b["spurious_accuracy"] is None and b["gap"] is None  # no core masks: undefined, not 0
    m = scores.metrics
    assert m["core_accuracy"] == pytest.approx((0.5 + 1.0) / 2) and m["spurious_accuracy"] == pytest.approx(
        0.0
    )  # means over defined classes
    assert m["core_drop_g1"] == pytest.approx(-0.5) and m["core_drop_g2"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown view"):
        salient_metrics(_table([("a", 0, "noise-elsewhere@1", True, 0.5)], classes))


@pytest.fixture
def untrained():
    return PlantedAdapter.load("cnn", pretrained=False)


def test_rows_do_not_depend_on_batch_size_or_order(untrained) -> None:
    bench = planted_salient_benchmark(limit=3)

    def rows(batch_size: int, benchmark=bench) -> ViewResult:
        settings = _settings(untrained, features=QUIET.model_copy(update={"batch_size": batch_size}), limit=3)
        result = evaluate(settings, model=untrained, benchmark=benchmark)
        assert isinstance(result, ViewResult)
        return result

    one, other = rows(64), rows(5)
    flipped = rows(7, replace(bench, images=list(reversed(bench.images))))
    assert isinstance(one, ViewResult) and len(one.row_ids()) == 30 * 5  # 3 images x 10 classes, clean + 2 noises + 2 single features

    def by_row(result: ViewResult) -> dict[str, float]:
        return dict(zip(result.row_ids(), result.heads["plain"].rows.prob))

    assert by_row(one) == pytest.approx(by_row(other), abs=1e-6) and by_row(one) == pytest.approx(by_row(flipped), abs=1e-6)
    assert one.heads["plain"].metrics == pytest.approx(flipped.heads["plain"].metrics, abs=1e-9)


def _refused(path, original: dict, change) -> str:
    """``verify`` of a copy of ``original`` edited by ``change``: its one-line error."""
    data = json.loads(json.dumps(original))
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(VerificationError) as info:
        verify_result(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_views_result_verifies_and_tampering_fails(untrained, tmp_path) -> None:
    evaluate(_settings(untrained, tmp_path, sigma=[0.5, 1.0]), model=untrained)
    (path,) = tmp_path.glob("*.json")
    result = verify_result(path)
    assert isinstance(result, ViewResult) and {"core_accuracy", "core_accuracy@1"} <= set(result.heads["plain"].metrics)
    assert isinstance(read_result(path), ViewResult)
    original = json.loads(path.read_text())

    def tampered(change) -> str:
        return _refused(path, original, change)

    first_noisy = original["images"][next(iter(original["images"]))]["views"].index("noise-core@0.5")

    def flip_noisy(d):  # a noisy row's outcome, its metrics left as they were
        rows = d["heads"]["plain"]["rows"]
        rows["correct"][first_noisy] = not rows["correct"][first_noisy]
        rows["prob"][first_noisy] = 0.5 if rows["correct"][first_noisy] else 0.0

    assert "recomputed" in tampered(flip_noisy)
    assert "metrics.gap" in tampered(lambda d: d["heads"]["plain"]["metrics"].update(gap=0.99))
    assert ".views" in tampered(lambda d: d["images"][next(iter(d["images"]))]["views"].pop())
    assert "impossible" in tampered(
        lambda d: d["heads"]["plain"]["rows"].update(
            prob=[0.9] * len(d["heads"]["plain"]["rows"]["prob"]), correct=[False] * len(d["heads"]["plain"]["rows"]["prob"])
        )
    )
    assert "checksum" in tampered(lambda d: d["benchmark"].update(checksum="0" * 64))
    assert "kind" in tampered(lambda d: d["benchmark"].update(name="planted", revision=d["benchmark"]["revision"].replace("-carriers", "")))


def test_bad_noise_levels_are_one_line_errors() -> None:
    plugin = PlantedSalient()
    for bad in ([0.0], [-1.0], [0.25, 0.25], [float("nan")]):
        with pytest.raises(SpurbenchError, match="sigma"):
            plugin.load(plugin.parse_options({"sigma": bad}))


def test_carriers_show_object_and_feature_with_exact_masks() -> None:
    split = generate_carrier_set(0)
    assert split.has_object.all() and split.carries_feature.all()
    for k, fid in PLANTED_FEATURE_IDS.items():
        assert (split.feature_of[split.labels == k] == fid).all()  # a planted class carries its own feature
    controls = ~np.isin(split.labels, list(PLANTED_FEATURE_IDS))
    assert set(split.feature_of[controls].tolist()) <= set(PLANTED_FEATURE_IDS.values())
    assert (split.object_mask.sum((1, 2)) > 0).all() and (split.feature_mask.sum((1, 2)) > 0).all()
    assert not (split.object_mask & split.feature_mask).any()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_planted_salient_shows_the_planted_reliance(trained, arch, tmp_path) -> None:
    model = trained[1][arch]
    result = evaluate(_settings(model, tmp_path, FeatureSettings(progress=False)), model=model)
    verify_result(next(tmp_path.glob("*.json")))
    m = result.heads["plain"].metrics
    # noise on the feature changes planted classes' accuracy clearly more than control classes'
    assert abs(m["core_drop_planted"]) > abs(m["core_drop_control"]) + 0.2, m
    assert abs(m["core_prob_drop_planted"]) > abs(m["core_prob_drop_control"]) + 0.2, m
    # noise on the object hurts every class: its probability of the class falls (top-1 accuracy falls
    # too, except where the planted feature alone already decides the class)
    for c in result.heads["plain"].classes:
        assert c.metrics["spurious_prob_drop"] < 0 and c.metrics["spurious_drop"] <= 0, (c.class_name, c.metrics)


def test_views_span_shards_and_a_lost_shard_is_recomputed(untrained) -> None:
    from spurbench.features import FeatureStream

    bench = planted_salient_benchmark(limit=3)  # 30 images, 5 views each
    whole = torch.cat([f for _, f in FeatureStream.open(untrained, bench, QUIET)])
    sharded = FeatureSettings(batch_size=4, shard_batches=2, progress=False)
    stream = FeatureStream.open(untrained, bench, sharded)  # shards of 8 images = 40 rows
    assert len(stream.shard_ids) == 4 and [len(ids) for ids in stream.shard_ids] == [40, 40, 40, 30]
    first = [(ids, f) for ids, f in stream]
    assert [i for ids, _ in first for i in ids] == [f"{im.image_id}::{v}" for im in bench.images for v in im.views]
    assert torch.allclose(torch.cat([f for _, f in first]), whole, atol=1e-5)
    (stream.folder / "shard-00001.safetensors").unlink()
    again = FeatureStream.open(untrained, bench, sharded)
    assert again.missing == [1] and again.images_forwarded == 40  # only the lost shard's rows are forwarded again
    assert torch.equal(torch.cat([f for _, f in again]), torch.cat([f for _, f in first]))


def test_verify_refuses_what_a_views_file_cannot_hold(untrained, tmp_path) -> None:
    evaluate(_settings(untrained, tmp_path), model=untrained)
    (path,) = tmp_path.glob("*.json")
    original = json.loads(path.read_text())

    def refused(change) -> str:
        return _refused(path, original, change)

    def rename(d, old, new):
        for image in d["images"].values():
            image["views"] = [new if v == old else v for v in image["views"]]

    assert "unknown view" in refused(lambda d: rename(d, "noise-core@1", "noise-core@abc"))
    assert "group" in refused(lambda d: d["heads"]["plain"]["classes"][0].update(group="planted"))  # disc is a control class

    def clean_only(d):  # every image seen clean only: the rows and views agree, but no noise was scored
        keep = [i for i, rid in enumerate(ViewResult.model_validate(original).row_ids()) if rid.endswith("::clean")]
        for image in d["images"].values():
            image["views"] = ["clean"]
        rows = d["heads"]["plain"]["rows"]
        rows["correct"], rows["prob"] = [rows["correct"][i] for i in keep], [rows["prob"][i] for i in keep]

    assert "no noise views" in refused(clean_only)


def test_a_board_never_ranks_two_noise_levels_together(untrained, tmp_path) -> None:
    from spurbench.leaderboard.build import build_board

    evaluate(_settings(untrained, tmp_path / "a"), model=untrained)
    other = PlantedAdapter.load("resnet", pretrained=False)
    evaluate(_settings(other, tmp_path / "a", sigma=[0.25]), model=other)
    with pytest.raises(SpurbenchError, match="views"):
        build_board(sorted((tmp_path / "a").glob("*.json")), tmp_path / "site", board_dir=tmp_path)
