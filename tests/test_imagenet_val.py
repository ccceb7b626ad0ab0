"""ImageNet-val positives: local layouts, and the gated-Hub branches that can run offline.

The live Hub download cannot run here; the Hub tests cover a missing token, an offline empty cache,
and reading validation shards through the real snapshot_download from a local Hub-cache layout.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spurbench.benchmarks.imagenet.val import (
    IMAGENET_HUB_REPO,
    load_hub_imagenet_val,
    resolve_imagenet_val,
)
from spurbench.errors import AccessError, DataError
from spurbench.label_spaces import class_names as imagenet_class_names
from spurbench.label_spaces import synsets as imagenet_synsets
from tests.support.hub_fixture import offline_hub, write_hub_repo
from tests.support.one_line import one_line_error

CLASSES = [1, 309]


def load_imagenet_val(classes, folder=None, token=None, limit=None):
    """The positives alone (resolve_imagenet_val also returns where they came from)."""
    images, _ = resolve_imagenet_val(classes, folder, token=token, limit=limit)
    return images


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 8), (seed % 256, 30, 60)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Offline Hub, Hub cache and spurbench cache under tmp: nothing here may touch the network or ~/."""
    return offline_hub(tmp_path, monkeypatch)


def test_class_metadata():
    synsets, names = imagenet_synsets(), imagenet_class_names()
    assert len(synsets) == len(names) == 1000
    assert synsets[0] == "n01440764" and names[0] == "tench" and names[309] == "bee"


@pytest.mark.parametrize("naming", ["synset", "index", "nested-val"])
def test_class_subfolder_layout(tmp_path, naming):
    root = tmp_path / "imagenet"
    base = root / "val" if naming == "nested-val" else root
    for k in CLASSES + [2]:
        folder = base / (str(k) if naming == "index" else imagenet_synsets()[k])
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"ILSVRC2012_val_{k * 10 + i:08d}.JPEG").write_bytes(_jpeg(k + i))
    images = load_imagenet_val(CLASSES, str(root))
    assert [im.class_index for im in images] == [1, 1, 1, 309, 309, 309]
    assert all(im.role == "positive" and im.component is None for im in images)
    assert images[0].image_id == "imagenet-val/1/ILSVRC2012_val_00000010.JPEG"
    assert images[0].open().size == (10, 8)
    limited = load_imagenet_val(CLASSES, str(root), limit=2)
    assert len(limited) == 4


def _flat(root: Path, labels: dict[str, int]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(labels):
        (root / name).write_bytes(_jpeg(i))


def test_flat_files_with_label_list(tmp_path):
    root = tmp_path / "flat"
    labels = {"ILSVRC2012_val_00000001.JPEG": 309, "ILSVRC2012_val_00000002.JPEG": 1, "ILSVRC2012_val_00000003.JPEG": 5}
    _flat(root, labels)
    (root / "val.txt").write_text("".join(f"{n} {k}\n" for n, k in labels.items()))
    images = load_imagenet_val(CLASSES, str(root))
    assert [(im.class_index, Path(im.origin).name) for im in images] == [
        (1, "ILSVRC2012_val_00000002.JPEG"),
        (309, "ILSVRC2012_val_00000001.JPEG"),
    ]


def test_flat_files_with_kaggle_csv(tmp_path):
    root = tmp_path / "kaggle"
    image_dir = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    labels = {"ILSVRC2012_val_00000007": 1, "ILSVRC2012_val_00000008": 309}
    _flat(image_dir, {f"{n}.JPEG": k for n, k in labels.items()})
    synsets = imagenet_synsets()
    rows = "".join(f"{n},{synsets[k]} 1 2 3 4 {synsets[k]} 5 6 7 8\n" for n, k in labels.items())
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + rows)
    images = load_imagenet_val(CLASSES, str(root))
    assert [(im.class_index, Path(im.origin).name) for im in images] == [
        (1, "ILSVRC2012_val_00000007.JPEG"),
        (309, "ILSVRC2012_val_00000008.JPEG"),
    ]


