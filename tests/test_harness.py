import json
from importlib import metadata

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from spurbench.cache import cache_root
from spurbench.errors import DataError, LabelSpaceError
from spurbench.features import stream as stream_mod
from spurbench.harness import evaluate
from spurbench.metrics import spurious_auc
from spurbench.results import Result, read_result, result_filename
from spurbench.settings import FeatureSettings, RunSettings
from spurbench.testing import TinyAdapter, tiny_benchmark

QUICK = FeatureSettings(batch_size=4, progress=False)


def _settings(output=None, bootstrap=0, features=QUICK, **options) -> RunSettings:
    """The tiny model on the tiny benchmark (``options``: the tiny benchmark's)."""
    return RunSettings(model="tiny:net", benchmark="tiny", options=options, bootstrap=bootstrap, output=output, features=features)


def _run(tmp_path, bootstrap=200):
    return evaluate(_settings(tmp_path, bootstrap), model=TinyAdapter())


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
    result = evaluate(_settings(), model=adapter, benchmark=bench)
    from spurbench.preprocessing import build_transform

    image = bench.images[5]
    x = build_transform(adapter.data_config, bench.protocols["paper"], image.role)(image.open()).unsqueeze(0)
    expected = torch.softmax(adapter.logits(x), dim=1)[0, image.class_index].item()
    assert result.heads["plain"].image_prob[image.image_id] == pytest.approx(expected, abs=1e-6)


def test_second_run_uses_cached_features(tmp_path):
    adapter = TinyAdapter()
    evaluate(_settings(), model=adapter)
    calls = adapter.forward_calls
    assert calls > 0
    evaluate(_settings(), model=adapter)
    assert adapter.forward_calls == calls  # no forward pass
    evaluate(_settings(features=QUICK.model_copy(update={"use_cache": False})), model=adapter)
    assert adapter.forward_calls > calls


def test_killed_run_resumes_to_a_byte_identical_result(tmp_path, monkeypatch):
    full = tmp_path / "full"
    _run(full)
    reference = (full / result_filename("tiny:net", "tiny")).read_bytes()

    # Kill the run after its second shard (a shard is 8 batches x 4 images = 32 images; 96 images -> 3 shards).
    real_write = stream_mod.write_shard
    written = []

    def dying_write(*args):
        real_write(*args)
        written.append(args[1])
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setenv("SPURBENCH_CACHE", str(tmp_path / "second-cache"))  # start from an empty cache
    monkeypatch.setattr(stream_mod, "write_shard", dying_write)
    monkeypatch.setattr(stream_mod, "default_workers", lambda: 0)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        evaluate(_settings(out, 200), model=TinyAdapter())
    assert not out.exists() or not list(out.glob("*.json"))  # no half-written result
    monkeypatch.setattr(stream_mod, "write_shard", real_write)
    adapter = TinyAdapter()
    evaluate(_settings(out, 200), model=adapter)
    assert adapter.forward_calls == 8  # only the missing third shard (8 batches) ran
    resumed = (out / result_filename("tiny:net", "tiny")).read_bytes()
    # The uninterrupted run in another cache differs only in the date the features were computed.
    first = json.loads(reference)
    second = json.loads(resumed)
    first["provenance"].pop("date"), second["provenance"].pop("date")
    assert first == second
    # Re-running on the resumed cache reproduces the file byte for byte.
    evaluate(_settings(tmp_path / "again", 200), model=TinyAdapter())
    assert (tmp_path / "again" / result_filename("tiny:net", "tiny")).read_bytes() == resumed


def test_damaged_shard_is_recomputed(tmp_path):
    adapter = TinyAdapter()
    evaluate(_settings(), model=adapter)
    shard = next(p for p in (cache_root() / "features").rglob("shard-00001.safetensors"))
    shard.write_bytes(b"garbage")
    calls = adapter.forward_calls
    evaluate(_settings(), model=adapter)
    assert adapter.forward_calls == calls + 8


def test_label_space_mismatch_fails_before_any_forward(tmp_path):
    adapter = TinyAdapter(label_space="other")
    with pytest.raises(LabelSpaceError):
        evaluate(_settings(tmp_path, features=FeatureSettings(progress=False)), model=adapter)
    assert adapter.forward_calls == 0 and not list(tmp_path.glob("*.json"))


def test_class_outside_label_space(tmp_path):
    adapter = TinyAdapter(num_classes=3)
    with pytest.raises(LabelSpaceError, match="outside"):
        evaluate(_settings(tmp_path, features=FeatureSettings(progress=False), num_classes=4), model=adapter)


