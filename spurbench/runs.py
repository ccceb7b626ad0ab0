"""What the commands decide, as library functions: which models a run evaluates, which it skips, where
their SpuFix artifacts come from, and which training data ``spufix fit`` uses.

The CLI only parses arguments and calls these; nothing here knows which benchmarks exist (it asks
their plugins).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spurbench import distributed
from spurbench.adapters import ModelAdapter, check_model_name, declared_model, load_model
from spurbench.benchmarks import BENCHMARKS, Benchmark, BenchmarkOptions, BenchmarkPlugin, benchmarks_with, get_benchmark
from spurbench.errors import SpurbenchError
from spurbench.model_lists import load_model_list
from spurbench.results import read_result
from spurbench.spufix.artifact import SpuFixArtifact, auto_location, load_artifact
from spurbench.spufix.fit import SourceAlphas, check_same_inputs, fit_source, fit_transfer, load_components, self_artifact
from spurbench.spufix.ground_truth import ground_truth_artifacts, ground_truth_components


@dataclass(frozen=True)
class RunEntry:
    model: str
    checkpoint: str | None = None
    temperature: float = 1.0
    spufix_temperature: float | None = None


@dataclass(frozen=True)
class RunPlan:
    plugin: BenchmarkPlugin
    options: BenchmarkOptions
    entries: list[RunEntry]
    ground_truth_demo: bool  # fit SpuFix from the benchmark's ground truth for the default models


def plan_run(
    benchmark: str,
    option_values: dict[str, Any],
    models: Sequence[str],
    registry: Path | None,
    checkpoint: str | None,
    temperature: float,
    spufix_temperature: float | None,
    spufix: str | None,
    no_spufix: bool,
) -> RunPlan:
    """The models to evaluate (named ones, a registry list, else the benchmark's default models) and whether
    the ground-truth SpuFix demo runs (default models of a benchmark with ground truth, no ``--spufix``)."""
    plugin = get_benchmark(benchmark)
    options = plugin.parse_options(option_values)
    entries = [RunEntry(m, checkpoint, temperature, spufix_temperature) for m in models]
    if registry is not None:
        entries += [RunEntry(e.model, e.checkpoint, e.temperature, e.spufix_temperature) for e in load_model_list(registry)]
    defaults = not entries
    if defaults:
        if not plugin.default_models:
            raise SpurbenchError(f"--model is required for benchmark {plugin.name!r} (it has no default models)")
        entries = [RunEntry(m, None, temperature, spufix_temperature) for m in plugin.default_models]
    for entry in entries:
        check_model_name(entry.model)
        declared = declared_model(entry.model)
        if declared is not None:  # a model the benchmark cannot score is refused before it downloads or trains
            plugin.check_model(declared)
    demo = defaults and spufix is None and not no_spufix and plugin.implements("ground_truth")
    return RunPlan(plugin, options, entries, demo)


def is_complete(path: Path, config_hash: str) -> bool:
    """A valid result file for exactly this configuration exists (a sweep skips it)."""
    if not path.exists():
        return False
    try:
        return read_result(path).config_hash == config_hash
    except SpurbenchError:
        return False  # invalid or partial file: run again and overwrite it


def spufix_artifact(spufix: str | None, model_name: str) -> SpuFixArtifact | None:
    """The artifact ``--spufix`` names for a model: a folder, ``hf://ORG/NAME[@REV]``, or ``auto`` (the
    Hub location ``auto_location`` derives from the model name)."""
    if spufix is None:
        return None
    if spufix != "auto":
        return load_artifact(spufix)
    try:
        return load_artifact(auto_location(model_name))
    except SpurbenchError as exc:
        raise SpurbenchError(
            f"--spufix auto: no published SpuFix artifact for {model_name} ({exc}); fit one with `spurbench spufix fit`"
        ) from None


def demo_artifacts(
    plan: RunPlan, models: Sequence[ModelAdapter], on_class: Callable[[str], None] | None = None, **feature_kwargs: Any
) -> dict[str, SpuFixArtifact]:
    """SpuFix for every default model (``models``, loaded, in ``plan.entries`` order) from the benchmark's
    ground truth: fitted on the first one, transferred to the others from its alphas alone."""
    truth = plan.plugin.ground_truth(plan.options)
    if truth is None:
        raise SpurbenchError(f"benchmark {plan.plugin.name!r} has no ground truth to choose SpuFix components from")
    return ground_truth_artifacts(list(models), models[0], truth, on_class=on_class, **feature_kwargs)


def training_benchmark_for(model: ModelAdapter, benchmark: str | None) -> BenchmarkPlugin:
    """The benchmark whose training split ``spufix fit`` uses: the one named, else the one registered
    benchmark with a training split in the model's label space."""
    if benchmark is not None:
        return get_benchmark(benchmark)
    candidates = [get_benchmark(n) for n in benchmarks_with("training_split")]
    matching = [p for p in candidates if p.label_space == model.label_space]
    if len(matching) == 1:
        return matching[0]
    raise SpurbenchError(f"name the benchmark whose training split to use: --benchmark ({', '.join(p.name for p in candidates)})")


