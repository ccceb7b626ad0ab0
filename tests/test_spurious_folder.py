"""The ``spurious-folder`` plugin: a mined benchmark folder written from verified images (the planted
generator's feature-only images as PNG bytes), read back with the positives of another plugin, its
checksum, its one-line errors, its Hub dataset; and the ``positives`` hooks of planted and Spurious
ImageNet. No network."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from spurbench.benchmarks import MinedImage, dataset_benchmark, get_benchmark, load_benchmark
from spurbench.benchmarks.planted import evaluation_benchmark
from spurbench.benchmarks.shared.spurious_layout import checksum_from_digests, image_id_for, recorded_checksums
from spurbench.errors import ChecksumMismatchError, DataError, SpurbenchError
from spurbench.results import read_result
from tests.support.hub_server import LocalHub, local_hub
from tests.support.one_line import one_line_error
from tests.test_spurious_imagenet import make_upstream, make_val

CLASSES = (2, 8)  # two planted classes (their feature-only images show features 1 and 0)
PER_CLASS = 3
FACTS = {
    "name": "Planted mined v1",
    "label_space": "planted",
    "model": {"name": "planted:cnn", "label_space": "planted"},
    "discovery": "discovery/",
    "components": {"2": [1], "8": [0]},
    "pool": {"name": "planted-pool", "source": "planted", "revision": "generator-v1-seed0-pool"},
    "require_predicted": True,
    "min_votes": 2,
    "labelers": ["ann", "bob"],
    "classes": {"2": {"candidates": 5, "absent": 3, "present": 1, "unsure": 0, "unverified": 1, "exported": 3}},
}
VERDICTS = {"absent": 2, "present": 0, "unsure": 0}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def mined_items(classes=CLASSES, per_class: int = PER_CLASS) -> list[MinedImage]:
    """The planted generator's feature-only images of ``classes``, as ``mine export`` would hand them over."""
    items = []
    for im in evaluation_benchmark(0, limit=per_class).images:
        if im.role == "negative" and im.class_index in classes:
            data = _png(im.open())
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            items.append(
                MinedImage(im.class_index, im.component, im.image_id, im.origin, digest, ".png", lambda data=data: data, dict(VERDICTS))
            )
    return items


def write(out: Path, items=None, facts=None) -> str:
    return get_benchmark("spurious-folder").write_mined(out, mined_items() if items is None else items, FACTS if facts is None else facts)


@pytest.fixture
def folder(tmp_path) -> Path:
    write(tmp_path / "mined")
    return tmp_path / "mined"


def test_write_mined_writes_the_upstream_layout_and_a_card(folder):
    items = {(im.class_index, im.pool_image_id): im for im in mined_items()}
    card = json.loads((folder / "spurbench.json").read_text())
    assert (card["format_version"], card["kind"], card["name"], card["label_space"], card["layout"]) == (
        1,
        "spurious-folder",
        "Planted mined v1",
        "planted",
        "folder",
    )
    assert card["provenance"] == {k: v for k, v in FACTS.items() if k not in ("name", "label_space")}
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["spurious_class_2_comp_1", "spurious_class_8_comp_0"]
    assert len(card["images"]) == card["num_images"] == 2 * PER_CLASS
    for entry in card["images"]:
        item = items[(entry["class_index"], entry["pool_image_id"])]
        path = folder / entry["file"]
        assert path.parent.name == f"spurious_class_{item.class_index}_comp_{item.component}"
        # <12 hex of the digest>_<the pool id's basename>.png; the bytes exactly as read() gave them
        assert path.name == f"{item.digest[7:19]}_{item.pool_image_id.rsplit('/', 1)[1]}.png"
        assert path.read_bytes() == item.read() and entry["sha256"] == hashlib.sha256(item.read()).hexdigest()
        assert entry["image_id"] == image_id_for(item.class_index, item.component, path.name)
        assert (entry["component"], entry["source"], entry["digest"], entry["verdicts"]) == (
            item.component,
            item.source,
            item.digest,
            VERDICTS,
        )
    assert card["classes"] == {"2": {"name": None, "components": [1], "images": 3}, "8": {"name": None, "components": [0], "images": 3}}
    expected = checksum_from_digests((e["image_id"], e["sha256"]) for e in card["images"])
    assert card["checksum"] == expected
    # the README states the same checksum, in the line the Spurious ImageNet card's parser reads
    assert recorded_checksums(folder) == {"spurbench.json": expected, "README.md": expected}
    readme = (folder / "README.md").read_text()
    assert "planted:cnn" in readme and "planted-pool" in readme and "| 2 |  | 1 | 3 | 5 candidates, 3 absent, 1 present" in readme


