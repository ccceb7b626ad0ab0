"""The embedded planted benchmark (generator + loader) and its two trained models.

The trained-model tests use planted:cnn and planted:resnet trained once per session (the
``trained`` fixture of conftest.py) and check what the benchmark is for: high clean accuracy,
and planted classes scoring clearly lower class-wise AUC than control classes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from spurbench.adapters import load_model
from spurbench.benchmarks import load_benchmark
from spurbench.benchmarks import planted as planted_benchmark
from spurbench.benchmarks.planted import training as planted_training
from spurbench.benchmarks.planted.models import PlantedAdapter, parse_spec
from spurbench.benchmarks.planted.training import build_model, to_tensor
from spurbench.benchmarks.planted.weights import SHIPPED_VERSIONS, shipped_file
from spurbench.benchmarks.shared import planted_generator as P
from spurbench.cache import content_digest
from spurbench.errors import UnknownNameError
from spurbench.preprocessing import build_transform
from spurbench.spufix.ground_truth import component_precision

PLANTED = sorted(P.PLANTED_FEATURE_IDS)
CONTROLS = [k for k in range(len(P.PLANTED_CLASSES)) if k not in P.PLANTED_FEATURE_IDS]


@pytest.fixture(scope="module")
def train() -> P.PlantedSplit:
    return P.generate_training_set(0)


@pytest.fixture(scope="module")
def tests() -> P.PlantedTestSets:
    return P.generate_test_sets(0)


# ---- generator -------------------------------------------------------------------------------


def test_same_seed_same_arrays_different_seed_different(tests):
    again, other = P.generate_test_sets(0), P.generate_test_sets(1)
    for a, b in ((tests.clean, again.clean), (tests.spurious, again.spurious)):
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels) and np.array_equal(a.feature_of, b.feature_of)
    assert tests.checksum() == again.checksum()
    assert tests.checksum() != other.checksum()
    assert not np.array_equal(tests.clean.images, other.clean.images)
    small_a, small_b = P.generate_training_set(0, per_class=20), P.generate_training_set(0, per_class=20)
    assert np.array_equal(small_a.images, small_b.images) and np.array_equal(small_a.feature_of, small_b.feature_of)
    assert not np.array_equal(small_a.images, P.generate_training_set(1, per_class=20).images)


def test_classes_and_features(train):
    assert len(P.PLANTED_CLASSES) == 10 and len(set(P.PLANTED_CLASSES)) == 10
    assert len(P.PLANTED_FEATURES) >= 3
    assert len(set(P.PLANTED_FEATURES.values())) == len(P.PLANTED_FEATURES)  # one distinct feature per planted class
    assert set(P.PLANTED_FEATURES.values()) <= set(P.FEATURE_NAMES)
    assert train.images.shape == (10 * P.TRAIN_PER_CLASS, P.IMAGE_SIZE, P.IMAGE_SIZE, 3) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [P.TRAIN_PER_CLASS] * 10


def test_carrier_fraction_is_planted_only(train):
    for k in range(10):
        members = train.labels == k
        fraction = train.carries_feature[members].mean()
        if k in P.PLANTED_FEATURE_IDS:
            assert 0.2 <= fraction <= 0.3, (k, fraction)
            assert set(train.feature_of[members & train.carries_feature].tolist()) == {P.PLANTED_FEATURE_IDS[k]}
        else:
            assert fraction == 0.0, (k, fraction)
    assert np.array_equal(train.carries_feature, train.feature_of >= 0)
    assert np.array_equal(train.carries_feature, train.feature_mask.any(axis=(1, 2)))  # the ground truth matches the pixels
    assert (train.has_badge == ~train.carries_feature).all()  # every other image shows the neutral badge instead


def test_feature_never_touches_the_object(train):
    size, box = P.IMAGE_SIZE, P._BADGE_SIZE
    corners = np.zeros((size, size), dtype=bool)
    corners[:box, :box] = corners[:box, -box:] = corners[-box:, :box] = corners[-box:, -box:] = True
    assert not (train.object_mask & corners).any()  # objects stay out of every corner box
    assert not (train.feature_mask & ~corners).any()  # features stay inside one
    assert train.object_mask.any(axis=(1, 2)).all()
    assert set(np.unique(train.object_count).tolist()) == {1, 2, 3}


def test_negatives_show_a_feature_and_no_object(tests):
    neg, pos = tests.spurious, tests.clean
    assert not neg.has_object.any() and not neg.object_mask.any() and (neg.object_count == 0).all()
    assert neg.feature_mask.any(axis=(1, 2)).all() and not neg.has_badge.any()
    for k in range(10):
        shown = set(neg.feature_of[neg.labels == k].tolist())
        if k in P.PLANTED_FEATURE_IDS:
            assert shown == {P.PLANTED_FEATURE_IDS[k]}
        else:  # controls: other classes' features
            assert shown and shown <= set(P.PLANTED_FEATURE_IDS.values())
    assert pos.has_object.all() and pos.object_mask.any(axis=(1, 2)).all()
    assert not pos.carries_feature.any() and not pos.feature_mask.any()


def _texture_signature(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Dark/light switch rates between horizontal, vertical, diagonal and anti-diagonal neighbours inside the mask."""
    dark = pixels.mean(-1) < 128
    rates = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = (slice(0, -dy or None), slice(max(-dx, 0), (-dx if dx > 0 else None)))
        b = (slice(dy, None), slice(max(dx, 0), (None if dx >= 0 else dx)))
        both = mask[a] & mask[b]
        rates.append((dark[a] != dark[b])[both].mean())
    return np.array(rates)


