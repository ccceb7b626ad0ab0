"""Spurious ImageNet end to end through the CLI, on a tiny local copy: build, run, and each bad input."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.support.one_line import one_line_error
from tests.test_spurious_imagenet import make_upstream, make_val

# Every test runs the CLI in a subprocess (imports torch + timm, builds a model): tens of seconds each.


MODEL = "timm:test_resnet.r160_in1k"  # timm's tiny test architecture, 1000 classes


def _checkpoint(path: Path, num_classes: int = 1000) -> Path:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=num_classes)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("si")
    upstream = make_upstream(root / "upstream", {(1, 3): 4, (309, 0): 4, (850, 7): 4})
    val = make_val(root / "val", [1, 309, 850], per_class=3)
    return root, upstream, val


def test_build_then_run(cli, data, tmp_path):
    _root, upstream, val = data
    built = tmp_path / "built"
    proc = cli("dataset", "build", "--from-upstream", str(upstream), "--out", str(built), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ckpt = _checkpoint(tmp_path / "ck.safetensors")
    out = tmp_path / "out"
    args = [
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--data-dir",
        str(built),
        "--imagenet-val",
        str(val),
        "--model",
        MODEL,
        "--checkpoint",
        str(ckpt),
        "--bootstrap",
        "50",
        "--output",
        str(out),
        "--quiet",
    ]
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    files = list(out.glob("*.json"))
    assert [f.name for f in files] == ["spurious-imagenet__timm_test_resnet.r160_in1k.json"]
    result = json.loads(files[0].read_text())
    meta = json.loads((built / "spurbench.json").read_text())
    assert result["benchmark"]["checksum"] == meta["checksum"]
    assert result["benchmark"]["num_negatives"] == 12 and result["benchmark"]["num_positives"] == 9
    assert result["model"]["weights_revision"].startswith("sha256:")
    assert {r["class_index"] for r in result["heads"]["plain"]["classes"]} == {1, 309, 850}
    assert "mAUC" in proc.stdout and "worst classes" in proc.stdout
    # A second run skips the finished model.
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "skip" in again.stdout


def test_checksum_mismatch(cli, data, tmp_path):
    _root, upstream, val = data
    built = tmp_path / "built"
    assert cli("dataset", "build", "--from-upstream", str(upstream), "--out", str(built), cwd=tmp_path).returncode == 0
    meta = json.loads((built / "spurbench.json").read_text())
    meta["checksum"] = "sha256:" + "0" * 64
    (built / "spurbench.json").write_text(json.dumps(meta))
    proc = cli(
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--data-dir",
        str(built),
        "--imagenet-val",
        str(val),
        "--model",
        MODEL,
        "--checkpoint",
        str(_checkpoint(tmp_path / "ck.safetensors")),
        "--output",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    one_line_error(proc, "checksum")
    assert not (tmp_path / "out").exists()


def test_missing_token_for_gated_positives(cli, data, tmp_path):
    _root, upstream, _val = data
    proc = cli(
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--data-dir",
        str(upstream),
        "--model",
        MODEL,
        "--checkpoint",
        str(_checkpoint(tmp_path / "ck.safetensors")),
        "--output",
        str(tmp_path / "out"),
        cwd=tmp_path,
        env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf")},
    )
    one_line_error(proc, "ILSVRC/imagenet-1k", "--imagenet-val")


@pytest.mark.parametrize(
    "num_classes, needle",
    [
        (21843, "850"),  # teddy bear (850) has no synset in the ImageNet-21k lists: refuse, never score a wrong column
        (10, "timm-10"),  # a head no map exists for at all
    ],
)
def test_head_without_a_map_is_refused(cli, data, tmp_path, num_classes, needle):
    _root, upstream, val = data
    ckpt = _checkpoint(tmp_path / f"ck{num_classes}.safetensors", num_classes=num_classes)
    proc = cli(
        "run",
        "--benchmark",
        "spurious-imagenet",
        "--data-dir",
        str(upstream),
        "--imagenet-val",
        str(val),
        "--model",
        MODEL,
        "--checkpoint",
        str(ckpt),
        "--output",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    one_line_error(proc, needle)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))
