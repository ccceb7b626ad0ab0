"""ImageNet-1k -> 21k column maps, checked against timm's shipped synset files."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest

from spurbench.errors import LabelSpaceError
from spurbench.label_spaces import (
    class_columns,
    class_names,
    imagenet_1k_to_21k,
    imagenet_space,
)

FILES = {
    "imagenet-1k": "imagenet_synsets.txt",
    "imagenet-21k-google": "imagenet21k_goog_synsets.txt",
    "imagenet-21k": "imagenet22k_synsets.txt",
}
TEDDY_BEAR = 850  # n04399382: in ILSVRC-2012 but in neither 21k list


def read_synsets(space: str) -> list[str]:
    # Read the files directly (not through spurbench), so the test does not share the code under test.
    return (files("timm.data") / "_info" / FILES[space]).read_text().split()


@pytest.mark.parametrize("ordering, size", [("imagenet-21k-google", 21843), ("imagenet-21k", 21841)])
def test_every_mapped_column_is_the_same_synset(ordering: str, size: int) -> None:
    one_k, big = read_synsets("imagenet-1k"), read_synsets(ordering)
    assert (len(one_k), len(big)) == (1000, size)
    table = imagenet_1k_to_21k(ordering)
    assert table.shape == (1000,) and table.dtype == np.int64 and not table.flags.writeable
    mapped = [k for k in range(1000) if table[k] >= 0]
    assert len(mapped) == 999 and TEDDY_BEAR not in mapped
    for k in mapped:
        assert big[table[k]] == one_k[k]
    assert one_k[TEDDY_BEAR] == "n04399382" and "n04399382" not in big
    assert len(set(table[mapped].tolist())) == 999  # injective


def test_known_indices() -> None:
    # Spot checks read off the synset files: tench, goldfish, espresso, toilet tissue.
    google, fall11 = imagenet_1k_to_21k("imagenet-21k-google"), imagenet_1k_to_21k("imagenet-21k")
    assert [int(google[k]) for k in (0, 1, 967, 999)] == [359, 368, 13982, 21817]
    assert [int(fall11[k]) for k in (0, 1, 967, 999)] == [359, 368, 13981, 21815]
    assert read_synsets("imagenet-1k")[967] == "n07920052" == read_synsets("imagenet-21k-google")[13982]


def test_class_columns() -> None:
    assert class_columns("imagenet-1k", "imagenet-1k", [0, 967, 999], 1000) == [0, 967, 999]
    assert class_columns("planted", "planted", [3, 1], 10) == [3, 1]
    assert class_columns("imagenet-1k", "imagenet-21k-google", [0, 967], 21843) == [359, 13982]
    assert class_columns("imagenet-1k", "imagenet-21k", [0, 967], 21841) == [359, 13981]
    with pytest.raises(LabelSpaceError, match="outside"):
        class_columns("imagenet-1k", "imagenet-1k", [1000], 1000)
    with pytest.raises(LabelSpaceError, match="n04399382"):
        class_columns("imagenet-1k", "imagenet-21k", [0, TEDDY_BEAR], 21841)


@pytest.mark.parametrize(
    "benchmark, model",
    [("imagenet-21k", "imagenet-1k"), ("imagenet-1k", "timm-11821"), ("planted", "imagenet-1k"), ("imagenet-1k", "hf-7")],
)
def test_unknown_pairs_raise(benchmark: str, model: str) -> None:
    with pytest.raises(LabelSpaceError) as exc:
        class_columns(benchmark, model, [0], 21843)
    assert str(exc.value) == f"model label space {model!r} has no map from benchmark label space {benchmark!r}"


def test_space_names_and_class_names() -> None:
    assert [imagenet_space(n, "hf") for n in (1000, 21843, 21841, 11821)] == [
        "imagenet-1k",
        "imagenet-21k-google",
        "imagenet-21k",
        "hf-11821",
    ]
    names = class_names("imagenet-1k")
    assert len(names) == 1000 and names[967].startswith("espresso") and names[0].startswith("tench")
    assert len(class_names("imagenet-21k-google")) == 21843
    assert class_names("planted") is None