def test_write_mined_returns_the_checksum_and_is_stable(tmp_path, folder):
    assert write(tmp_path / "again") == json.loads((folder / "spurbench.json").read_text())["checksum"]
    assert sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.png")) == sorted(
        p.relative_to(folder) for p in folder.rglob("*.png")
    )


def test_same_name_and_bytes_from_two_pool_folders_get_two_files(tmp_path):
    one = mined_items(classes=(2,), per_class=1)[0]
    twin = MinedImage(one.class_index, one.component, "elsewhere/" + one.pool_image_id, one.source, one.digest, one.suffix, one.read, {})
    write(tmp_path / "out", [one, twin])
    first = f"{one.digest[7:19]}_{one.pool_image_id.rsplit('/', 1)[1]}"
    assert {p.name for p in (tmp_path / "out" / "images").rglob("*.png")} == {f"{first}.png", f"{first}-2.png"}


def _raises(exc: Exception):
    def read() -> bytes:
        raise exc

    return read


@pytest.mark.parametrize(
    "case, needle",
    [
        ("read fails", "cannot read it: OSError: disk gone"),
        ("corrupt", "corrupt image"),
        ("unsupported", "unsupported image type '.gif'"),
        ("class outside the layout", "outside 0-999"),
    ],
)
def test_a_bad_item_leaves_nothing_behind(tmp_path, case, needle):
    items = mined_items()
    last = items[-1]
    bad = {
        "read fails": MinedImage(
            last.class_index, last.component, last.pool_image_id, last.source, last.digest, ".png", _raises(OSError("disk gone"))
        ),
        "corrupt": MinedImage(
            last.class_index, last.component, last.pool_image_id, last.source, last.digest, ".png", lambda: last.read()[:60]
        ),
        "unsupported": MinedImage(last.class_index, last.component, last.pool_image_id, last.source, last.digest, ".gif", last.read),
        "class outside the layout": MinedImage(1000, 0, last.pool_image_id, last.source, last.digest, ".png", last.read),
    }[case]
    with pytest.raises(SpurbenchError) as exc:
        write(tmp_path / "out", items[:-1] + [bad])
    assert needle in one_line_error(exc) and last.pool_image_id in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # no out, no temporary sibling


def test_existing_out_is_refused_unless_empty(tmp_path, folder):
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with pytest.raises(SpurbenchError) as exc:
        write(folder)
    assert "not an empty folder" in one_line_error(exc) and sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty")
    assert (tmp_path / "empty" / "spurbench.json").is_file()
    with pytest.raises(SpurbenchError, match="'name'"):
        write(tmp_path / "nameless", facts={"label_space": "planted"})
    assert not (tmp_path / "nameless").exists()


def test_load_gives_the_negatives_and_the_positives_of_their_classes(folder):
    bench = load_benchmark("spurious-folder", data_dir=str(folder))
    card = json.loads((folder / "spurbench.json").read_text())
    assert bench.name == "spurious-folder-planted-mined-v1" and bench.label_space == "planted" and bench.plugin == "spurious-folder"
    assert bench.checksum == card["checksum"] and bench.revision == card["checksum"][7:19] and bench.repo == str(folder)
    negatives = [im for im in bench.images if im.role == "negative"]
    assert {im.image_id: (im.class_index, im.component) for im in negatives} == {
        e["image_id"]: (e["class_index"], e["component"]) for e in card["images"]
    }
    assert negatives[0].open().tobytes() == Image.open(folder / card["images"][0]["file"]).convert("RGB").tobytes()
    # positives: planted's clean test positives of exactly the mined classes
    planted = {im.image_id for im in evaluation_benchmark(0).images if im.role == "positive" and im.class_index in CLASSES}
    assert {im.image_id for im in bench.images if im.role == "positive"} == planted
    assert [(c.index, c.name, c.group, c.components) for c in bench.classes] == [
        (2, "triangle", "planted", (1,)),
        (8, "crescent", "planted", (0,)),
    ]
    assert bench.protocols["paper"].positive.crop_pct == 1.0 and "planted test positives" in bench.positives_source
    assert (
        bench.facts["model"]["name"] == "planted:cnn"
        and bench.facts["images_per_class"] == {"2": 3, "8": 3}
        and bench.facts["positives"] == "planted"
    )
    small = load_benchmark("spurious-folder", data_dir=str(folder), limit=2, seed=1)
    assert small.counts() == {"classes": 2, "positives": 4, "negatives": 4} and small.checksum == bench.checksum


