"""The pixel cache (issue §3): decoded, resized uint8 inputs shared by models with one preprocessing."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from spurbench.dataloading import pixel_cache_key
from spurbench.errors import SpurbenchError
from spurbench.features import FeatureStream, extract_features
from spurbench.pixelcache import PixelCache
from spurbench.settings import FeatureSettings
from spurbench.shard_store import write_shard
from spurbench.testing import TinyAdapter, tiny_benchmark

SETTINGS = FeatureSettings(
    batch_size=4, use_cache=False, progress=False, num_workers=0
)  # no feature cache: every run goes through the data path


def _cached(root, **changes) -> FeatureSettings:
    """SETTINGS with the pixel cache at ``root`` (and ``changes``)."""
    return FeatureSettings(**{**SETTINGS.model_dump(), "pixel_cache": root, **changes})


def _undecodable(bench):
    """The same image set (ids, checksum: the same cache key) whose files can no longer be opened."""

    def fail():
        raise AssertionError("decoded although the pixel cache holds this image")

    return replace(bench, images=[replace(im, loader=fail) for im in bench.images])


def _entries(root):
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_second_run_reads_the_cache_and_gives_the_same_features(tmp_path):
    bench = tiny_benchmark()
    plain = extract_features(TinyAdapter(), bench, settings=SETTINGS).features
    first = extract_features(TinyAdapter(), bench, _cached(tmp_path / "px")).features
    # A model with another mean/std but the same geometry shares the entry; its images are never opened.
    other = TinyAdapter()
    other.card = other.card.model_copy(update={"data_config": {**other.data_config, "mean": (0.1, 0.2, 0.3), "std": (0.3, 0.2, 0.1)}})
    again = extract_features(TinyAdapter(), _undecodable(bench), _cached(tmp_path / "px")).features
    shifted = extract_features(other, _undecodable(bench), _cached(tmp_path / "px")).features
    # Equal, not just close: the cache holds the very uint8 pixels the loader makes, batched alike.
    assert torch.equal(first, plain) and torch.equal(again, plain)
    assert not torch.equal(shifted, plain)  # its own normalisation was applied on the device
    assert len(_entries(tmp_path / "px")) == 1
    with_workers = extract_features(TinyAdapter(), _undecodable(bench), _cached(tmp_path / "px", num_workers=1)).features
    assert torch.equal(with_workers, plain)


def test_key_is_shared_by_one_preprocessing_and_differs_otherwise():
    bench = tiny_benchmark()
    config = TinyAdapter().data_config
    key = pixel_cache_key(bench, config, "paper")
    assert pixel_cache_key(bench, {**config, "mean": (0.0,) * 3, "std": (1.0,) * 3}, "paper") == key  # stored before normalisation
    assert pixel_cache_key(bench, {**config, "input_size": (3, 32, 32)}, "paper") != key
    assert pixel_cache_key(bench, config, "model") != key
    model = pixel_cache_key(bench, config, "model")
    assert pixel_cache_key(bench, {**config, "interpolation": "bicubic"}, "model") != model
    assert pixel_cache_key(bench, {**config, "crop_pct": 0.875}, "model") != model
    assert pixel_cache_key(tiny_benchmark(per_role=11), config, "paper") != key  # another image set
    assert pixel_cache_key(replace(bench, checksum="other"), config, "paper") != key
    assert pixel_cache_key(replace(bench, images=list(reversed(bench.images))), config, "paper") != key  # another order


def test_size_bound_evicts_the_least_recently_used_entry(tmp_path, capsys):
    root = tmp_path / "px"
    (root / "not-an-entry").mkdir(parents=True)  # a folder the cache did not make: never deleted
    # Each tiny entry holds 96 x 3 x 16 x 16 = 73,728 bytes of pixels (plus headers): two fit in 200 kB, three do not.
    bounded = _cached(root, pixel_cache_gb=200e3 / 1e9)
    for name in ("a", "b", "a"):  # "a" used again last: "b" is the least recently used
        extract_features(TinyAdapter(), tiny_benchmark(name=name), bounded)
        time.sleep(0.02)
    assert [p.name.split("-")[0] for p in _entries(root)] == ["a", "b", "not"]
    extract_features(TinyAdapter(), tiny_benchmark(name="c"), bounded)
    assert [p.name.split("-")[0] for p in _entries(root)] == ["a", "c", "not"]
    assert "evicted b-" in capsys.readouterr().err
    # An entry larger than the whole bound is not cached; the run decodes as without a cache.
    feats = extract_features(TinyAdapter(), tiny_benchmark(), _cached(tmp_path / "small", pixel_cache_gb=10e3 / 1e9)).features
    assert "over the 0.0 GB bound" in capsys.readouterr().err and _entries(tmp_path / "small") == []
    assert torch.equal(feats, extract_features(TinyAdapter(), tiny_benchmark(), settings=SETTINGS).features)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("flipped byte", "shard 0 damaged (its data does not match its digest); decoding it again"),
        ("truncated", "shard 0 unreadable (SafetensorError); decoding it again"),
        ("other images", "shard 0 lists other images or has another shape; decoding it again"),
    ],
)
def test_damaged_entry_is_decoded_again_never_trusted(tmp_path, capsys, damage, said):
    bench = tiny_benchmark()
    reference = extract_features(TinyAdapter(), bench, _cached(tmp_path / "px")).features
    (shard,) = (tmp_path / "px").glob("*/shard-00000.safetensors")
    data = bytearray(shard.read_bytes())
    if damage == "flipped byte":
        data[-100] ^= 0xFF  # in the pixels; the header still parses
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # a whole shard with its own valid digest, of the images in another order
        pixels = load_file(str(shard))["pixels"]
        write_shard(shard.parent, 0, "pixels", [im.image_id for im in reversed(bench.images)], pixels)
        data = bytearray(shard.read_bytes())
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert torch.equal(extract_features(TinyAdapter(), bench, _cached(tmp_path / "px")).features, reference)
    assert said in capsys.readouterr().err  # said so, in the pixel cache's words
    # ... and rewritten: the next run reads it without decoding
    assert torch.equal(extract_features(TinyAdapter(), _undecodable(bench), _cached(tmp_path / "px")).features, reference)


def test_resumed_run_reads_only_the_missing_images_rows(tmp_path):
    """A lost feature shard is recomputed from its images' rows of the pixel cache, not by decoding."""
    bench = tiny_benchmark()
    settings = _cached(tmp_path / "px", use_cache=True, shard_batches=2)  # feature shards of 8 images
    stream = FeatureStream.open(TinyAdapter(), bench, settings)
    full = torch.cat([f for _, f in stream])
    (stream.folder / "shard-00001.safetensors").unlink()
    again = FeatureStream.open(TinyAdapter(), _undecodable(bench), settings)
    assert again.missing == [1]
    assert torch.equal(torch.cat([f for _, f in again]), full)


