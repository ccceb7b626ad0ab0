"""model-lists/*.yaml model lists: schema, data groups, and the paper's Table 2 list."""

from collections import Counter
from pathlib import Path

import pytest

from spurbench.errors import SpurbenchError
from spurbench.model_lists import (
    DATA_GROUPS,
    ModelEntry,
    PaperNumbers,
    load_model_list,
    load_unmapped,
    model_list_files,
)
from tests.support.one_line import one_line_error

MODEL_LISTS = Path(__file__).resolve().parents[1] / "model-lists"
PAPER = MODEL_LISTS / "paper.yaml"

# Table 2 (App. D) of Neuhaus et al., "Spurious Features Everywhere" (ICCV 2023) lists 77 models:
# in1k 25, JFT-300M 4, YFCC-100M 3, LAION-2B 4 + LAION-400M 1, MIM 1, 1B Instagram 3,
# ImageNet21kFT1k 22, ImageNet21k 14.
TABLE_2_MODELS = 77
TABLE_2_GROUPS = {"in1k": 25, "JFT": 4, "YFCC": 3, "LAION": 5, "CLIP/MIM": 1, "IG-1B": 3, "in21k-ft-in1k": 22, "in21k": 14}


@pytest.fixture(scope="module")
def paper_models():
    return load_model_list(PAPER)


@pytest.fixture(scope="module")
def paper_unmapped():
    return load_unmapped(PAPER)


def _family_spec(model: str) -> tuple[str, str]:
    family, sep, spec = model.partition(":")
    assert sep and family and spec, f"{model!r} is not family:spec"
    return family, spec


def test_paper_list_loads_with_paper_numbers(paper_models):
    assert paper_models and all(isinstance(e, ModelEntry) for e in paper_models)
    for e in paper_models:
        family, _ = _family_spec(e.model)
        assert family in ("timm", "open_clip"), e.model
        assert e.display_name and e.architecture and e.data in DATA_GROUPS
        assert isinstance(e.paper, PaperNumbers), e.model
        assert e.paper.table == "Table 2" and e.paper.mean_ap is not None and e.paper.mean_ap_spufix is not None
        assert e.checkpoint is None  # every mapped model loads from a pretrained tag
    assert len({e.model for e in paper_models}) == len(paper_models), "a model appears twice"


def test_timm_and_open_clip_names_exist_offline(paper_models):
    timm = pytest.importorskip("timm")
    open_clip = pytest.importorskip("open_clip")
    timm_tags = set(timm.list_pretrained())
    clip_tags = {f"{arch}/{tag}" for arch, tag in open_clip.list_pretrained()}
    for e in paper_models:
        family, spec = _family_spec(e.model)
        if family == "timm":
            assert "." in spec, f"{e.model}: pin the pretrained tag (arch.tag)"
            assert spec in timm_tags, f"{e.model} is not in timm.list_pretrained()"
        else:
            assert spec in clip_tags, f"{e.model} is not in open_clip.list_pretrained()"


def test_unmapped_have_reasons(paper_unmapped):
    for u in paper_unmapped:
        assert u.display_name and u.reason.strip()
        assert u.data in DATA_GROUPS and u.paper is not None and u.paper.mean_ap is not None


def test_paper_list_covers_table_2(paper_models, paper_unmapped):
    entries = [*paper_models, *paper_unmapped]
    assert len(entries) == TABLE_2_MODELS
    assert Counter(e.data for e in entries) == TABLE_2_GROUPS