def test_two_mined_folders_keep_apart(tmp_path, folder):
    write(tmp_path / "other", mined_items(classes=(9,)), {**FACTS, "name": "Other one"})
    plugin = get_benchmark("spurious-folder")
    names = {plugin.benchmark_name(plugin.parse_options({"data_dir": str(f)})) for f in (folder, tmp_path / "other")}
    assert names == {"spurious-folder-planted-mined-v1", "spurious-folder-other-one"}


def test_a_tampered_image_is_a_checksum_mismatch(folder):
    path = next((folder / "images").rglob("*.png"))
    path.write_bytes(_png(Image.new("RGB", (40, 40), "red")))
    with pytest.raises(ChecksumMismatchError) as exc:
        load_benchmark("spurious-folder", data_dir=str(folder))
    assert "checksum mismatch" in one_line_error(exc)


def _edit_card(folder: Path, **changes) -> None:
    card = json.loads((folder / "spurbench.json").read_text())
    card.update(changes)
    (folder / "spurbench.json").write_text(json.dumps(card))


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"kind": "something-else"}, "kind 'something-else' is not a mined benchmark folder"),
        ({"format_version": 2}, "format_version 2 is not supported"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"num_images": "6"}, "num_images: Input should be a valid integer"),
        ({"images": []}, "its image list hashes to"),
    ],
)
def test_a_bad_card_is_one_line(folder, changes, needle):
    _edit_card(folder, **changes)
    with pytest.raises(DataError) as exc:
        load_benchmark("spurious-folder", data_dir=str(folder))
    assert needle in one_line_error(exc) and "spurbench.json" in str(exc.value)


def test_the_positives_plugin_must_fit(tmp_path, folder):
    with pytest.raises(SpurbenchError, match="option 'imagenet_val' does not apply to positives from 'planted'"):
        load_benchmark("spurious-folder", data_dir=str(folder), imagenet_val="/nowhere")
    with pytest.raises(SpurbenchError, match="label space 'imagenet-1k'"):
        load_benchmark("spurious-folder", data_dir=str(folder), positives="spurious-imagenet")
    with pytest.raises(SpurbenchError) as exc:
        load_benchmark("spurious-folder", data_dir=str(folder), positives="spurious-folder")
    assert "provides no positives" in one_line_error(exc)
    write(tmp_path / "elsewhere", facts={**FACTS, "label_space": "shapes-9"})
    with pytest.raises(SpurbenchError) as exc:
        load_benchmark("spurious-folder", data_dir=str(tmp_path / "elsewhere"))
    assert "no benchmark(s) give positives in label space 'shapes-9'" in one_line_error(exc) and "planted (planted)" in str(exc.value)
    with pytest.raises(SpurbenchError, match="data_dir"):
        load_benchmark("spurious-folder")


def test_planted_positives_are_the_clean_test_images_of_the_asked_classes():
    images, classes, source = get_benchmark("planted").positives([8, 2], {"limit": 5})
    assert [c.index for c in classes] == [2, 8] and {im.role for im in images} == {"positive"}
    reference = {im.image_id: im for im in evaluation_benchmark(0, limit=5).images if im.role == "positive"}
    assert (
        sorted(im.image_id for im in images) == sorted(i for i, im in reference.items() if im.class_index in (2, 8)) and len(images) == 10
    )
    assert images[0].open().tobytes() == reference[images[0].image_id].open().tobytes() and "seed0" in source
    with pytest.raises(SpurbenchError, match="not 10"):
        get_benchmark("planted").positives([10], {})


def test_spurious_imagenet_positives_come_from_imagenet_val(tmp_path):
    val = make_val(tmp_path / "val", [1, 309], per_class=2)
    images, classes, source = get_benchmark("spurious-imagenet").positives([309, 1], {"imagenet_val": str(val), "limit": 1})
    assert [(c.index, c.name) for c in classes] == [(1, "goldfish"), (309, "bee")]
    assert [(im.class_index, im.role) for im in images] == [(1, "positive"), (309, "positive")] and str(val) in source


