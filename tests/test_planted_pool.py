"""The planted benchmark's unlabelled mining pool: its mix, its truth, its isolation from the other
splits, the plugin hook, and the pool written as a folder of PNGs."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spurbench.benchmarks import Benchmark, MinesPools, PoolTruth, get_benchmark, require
from spurbench.benchmarks import planted as planted_benchmark
from spurbench.benchmarks.shared import planted_generator as P
from spurbench.errors import SpurbenchError

PLANTED = sorted(P.PLANTED_FEATURE_IDS)
CONTROLS = [k for k in range(len(P.PLANTED_CLASSES)) if k not in P.PLANTED_FEATURE_IDS]


@pytest.fixture(scope="module")
def pool() -> P.PlantedSplit:
    return P.generate_pool(0)


@pytest.fixture(scope="module")
def kinds(pool: P.PlantedSplit) -> np.ndarray:
    return P.pool_kinds(pool)


def _hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images}


def test_pool_mix_matches_the_constants(pool, kinds) -> None:
    n_planted = len(P.PLANTED_FEATURE_IDS)
    expected = {
        "clean": P.POOL_CLEAN_PER_CLASS * len(P.PLANTED_CLASSES),
        "carrier": P.POOL_CARRIERS_PER_CLASS * n_planted,
        "control-carrier": P.POOL_CONTROL_CARRIERS_PER_FEATURE * n_planted,
        "feature-only": P.POOL_FEATURE_ONLY_PER_FEATURE * n_planted,
        "background": P.POOL_BACKGROUNDS,
    }
    assert dict(Counter(kinds)) == expected == P.pool_mix()
    assert len(pool) == sum(expected.values()) == 2000
    assert pool.images.shape == (2000, P.IMAGE_SIZE, P.IMAGE_SIZE, 3) and pool.images.dtype == np.uint8
    for k in range(len(P.PLANTED_CLASSES)):
        assert int(((kinds == "clean") & (pool.labels == k)).sum()) == P.POOL_CLEAN_PER_CLASS
    for cls, fid in P.PLANTED_FEATURE_IDS.items():
        carriers = (kinds == "carrier") & (pool.labels == cls)
        assert int(carriers.sum()) == P.POOL_CARRIERS_PER_CLASS and (pool.feature_of[carriers] == fid).all()
        assert int(((kinds == "feature-only") & (pool.feature_of == fid)).sum()) == P.POOL_FEATURE_ONLY_PER_FEATURE
        controls = (kinds == "control-carrier") & (pool.feature_of == fid)
        assert int(controls.sum()) == P.POOL_CONTROL_CARRIERS_PER_FEATURE and np.isin(pool.labels[controls], CONTROLS).all()
    # shuffled: the kinds are interleaved, not in blocks
    assert len(set(kinds[:100])) >= 3


def test_each_planted_feature_shows_on_its_object_at_least_as_often_as_alone(pool) -> None:
    for cls, fid in P.PLANTED_FEATURE_IDS.items():
        with_object = int((pool.has_object & (pool.labels == cls) & (pool.feature_of == fid)).sum())
        alone = int((~pool.has_object & (pool.feature_of == fid)).sum())
        assert with_object >= alone > 0


def test_pool_contents_agree_with_the_masks(pool, kinds) -> None:
    has_feature_pixels = pool.feature_mask.any((1, 2))
    has_object_pixels = pool.object_mask.any((1, 2))
    assert (has_feature_pixels == (pool.feature_of >= 0)).all() and (pool.carries_feature == (pool.feature_of >= 0)).all()
    assert (has_object_pixels == pool.has_object).all() and ((pool.object_count > 0) == pool.has_object).all()
    feature_only = kinds == "feature-only"
    assert not pool.has_object[feature_only].any() and not pool.has_badge[feature_only].any()
    background = kinds == "background"
    assert not (pool.has_object | pool.carries_feature | pool.has_badge)[background].any()
    # the neutral badge: on the clean objects exactly
    assert (pool.has_badge == (kinds == "clean")).all()


def test_pool_is_disjoint_from_every_other_split(pool) -> None:
    mine = _hashes(pool.images)
    assert len(mine) == len(pool)  # no duplicates within the pool either
    others: set[str] = _hashes(P.generate_training_set(0).images)
    for sets in (P.generate_test_sets(0), P.generate_validation_sets(0)):
        others |= _hashes(sets.clean.images) | _hashes(sets.spurious.images)
    assert not mine & others


def test_pool_is_deterministic_per_seed_and_differs_across_seeds(pool) -> None:
    again = P.generate_pool(0)
    assert np.array_equal(again.images, pool.images) and np.array_equal(again.labels, pool.labels)
    assert np.array_equal(again.feature_of, pool.feature_of) and P.pool_checksum(again) == P.pool_checksum(pool)
    other = P.generate_pool(1)
    assert not np.array_equal(other.images, pool.images) and P.pool_checksum(other) != P.pool_checksum(pool)
    assert P.pool_mix() == dict(Counter(P.pool_kinds(other)))


def test_plugin_returns_the_pool_as_an_unlabelled_benchmark(pool) -> None:
    plugin = get_benchmark("planted")
    bench, truth = require(plugin, MinesPools).mining_pool(plugin.parse_options({}))
    assert isinstance(bench, Benchmark) and isinstance(truth, PoolTruth)
    assert bench.name == "planted-pool" and bench.classes == [] and bench.label_space == "planted"
    assert bench.revision == f"generator-v{P.GENERATOR_VERSION}-seed0-pool" and bench.checksum == P.pool_checksum(pool)
    ids = [im.image_id for im in bench.images]
    assert len(ids) == len(set(ids)) == len(pool) and ids[17] == "planted/pool/17"
    assert all(im.class_index == -1 and im.role == "negative" and im.component is None for im in bench.images)
    assert bench.images[17].origin == "planted-generator seed=0 pool/17"
    assert np.array_equal(np.asarray(bench.images[17].open()), pool.images[17])
    assert set(truth.objects) == set(truth.features) == set(ids)
    for i in (0, 17, 1999):
        assert truth.objects[ids[i]] == (int(pool.labels[i]) if pool.has_object[i] else None)
        assert truth.features[ids[i]] == (int(pool.feature_of[i]) if pool.feature_of[i] >= 0 else None)
    assert sum(f is not None for f in truth.features.values()) == int(pool.carries_feature.sum())
    # seed and limit are the plugin's options
    small, small_truth = require(plugin, MinesPools).mining_pool(plugin.parse_options({"seed": 3, "limit": 10}))
    assert len(small.images) == len(small_truth.objects) == 10 and small.revision.endswith("seed3-pool")  # type: ignore[union-attr]


def test_a_benchmark_without_a_pool_says_so_in_one_line() -> None:
    plugin = get_benchmark("spurious-imagenet")
    assert not isinstance(plugin, MinesPools)
    with pytest.raises(SpurbenchError) as err:
        require(plugin, MinesPools).mining_pool(plugin.parse_options({}))
    assert str(err.value) == "benchmark 'spurious-imagenet' generates no mining pool; pass --pool DIR"


def test_write_pool_writes_pngs_keyed_by_relative_path(tmp_path: Path, pool) -> None:
    truth = planted_benchmark.write_pool(tmp_path / "pool", seed=0)
    files = sorted(p.relative_to(tmp_path / "pool").as_posix() for p in (tmp_path / "pool").rglob("*.png"))
    assert len(files) == len(pool) and set(truth.objects) == set(truth.features) == set(files)
    assert {f.split("/")[0] for f in files} == {f"part-{j}" for j in range(4)}
    for i in (0, 17, 1234, 1999):
        key = f"part-{i // 500}/{i}.png"
        with Image.open(tmp_path / "pool" / key) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), pool.images[i])
        assert truth.objects[key] == (int(pool.labels[i]) if pool.has_object[i] else None)
        assert truth.features[key] == (int(pool.feature_of[i]) if pool.feature_of[i] >= 0 else None)
