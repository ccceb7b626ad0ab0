"""A plugin's surface in small capabilities: the plugin contract has none of their methods (``require``
or ``isinstance`` is the only way to one), each built-in plugin has the capabilities and states the
attributes it had, a plugin without one is refused in the words it always was, callers give the
answers a plugin without one always gave, and a plugin that implements a capability without naming it
has it (the subclass hook)."""

from __future__ import annotations

import pytest

from spurbench.benchmarks import (
    BENCHMARKS,
    AddsMetrics,
    BenchmarkOptions,
    BenchmarkPlugin,
    GivesPositives,
    GroundTruthSource,
    MinesPools,
    PublishesDataset,
    ScoresViews,
    TrainingData,
    benchmarks_with,
    capabilities_of,
    get_benchmark,
    register_benchmark,
    require,
)
from spurbench.benchmarks.capabilities import CAPABILITIES, extra_metrics_of, group_mauc, implements, stated
from spurbench.benchmarks.data import BenchmarkClass
from spurbench.errors import SpurbenchError
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table
from spurbench.results import ModelInfo
from spurbench.tasks.views.declared import headline_keys, metric_specs
from spurbench.tasks.views.scoring import watched_columns
from spurbench.testing import tiny_benchmark
from tests.support.one_line import one_line_error

PROTOCOLS = protocol_table(fixed_paper(1.0, by="a test"), MODEL_TRANSFORM)

# Every built-in plugin's capabilities, as they were when each plugin still inherited refusing defaults.
BUILT_IN = {
    "imagenet-w": ["ScoresViews", "ShowsExamples"],
    "planted": ["TrainingData", "GroundTruthSource", "MinesPools", "GivesPositives", "ShowsExamples"],
    "planted-salient": ["ScoresViews", "ShowsExamples"],
    "salient-imagenet": ["ScoresViews", "ShowsExamples"],
    "spurious-folder": ["WritesMined", "PublishesDataset"],
    "spurious-imagenet": ["TrainingData", "GivesPositives", "PublishesDataset", "ShowsExamples"],
}
SALIENT_METRICS = ["clean_accuracy", "core_accuracy", "spurious_accuracy", "gap", "core_drop", "spurious_drop"]
SALIENT_METRICS += ["core_prob_drop", "spurious_prob_drop"]
# What each states of its capabilities' class attributes (capability, attribute, value).
STATED = {
    "imagenet-w": [
        (ScoresViews, "headline", ("inw_gap", None, None)),
        (
            ScoresViews,
            "view_metric_specs",
            ["clean_accuracy", "watermark_accuracy", "inw_gap", "carton_gap", "carton_prob_change", "delta_p_carton_cond_carton"],
        ),
    ],
    "planted": [(GivesPositives, "positives_crop_pct", 1.0)],
    "planted-salient": [(ScoresViews, "headline", ("gap", None, None)), (ScoresViews, "view_metric_specs", SALIENT_METRICS)],
    "salient-imagenet": [(ScoresViews, "headline", ("gap", None, None)), (ScoresViews, "view_metric_specs", SALIENT_METRICS)],
    "spurious-folder": [(PublishesDataset, "named_by_its_data", True)],
    "spurious-imagenet": [(GivesPositives, "positives_crop_pct", 224 / 256), (PublishesDataset, "named_by_its_data", False)],
}
# The refusal of each capability's methods (the words users have always seen).
REFUSED = {
    "training_split": "benchmark {name!r} has no training split",
    "ground_truth": "benchmark {name!r} has no ground truth",
    "mining_pool": "benchmark {name!r} generates no mining pool; pass --pool DIR",
    "positives": "benchmark {name!r} provides no positives for other benchmarks",
    "write_mined": "benchmark {name!r} does not write mined benchmarks",
    "build_dataset": "benchmark {name!r} has no dataset to build",
    "push_dataset": "benchmark {name!r} has no dataset to publish",
    "download_dataset": "benchmark {name!r} has no dataset to download",
    "check_views": "benchmark {name!r} does not check views",
    "view_metrics": "benchmark {name!r} is not a views benchmark",
}
# Every method a capability declares, and the contract's old "does it have method X"; the class attributes.
METHODS = {m for c in CAPABILITIES for m in c.methods} | {"watched_classes", "implements"}
ATTRIBUTES = {"positives_crop_pct", "named_by_its_data", "view_metric_specs", "headline"}