@pytest.mark.parametrize("case", ["missing", "unrecognised", "missing-class", "bad-line", "listed-file-missing"])
def test_local_errors_are_one_line_and_name_the_dir(tmp_path, case):
    root = tmp_path / "val"
    if case == "unrecognised":
        _flat(root, {"a.JPEG": 0})
    elif case == "missing-class":
        (root / imagenet_synsets()[1]).mkdir(parents=True)
        (root / imagenet_synsets()[1] / "a.JPEG").write_bytes(_jpeg(1))
    elif case == "bad-line":
        _flat(root, {"a.JPEG": 0})
        (root / "val.txt").write_text("a.JPEG tench\n")
    elif case == "listed-file-missing":
        _flat(root, {"a.JPEG": 0})
        (root / "val.txt").write_text("a.JPEG 1\nb.JPEG 309\n")
    with pytest.raises(DataError) as exc:
        load_imagenet_val(CLASSES, str(root))
    assert str(root) in one_line_error(exc)


def test_missing_token_is_access_error_with_howto(monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(AccessError) as exc:
        load_imagenet_val(CLASSES)
    msg = one_line_error(exc)
    assert msg.startswith("ImageNet-val positives come from the gated Hub dataset ILSVRC/imagenet-1k")
    assert "https://huggingface.co/datasets/ILSVRC/imagenet-1k" in msg and "HF_TOKEN" in msg and "--imagenet-val DIR" in msg
    with pytest.raises(AccessError):  # token=False means "send none"
        load_imagenet_val(CLASSES, token=False)


def test_offline_without_cache_is_one_line_data_error():
    with pytest.raises(DataError) as exc:
        load_imagenet_val(CLASSES, token="hf_fake")
    msg = one_line_error(exc)
    assert IMAGENET_HUB_REPO in msg and "--imagenet-val" in msg


def test_hub_validation_shards_from_cache(isolated):
    """snapshot_download resolves the cached val shards; only the requested classes are kept."""
    from datasets import Features, Value
    from datasets import Image as HfImage

    schema = Features({"image": HfImage(), "label": Value("int64")}).arrow_schema
    rows = [(f"ILSVRC2012_val_{i:08d}.JPEG", k) for i, k in enumerate([1, 5, 309, 1, 7], start=1)]
    table = pa.Table.from_pydict(
        {"image": [{"bytes": _jpeg(i), "path": n} for i, (n, _) in enumerate(rows)], "label": [k for _, k in rows]},
        schema=schema,
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    sha = write_hub_repo(isolated, IMAGENET_HUB_REPO, {"data/validation-00000-of-00001.parquet": buf.getvalue()}, repo_type="dataset")
    images, source = resolve_imagenet_val(CLASSES, None, token="hf_fake")
    assert source == f"hf://datasets/{IMAGENET_HUB_REPO}@{sha} (validation)"
    assert [(im.class_index, im.image_id) for im in images] == [
        (1, "imagenet-val/1/ILSVRC2012_val_00000001.JPEG"),
        (1, "imagenet-val/1/ILSVRC2012_val_00000004.JPEG"),
        (309, "imagenet-val/309/ILSVRC2012_val_00000003.JPEG"),
    ]
    assert images[0].open().size == (10, 8)
    assert images[2].origin.endswith("data/validation-00000-of-00001.parquet#ILSVRC2012_val_00000003.JPEG")
    limited, _ = load_hub_imagenet_val(CLASSES, token="hf_fake", limit=1)
    assert len(limited) == 2


class _Response:
    headers: ClassVar[dict] = {}
    request = None

    def __init__(self, status: int):
        self.status_code = status


def _wrapped_403() -> Exception:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        try:
            raise HfHubHTTPError("403 Forbidden", response=_Response(403))
        except HfHubHTTPError as inner:
            raise LocalEntryNotFoundError("An error happened while trying to locate the files") from inner
    except LocalEntryNotFoundError as outer:
        return outer


@pytest.mark.parametrize("kind", ["gated", "not-found", "403-wrapped", "401"])
def test_hub_access_errors_map_to_access_error(monkeypatch, kind):
    """What snapshot_download raises online for a token without access (simulated: no network here)."""
    import huggingface_hub
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

    exc = {
        "gated": lambda: GatedRepoError("Access to dataset ILSVRC/imagenet-1k is restricted.\nmore", response=_Response(403)),
        "not-found": lambda: RepositoryNotFoundError("404 Client Error", response=_Response(404)),
        "403-wrapped": _wrapped_403,
        "401": lambda: HfHubHTTPError("401 Unauthorized", response=_Response(401)),
    }[kind]()

    def fake_snapshot_download(*args, **kwargs):
        raise exc

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(AccessError) as info:
        load_imagenet_val(CLASSES, token="hf_fake")
    assert "https://huggingface.co/datasets/ILSVRC/imagenet-1k" in one_line_error(info)