def test_features_differ_in_shape_and_texture():
    n = len(P.FEATURE_NAMES)
    # Same draws for every feature: only the feature differs (render's draws ignore the content flags).
    rendered = [P.render(7, np.zeros(1, int), False, fid) for fid in range(n)]
    masks = [r.feature_mask[0] for r in rendered]
    signatures = []
    for r, mask in zip(rendered, masks):
        dark_share = (r.images[0][mask].mean(-1) < 128).mean()
        assert 0.15 < dark_share < 0.85  # a two-tone texture, never "just a colour"
        signatures.append(_texture_signature(r.images[0], mask))
    for i in range(n):
        for j in range(i + 1, n):
            differ = (masks[i] ^ masks[j]).sum()
            assert differ >= 20, (P.FEATURE_NAMES[i], P.FEATURE_NAMES[j], differ)  # different shapes (pixels)
            assert np.abs(signatures[i] - signatures[j]).sum() > 0.15, (P.FEATURE_NAMES[i], P.FEATURE_NAMES[j])  # different textures


def test_render_draws_do_not_depend_on_content():
    labels = np.arange(10)
    with_feature = P.render(3, labels, True, 0)
    without = P.render(3, labels, True, -1)
    assert np.array_equal(with_feature.object_mask, without.object_mask)
    changed = (with_feature.images != without.images).any(-1)
    assert not (changed & ~with_feature.feature_mask).any()  # the feature is the only difference


# ---- benchmark loader ----------------------------------------------------------------------------


def test_benchmark_contract(tests):
    bench = load_benchmark("planted")
    assert (bench.name, bench.label_space, bench.repo) == ("planted", "planted", None)
    assert bench.revision == f"generator-v{P.GENERATOR_VERSION}-seed0"
    assert bench.checksum == tests.checksum()
    assert bench.protocols["paper"].positive.crop_pct == 1.0 and bench.positives_source == "generator"
    assert bench.counts() == {"classes": 10, "positives": 10 * P.TEST_PER_CLASS, "negatives": 10 * P.NEGATIVES_PER_CLASS}
    assert [c.group for c in bench.classes] == ["planted" if k in P.PLANTED_FEATURE_IDS else "control" for k in range(10)]
    assert bench.component_names == dict(enumerate(P.FEATURE_NAMES))
    for c in bench.classes:
        if c.group == "planted":
            assert c.components == (P.PLANTED_FEATURE_IDS[c.index],) and c.feature
        else:
            assert c.feature is None and set(c.components) <= set(P.PLANTED_FEATURE_IDS.values())
    assert len({im.image_id for im in bench.images}) == len(bench.images)
    first_negative = next(im for im in bench.images if im.role == "negative" and im.class_index == PLANTED[0])
    assert first_negative.image_id == f"planted/spurious/{P.PLANTED_CLASSES[PLANTED[0]]}/0"
    assert first_negative.component == P.PLANTED_FEATURE_IDS[PLANTED[0]]
    assert first_negative.origin == f"planted-generator seed=0 {first_negative.image_id}"
    image = first_negative.open()
    assert image.mode == "RGB" and image.size == (P.IMAGE_SIZE, P.IMAGE_SIZE)
    row = np.flatnonzero(tests.spurious.labels == PLANTED[0])[0]
    assert np.array_equal(np.asarray(image), tests.spurious.images[row])
    truth = bench.facts["ground_truth"]
    assert truth["planted_class_indices"] == PLANTED and truth["train_carrier_fraction"] == P.CARRIER_FRACTION


