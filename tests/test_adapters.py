"""The timm, open_clip and hf adapters on tiny random models, fully offline.

The core property checked for every family: the split ``features(x) @ W.T + b`` (which is how
``adapter.logits`` is defined) equals what the library's own model computes for the same input:
timm's ``model(x)``, open_clip's image-text forward, transformers' ``model(pixel_values=x).logits``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from spurbench.adapters import load_model
from spurbench.errors import SpurbenchError, UnknownNameError
from tests.support.hub_fixture import write_hub_repo
from tests.support.one_line import one_line_error

TINY_CLIP = "spurbench-tiny-vit"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(autouse=True)
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF_HOME in offline mode: no test here can reach the network or a real cache."""
    import huggingface_hub.constants as hf_constants

    hf_home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read these at import time: patch the module constants it consults per call.
    monkeypatch.setattr(hf_constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return hf_home


def random_image(seed: int = 0, size: tuple[int, int] = (90, 70)) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth content (a blurred gradient plus noise) so resize implementations agree closely.
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x / size[0], y / size[1], (x + y) / sum(size)], axis=-1) * 200
    return Image.fromarray(np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8))


def assert_split(adapter, native_logits, x: torch.Tensor) -> None:
    """The adapter's split (features, then its head) reproduces the library's own forward ``native_logits``."""
    with torch.no_grad():
        weight, bias = adapter.head
        logits = adapter.features(x) @ weight.T + bias
    assert logits.shape == native_logits.shape == (x.shape[0], adapter.num_classes)
    torch.testing.assert_close(logits, native_logits, rtol=1e-5, atol=1e-5)
    assert native_logits.std() > 0  # not trivially equal


# ---- timm -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["test_resnet", "test_vit"])
def test_timm_split_matches_native_forward(arch: str) -> None:
    torch.manual_seed(0)
    adapter = load_model(f"timm:{arch}", pretrained=False)
    x = torch.randn(2, *adapter.data_config["input_size"])
    with torch.no_grad():
        native = adapter.model(x)
    assert_split(adapter, native, x)
    card = adapter.card
    assert (card.name, card.family, card.weights_revision) == (f"timm:{arch}", "timm", None)
    assert (card.label_space, card.num_classes) == ("imagenet-1k", 1000)
    assert card.num_params == sum(p.numel() for p in adapter.model.parameters())
    assert set(card.data_config) == {"input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode"}
    assert adapter.class_names[967].startswith("espresso")
    assert adapter.transform(random_image()).shape == (3, *card.data_config["input_size"][1:])


def test_timm_checkpoint_loads_local_safetensors(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(1)
    source = timm.create_model("test_resnet", pretrained=False).eval()
    path = tmp_path / "weights.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in source.state_dict().items()}, str(path))  # a wrapper prefix is stripped
    adapter = load_model("timm:test_resnet", checkpoint=str(path))
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert_split(adapter, source(x), x)
    import hashlib

    assert adapter.card.weights_revision == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_timm_checkpoint_with_other_head_size(tmp_path: Path) -> None:
    import timm

    source = timm.create_model("test_resnet", pretrained=False, num_classes=11821)
    path = tmp_path / "in12k.safetensors"
    save_file(source.state_dict(), str(path))
    adapter = load_model("timm:test_resnet", checkpoint=str(path))
    assert (adapter.num_classes, adapter.label_space, adapter.class_names) == (11821, "timm-11821", None)
    assert torch.equal(adapter.head[0], source.get_classifier().weight)


def test_timm_checkpoint_errors(tmp_path: Path) -> None:
    import timm

    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:test_resnet", checkpoint=str(tmp_path / "missing.safetensors"))
    assert "does not exist" in one_line_error(exc)
    pickle = tmp_path / "weights.pth"
    pickle.write_bytes(b"not read")
    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:test_resnet", checkpoint=str(pickle))
    assert ".safetensors" in one_line_error(exc)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 20)
    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:test_resnet", checkpoint=str(corrupt))
    assert "not a readable safetensors file" in one_line_error(exc)
    other = tmp_path / "vit.safetensors"
    save_file(timm.create_model("test_vit", pretrained=False).state_dict(), str(other))
    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:test_resnet", checkpoint=str(other))
    assert "does not fit timm architecture 'test_resnet'" in one_line_error(exc) and "missing keys" in str(exc.value)