def test_the_plugin_contract_has_no_capability_method() -> None:
    assert sorted(a for a in METHODS | ATTRIBUTES if hasattr(BenchmarkPlugin, a)) == []
    planted, folder = get_benchmark("planted"), get_benchmark("spurious-folder")
    with pytest.raises(AttributeError):
        planted.view_metrics  # noqa: B018 (the access is the test)
    with pytest.raises(AttributeError):
        folder.training_split  # noqa: B018
    for name, capabilities in BUILT_IN.items():
        plugin = get_benchmark(name)
        has = {m for c in CAPABILITIES if c.__name__ in capabilities for m in c.methods}
        has |= {"watched_classes"} if "ScoresViews" in capabilities else set()
        assert {m for m in METHODS if hasattr(plugin, m)} == has, name


def test_every_built_in_plugin_keeps_its_capabilities_and_what_it_states() -> None:
    assert set(BUILT_IN) <= set(BENCHMARKS.names())
    assert {name: capabilities_of(get_benchmark(name)) for name in BUILT_IN} == BUILT_IN
    for name in BUILT_IN:
        plugin = get_benchmark(name)
        for capability in CAPABILITIES:
            assert isinstance(plugin, capability) == all(implements(plugin, m) for m in capability.methods), (name, capability)
        assert (plugin.task == "views") == isinstance(plugin, ScoresViews)
        for capability, attribute, value in STATED[name]:
            stated_value = stated(require(plugin, capability), capability, attribute)
            assert ([m.key for m in stated_value] if attribute == "view_metric_specs" else stated_value) == value, (name, attribute)
    assert implements(get_benchmark("imagenet-w"), "watched_classes") and not implements(
        get_benchmark("salient-imagenet"), "watched_classes"
    )
    assert benchmarks_with(TrainingData) == benchmarks_with("training_split") == ["planted", "spurious-imagenet"]
    assert benchmarks_with(MinesPools) == ["planted"] and benchmarks_with("build_dataset") == ["spurious-folder", "spurious-imagenet"]
    assert not any(isinstance(get_benchmark(name), AddsMetrics) for name in BUILT_IN)  # all record the group means


def test_a_plugin_without_a_capability_is_refused_in_its_words() -> None:
    for name, capabilities in BUILT_IN.items():
        plugin = get_benchmark(name)
        for capability in CAPABILITIES:
            if capability.__name__ in capabilities:
                assert require(plugin, capability) is plugin
                continue
            for method in (m for m in capability.methods if m in REFUSED):
                with pytest.raises(SpurbenchError) as failure:
                    require(plugin, capability, method)
                assert one_line_error(failure) == REFUSED[method].format(name=name)
    with pytest.raises(SpurbenchError) as failure:
        require(get_benchmark("spurious-folder"), GroundTruthSource)
    assert one_line_error(failure) == "benchmark 'spurious-folder' has no ground truth"


class _Base(BenchmarkPlugin):
    name = "capability-test"
    description = "a plugin class of a test"
    protocols = PROTOCOLS

    def load(self, options: BenchmarkOptions):
        raise NotImplementedError

    def reference(self, revision: str):
        return None


