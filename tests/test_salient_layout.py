"""Reading Salient ImageNet's on-disk layout (the authors' formats) and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spurbench.benchmarks.salient_imagenet.layout import (
    ANNOTATION_CSV,
    IMAGE_NAMES_CSV,
    check_masks,
    check_train_images,
    load_mask,
    read_annotations,
    read_layout,
    train_image_path,
)
from spurbench.errors import DataError
from tests.support.one_line import one_line_error
from tests.support.salient_fixture import DEFAULT_CLASSES, write_tiny_salient


@pytest.fixture
def tiny(tmp_path: Path) -> dict:
    return write_tiny_salient(tmp_path / "salient_imagenet_dataset", tmp_path / "ILSVRC2012" / "train")


# --------------------------------------------------------------------------- parsing


def test_layout_matches_ground_truth(tiny):
    layout = read_layout(tiny["root"])  # annotations found at ../mturk_results/, the authors' repo layout
    assert layout.annotations == tiny["annotations"]
    assert layout.skipped_classes == ()
    assert layout.class_indices == tuple(sorted(tiny["classes"]))
    for cls in layout.classes:
        truth = tiny["classes"][cls.class_index]
        assert cls.wnid == truth["wnid"]
        assert [f.feature_index for f in cls.features] == list(truth["features"])  # column order kept
        for feat in cls.features:
            expected = truth["features"][feat.feature_index]
            assert (feat.kind, feat.votes_spurious, feat.votes_total, feat.rank) == (
                expected["kind"],
                expected["votes_spurious"],
                5,
                expected["rank"],
            )
            assert feat.stems == expected["stems"]
            assert (feat.class_index, feat.wnid) == (cls.class_index, cls.wnid)
        assert cls.images() == truth["images"]
        assert list(cls.images()) == sorted(truth["images"])
        spurious = {f for f, v in truth["features"].items() if v["kind"] == "spurious"}
        core = set(truth["features"]) - spurious
        assert set(cls.spurious_images()) == {s for s, fs in truth["images"].items() if set(fs) & spurious}
        assert set(cls.core_images()) == {s for s, fs in truth["images"].items() if set(fs) & core}
        for stem, features in truth["images"].items():
            assert cls.kinds(stem) == {f: truth["features"][f]["kind"] for f in features}
            assert layout.masks_of(cls, stem) == {f: tiny["masks"][(cls.class_index, f, stem)] for f in features}
    check_masks(layout, decode=True)
    assert layout.num_images == sum(len(c["images"]) for c in tiny["classes"].values())


def test_three_of_five_rule_and_shared_stems(tiny):
    layout = read_layout(tiny["root"])
    kinds = {(c.class_index, f.feature_index): (f.votes_spurious, f.kind) for c in layout.classes for f in c.features}
    # the fixture's votes straddle the line: 2/5 is core, 3/5 spurious
    assert kinds[(1, 701)] == (2, "core") and kinds[(1, 686)] == (3, "spurious")
    assert kinds[(817, 1200)] == (2, "core") and kinds[(817, 2047)] == (3, "spurious")
    goldfish = layout.class_at(1)
    assert any(len(fs) == 3 for fs in goldfish.images().values())  # one stem carries all three masks
    both = set(goldfish.spurious_images()) & set(goldfish.core_images())
    assert both and all({"core", "spurious"} <= set(goldfish.kinds(s).values()) for s in both)


def test_worker_counts_other_than_five_follow_upstream(tiny):
    # utils.py: spurious iff >= 3 separate_object/background answers, whatever the number of workers.
    csv = tiny["annotations"]
    rows = pd.read_csv(csv)
    goldfish_59 = rows[(rows["Input.class_index"] == 1) & (rows["Input.feature_index"] == 59)]  # 0 of 5
    extra = goldfish_59.iloc[:4].assign(**{"Answer.main": ["background", "separate_object"] * 2})  # -> 4 of 9
    bee_1941 = (rows["Input.class_index"] == 309) & (rows["Input.feature_index"] == 1941)  # 4 of 5
    drop = rows.index[bee_1941 & (rows["Answer.main"] != "main_object")][:2]  # -> 2 of 3
    pd.concat([rows.drop(index=drop), extra]).to_csv(csv, index=False)
    votes = read_annotations(csv)
    assert (votes[(1, 59)].votes_spurious, votes[(1, 59)].votes_total, votes[(1, 59)].kind) == (4, 9, "spurious")
    assert (votes[(309, 1941)].votes_spurious, votes[(309, 1941)].votes_total, votes[(309, 1941)].kind) == (2, 3, "core")


def test_annotations_in_root_explicit_and_class_subset(tmp_path):
    root = tmp_path / "ds"
    truth = write_tiny_salient(root, tmp_path / "train", annotations=root / ANNOTATION_CSV, seed=1)
    assert read_layout(root).annotations == root / ANNOTATION_CSV
    moved = tmp_path / "elsewhere.csv"
    (root / ANNOTATION_CSV).rename(moved)
    layout = read_layout(root, annotations=moved, classes=[309])
    assert layout.class_indices == (309,) and layout.class_at(309).images() == truth["classes"][309]["images"]
    with pytest.raises(DataError) as info:
        read_layout(root, annotations=moved, classes=[5])
    one_line_error(info, "no folder for class 5", "n01496331")


def test_annotated_class_without_folder_is_skipped(tiny):
    import shutil

    shutil.rmtree(tiny["root"] / tiny["classes"][309]["wnid"])
    layout = read_layout(tiny["root"])
    assert layout.class_indices == (1, 817) and layout.skipped_classes == (309,)


def test_ragged_columns_leave_empty_cells(tiny):
    # Columns of different lengths: pandas writes the missing cells empty; they are not stems.
    wnid = tiny["classes"][1]["wnid"]
    stems = tiny["classes"][1]["features"]
    frame = pd.DataFrame(
        {"59": pd.Series(stems[59]["stems"][:1]), "686": pd.Series(stems[686]["stems"]), "701": pd.Series(stems[701]["stems"][:2])}
    )
    frame.to_csv(tiny["root"] / wnid / IMAGE_NAMES_CSV, index=False)
    assert "\n," in (tiny["root"] / wnid / IMAGE_NAMES_CSV).read_text()  # empty leading cells
    cls = read_layout(tiny["root"], classes=[1]).class_at(1)
    assert [f.stems for f in cls.features] == [stems[59]["stems"][:1], stems[686]["stems"], stems[701]["stems"][:2]]


# --------------------------------------------------------------------------- masks and train images


def test_masks_load_as_float_in_unit_range(tiny):
    for (k, f, stem), path in list(tiny["masks"].items())[:6]:
        mask = load_mask(path)
        assert mask.dtype == np.float32 and mask.shape == (224, 224)
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        np.testing.assert_array_equal(mask, np.asarray(Image.open(path), dtype=np.float32) / 255)
        x0, y0, x1, y1 = tiny["boxes"][(k, f, stem)]
        assert mask[(y0 + y1) // 2, (x0 + x1) // 2] > 0.9  # inside: the 255 region (JPEG, blurred edges)
        outside = np.ones((224, 224), bool)
        outside[max(y0 - 12, 0) : y1 + 13, max(x0 - 12, 0) : x1 + 13] = False
        assert mask[outside].max() < 0.08


def test_train_images(tiny, tmp_path):
    layout = read_layout(tiny["root"])
    for ilsvrc in (tiny["train_root"], tiny["train_root"].parent):  # the train folder, or the folder holding train/
        check_train_images(layout, ilsvrc)
        for (k, stem), path in tiny["train_images"].items():
            assert train_image_path(ilsvrc, layout.class_at(k).wnid, stem) == path
    with Image.open(next(iter(tiny["train_images"].values()))) as image:
        assert image.size == (300, 260) and image.mode == "RGB"


# --------------------------------------------------------------------------- one-line errors


def test_missing_annotation_csv(tiny):
    tiny["annotations"].unlink()
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, ANNOTATION_CSV, str(tiny["root"]), "mturk_results")
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"], annotations=tiny["annotations"])
    one_line_error(info, str(tiny["annotations"]), "does not exist")


def test_missing_image_names_map(tiny):
    folder = tiny["root"] / tiny["classes"][309]["wnid"]
    (folder / IMAGE_NAMES_CSV).unlink()
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, str(folder), IMAGE_NAMES_CSV)


def test_mask_not_224(tiny):
    path = next(iter(tiny["masks"].values()))
    Image.new("L", (200, 224), 128).save(path, "JPEG")
    with pytest.raises(DataError) as info:
        load_mask(path)
    one_line_error(info, str(path), "200x224", "expected 224x224")
    with pytest.raises(DataError) as info:
        check_masks(read_layout(tiny["root"]), decode=True)
    one_line_error(info, str(path), "200x224")


def test_undecodable_and_missing_mask(tiny):
    first, second = list(tiny["masks"].values())[:2]
    first.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError) as info:
        load_mask(first)
    one_line_error(info, "cannot decode", str(first))
    second.unlink()
    with pytest.raises(DataError) as info:
        load_mask(second)
    one_line_error(info, str(second), "does not exist")
    with pytest.raises(DataError) as info:
        check_masks(read_layout(tiny["root"]))
    one_line_error(info, "1 of", "masks are missing", str(second))


def test_non_imagenet_wnid_folder(tiny):
    bogus = tiny["root"] / "n99999999"
    bogus.mkdir()
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, str(bogus), "not an ImageNet-1k WordNet id")
    bogus.rename(tiny["root"] / "goldfish")
    (tiny["root"] / "goldfish" / IMAGE_NAMES_CSV).write_text("1\nx\n")
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, "goldfish", "named by its ImageNet-1k WordNet id")


def test_missing_train_image(tiny):
    layout = read_layout(tiny["root"])
    (k, _stem), path = list(tiny["train_images"].items())[3]
    path.unlink()
    with pytest.raises(DataError) as info:
        check_train_images(layout, tiny["train_root"])
    one_line_error(info, "1 of", str(path), f"class {k}")
    with pytest.raises(DataError) as info:
        check_train_images(layout, tiny["train_root"] / "nowhere")
    one_line_error(info, "does not exist")


def test_unannotated_feature_and_unlisted_annotation(tiny):
    folder = tiny["root"] / tiny["classes"][817]["wnid"]
    csv = folder / IMAGE_NAMES_CSV
    frame = pd.read_csv(csv, dtype=str)
    frame.assign(**{"33": frame["12"]}).to_csv(csv, index=False)
    (folder / "feature_33").mkdir()
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, str(csv), "feature 33", "no annotation")
    frame.drop(columns=["12"]).to_csv(csv, index=False)
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, str(tiny["annotations"]), "feature 12", "no column 12")


def test_malformed_csvs(tiny):
    wnid = tiny["classes"][1]["wnid"]
    csv = tiny["root"] / wnid / IMAGE_NAMES_CSV
    pd.read_csv(csv, dtype=str).to_csv(csv, index=True)  # a pandas index column is not upstream's format
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, str(csv), "'Unnamed: 0' is not a feature index")
    rows = pd.read_csv(tiny["annotations"])
    rows.loc[4, "Answer.main"] = "dunno"
    rows.to_csv(tiny["annotations"], index=False)
    with pytest.raises(DataError) as info:
        read_annotations(tiny["annotations"])
    one_line_error(info, f"{tiny['annotations']}:6", "'dunno'")
    rows.loc[4, "Answer.main"] = "main_object"
    rows.loc[7, "Input.wordnet_id"] = "n01440764"
    rows.to_csv(tiny["annotations"], index=False)
    with pytest.raises(DataError) as info:
        read_annotations(tiny["annotations"])
    one_line_error(info, ":9", "class 1 is n01440764 here", wnid)
    rows.drop(columns=["Answer.main"]).to_csv(tiny["annotations"], index=False)
    with pytest.raises(DataError) as info:
        read_annotations(tiny["annotations"])
    one_line_error(info, "no column Answer.main")


def test_missing_feature_folder_and_contradicting_wordnet_dict(tiny):
    import shutil

    folder = tiny["root"] / tiny["classes"][309]["wnid"]
    shutil.rmtree(folder / "feature_595")
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, str(folder), "feature_595/")
    (tiny["root"] / "wordnet_dict.py").write_text(repr({0: "n01443537"}))
    with pytest.raises(DataError) as info:
        read_layout(tiny["root"])
    one_line_error(info, "wordnet_dict.py", "class 0 is n01443537")


def test_default_classes_have_both_kinds():
    for _, features in DEFAULT_CLASSES:
        votes = [v for _, v in features]
        assert any(v >= 3 for v in votes) and any(v < 3 for v in votes)
