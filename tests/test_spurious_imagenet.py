"""Spurious ImageNet negatives: upstream folder layout, parquet build, Hub load (offline, real
snapshot_download against a Hub-cache layout), checksums and one-line errors. No network."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from spurbench.benchmarks import load_benchmark
from spurbench.benchmarks.shared.spurious_build import build_from_upstream, download, push_to_hub
from spurbench.benchmarks.shared.spurious_layout import content_checksum, parse_folder_name, scan_upstream
from spurbench.benchmarks.shared.spurious_negatives import Negatives, load_negatives
from spurbench.errors import AccessError, ChecksumMismatchError, DataError
from spurbench.label_spaces import class_names
from spurbench.label_spaces import synsets as imagenet_synsets
from tests.support.hub_fixture import offline_hub, write_hub_repo
from tests.support.hub_server import LocalHub, local_hub
from tests.support.one_line import one_line_error

# (class index, component) -> images; class 817 has two components to exercise multi-component classes.
# Folder names follow upstream's parse rule (third "_" token = class, last = component); the exact
# upstream prefix is not verifiable offline, so the names are illustrative.
PAIRS = {(1, 3): 3, (309, 0): 3, (817, 2): 2, (817, 5): 2}
REPO = "spurbench-test/spurious-imagenet"


def _image_bytes(seed: int, fmt: str = "PNG", size: int = 12) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256)).save(buf, format=fmt)
    return buf.getvalue()


def make_upstream(root: Path, pairs: dict[tuple[int, int], int] = PAIRS) -> Path:
    """The zip's layout: images/<folder per (class, component)>/<files> + images/timestamp.txt."""
    images = root / "images"
    images.mkdir(parents=True)
    (images / "timestamp.txt").write_text("1667000000\n")
    seed = 0
    for (k, c), n in pairs.items():
        folder = images / f"spurious_class_{k}_comp_{c}"
        folder.mkdir()
        for i in range(n):
            seed += 1
            fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
            (folder / f"{seed:04d}.{ext}").write_bytes(_image_bytes(seed, fmt))
    return images


def make_val(root: Path, classes, per_class: int = 2) -> Path:
    """Class-subfolder (synset) ImageNet-val layout."""
    synsets = imagenet_synsets()
    for k in classes:
        folder = root / synsets[k]
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"ILSVRC2012_val_{k * 100 + i:08d}.JPEG").write_bytes(_image_bytes(1000 + k + i, "JPEG"))
    return root


def negatives(data_dir=None, dataset_repo=None, revision=None, token=None, limit=None) -> Negatives:
    return load_negatives(data_dir, dataset_repo, revision, token, limit)


def load_spurious_imagenet(**options):
    return load_benchmark("spurious-imagenet", **options)