def test_a_plugin_names_its_capabilities_and_must_implement_them() -> None:
    class Named(TrainingData, _Base):
        def training_split(self, classes, source=None, limit=None):
            return "split"

    class Unnamed(_Base):  # written before capabilities: it has one by what it implements
        def training_split(self, classes, source=None, limit=None):
            return "split"

    assert isinstance(Named(), TrainingData) and isinstance(Unnamed(), TrainingData) and not isinstance(_Base(), TrainingData)
    assert require(Named(), TrainingData).training_split(None) == "split"
    with pytest.raises(SpurbenchError, match=r"names the capability MinesPools but does not implement MinesPools\.mining_pool"):

        class Lacking(MinesPools, _Base):
            pass

    with pytest.raises(SpurbenchError, match="names the capability GivesPositives but does not implement GivesPositives.positives"):

        class LackingAfter(_Base, GivesPositives):  # named after the base: still checked
            pass

    class Views(ScoresViews, _Base):
        def check_views(self, reference, views):
            return None

        def view_metrics(self, table):
            raise NotImplementedError

    assert isinstance(Views(), ScoresViews) and Views().watched_classes("x") == {} and not implements(Views, "watched_classes")


def test_a_plugin_that_names_capabilities_does_not_lend_them_to_other_plugins() -> None:
    # planted names TrainingData first; spurious-imagenet has a training split but no ground truth and
    # no pool: it must not count as a subclass of planted (and so of planted's other capabilities).
    spurious = get_benchmark("spurious-imagenet")
    assert isinstance(spurious, TrainingData)
    assert not isinstance(spurious, GroundTruthSource) and not isinstance(spurious, MinesPools)
    assert capabilities_of(get_benchmark("planted")) == BUILT_IN["planted"]


class UnnamedViews(_Base):
    """A views plugin written before the capabilities: its methods, no capability named, no attributes."""

    name = "capability-test-views"
    task = "views"

    def check_views(self, reference, views):
        return None

    def view_metrics(self, table):
        raise NotImplementedError


class UnnamedMetrics(_Base):
    def extra_metrics(self, classes, class_auc):
        return {"best": max(class_auc)}


def test_callers_give_the_answer_of_a_plugin_without_the_capability() -> None:
    classes = [BenchmarkClass(0, "a", group="x"), BenchmarkClass(1, "b", group="y"), BenchmarkClass(2, "c", group="x")]
    aucs = [0.5, 0.75, 1.0]
    assert extra_metrics_of(get_benchmark("planted")) is group_mauc and extra_metrics_of(None) is group_mauc
    assert extra_metrics_of(get_benchmark("planted"))(classes, aucs) == {"mauc_x": 0.75, "mauc_y": 0.75}
    assert isinstance(UnnamedMetrics(), AddsMetrics) and extra_metrics_of(UnnamedMetrics())(classes, aucs) == {"best": 1.0}
    model = ModelInfo(name="m", family="f", weights_revision=None, num_params=1, label_space="imagenet-1k", num_classes=1000)
    bench = tiny_benchmark(num_classes=2, per_role=1, label_space="imagenet-1k")
    assert watched_columns(bench, get_benchmark("imagenet-w"), model) == {
        "carton": get_benchmark("imagenet-w").watched_classes("imagenet-1k")["carton"]
    }
    assert watched_columns(bench, get_benchmark("salient-imagenet"), model) == {}  # names ScoresViews, watches none


def test_a_plugin_with_a_capability_unnamed_keeps_working() -> None:
    register_benchmark(UnnamedViews)
    try:
        plugin = get_benchmark(UnnamedViews.name)
        assert isinstance(plugin, ScoresViews) and require(plugin, ScoresViews) is plugin
        assert capabilities_of(plugin) == ["ScoresViews"] and not implements(plugin, "watched_classes")
        model = ModelInfo(name="m", family="f", weights_revision=None, num_params=1, label_space="toy", num_classes=4)
        assert watched_columns(tiny_benchmark(), plugin, model) == {}  # inherits no default, watches none
        assert metric_specs(UnnamedViews.name) == {} and headline_keys(UnnamedViews.name) is None  # states none
        assert (
            stated(plugin, PublishesDataset, "named_by_its_data") is False and stated(plugin, GivesPositives, "positives_crop_pct") is None
        )
    finally:
        BENCHMARKS.unregister(UnnamedViews.name)