def test_a_stream_is_checked_when_opened_not_when_built(tmp_path):
    (tmp_path / "file").write_text("x")
    settings = _cached(tmp_path / "file")  # a pixel cache "folder" that is a file
    stream = FeatureStream(TinyAdapter(), tiny_benchmark(), settings)  # the constructor only stores
    assert stream.settings is settings and stream.shard_ids == [] and stream.pixel_cache is None and stream.folder is None
    with pytest.raises(SpurbenchError, match="is not a folder"):
        FeatureStream.open(TinyAdapter(), tiny_benchmark(), settings)
    opened = FeatureStream.open(TinyAdapter(), tiny_benchmark(), _cached(tmp_path / "px", shard_batches=2))
    assert [len(ids) for ids in opened.shard_ids] == [8] * 12 and opened.missing == list(range(12))  # 96 images, shards of 2 x 4
    assert isinstance(opened.pixel_cache, PixelCache) and opened.pixel_cache.root == tmp_path / "px"


def _fill(root: str) -> None:
    torch.set_num_threads(1)  # a forked child must not use the parent's OpenMP pool (it would hang), as DataLoader workers do
    extract_features(TinyAdapter(), tiny_benchmark(), _cached(root))


def test_concurrent_jobs_fill_one_entry_safely(tmp_path):
    """Two sweep jobs (processes) decoding into the same entry at once: each shard is renamed into
    place whole, so the entry ends valid and is then read without decoding."""
    context = multiprocessing.get_context("fork")
    jobs = [context.Process(target=_fill, args=(str(tmp_path / "px"),)) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(120)
        if job.is_alive():
            job.kill()
    assert [job.exitcode for job in jobs] == [0, 0]
    assert not list((tmp_path / "px").rglob(".*.tmp"))  # no temporary file left behind
    reference = extract_features(TinyAdapter(), tiny_benchmark(), settings=SETTINGS).features
    assert torch.equal(extract_features(TinyAdapter(), _undecodable(tiny_benchmark()), _cached(tmp_path / "px")).features, reference)


def test_bad_pixel_cache_options_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpurbenchError, match="is not a folder"):
        PixelCache.open(tmp_path / "file")
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(SpurbenchError, match="--pixel-cache-gb"):
            PixelCache.open(tmp_path / "px", bad)
