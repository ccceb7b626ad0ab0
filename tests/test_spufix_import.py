"""Training data for SpuFix (local folder, streamed Hub rows) and upstream alpha import."""

import io

import pytest
import torch
from PIL import Image

from spurbench.benchmarks.imagenet.train import (
    hub_imagenet_train,
    load_local_imagenet_train,
    write_class_rows,
)
from spurbench.errors import AccessError, DataError, SpurbenchError
from spurbench.label_spaces import synsets as imagenet_synsets
from spurbench.spufix.components import load_components
from spurbench.spufix.fit import SourceAlphas, import_upstream_alphas


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, 40, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def _train_folder(root, counts):
    syn = imagenet_synsets()
    for k, n in counts.items():
        (root / syn[k]).mkdir(parents=True)
        for i in range(n):
            (root / syn[k] / f"{syn[k]}_{n - i:05d}.JPEG").write_bytes(_jpeg(i))  # written out of order on purpose
    return root


def test_local_train_folder_sorted_by_class_then_file(tmp_path):
    train = load_local_imagenet_train(_train_folder(tmp_path / "train", {5: 3, 2: 2}), [5, 2])
    assert [c.index for c in train.classes] == [2, 5]
    names = [im.image_id for im in train.images]
    assert names == sorted(names[:2]) + sorted(names[2:]) and names[0].startswith("imagenet-train/2/")
    assert train.images[0].open().size == (8, 8)
    with pytest.raises(DataError, match="no training images for class 7"):
        load_local_imagenet_train(tmp_path / "train", [7])
    with pytest.raises(DataError, match="does not exist"):
        load_local_imagenet_train(tmp_path / "nope", [2])


def test_streamed_rows_keep_only_needed_classes(tmp_path):
    rows = [{"label": k, "image": {"bytes": _jpeg(i), "path": f"img{i}.JPEG"}} for i, k in enumerate([1, 4, 1, 9, 4, 4])]
    write_class_rows(iter(rows), [4, 9], tmp_path)
    train = load_local_imagenet_train(tmp_path, [4, 9])
    assert [im.class_index for im in train.images] == [4, 4, 4, 9]
    assert not (tmp_path / imagenet_synsets()[1]).exists()


def test_hub_train_without_token(monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(AccessError, match="ILSVRC/imagenet-1k"):
        hub_imagenet_train([3])


def test_import_upstream_alphas(tmp_path):
    train = load_local_imagenet_train(_train_folder(tmp_path / "train", {2: 3, 5: 4}), [2, 5])
    upstream = tmp_path / "alphas"
    upstream.mkdir()
    torch.save(torch.arange(3 * 6, dtype=torch.float32).reshape(3, 6), upstream / "spurious_alphas_train_002.pt")
    torch.save(torch.ones(4, 6), upstream / "spurious_alphas_train_005.pt")
    alphas = import_upstream_alphas(upstream, train, {2: [1, 4], 5: [0]})
    assert alphas.alphas[2].tolist() == [[1, 4], [7, 10], [13, 16]]
    assert alphas.image_ids[5] == [im.image_id for im in train.images if im.class_index == 5]
    again = SourceAlphas.load(alphas.save(tmp_path / "out"))
    assert torch.equal(again.alphas[2], alphas.alphas[2])
    # a row count that does not match the training images is an error
    torch.save(torch.ones(5, 6), upstream / "spurious_alphas_train_005.pt")
    with pytest.raises(DataError, match="5 alpha rows but 4"):
        import_upstream_alphas(upstream, train, {5: [0]})
    # a pickled object (not a plain tensor) is refused by weights_only loading
    import pickle

    (upstream / "spurious_alphas_train_002.pt").write_bytes(pickle.dumps(object()))
    with pytest.raises(DataError, match="not a plain tensor"):
        import_upstream_alphas(upstream, train, {2: [0]})


def test_components_file(tmp_path):
    shipped = load_components()
    assert len(shipped) == 233 and sum(len(v) for v in shipped.values()) == 322
    (tmp_path / "c.json").write_text('{"3": [0, 2]}')
    assert load_components(tmp_path / "c.json") == {3: [0, 2]}
    (tmp_path / "bad.json").write_text('{"3": "x"}')
    with pytest.raises(SpurbenchError):
        load_components(tmp_path / "bad.json")
    (tmp_path / "exported.json").write_text('{"basis": "npca", "components": {"3": [1]}, "model": "m"}')
    assert load_components(tmp_path / "exported.json") == {3: [1]}
    (tmp_path / "units.json").write_text('{"basis": "neurons", "components": {"3": [517]}}')
    with pytest.raises(SpurbenchError, match="not neural PCA components; SpuFix needs a discovery made with --basis npca"):
        load_components(tmp_path / "units.json")