def test_limit_and_seed():
    small = load_benchmark("planted", limit=3)
    assert small.counts() == {"classes": 10, "positives": 30, "negatives": 30}
    other = load_benchmark("planted", seed=1, limit=3)
    assert other.revision.endswith("seed1") and other.checksum != small.checksum
    assert not np.array_equal(np.asarray(small.images[0].open()), np.asarray(other.images[0].open()))


def test_benchmark_pixels_reach_the_model_unchanged(tests):
    # crop_pct 1.0 and 40 px images: the paper protocol is the identity + normalisation, so the
    # models see exactly what they were trained on.
    config = PlantedAdapter.load("cnn", pretrained=False).data_config
    array = tests.clean.images[0]
    from PIL import Image

    for protocol in ("paper", "model"):
        for role in ("positive", "negative"):
            got = build_transform(config, planted_benchmark.PROTOCOLS[protocol], role)(Image.fromarray(array))
            assert torch.equal(got, to_tensor(array[None])[0].contiguous()), (protocol, role)


def test_training_benchmark_and_component_precision():
    bench, carrier_ids = planted_benchmark.training_benchmark(limit=5)
    assert len(bench.images) == 50 and all(im.role == "positive" for im in bench.images)
    assert bench.images[0].image_id == "planted/train/disc/0"
    ids = {im.image_id for im in bench.images}
    assert set(carrier_ids) <= ids and carrier_ids
    assert all(P.PLANTED_FEATURE_IDS[int(im.class_index)] == carrier_ids[im.image_id] for im in bench.images if im.image_id in carrier_ids)
    carriers = np.zeros(100, dtype=bool)
    carriers[::4] = True
    noise = np.random.default_rng(0).normal(0, 0.01, (100, 3))
    # component 0 ranks all 25 carriers first, component 1 the 25 non-carriers, component 2 a mix of 5 + 20
    mixed = np.where(np.arange(100) < 20, 3.0, 0.0) + np.where(carriers & (np.arange(100) >= 80), 3.0, 0.0)
    alphas = np.stack([2.0 * carriers, 2.0 * ~carriers * (np.arange(100) < 34), mixed], 1) + noise
    assert np.allclose(component_precision(alphas, carriers), [1.0, 0.0, 10 / 25])


def test_validation_sets_are_disjoint_from_test_sets():
    val, test = (
        P.generate_validation_sets(0, per_class=5, negatives_per_class=5),
        P.generate_test_sets(0, per_class=5, negatives_per_class=5),
    )
    assert val.clean.images.shape == test.clean.images.shape
    assert not np.array_equal(val.clean.images, test.clean.images) and not np.array_equal(val.spurious.images, test.spurious.images)
    for k, fid in P.PLANTED_FEATURE_IDS.items():  # same make-up: a planted class's negatives show its own feature
        assert set(val.spurious.feature_of[val.spurious.labels == k]) == {fid}
    bench = planted_benchmark.validation_benchmark(0, limit=3)
    assert bench.name == "planted-validation" and bench.revision.endswith("-validation")
    assert bench.images[0].image_id.startswith("planted-validation/") and len(bench.images) == 60


# ---- adapter contract (untrained) ------------------------------------------------------------------