def named_split(benchmark: str | None, train_data: str | None) -> tuple[str | None, str | None]:
    """``--train-data NAME`` of a registered benchmark means that benchmark's own split, from no other source."""
    if benchmark is None and train_data in BENCHMARKS.names():
        return train_data, None
    return benchmark, train_data


def source_model(target: ModelAdapter, model: str, checkpoint: str | None, other: str | None, other_checkpoint: str | None) -> ModelAdapter:
    """The source adapter of ``spufix fit``: the target itself unless another model or other weights are named."""
    name = other or model
    if name == model and other_checkpoint in (None, checkpoint):
        return target
    return load_model(name, checkpoint=other_checkpoint)


def prepare_discovery(
    model: str, checkpoint: str | None, benchmark: str | None, train_data: str | None, classes: Sequence[int] | None, limit: int | None
) -> tuple[ModelAdapter, BenchmarkPlugin, Benchmark]:
    """The model, plugin and training split ``discover`` analyses (``train_data`` may name a benchmark).
    A named benchmark's training split is resolved before the model loads, so a bad source fails first.
    Under torchrun rank 0 loads the model first (a download, or the training of a model that trains on
    first use, fills the cache once), then the other ranks load it from the cache."""
    benchmark, train_data = named_split(benchmark, train_data)
    if benchmark is not None:
        plugin = get_benchmark(benchmark)
        train = plugin.training_split(classes, train_data, limit)
        with distributed.main_first("waiting for rank 0 to load the model"):
            adapter = load_model(model, checkpoint=checkpoint)
        return adapter, plugin, train
    with distributed.main_first("waiting for rank 0 to load the model"):
        adapter = load_model(model, checkpoint=checkpoint)
    plugin = training_benchmark_for(adapter, None)
    return adapter, plugin, plugin.training_split(classes, train_data, limit)


def fit_spufix(
    model: str,
    *,
    checkpoint: str | None = None,
    source_model_name: str | None = None,
    source_checkpoint: str | None = None,
    source_alphas: Path | None = None,
    components: Path | None = None,
    train_data: str | None = None,
    benchmark: str | None = None,
    components_from_ground_truth: bool = False,
    limit: int | None = None,
    save_alphas: Path | None = None,
    on_class: Callable[[str], None] | None = None,
    **feature_kwargs: Any,
) -> SpuFixArtifact:
    """What ``spufix fit`` does: source alphas (computed by the source model, or loaded), then the target's
    SpuFix (the source's own directions, or matched directions). ``train_data`` may name a benchmark,
    which then provides its own training split.

    Under torchrun (``spurbench.distributed``) the ranks share the images; rank 0 loads models first,
    reads the source alphas, chooses ground-truth components and writes ``save_alphas``, and every rank
    returns rank 0's artifact (only rank 0 should save it)."""
    if source_alphas is not None and source_model_name is not None:
        raise SpurbenchError("give either --source (precomputed alphas) or --source-model, not both")
    with distributed.main_first("waiting for rank 0 to load the model"):
        target = load_model(model, checkpoint=checkpoint)
    benchmark, train_data = named_split(benchmark, train_data)
    plugin = training_benchmark_for(target, benchmark)
    if source_alphas is not None:
        alphas = distributed.from_main(lambda: SourceAlphas.load(source_alphas), "receiving the source alphas from rank 0")
        train = plugin.training_split(sorted(alphas.alphas), train_data, limit)
        return fit_transfer(target, train, alphas, on_class=on_class, **feature_kwargs)
    with distributed.main_first("waiting for rank 0 to load the source model"):
        src = source_model(target, target.name, checkpoint, source_model_name, source_checkpoint)
    if components_from_ground_truth:
        truth = plugin.ground_truth(plugin.parse_options({}))
        if truth is None:
            raise SpurbenchError(f"--components-from-ground-truth: benchmark {plugin.name!r} has no ground truth")
        # the fit's own images: the ground truth's training split as it is (not generated again), unless
        # a limit or a source asks the plugin for another
        train = truth.train if limit is None and train_data is None else plugin.training_split(None, train_data, limit)
        # Under torchrun: compare the ranks' inputs before rank 0 spends time on the choice (the others wait for it)
        check_same_inputs("models, training images or options", [target, src], train, feature_kwargs)
        table = distributed.from_main(
            lambda: ground_truth_components(src, replace(truth, train=train), **feature_kwargs),
            "waiting for rank 0 to choose the ground-truth components",
        )
    else:
        table = load_components(components)
        train = plugin.training_split(sorted(table), train_data, limit)
    alphas, npcas = fit_source(src, train, table, on_class=on_class, **feature_kwargs)
    if save_alphas is not None and distributed.is_main():
        alphas.save(save_alphas)
    if src is target:
        return distributed.from_main(
            lambda: self_artifact(src, npcas, alphas), "receiving the artifact from rank 0"
        )  # the NPCAs are rank 0's
    return fit_transfer(target, train, alphas, on_class=on_class, **feature_kwargs)


__all__ = [
    "RunEntry",
    "RunPlan",
    "demo_artifacts",
    "fit_spufix",
    "is_complete",
    "named_split",
    "plan_run",
    "prepare_discovery",
    "source_model",
    "spufix_artifact",
    "training_benchmark_for",
]
