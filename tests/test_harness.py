import json
from importlib import metadata

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from spurbench import features as features_mod
from spurbench.cache import cache_root
from spurbench.errors import DataError, LabelSpaceError
from spurbench.harness import evaluate
from spurbench.metrics import spurious_auc
from spurbench.results import Result, read_result, result_filename
from spurbench.testing import TinyAdapter, tiny_benchmark


def _run(tmp_path, **kw):
    kw.setdefault("bootstrap", 200)
    return evaluate(TinyAdapter(), tiny_benchmark(), output_dir=tmp_path, batch_size=4, progress=False, **kw)


def test_evaluate_writes_a_typed_result_whose_numbers_recompute(tmp_path):
    result = _run(tmp_path)
    path = tmp_path / result_filename("tiny:net", "tiny")
    assert read_result(path) == result
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 3
    assert isinstance(raw["heads"]["plain"]["aggregate"]["mauc"], float)
    plain = result.heads["plain"]
    assert len(plain.classes) == 4 and len(plain.image_prob) == 96
    for row in plain.classes:
        pos = [plain.image_prob[i] for i, r in result.images.items() if r.class_index == row.class_index and r.role == "positive"]
        neg = [plain.image_prob[i] for i, r in result.images.items() if r.class_index == row.class_index and r.role == "negative"]
        assert row.auc == pytest.approx(spurious_auc(pos, neg), abs=1e-12)
        assert row.num_positives == len(pos) == 24 // 2
    assert plain.aggregate.mauc == pytest.approx(np.mean([r.auc for r in plain.classes]))
    packages = result.provenance.packages
    assert packages["torch"] == metadata.version("torch") and torch.__version__.split("+")[0] == packages["torch"].split("+")[0]
    assert packages["numpy"] == np.__version__


def test_result_without_bootstrap_round_trips(tmp_path):
    result = _run(tmp_path, bootstrap=0)
    raw = json.loads((tmp_path / result_filename("tiny:net", "tiny")).read_text())
    assert raw["heads"]["plain"]["aggregate"]["mauc_ci_low"] is None and raw["heads"]["plain"]["aggregate"]["bootstrap_draws"] == 0
    assert read_result(tmp_path / result_filename("tiny:net", "tiny")) == result


def test_probabilities_are_softmax_of_adapter_logits(tmp_path):
    adapter = TinyAdapter()
    bench = tiny_benchmark()
    result = evaluate(adapter, bench, bootstrap=0, progress=False, batch_size=4)
    from spurbench.preprocessing import build_transform

    image = bench.images[5]
    x = build_transform(adapter.data_config, bench.protocols["paper"], image.role)(image.open()).unsqueeze(0)
    expected = torch.softmax(adapter.logits(x), dim=1)[0, image.class_index].item()
    assert result.heads["plain"].image_prob[image.image_id] == pytest.approx(expected, abs=1e-6)


def test_second_run_uses_cached_features(tmp_path):
    adapter = TinyAdapter()
    evaluate(adapter, tiny_benchmark(), bootstrap=0, progress=False, batch_size=4)
    calls = adapter.forward_calls
    assert calls > 0
    evaluate(adapter, tiny_benchmark(), bootstrap=0, progress=False, batch_size=4)
    assert adapter.forward_calls == calls  # no forward pass
    evaluate(adapter, tiny_benchmark(), bootstrap=0, progress=False, batch_size=4, use_cache=False)
    assert adapter.forward_calls > calls


def test_killed_run_resumes_to_a_byte_identical_result(tmp_path, monkeypatch):
    full = tmp_path / "full"
    _run(full)
    reference = (full / result_filename("tiny:net", "tiny")).read_bytes()

    # Kill the run after its second shard (a shard is 8 batches x 4 images = 32 images; 96 images -> 3 shards).
    real_write = features_mod._write_shard
    written = []

    def dying_write(*args):
        real_write(*args)
        written.append(args[1])
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path / "second-cache"))  # start from an empty cache
    monkeypatch.setattr(features_mod, "_write_shard", dying_write)
    monkeypatch.setattr(features_mod, "default_workers", lambda: 0)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(TinyAdapter(), tiny_benchmark(), output_dir=out, batch_size=4, bootstrap=200, progress=False)
    assert not out.exists() or not list(out.glob("*.json"))  # no half-written result
    monkeypatch.setattr(features_mod, "_write_shard", real_write)
    adapter = TinyAdapter()
    evaluate(adapter, tiny_benchmark(), output_dir=out, batch_size=4, bootstrap=200, progress=False)
    assert adapter.forward_calls == 8  # only the missing third shard (8 batches) ran
    resumed = (out / result_filename("tiny:net", "tiny")).read_bytes()
    # The uninterrupted run in another cache differs only in the date the features were computed.
    first = json.loads(reference)
    second = json.loads(resumed)
    first["provenance"].pop("date"), second["provenance"].pop("date")
    assert first == second
    # Re-running on the resumed cache reproduces the file byte for byte.
    evaluate(TinyAdapter(), tiny_benchmark(), output_dir=tmp_path / "again", batch_size=4, bootstrap=200, progress=False)
    assert (tmp_path / "again" / result_filename("tiny:net", "tiny")).read_bytes() == resumed


def test_damaged_shard_is_recomputed(tmp_path):
    adapter = TinyAdapter()
    evaluate(adapter, tiny_benchmark(), bootstrap=0, progress=False, batch_size=4)
    shard = next(p for p in (cache_root() / "features").rglob("shard-00001.safetensors"))
    shard.write_bytes(b"garbage")
    calls = adapter.forward_calls
    evaluate(adapter, tiny_benchmark(), bootstrap=0, progress=False, batch_size=4)
    assert adapter.forward_calls == calls + 8


def test_label_space_mismatch_fails_before_any_forward(tmp_path):
    adapter = TinyAdapter(label_space="other")
    with pytest.raises(LabelSpaceError):
        evaluate(adapter, tiny_benchmark(), output_dir=tmp_path, progress=False)
    assert adapter.forward_calls == 0 and not list(tmp_path.glob("*.json"))


def test_class_outside_label_space(tmp_path):
    adapter = TinyAdapter(num_classes=3)
    with pytest.raises(LabelSpaceError, match="outside"):
        evaluate(adapter, tiny_benchmark(num_classes=4), output_dir=tmp_path, progress=False)


def test_corrupt_image_names_the_file_and_writes_nothing(tmp_path):
    bench = tiny_benchmark(broken="negative/2/3")
    with pytest.raises(DataError, match="tiny:negative/2/3"):
        evaluate(TinyAdapter(), bench, output_dir=tmp_path, progress=False, batch_size=4)
    assert not list(tmp_path.glob("*.json"))


def test_result_schema_rejects_strings_and_wrong_version(tmp_path):
    result = _run(tmp_path)
    data = json.loads(result.model_dump_json())
    assert Result.model_validate(data) == result  # the control: the untouched dump validates
    for old in (1, 2):  # previous schemas (2: no class groups, component names or extra metrics)
        data["schema_version"] = old
        with pytest.raises(ValidationError, match=r"schema_version\n  Input should be 3"):
            Result.model_validate(data)
    data["schema_version"] = 3
    data["heads"]["plain"]["aggregate"]["mauc"] = "0.9 (ci)"
    with pytest.raises(ValidationError, match=r"heads\.plain\.aggregate\.mauc\n  Input should be a valid number"):
        Result.model_validate(data)