def test_timm_unknown_names_suggest() -> None:
    with pytest.raises(UnknownNameError) as exc:
        load_model("timm:resnet5O")
    assert "Did you mean: resnet50" in one_line_error(exc)
    with pytest.raises(UnknownNameError) as exc:
        load_model("timm:resnet50.a1_in1kk", pretrained=False)
    assert "Did you mean: a1_in1k" in one_line_error(exc)


def test_timm_non_linear_head_is_refused() -> None:
    # LeViT's classifier is a (head, distillation head) pair: no single linear layer.
    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:levit_128s", pretrained=False)
    assert "not a linear layer" in one_line_error(exc)


def test_timm_model_without_weights() -> None:
    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:test_vit4")  # timm registers no weights for it
    assert "no pretrained weights" in one_line_error(exc)


def test_timm_pretrained_from_hub_cache(offline_hub: Path) -> None:
    """timm's own Hub path: only `model.safetensors` in `timm/<arch>.<tag>` is needed (no config.json)."""
    import timm
    from safetensors.torch import save

    torch.manual_seed(2)
    source = timm.create_model("test_resnet", pretrained=False).eval()
    sha = write_hub_repo(offline_hub, "timm/test_resnet.r160_in1k", {"model.safetensors": save(source.state_dict())})
    adapter = load_model("timm:test_resnet.r160_in1k")
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert_split(adapter, source(x), x)
    assert adapter.card.weights_revision == f"r160_in1k hf-hub:timm/test_resnet.r160_in1k@{sha}"
    assert adapter.data_config["input_size"] == (3, 160, 160)