def test_build_gives_the_same_benchmark_in_parquet(tmp_path, folder):
    summary = get_benchmark("spurious-folder").build_dataset(folder, tmp_path / "built")
    card = json.loads((tmp_path / "built" / "spurbench.json").read_text())
    assert f"6 images of 2 classes in 1 shard(s), content checksum {card['checksum']}" == summary
    assert card["layout"] == "parquet" and card["shards"] == ["data/test-00000-of-00001.parquet"]
    assert recorded_checksums(tmp_path / "built") == {"spurbench.json": card["checksum"], "README.md": card["checksum"]}
    local, built = (load_benchmark("spurious-folder", data_dir=str(f)) for f in (folder, tmp_path / "built"))
    assert (built.name, built.checksum, built.revision) == (local.name, local.checksum, local.revision)
    assert [im.image_id for im in built.images] == [im.image_id for im in local.images]
    assert built.images[-1].open().tobytes() == local.images[-1].open().tobytes()
    with pytest.raises(SpurbenchError, match="not an empty folder"):
        get_benchmark("spurious-folder").build_dataset(folder, tmp_path / "built")
    with pytest.raises(DataError, match="built dataset already"):
        get_benchmark("spurious-folder").build_dataset(tmp_path / "built", tmp_path / "built-again")


def test_dataset_commands_pick_the_plugin_a_folder_names(tmp_path, folder):
    assert dataset_benchmark("build_dataset", folder).name == "spurious-folder"
    upstream = make_upstream(tmp_path / "upstream")
    assert dataset_benchmark("build_dataset", upstream).name == "spurious-imagenet"
    assert dataset_benchmark("download_dataset").name == "spurious-imagenet"


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Iterator[LocalHub]:
    with local_hub(tmp_path, monkeypatch) as h:
        yield h


def test_push_and_download_through_a_local_hub(hub, tmp_path, folder):
    plugin = get_benchmark("spurious-folder")
    with pytest.raises(DataError, match="dataset build"):
        plugin.push_dataset(folder, "org/mined")
    plugin.build_dataset(folder, tmp_path / "built")
    url = plugin.push_dataset(tmp_path / "built", "org/mined")
    sha = url.rsplit("/", 1)[-1]
    assert hub.commits("org/mined", "dataset")[-1] == sha
    path = plugin.download_dataset("org/mined", None, tmp_path / "downloaded")
    bench = load_benchmark("spurious-folder", data_dir=str(path))
    assert bench.checksum == json.loads((folder / "spurbench.json").read_text())["checksum"]
    with pytest.raises(SpurbenchError, match="--dataset-repo"):
        plugin.download_dataset(None, None, None)


@pytest.mark.slow
def test_run_writes_a_result_under_the_benchmarks_own_name(cli, trained, tmp_path, monkeypatch, folder):
    cache, _ = trained
    monkeypatch.setenv("SPURBENCH_CACHE", str(cache))  # the trained planted models
    args = [
        "run",
        "--benchmark",
        "spurious-folder",
        "--data-dir",
        str(folder),
        "--model",
        "planted:cnn",
        "--bootstrap",
        "20",
        "-o",
        str(tmp_path / "out"),
        "-q",
    ]
    proc = cli(*args, cwd=tmp_path, env={"SPURBENCH_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "out" / "spurious-folder-planted-mined-v1__planted_cnn.json"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [target.name] and f"result: {target}" in proc.stdout.replace("\n", "")
    result = read_result(target)
    checksum = json.loads((folder / "spurbench.json").read_text())["checksum"]
    assert (result.benchmark.name, result.benchmark.checksum, result.benchmark.revision) == (
        "spurious-folder-planted-mined-v1",
        checksum,
        checksum[7:19],
    )
    assert [c.class_index for c in result.heads["plain"].classes] == list(CLASSES) and result.benchmark.num_negatives == 2 * PER_CLASS
    assert result.protocol.images["positive"].crop_pct == 1.0
    assert "skip planted:cnn" in cli(*args, cwd=tmp_path, env={"SPURBENCH_CACHE": str(cache)}).stdout  # the same run again is complete