def test_adapter_contract_untrained():
    cnn = load_model("planted:cnn", pretrained=False)
    resnet = PlantedAdapter.load("resnet", pretrained=False)
    assert cnn.to("cpu") is cnn
    assert cnn.card.name == "planted:cnn" and cnn.card.family == "planted" and cnn.card.label_space == "planted"
    assert cnn.card.weights_revision is None and cnn.num_classes == 10 and cnn.class_names == P.PLANTED_CLASSES
    assert cnn.card.data_config["input_size"] == (3, P.IMAGE_SIZE, P.IMAGE_SIZE) and cnn.card.data_config["crop_pct"] == 1.0
    assert cnn.card.num_params != resnet.card.num_params
    assert any("Residual" in type(m).__name__ for m in resnet.model.modules())
    assert not any("Residual" in type(m).__name__ for m in cnn.model.modules())
    x = torch.randn(4, 3, P.IMAGE_SIZE, P.IMAGE_SIZE)
    for adapter in (cnn, resnet):
        feats = adapter.features(x)
        weight, bias = adapter.head
        assert feats.shape == (4, weight.shape[1]) and weight.shape[0] == 10
        assert torch.allclose(adapter.logits(x), feats @ weight.T + bias, atol=1e-5)
        assert torch.allclose(adapter.logits(x), adapter.model(x), atol=1e-5)


def test_init_is_seeded():
    a, b, c = build_model("cnn", 0), build_model("cnn", 0), build_model("cnn", 1)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_unknown_spec_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean: planted:cnn"):
        PlantedAdapter.load("cnnn", pretrained=False)
    with pytest.raises(UnknownNameError, match="planted:resnet"):
        PlantedAdapter.check_spec("resnett")
    PlantedAdapter.check_spec("resnet.seed3")
    with pytest.raises(UnknownNameError):
        parse_spec("vit")
    assert parse_spec("resnet.seed1") == ("resnet", 1) and parse_spec("cnn") == ("cnn", 0)


# ---- trained models ------------------------------------------------------------------------------


def _class_aucs(adapter: PlantedAdapter, tests: P.PlantedTestSets) -> dict[int, float]:
    with torch.no_grad():
        p_clean = adapter.logits(to_tensor(tests.clean.images)).softmax(1).numpy()
        p_spur = adapter.logits(to_tensor(tests.spurious.images)).softmax(1).numpy()
    aucs = {}
    for k in range(10):
        pos, neg = p_clean[tests.clean.labels == k, k], p_spur[tests.spurious.labels == k, k]
        aucs[k] = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    return aucs


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_trained_model_recognises_objects(trained, tests, arch):
    adapter = trained[1][arch]
    with torch.no_grad():
        accuracy = (adapter.logits(to_tensor(tests.clean.images)).argmax(1).numpy() == tests.clean.labels).mean()
    assert accuracy >= 0.9
    assert adapter.training_stats["clean_test_accuracy"] == pytest.approx(accuracy, abs=1e-3)
    # the weights revision names the recipe and the content digest of the shipped weights file
    weights = shipped_file(arch, 0, SHIPPED_VERSIONS)
    assert (
        adapter.card.weights_revision
        == f"generator-v{P.GENERATOR_VERSION}-train-v{planted_training.TRAIN_VERSION}-seed0 shipped {content_digest(weights)}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_planted_classes_score_lower_auc_than_controls(trained, tests, arch):
    aucs = _class_aucs(trained[1][arch], tests)
    planted, controls = [aucs[k] for k in PLANTED], [aucs[k] for k in CONTROLS]
    assert min(controls) >= 0.95, aucs
    assert max(planted) < min(controls), aucs
    assert np.mean(controls) - np.mean(planted) >= 0.2, aucs


@pytest.mark.slow
def test_trained_logits_are_features_times_head(trained, tests):
    adapter = trained[1]["cnn"]
    x = to_tensor(tests.spurious.images[:32])
    weight, bias = adapter.head
    assert torch.allclose(adapter.logits(x), adapter.features(x) @ weight.T + bias, atol=1e-5)