def test_corrupt_image_names_the_file_and_writes_nothing(tmp_path):
    with pytest.raises(DataError, match="tiny:negative/2/3"):
        evaluate(_settings(tmp_path, broken="negative/2/3"), model=TinyAdapter())
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


# ------------------------------------------------------------------------------- typed settings


def test_settings_name_what_evaluate_loads_and_hash_as_their_json(tmp_path):
    """evaluate loads the model and benchmark the settings name (here the registered tiny pair) and
    computes the same numbers and config hash as with the objects passed in; the settings' JSON parses
    back to settings with the same hash."""
    settings = _settings(tmp_path / "named", per_role=6)
    by_name = evaluate(settings)
    loaded = evaluate(_settings(tmp_path / "loaded", per_role=6), model=TinyAdapter(), benchmark=tiny_benchmark(per_role=6))
    assert by_name.heads["plain"].image_prob == loaded.heads["plain"].image_prob and len(by_name.heads["plain"].image_prob) == 48
    assert by_name.config_hash == loaded.config_hash == settings.config_hash(None)
    again = RunSettings.model_validate_json(settings.model_dump_json())
    assert again == settings and again.config_hash(None) == settings.config_hash(None)
    assert settings.config_hash(None) != _settings(tmp_path / "named", per_role=5).config_hash(None)  # options are hashed
    assert (tmp_path / "named" / result_filename("tiny:net", "tiny")).is_file()


def test_a_loaded_benchmark_must_have_the_protocols_its_plugin_declares(tmp_path):
    from spurbench.errors import SpurbenchError
    from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

    other = tiny_benchmark()
    other.protocols = protocol_table(fixed_paper(0.5, by="another crop"), MODEL_TRANSFORM)
    adapter = TinyAdapter()
    with pytest.raises(SpurbenchError, match=r"^benchmark plugin tiny: load\(\) gave protocols other than protocols_for\(\) said"):
        evaluate(_settings(tmp_path), model=adapter, benchmark=other)
    assert adapter.forward_calls == 0 and not list(tmp_path.glob("*.json"))


def test_a_loaded_benchmark_must_have_the_name_its_plugin_declares(tmp_path, monkeypatch):
    """Result files are named by benchmark_name() before loading: a plugin whose load() names its benchmark
    otherwise is refused before any image is read (it would write a file run and sweep never find)."""
    from spurbench.errors import SpurbenchError
    from spurbench.testing import TinyBenchmark

    monkeypatch.setattr(TinyBenchmark, "benchmark_name", lambda self, options: "tiny-renamed")
    adapter = TinyAdapter()
    with pytest.raises(
        SpurbenchError, match=r"^benchmark plugin tiny: load\(\) gave a benchmark named 'tiny', but benchmark_name\(\) said 'tiny-renamed'"
    ):
        evaluate(_settings(tmp_path), model=adapter)
    assert adapter.forward_calls == 0 and not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"benchmark": "tinyy"}, "unknown benchmark 'tinyy'"),
        ({"options": {"per_rol": 3}}, "benchmark 'tiny' has no option 'per_rol'"),
        ({"model": "tiny"}, "must look like FAMILY:SPEC"),
        ({"model": "tinny:net"}, "unknown model family 'tinny'"),
        ({"checkpoint": "/nonexistent/w.safetensors"}, "checkpoint '/nonexistent/w.safetensors' does not exist"),
        ({"bootstrap": -1}, "--bootstrap -1: use 0 to"),
        ({"temperature": 0.0}, "temperature must be a positive number, not 0.0"),
        ({"spufix_temperature": float("nan")}, "spufix temperature must be a positive number"),
        ({"features": {"protocol": "fancy"}}, "protocol"),
        ({"features": {"precision": "fp8"}}, "unknown precision 'fp8'"),
        ({"features": {"num_workers": -1}}, "--num-workers must be 0 or more"),
        ({"features": {"pixel_cache_gb": 0}}, "--pixel-cache-gb must be a positive number of GB, not 0"),
    ],
)
def test_settings_refuse_what_evaluate_would_in_one_line(change, message):
    """A RunSettings that exists is one evaluate accepts: each refusal is the one line evaluate gave."""
    from spurbench.errors import SpurbenchError

    values = {"model": "tiny:net", "benchmark": "tiny", **change}
    with pytest.raises(SpurbenchError, match=None) as refused:
        RunSettings.model_validate(values)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_settings_refuse_a_model_whose_declared_label_space_the_benchmark_cannot_score():
    from spurbench.errors import LabelSpaceError

    with pytest.raises(LabelSpaceError, match="planted:cnn"):  # refused before it trains
        RunSettings(model="planted:cnn", benchmark="spurious-imagenet")
