"""The shard store (``spurbench.shard_store``) that the feature cache and the pixel cache share: a shard
is trusted only if its ids, dtype, shape and digest all match; writes are atomic; shards written before
the store existed still read as valid."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from spurbench import shard_store
from spurbench.features.shards import shard_state
from spurbench.pixelcache import PixelEntry
from spurbench.shard_store import ShardSpec, read_manifest, read_shard, shard_path, tensor_digest, write_manifest, write_shard

IDS = ["a", "b", "c"]
FEATS = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8
SPEC = ShardSpec("features", IDS, torch.float32, (3, 4))

# Written by the feature cache and the pixel cache before the store (their own writers, this session):
# the same scheme, so an existing entry stays valid with the same digests.
FEATURE_SHARD_BEFORE = (
    b'\xc0\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"image_ids":"[\\"a\\", \\"b\\"]",'
    b'"sha256":"68a32cf1ffae49f86de59a3b039f2da310de255249caa500f91f16437e25eda0"},'
    b'"features":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}      '
    b"\x00\x00\x00?\x00\x00\x80\xbf\x00\x00\x00@\x00\x00P@\x00\x00\x00\x00\x00\x00\x00\xbe"
)
PIXEL_SHARD_BEFORE = (
    b'\xb8\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"sha256":"038625e232e3d04e459fb4dad32a529b1c21ca03c272437ba0dea985d99eca3a",'
    b'"image_ids":"[\\"x\\"]"},"pixels":{"dtype":"U8","shape":[1,3,1,2],"data_offsets":[0,6]}}     '
    b"\x01\x02\x03\x04\xfa\xff"
)


def _header(path) -> dict:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length])


def test_a_written_shard_reads_back_whole_with_its_ids_and_digest(tmp_path):
    write_shard(tmp_path, 7, "features", IDS, FEATS)
    assert shard_path(tmp_path, 7) == tmp_path / "shard-00007.safetensors"
    meta = _header(shard_path(tmp_path, 7))["__metadata__"]
    assert json.loads(meta["image_ids"]) == IDS
    assert meta["sha256"] == hashlib.sha256(FEATS.numpy().tobytes()).hexdigest() == tensor_digest(FEATS)
    read = read_shard(tmp_path, 7, SPEC)
    assert read.problem is None and read.why == "ok" and read.tensor is not None and torch.equal(read.tensor, FEATS)
    assert read_shard(tmp_path, 8, SPEC) == shard_store.ShardRead("missing", "missing")


def test_the_digest_is_of_the_bytes_in_row_major_order():
    pixels = torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8)
    assert tensor_digest(pixels) == hashlib.sha256(bytes([1, 2, 3, 4])).hexdigest()
    assert tensor_digest(pixels.t()) == hashlib.sha256(bytes([1, 3, 2, 4])).hexdigest()  # a view is hashed as its copy
    assert tensor_digest(torch.tensor([1.0, -2.0])) == hashlib.sha256(struct.pack("<2f", 1.0, -2.0)).hexdigest()


def test_a_flipped_byte_is_caught_when_the_data_is_read(tmp_path):
    write_shard(tmp_path, 0, "features", IDS, FEATS)
    path = shard_path(tmp_path, 0)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # one bit of the last feature; the header still parses
    path.write_bytes(bytes(raw))
    read = read_shard(tmp_path, 0, SPEC)
    assert (read.problem, read.why, read.tensor) == ("damaged", "damaged (its data does not match its digest)", None)
    assert read_shard(tmp_path, 0, SPEC, data=False).problem is None  # a header read does not see the data: checked on use


@pytest.mark.parametrize("data", [True, False])
def test_other_ids_shape_or_dtype_are_not_trusted(tmp_path, data):
    write_shard(tmp_path, 0, "features", IDS, FEATS)
    other_ids = read_shard(tmp_path, 0, ShardSpec("features", ["a", "c", "b"], torch.float32, (3, 4)), data=data)
    assert (other_ids.problem, other_ids.why) == ("other images", "lists other images")
    wider = read_shard(tmp_path, 0, ShardSpec("features", IDS, torch.float32, (3, 5)), data=data)
    assert (wider.problem, wider.why) == ("other layout", "has shape (3, 4) torch.float32, expected (3, 5) float32")
    write_shard(tmp_path, 1, "features", IDS, FEATS.double())
    double = read_shard(tmp_path, 1, SPEC, data=data)
    assert (double.problem, double.why) == ("other layout", "has shape (3, 4) torch.float64, expected (3, 4) float32")
    assert read_shard(tmp_path, 0, ShardSpec("pixels", IDS, torch.float32, (3, 4)), data=data).why == "unreadable (SafetensorError)"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no ids"])
def test_an_unreadable_shard_says_so(tmp_path, damage):
    write_shard(tmp_path, 0, "features", IDS, FEATS)
    path = shard_path(tmp_path, 0)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "garbage":
        path.write_bytes(b"garbage")
    else:  # a safetensors file without the store's metadata
        save_file({"features": FEATS}, str(path))
    for data in (True, False):
        read = read_shard(tmp_path, 0, SPEC, data=data)
        assert read.problem == "unreadable" and read.why.startswith("unreadable (") and read.tensor is None


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    write_shard(tmp_path, 0, "features", IDS, FEATS)
    before = shard_path(tmp_path, 0).read_bytes()

    def dies_half_way(tensors, filename, metadata):
        with open(filename, "wb") as out:
            out.write(b"\x10\x00\x00\x00")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shard_store, "save_file", dies_half_way)
    for index in (0, 1):  # over an intact shard, and where none was
        with pytest.raises(OSError, match="No space"):
            write_shard(tmp_path, index, "features", IDS, FEATS * 2)
    assert shard_path(tmp_path, 0).read_bytes() == before and not shard_path(tmp_path, 1).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.safetensors"]  # no temporary left behind
    assert read_shard(tmp_path, 0, SPEC).problem is None


def test_shards_written_before_the_store_stay_valid(tmp_path):
    (tmp_path / "features").mkdir()
    shard_path(tmp_path / "features", 0).write_bytes(FEATURE_SHARD_BEFORE)
    feats = torch.tensor([[0.5, -1.0, 2.0], [3.25, 0.0, -0.125]])
    assert shard_state(tmp_path / "features", 0, ["a", "b"], 3) == "ok"
    read = read_shard(tmp_path / "features", 0, ShardSpec("features", ["a", "b"], torch.float32, (2, 3)))
    assert read.tensor is not None and torch.equal(read.tensor, feats)
    write_shard(tmp_path, 1, "features", ["a", "b"], feats)  # written again: the same header (keys in any order) and bytes
    assert _header(shard_path(tmp_path, 1)) == _header(shard_path(tmp_path / "features", 0))
    assert shard_path(tmp_path, 1).read_bytes()[-24:] == FEATURE_SHARD_BEFORE[-24:]

    entry = PixelEntry(tmp_path / "pixels", ["x"], (3, 1, 2))
    entry.folder.mkdir()
    shard_path(entry.folder, 0).write_bytes(PIXEL_SHARD_BEFORE)
    pixels = entry._load(0)
    assert isinstance(pixels, torch.Tensor) and pixels.flatten().tolist() == [1, 2, 3, 4, 250, 255]
    assert entry._header_state(0) == "ok"


def test_each_cache_keeps_its_words_for_an_untrusted_shard(tmp_path):
    write_shard(tmp_path, 0, "features", IDS, FEATS)
    assert shard_state(tmp_path, 0, IDS, 5) == "has shape (3, 4) torch.float32, expected (3, 5) float32"
    assert shard_state(tmp_path, 0, ["x", "y", "z"], 4) == "lists other images"
    assert shard_state(tmp_path, 3, IDS, 4) == "missing"
    entry = PixelEntry(tmp_path, IDS, (1, 2, 2))
    write_shard(entry.folder, 0, "pixels", IDS, FEATS)  # 3 x 4 float32 where 3 x 1 x 2 x 2 uint8 is expected
    assert entry._header_state(0) == entry._load(0) == "lists other images or has another shape"


def test_a_manifest_is_a_json_object_or_nothing(tmp_path):
    path = tmp_path / shard_store.MANIFEST
    assert read_manifest(path) is None  # absent
    write_manifest(path, {"key": {"where": tmp_path / "x"}, "n": 3})
    assert path.read_text() == json.dumps({"key": {"where": str(tmp_path / "x")}, "n": 3}, indent=1)  # the format both caches wrote
    assert read_manifest(path) == {"key": {"where": str(tmp_path / "x")}, "n": 3}
    assert [p.name for p in tmp_path.iterdir()] == [shard_store.MANIFEST]
    for text in ("[1, 2]", "{not json", ""):
        path.write_text(text)
        assert read_manifest(path) is None