def test_paper_numbers_follow_the_table(paper_models, paper_unmapped):
    """Units (accuracy in %, mAUC in [0, 1]) and Table 2's own invariants, to catch transcription slips."""
    for e in [*paper_models, *paper_unmapped]:
        p = e.paper
        if e.data == "in21k":  # "-" in the paper: no ImageNet-1k accuracy for 21k heads
            assert p.accuracy is None and p.accuracy_spufix is None
        else:
            assert 50 < p.accuracy < 100 and 50 < p.accuracy_spufix < 100
        assert 0.5 < p.mean_ap <= p.mean_ap_spufix < 1  # SpuFix never lowers the printed score in Table 2
    by_name = {(e.display_name, e.data): e.paper for e in [*paper_models, *paper_unmapped]}
    assert by_name["Rob. ResNet50", "in1k"] == PaperNumbers(
        benchmark="spurious-imagenet", accuracy=57.4, mean_ap=0.630, accuracy_spufix=56.8, mean_ap_spufix=0.763, table="Table 2"
    )
    assert by_name["VOLO-D5 512", "in1k"].mean_ap == 0.882 and by_name["VOLO-D5 512", "in1k"].mean_ap_spufix == 0.907
    assert by_name["EVA-G/14 CLIP 560", "CLIP/MIM"].accuracy == 89.8
    assert by_name["BEiTV2-L/16 224", "in21k"].mean_ap == 0.951


def test_planted_list_still_loads():
    entries = load_model_list(MODEL_LISTS / "planted.yaml")
    assert [e.model for e in entries] == ["planted:cnn", "planted:resnet"]
    assert all(e.data == "planted" and e.paper is None for e in entries)
    assert load_unmapped(MODEL_LISTS / "planted.yaml") == []
    assert MODEL_LISTS / "planted.yaml" in model_list_files(MODEL_LISTS) and PAPER in model_list_files(MODEL_LISTS)


def test_unknown_data_group_is_one_line_error(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("models:\n  - model: timm:resnet50.a1_in1k\n    data: in1k\n  - model: timm:resnet18.a1_in1k\n    data: imagenet\n")
    with pytest.raises(SpurbenchError) as info:
        load_model_list(path)
    msg = one_line_error(info, "models[1].data", "'imagenet'")
    assert msg.startswith(str(path))
    assert all(group in msg for group in DATA_GROUPS)


def test_malformed_yaml_is_one_line_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("models:\n  - model: timm:resnet50\n    data: [in1k\n")
    with pytest.raises(SpurbenchError) as info:
        load_model_list(path)
    assert one_line_error(info, "malformed YAML", "line").startswith(str(path))


@pytest.mark.parametrize("text", ["entries:\n  - model: timm:resnet50\n", "models: timm:resnet50\n", "- model: timm:resnet50\n", ""])
def test_missing_models_list_is_one_line_error(tmp_path, text):
    path = tmp_path / "nomodels.yaml"
    path.write_text(text)
    with pytest.raises(SpurbenchError) as info:
        load_model_list(path)
    assert one_line_error(info, "top-level 'models:' list").startswith(str(path))


def test_paper_numbers_are_strict(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("models:\n  - model: timm:resnet50\n    paper: {mean_ap: 0.8, top5: 95.0}\n")
    with pytest.raises(SpurbenchError) as info:
        load_model_list(path)
    assert one_line_error(info, "models[0].paper.top5").startswith(str(path))
    path.write_text("models:\n  - model: timm:resnet50\n    paper: {mean_ap: 80.1}\n")  # a percentage where a fraction belongs
    with pytest.raises(SpurbenchError) as info:
        load_model_list(path)
    assert one_line_error(info, "models[0].paper.mean_ap").startswith(str(path))


def test_model_field_is_still_required(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("models:\n  - display_name: no model\n")
    with pytest.raises(SpurbenchError) as info:
        load_model_list(path)
    assert one_line_error(info, "models[0].model").startswith(str(path))


def test_unmapped_needs_a_reason(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("models: []\nunmapped:\n  - display_name: Rob. ResNet50\n    data: in1k\n")
    with pytest.raises(SpurbenchError, match=r"unmapped\[0\]\.reason"):
        load_unmapped(path)
    path.write_text("models: []\nunmapped:\n  - display_name: Rob. ResNet50\n    data: robust\n    reason: custom weights\n")
    with pytest.raises(SpurbenchError, match=r"unmapped\[0\]\.data: unknown training-data group 'robust'"):
        load_unmapped(path)
    path.write_text("models: []\nunmapped: nope\n")
    with pytest.raises(SpurbenchError, match="'unmapped:' must be a list"):
        load_unmapped(path)