def hub_files(built: Path) -> dict[str, bytes]:
    return {p.relative_to(built).as_posix(): p.read_bytes() for p in built.rglob("*") if p.is_file()}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Offline Hub, Hub cache and spurbench cache under tmp: nothing here may touch the network or ~/."""
    return offline_hub(tmp_path, monkeypatch)


@pytest.fixture
def upstream(tmp_path) -> Path:
    return make_upstream(tmp_path / "spurious_imagenet")


@pytest.fixture
def val_dir(tmp_path) -> Path:
    return make_val(tmp_path / "val", sorted({k for k, _ in PAIRS}))


@pytest.fixture
def built(tmp_path, upstream) -> Path:
    out = tmp_path / "built"
    build_from_upstream(upstream, out, shard_size=4)
    return out


# ----------------------------------------------------------------------------- upstream layout


def test_parse_folder_name_follows_upstream_rule():
    assert parse_folder_name("spurious_class_309_comp_4") == (309, 4)
    assert parse_folder_name("x_y_12_a_b_7") == (12, 7)  # only tokens [2] and [-1] matter
    assert parse_folder_name("class_309_4") is None  # too few tokens
    assert parse_folder_name("spurious_class_bee_comp_4") is None
    assert parse_folder_name("spurious_class_1000_comp_4") is None  # not an ImageNet-1k index


def test_upstream_layout_parsing(upstream):
    # the parent of images/ (where the zip is unpacked) works as well as images/ itself
    for data_dir in (upstream, upstream.parent):
        neg = negatives(data_dir=str(data_dir))
        assert neg.components == {1: (3,), 309: (0,), 817: (2, 5)}
        assert len(neg.images) == sum(PAIRS.values())
        assert all(im.role == "negative" for im in neg.images)
        ids = [im.image_id for im in neg.images]
        assert len(set(ids)) == len(ids)
        assert "spurious/1/3/0001.png" in ids and "spurious/309/0/0005.jpg" in ids
        first = neg.images[0]
        assert (first.class_index, first.component) == (1, 3)
        assert Path(first.origin).is_file()
        assert first.open().mode == "RGB"
        assert neg.extra["upstream_timestamp"] == "1667000000"
        assert neg.checksum.startswith("sha256:")


def test_limit_caps_negatives_per_class(upstream):
    neg = negatives(data_dir=str(upstream), limit=1)
    per_class = {}
    for im in neg.images:
        per_class[im.class_index] = per_class.get(im.class_index, 0) + 1
    assert per_class == {1: 1, 309: 1, 817: 1}
    assert neg.components[817] == (2, 5)  # class metadata describes the class, not the sample


def test_benchmark_from_local_dirs(upstream, val_dir):
    bench = load_benchmark("spurious-imagenet", data_dir=str(upstream), imagenet_val=str(val_dir))
    assert bench.name == "spurious-imagenet" and bench.label_space == "imagenet-1k"
    assert [c.index for c in bench.classes] == [1, 309, 817]
    assert bench.classes[0].name == "goldfish" and bench.classes[1].name == "bee"
    assert bench.classes[2].components == (2, 5)
    assert bench.counts() == {"classes": 3, "positives": 6, "negatives": 10}
    pos = [im for im in bench.images if im.role == "positive"]
    assert {im.class_index for im in pos} == {1, 309, 817} and all(im.component is None for im in pos)
    assert bench.positives_source == str(val_dir)
    assert bench.facts["complete"] is False  # 3 classes, not the paper's 100 x 75
    small = load_spurious_imagenet(data_dir=str(upstream), imagenet_val=str(val_dir), limit=1)
    assert small.counts() == {"classes": 3, "positives": 3, "negatives": 3}


@pytest.mark.parametrize("case", ["missing", "empty", "file", "malformed", "no-images"])
def test_bad_data_dir_is_one_line_data_error(tmp_path, case):
    path = tmp_path / "data"
    if case == "empty":
        path.mkdir()
    elif case == "file":
        path.write_text("not a folder")
    elif case == "malformed":
        (path / "spurious_class_1_comp_3").mkdir(parents=True)
        (path / "spurious_class_1_comp_3" / "a.png").write_bytes(_image_bytes(1))
        (path / "holiday_photos").mkdir()
    elif case == "no-images":
        (path / "spurious_class_1_comp_3").mkdir(parents=True)
        (path / "spurious_class_1_comp_3" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as exc:
        negatives(data_dir=str(path))
    msg = one_line_error(exc)
    assert str(path) in msg
    if case == "malformed":
        assert "holiday_photos" in msg


def test_corrupt_image_names_the_file_on_open(upstream):
    bad = upstream / "spurious_class_309_comp_0" / "zzzz.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    neg = negatives(data_dir=str(upstream))  # loading is lazy: no error yet
    image = next(im for im in neg.images if im.origin == str(bad))
    with pytest.raises(DataError) as exc:
        image.open()
    assert str(bad) in one_line_error(exc)
    # the build decodes headers, so the same file stops a build with its path
    with pytest.raises(DataError) as exc:
        build_from_upstream(upstream, upstream.parent / "out")
    assert str(bad) in one_line_error(exc)


# ----------------------------------------------------------------------------- build


def test_build_writes_parquet_card_and_checksum(built, upstream):
    import datasets

    shards = sorted((built / "data").glob("*.parquet"))
    assert [p.name for p in shards] == ["test-00000-of-00003.parquet", "test-00001-of-00003.parquet", "test-00002-of-00003.parquet"]
    table = pq.read_table(shards[0])
    assert table.column_names == ["image", "class_index", "class_name", "component", "image_id", "file_name"]
    assert table.column("class_name").to_pylist()[0] == "goldfish"
    # the image column is a datasets.Image feature, decodable by datasets itself
    ds = datasets.Dataset.from_parquet(str(shards[0]), cache_dir=str(built.parent / "ds_cache"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds[0]["image"].size == (12, 12)

    meta = json.loads((built / "spurbench.json").read_text())
    expected = content_checksum((im.image_id, im.path.read_bytes()) for im in scan_upstream(upstream))
    assert meta["checksum"] == expected  # bytes copied verbatim: same checksum as the upstream folder
    assert meta["num_images"] == 10 and meta["class_components"]["817"] == [2, 5]
    assert meta["image_sizes"] == {"12x12": 10}

    card = (built / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["configs"][0]["data_files"][0] == {"split": "test", "path": "data/test-*.parquet"}
    assert front["license"] == "cc-by-2.0" and front["task_categories"] == ["image-classification"]
    assert f"`{expected}`" in card
    assert "neuhaus2023spurious" in card and "CC BY 2.0" in card and "CC BY 4.0" in card
    assert "| 817 |" in card


def test_build_refuses_non_empty_output(built, upstream):
    with pytest.raises(DataError) as exc:
        build_from_upstream(upstream, built)
    assert str(built) in one_line_error(exc)
    build_from_upstream(upstream, built, overwrite=True)


def test_local_built_copy_is_detected_and_verified(built, upstream):
    from_built = negatives(data_dir=str(built))
    from_upstream = negatives(data_dir=str(upstream))
    assert from_built.extra["negatives_layout"] == "parquet"
    assert from_built.checksum == from_upstream.checksum
    assert [im.image_id for im in from_built.images] == [im.image_id for im in from_upstream.images]
    assert from_built.images[0].origin == f"{built}:data/test-00000-of-00003.parquet#row0"


# ----------------------------------------------------------------------------- Hub (offline, real snapshot_download)


def test_hub_load_matches_local_build(isolated, built, upstream, val_dir):
    sha = write_hub_repo(isolated, REPO, hub_files(built), repo_type="dataset")
    bench = load_spurious_imagenet(dataset_repo=REPO, imagenet_val=str(val_dir))
    assert (bench.repo, bench.revision) == (REPO, sha)  # resolved from refs/main by snapshot_download
    assert bench.facts["requested_revision"] == "main"
    local = negatives(data_dir=str(upstream))
    hub_neg = [im for im in bench.images if im.role == "negative"]
    assert [im.image_id for im in hub_neg] == [im.image_id for im in local.images]
    assert bench.checksum == local.checksum
    assert hub_neg[0].origin.startswith(f"{REPO}@{sha}:data/test-00000-of-00003.parquet#row")
    for a, b in zip(hub_neg, local.images):
        assert a.open().tobytes() == b.open().tobytes()
    # a pinned commit resolves too
    again = negatives(dataset_repo=REPO, revision=sha)
    assert again.revision == sha


def test_tampered_shard_is_a_checksum_mismatch(isolated, built):
    shard = built / "data" / "test-00001-of-00003.parquet"
    table = pq.read_table(shard)
    images = table.column("image").to_pylist()
    images[0] = {"bytes": _image_bytes(999), "path": images[0]["path"]}
    import pyarrow as pa

    table = table.set_column(0, table.schema.field("image"), pa.array(images, type=table.schema.field("image").type))
    pq.write_table(table, shard)
    sha = write_hub_repo(isolated, REPO, hub_files(built), repo_type="dataset")
    recorded = json.loads((built / "spurbench.json").read_text())["checksum"]
    with pytest.raises(ChecksumMismatchError) as exc:
        negatives(dataset_repo=REPO)
    msg = one_line_error(exc)
    assert f"{REPO}@{sha}" in msg and recorded in msg and msg.count("sha256:") == 2


def test_tampered_card_is_a_checksum_mismatch(isolated, built):
    card = built / "README.md"
    fake = "sha256:" + "0" * 64
    text = card.read_text()
    recorded = json.loads((built / "spurbench.json").read_text())["checksum"]
    card.write_text(text.replace(recorded, fake))
    write_hub_repo(isolated, REPO, hub_files(built), repo_type="dataset")
    with pytest.raises(ChecksumMismatchError) as exc:
        negatives(dataset_repo=REPO)
    msg = one_line_error(exc)
    assert fake in msg and recorded in msg and "README.md" in msg
    # the same check guards a local copy
    with pytest.raises(ChecksumMismatchError):
        negatives(data_dir=str(built))


def test_relabelled_row_is_rejected(built):
    shard = built / "data" / "test-00000-of-00003.parquet"
    table = pq.read_table(shard)
    import pyarrow as pa

    classes = table.column("class_index").to_pylist()
    classes[0] = 2
    table = table.set_column(1, table.schema.field("class_index"), pa.array(classes, type=pa.int32()))
    pq.write_table(table, shard)
    with pytest.raises(DataError) as exc:
        negatives(data_dir=str(built))
    assert "row0" in one_line_error(exc)


def test_hub_repo_not_cached_offline_is_one_line_data_error():
    with pytest.raises(DataError) as exc:
        negatives(dataset_repo="nobody/not-cached")
    msg = one_line_error(exc)
    assert "nobody/not-cached" in msg and "--data-dir" in msg


def test_no_positives_source_fails_with_access_error(upstream, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(AccessError) as exc:
        load_spurious_imagenet(data_dir=str(upstream))
    msg = one_line_error(exc)
    assert "https://huggingface.co/datasets/ILSVRC/imagenet-1k" in msg and "--imagenet-val" in msg


def test_download_verifies_the_snapshot(isolated, built):
    sha = write_hub_repo(isolated, REPO, hub_files(built), repo_type="dataset")
    path = download(REPO, "main")
    assert path.name == sha and (path / "spurbench.json").is_file()


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Iterator[LocalHub]:
    """A real (local) Hub server that huggingface_hub talks to over HTTP; replaces the offline cache fixture."""
    with local_hub(tmp_path, monkeypatch) as h:
        yield h


def test_push_to_hub_uploads_a_verified_folder(hub, built, tmp_path):
    """push_to_hub -> the local Hub (one commit) -> snapshot_download / load back: same files, same checksum."""
    recorded = json.loads((built / "spurbench.json").read_text())["checksum"]
    url = push_to_hub(built, REPO, token=hub.token)
    sha = url.rsplit("/", 1)[-1]
    assert url == f"{hub.url}/datasets/{REPO}/commit/{sha}"
    # a dataset repo (created on first push), holding exactly one commit on top of its initial one
    commits = hub.commits(REPO, "dataset")
    assert len(commits) == 2 and commits[-1] == sha
    stored = hub.files(REPO, "dataset", sha)
    assert {p: stored[p] for p in hub_files(built)} == hub_files(built)
    assert set(stored) == {".gitattributes", *hub_files(built)}

    # fetched back through the real client: verified download, then the loader recomputes the same checksum
    path = download(REPO, "main", tmp_path / "downloaded")
    downloaded = hub_files(path)
    assert {p: downloaded[p] for p in hub_files(built)} == hub_files(built)
    neg = negatives(dataset_repo=REPO)
    assert (neg.repo, neg.revision, neg.checksum) == (REPO, sha, recorded)
    assert neg.extra["negatives_layout"] == "parquet" and neg.extra["requested_revision"] == "main"
    local = negatives(data_dir=str(built))
    assert [im.image_id for im in neg.images] == [im.image_id for im in local.images]
    assert neg.images[0].open().tobytes() == local.images[0].open().tobytes()

    # a named revision becomes a branch of its own; pushing again reuses the existing repo
    v1 = push_to_hub(built, REPO, revision="v1").rsplit("/", 1)[-1]
    assert hub.store.log("dataset", REPO, "v1")[-1] == v1 and hub.commits(REPO, "dataset") == commits
    assert negatives(dataset_repo=REPO, revision="v1").checksum == recorded

    # a wrong token is refused with a one-line error, and nothing is committed
    with pytest.raises(AccessError) as exc:
        push_to_hub(built, REPO, token="hf_wrong")
    assert REPO in one_line_error(exc) and "401" in str(exc.value)
    # a build that no longer matches its checksum is not published
    (built / "spurbench.json").write_text(json.dumps({"checksum": "sha256:" + "1" * 64}))
    with pytest.raises(ChecksumMismatchError):
        push_to_hub(built, REPO)
    assert hub.commits(REPO, "dataset") == commits and hub.store.log("dataset", REPO, "v1")[-1] == v1


def test_board_pictures_come_from_the_local_hub_cache_only(built, isolated):
    from spurbench.benchmarks import get_benchmark
    from spurbench.benchmarks.shared.spurious_negatives import DEFAULT_DATASET_REPO
    from spurbench.benchmarks.spurious_imagenet import OPENIMAGES_CREDIT

    plugin = get_benchmark("spurious-imagenet")
    classes = sorted({k for k, _ in PAIRS})
    assert plugin.example_images("spurious-imagenet", "0" * 40, classes) == []  # not in the cache: nothing, and no download
    sha = write_hub_repo(isolated, DEFAULT_DATASET_REPO, hub_files(built), repo_type="dataset")
    pictures = plugin.example_images("spurious-imagenet", sha, classes[::-1])
    expected = negatives(data_dir=str(built)).images
    first = {}
    for image in expected:
        first.setdefault(image.class_index, image)
    assert [p.caption.split(":")[0] for p in pictures] == [class_names()[k] for k in classes[::-1][:3]]
    assert all(p.attribution == OPENIMAGES_CREDIT and "CC BY 2.0" in p.attribution for p in pictures)
    assert [p.image.tobytes() for p in pictures] == [first[k].open().tobytes() for k in classes[::-1][:3]]