def test_timm_hf_hub_spec_reads_config_json(offline_hub: Path, tmp_path: Path) -> None:
    """`timm:hf-hub:ORG/REPO` takes architecture and preprocessing from the repo's config.json."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(3)
    source = timm.create_model("test_vit", pretrained=False, num_classes=5).eval()
    save_for_hf(source, str(tmp_path / "export"), safe_serialization=True)
    files = {p.name: p.read_bytes() for p in (tmp_path / "export").iterdir()}
    assert set(files) == {"config.json", "model.safetensors"}
    write_hub_repo(offline_hub, "someone/tiny-vit", files)
    adapter = load_model("timm:hf-hub:someone/tiny-vit")
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert_split(adapter, source(x), x)
    assert adapter.label_space == "timm-5"


def test_timm_missing_weights_offline_is_one_line() -> None:
    with pytest.raises(SpurbenchError) as exc:
        load_model("timm:test_resnet.r160_in1k")
    message = one_line_error(exc)
    assert "not in the local Hugging Face Hub cache" in message and "HF_HUB_OFFLINE=1" in message


# ---- open_clip ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    import open_clip

    path = tmp_path_factory.mktemp("open_clip") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP


CLASSNAMES = ["cat", "dog", "car", "teapot"]


def test_open_clip_split_matches_clip_logits(tiny_clip_config: str) -> None:
    import open_clip

    from spurbench.adapters.open_clip_adapter import OpenClipAdapter

    torch.manual_seed(0)
    templates = open_clip.OPENAI_IMAGENET_TEMPLATES[:3]
    adapter = OpenClipAdapter.load(tiny_clip_config, pretrained=False, classnames=CLASSNAMES, templates=templates)
    assert adapter.templates == ("a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.")
    model, tokenizer = adapter.model, open_clip.get_tokenizer(tiny_clip_config)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        # open_clip's own image-text forward gives the normalised embeddings and the logit scale; the
        # zero-shot head is, per class, the mean of its normalised template embeddings, re-normalised.
        tokens = tokenizer([t.format(c) for c in CLASSNAMES for t in adapter.templates])
        image_features, text_features, scale = model(x, tokens)
        text = F.normalize(text_features.reshape(len(CLASSNAMES), len(templates), -1).mean(1), dim=-1)
        native = scale * image_features @ text.T
    assert_split(adapter, native, x)
    with torch.no_grad():
        torch.testing.assert_close(adapter.logits(x), native, rtol=1e-5, atol=1e-5)  # the evaluated path too
    # The constructor only stores parts: without load()'s build_text_head() there is no head to read.
    bare = OpenClipAdapter(
        spec=adapter.spec,
        model=model,
        model_name=tiny_clip_config,
        tokenizer=adapter.tokenizer,
        weights_revision=None,
        classnames=CLASSNAMES,
        templates=templates,
    )
    with pytest.raises(SpurbenchError, match="zero-shot head is not built yet; call build_text_head"):
        _ = bare.head
    torch.testing.assert_close(bare.build_text_head(), adapter.build_text_head())
    torch.testing.assert_close(adapter.features(x).norm(dim=-1), torch.ones(3))
    card = adapter.card
    assert (card.label_space, card.num_classes, card.weights_revision) == ("open_clip-4", 4, None)
    assert adapter.class_names == CLASSNAMES


def test_open_clip_data_config_reproduces_open_clip_transform(tiny_clip_config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    # load() encodes the default zero-shot head: 1000 ImageNet classes x 80 OpenAI templates, minutes on a
    # CPU even for this tiny text tower. Record what it asks open_clip for instead of encoding it.
    asked = []

    def fake_zero_shot(model, tokenizer, classnames, templates, **kwargs):
        asked.append((list(classnames), list(templates)))
        return F.normalize(torch.randn(TINY_CLIP_CONFIG["embed_dim"], len(classnames)), dim=0)

    monkeypatch.setattr(open_clip, "build_zero_shot_classifier", fake_zero_shot)
    adapter = load_model(f"open_clip:{tiny_clip_config}/none", pretrained=False)
    # Defaults: the ImageNet zero-shot head over open_clip's 1000 class names and its OpenAI templates.
    assert (adapter.label_space, adapter.num_classes) == ("imagenet-1k", 1000)
    assert len(asked) == 1 and asked[0][0] == list(open_clip.IMAGENET_CLASSNAMES)
    assert len(asked[0][1]) == len(open_clip.OPENAI_IMAGENET_TEMPLATES) == 80 and asked[0][1][0].format(
        "x"
    ) == open_clip.OPENAI_IMAGENET_TEMPLATES[0]("x")
    assert adapter.head[0].shape == (1000, TINY_CLIP_CONFIG["embed_dim"])
    cfg = open_clip.get_model_preprocess_cfg(adapter.model)
    reference = open_clip.image_transform(cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"])
    for image in (random_image(0), random_image(1, size=(40, 90))):
        torch.testing.assert_close(adapter.transform(image), reference(image), atol=1e-6, rtol=0)


def test_open_clip_text_head_cache(tiny_clip_config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    from spurbench.adapters.open_clip_adapter import OpenClipAdapter
    from spurbench.cache import cache_root

    torch.manual_seed(4)
    weights = tmp_path / "clip.safetensors"
    save_file(open_clip.create_model(tiny_clip_config).state_dict(), str(weights))
    kwargs = dict(checkpoint=str(weights), classnames=CLASSNAMES, templates=["a photo of a {}.", "a {}."])
    first = OpenClipAdapter.load(tiny_clip_config, **kwargs)
    assert first.card.weights_revision.startswith("sha256:")
    weight, _ = first.head
    cached = list((cache_root() / "text_heads").glob("*.safetensors"))
    assert len(cached) == 1

    def no_rebuild(*args, **kwargs):
        raise AssertionError("text head rebuilt although cached")

    with monkeypatch.context() as patch:
        patch.setattr(open_clip, "build_zero_shot_classifier", no_rebuild)
        second = OpenClipAdapter.load(tiny_clip_config, **kwargs)
        torch.testing.assert_close(second.head[0], weight)
        # Other templates -> another key -> rebuilt.
        with pytest.raises(AssertionError, match="rebuilt"):
            OpenClipAdapter.load(tiny_clip_config, **{**kwargs, "templates": ["a {}."]})
    # Random weights are never cached.
    random_model = OpenClipAdapter.load(tiny_clip_config, pretrained=False, classnames=CLASSNAMES, templates=["a {}."])
    assert random_model.head[0].shape == weight.shape
    assert len(list((cache_root() / "text_heads").glob("*.safetensors"))) == 1


def test_open_clip_bad_names() -> None:
    with pytest.raises(UnknownNameError) as exc:
        load_model("open_clip:ViT-B-3/openai")
    assert "Did you mean: ViT-B-32" in one_line_error(exc)
    with pytest.raises(UnknownNameError) as exc:
        load_model("open_clip:ViT-B-32/laion2b")
    assert "laion2b_s34b_b79k" in one_line_error(exc)
    with pytest.raises(UnknownNameError) as exc:
        load_model("open_clip:ViT-B-32")
    assert "needs a pretrained tag" in one_line_error(exc)


def test_open_clip_missing_weights_offline_is_one_line() -> None:
    with pytest.raises(SpurbenchError) as exc:
        load_model("open_clip:RN50/openai")
    assert "not in the local Hugging Face Hub cache" in one_line_error(exc)


# ---- hf (transformers) --------------------------------------------------------------------------


def save_tiny_hf(folder: Path, kind: str) -> Path:
    from transformers import (
        ConvNextImageProcessor,
        DeiTConfig,
        DeiTForImageClassificationWithTeacher,
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    vit = dict(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    if kind == "resnet":  # classifier = Sequential(Flatten, Linear); ConvNext processor with crop_pct
        model = ResNetForImageClassification(
            ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=1000)
        )
        processor = ConvNextImageProcessor(
            size={"shortest_edge": 64}, crop_pct=0.875, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3]
        )
    elif kind == "vit":  # classifier = Linear; processor squashes to a fixed size
        model = ViTForImageClassification(ViTConfig(**vit, num_labels=7, id2label={k: f"label{k}" for k in range(7)}))
        processor = ViTImageProcessor(size={"height": 32, "width": 32})
    else:  # DeiT with teacher: logits average two heads, no single linear classifier
        model = DeiTForImageClassificationWithTeacher(DeiTConfig(**vit, num_labels=7))
        processor = ViTImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_hf_split_matches_native_forward(kind: str, tmp_path: Path) -> None:
    from transformers import AutoImageProcessor

    folder = save_tiny_hf(tmp_path / kind, kind)
    adapter = load_model(f"hf:{folder}")
    x = torch.randn(2, *adapter.data_config["input_size"])
    with torch.no_grad():
        native = adapter.model(pixel_values=x).logits
    assert_split(adapter, native, x)
    assert adapter.card.weights_revision.startswith("sha256:")
    assert adapter.label_space == {"resnet": "imagenet-1k", "vit": "hf-7"}[kind]
    if kind == "vit":
        assert adapter.class_names == [f"label{k}" for k in range(7)]
    # The derived timm data config reproduces the model's own image processor.
    # (Image sizes chosen so the center crop's offset is a whole pixel: for a half-pixel offset
    # torchvision rounds up and transformers down, a one-row shift that is no config error.)
    processor = AutoImageProcessor.from_pretrained(folder)
    for image in (random_image(0), random_image(1, size=(300, 200))):
        ours, theirs = adapter.transform(image), processor(image, return_tensors="pt").pixel_values[0]
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().mean() < 2e-3, "preprocessing differs from the HF image processor"


def test_hf_random_weights_and_checkpoint(tmp_path: Path) -> None:
    folder = save_tiny_hf(tmp_path / "vit", "vit")
    stored = load_model(f"hf:{folder}")
    random = load_model(f"hf:{folder}", pretrained=False)
    assert random.card.weights_revision is None
    assert not torch.equal(random.head[0], stored.head[0])
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in stored.model.state_dict().items()}, str(weights))
    restored = load_model(f"hf:{folder}", checkpoint=str(weights))
    assert torch.equal(restored.head[0], stored.head[0])


def test_hf_refuses_non_linear_logits(tmp_path: Path) -> None:
    folder = save_tiny_hf(tmp_path / "deit", "deit")
    with pytest.raises(SpurbenchError) as exc:
        load_model(f"hf:{folder}")
    assert "not a linear function of the classifier input" in one_line_error(exc)


def test_hf_bad_names_and_offline() -> None:
    with pytest.raises(UnknownNameError) as exc:
        load_model("hf:not a repo!!")
    assert "neither a local directory nor" in one_line_error(exc)
    with pytest.raises(SpurbenchError) as exc:
        load_model("hf:google/vit-base-patch16-224")
    assert "not in the local Hugging Face Hub cache" in one_line_error(exc)


def test_timm_checkpoint_names_its_label_space_in_metadata(tmp_path: Path) -> None:
    """A timm architecture fine-tuned on a benchmark's classes says so in its safetensors metadata."""
    import timm

    source = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "planted.safetensors"), metadata={"spurbench.label_space": "planted"})
    adapter = load_model("timm:test_resnet", checkpoint=str(tmp_path / "planted.safetensors"))
    assert (adapter.label_space, adapter.num_classes) == ("planted", 10)
    save_file(state, str(tmp_path / "plain.safetensors"))
    assert load_model("timm:test_resnet", checkpoint=str(tmp_path / "plain.safetensors")).label_space == "timm-10"
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={"spurbench.label_space": " "})
    with pytest.raises(SpurbenchError, match="is not a label space name"):
        load_model("timm:test_resnet", checkpoint=str(tmp_path / "bad.safetensors"))
