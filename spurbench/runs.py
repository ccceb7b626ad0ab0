"""What the commands decide, as library functions: which models a run evaluates, which it skips, where
their SpuFix artifacts come from, and what ``spufix fit`` does (``fit_spufix``, which takes the
``SpuFixFitSettings`` the command builds).

The CLI only parses arguments and calls these; nothing here knows which benchmarks exist (it asks
their plugins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from spurbench import distributed
from spurbench.adapters import ModelAdapter, load_model
from spurbench.benchmarks import (
    BenchmarkPlugin,
    GroundTruthSource,
    TrainingData,
    default_benchmark,
    get_benchmark,
    require,
)
from spurbench.errors import SpurbenchError
from spurbench.features import check_same_inputs
from spurbench.harness import load_spufix, spufix_reference
from spurbench.model_lists import load_model_list
from spurbench.pixelcache import PixelCache
from spurbench.result_conflicts import existing_result, refuse_other_facts
from spurbench.results import check_output_dir, read_result
from spurbench.settings import FeatureSettings, RunEntry, RunOptions, RunSettings, SpuFixFitSettings
from spurbench.spufix.artifact import SpuFixArtifact
from spurbench.spufix.components import load_components, read_components
from spurbench.spufix.fit import SourceAlphas, fit_source, fit_transfer, self_artifact
from spurbench.spufix.ground_truth import ground_truth_artifacts, ground_truth_components


@dataclass(frozen=True)
class RunPlan:
    plugin: BenchmarkPlugin
    runs: list[RunSettings]  # one per model, in the order given
    ground_truth_demo: bool  # fit SpuFix from the benchmark's ground truth for the default models


@dataclass(frozen=True)
class ModelRun:
    settings: RunSettings
    spufix: SpuFixArtifact | None  # the loaded (or demo-fitted) artifact its SpuFix head uses
    complete: bool  # its result file already holds this configuration's result: skipped


def model_entries(options: RunOptions, models: Sequence[str], model_list: Path | None, checkpoint: str | None = None) -> list[RunEntry]:
    """The models named (with the run's checkpoint and temperatures), then a model list's entries (with their own)."""
    entries = [options.entry(model, checkpoint) for model in models]
    if model_list is not None:
        entries += [RunEntry(e.model, e.checkpoint, e.temperature, e.spufix_temperature) for e in load_model_list(model_list)]
    return entries


def check_data_path(options: RunOptions) -> None:
    """The output folder can be written and the pixel cache opened, checked once before any model runs."""
    if options.output is not None:
        check_output_dir(options.output)
    if options.features.pixel_cache is not None:
        PixelCache.open(options.features.pixel_cache, options.features.pixel_cache_gb)


def plan_run(
    options: RunOptions,
    benchmark: str | None,
    models: Sequence[str],
    model_list: Path | None = None,
    checkpoint: str | None = None,
    no_spufix: bool = False,
) -> RunPlan:
    """The models ``spurbench run`` evaluates (named ones, a model list's, else the benchmark's default
    models), each one's settings checked before anything loads, and whether the ground-truth SpuFix demo
    runs (default models of a benchmark with ground truth, no ``--spufix``)."""
    options.features.check_machine()
    name = benchmark or default_benchmark()
    plugin = get_benchmark(name)
    values = options.option_values([name])
    plugin.parse_options(values)  # an unknown option fails before the models are looked at
    entries = model_entries(options, models, model_list, checkpoint)
    defaults = not entries
    if defaults:
        if not plugin.default_models:
            raise SpurbenchError(f"--model is required for benchmark {plugin.name!r} (it has no default models)")
        entries = [options.entry(model) for model in plugin.default_models]
    runs = [options.settings(entry, name, values) for entry in entries]
    check_data_path(options)
    _refuse_twice(runs)
    demo = defaults and options.spufix is None and not no_spufix and isinstance(plugin, GroundTruthSource)
    return RunPlan(plugin, runs, demo)


def _refuse_twice(runs: Sequence[RunSettings]) -> None:
    """Two entries of one model would write one file (one line, before any work)."""
    seen: dict[str, Path | None] = {}
    for settings in runs:
        if settings.model in seen:
            raise SpurbenchError(
                f"{settings.model} is listed twice: both runs would write {seen[settings.model]}; list each model once (or run them into separate --output folders)"
            )
        seen[settings.model] = settings.result_file()


def demo_models(plan: RunPlan) -> list[ModelAdapter]:
    """The default models the SpuFix demo fits on, loaded (a model that trains on first use trains now,
    with its own progress bar). First, a result file that records other facts than the demo's run would
    is refused: the config hash needs the fitted artifact, so the check by hash comes after the fit."""
    for settings in plan.runs:
        target = settings.result_file()
        if target is not None and not settings.force:
            refuse_other_facts(target, settings.planned_facts(with_spufix=True))
    return [load_model(settings.model) for settings in plan.runs]


def demo_artifacts(
    plan: RunPlan, models: Sequence[ModelAdapter], on_class: Callable[[str], None] | None = None
) -> dict[str, SpuFixArtifact]:
    """SpuFix for every default model (``models``, loaded, in ``plan.runs`` order) from the benchmark's
    ground truth: fitted on the first one, transferred to the others from its alphas alone. The fit's
    features are the demo's own, the paper protocol in fp32 whatever the run's protocol and precision."""
    first = plan.runs[0]
    truth = require(plan.plugin, GroundTruthSource).ground_truth(first.parsed_options())
    if truth is None:
        raise SpurbenchError(f"benchmark {plan.plugin.name!r} has no ground truth to choose SpuFix components from")
    features = FeatureSettings(
        batch_size=first.features.batch_size, device=first.features.device, use_cache=first.features.use_cache, progress=False
    )
    return ground_truth_artifacts(list(models), models[0], truth, features, on_class=on_class)


def model_runs(plan: RunPlan, artifacts: Mapping[str, SpuFixArtifact] | None = None) -> list[ModelRun]:
    """Every model's run with its SpuFix artifact (the demo's, else the one its settings name), and
    whether its result is complete. Every result file is checked before any model runs: a result of
    another configuration stops the whole run in one line (unless --force), not after the models
    before it have run."""
    runs = []
    for settings in plan.runs:
        artifact = (artifacts or {}).get(settings.model) or load_spufix(settings.spufix, settings.model)
        target = settings.result_file()
        complete = (
            target is not None
            and not settings.force
            and existing_result(target, settings.config_hash(spufix_reference(artifact)), settings.planned_facts(artifact is not None))
        )
        runs.append(ModelRun(settings, artifact, complete))
    return runs


def is_complete(path: Path, config_hash: str) -> bool:
    """A valid result file for exactly this configuration exists (a sweep skips it)."""
    if not path.exists():
        return False
    try:
        return read_result(path).config_hash == config_hash
    except SpurbenchError:
        return False  # invalid or partial file: run again and overwrite it


def source_model(target: ModelAdapter, model: str, checkpoint: str | None, other: str | None, other_checkpoint: str | None) -> ModelAdapter:
    """The source adapter of ``spufix fit``: the target itself unless another model or other weights are named."""
    name = other or model
    if name == model and other_checkpoint in (None, checkpoint):
        return target
    return load_model(name, checkpoint=other_checkpoint)


def check_components_source(settings: SpuFixFitSettings) -> None:
    """A components file exported from a discovery must be of the source model; checked before any model
    loads (it may download or train). The file is read again, the same way, by the fit."""
    if settings.components is None or settings.source_alphas is not None or settings.components_from_ground_truth:
        return
    load_components(settings.components)
    exported_from, source_name = read_components(settings.components).model, settings.source_model or settings.model
    if exported_from is not None and exported_from != source_name:
        hint = "" if settings.source_model else f" (pass --source-model {exported_from})"
        raise SpurbenchError(
            f"{settings.components}: lists components of a discovery of {exported_from}, but the source model here is {source_name}{hint}"
        )


def fit_spufix(
    settings: SpuFixFitSettings, *, model: ModelAdapter | None = None, on_class: Callable[[str], None] | None = None
) -> SpuFixArtifact:
    """What ``spufix fit`` does: source alphas (computed by the source model, or loaded), then the target's
    SpuFix (the source's own directions, or matched directions), saved to ``settings.output`` where it
    is set. ``model``: the target model loaded already, else the one the settings name.

    Under torchrun (``spurbench.distributed``) the ranks share the images; rank 0 loads models first,
    reads the source alphas, chooses ground-truth components and writes ``save_alphas`` and the
    artifact, and every rank returns rank 0's artifact."""
    settings.features.check_machine()
    if settings.output is not None:
        check_output_dir(settings.output)
    check_components_source(settings)
    if model is None:
        with distributed.main_first("waiting for rank 0 to load the model"):
            model = load_model(settings.model, checkpoint=settings.checkpoint)
    artifact = _fit(settings, model, settings.training_plugin(model.label_space), on_class)
    if settings.components is not None and settings.source_alphas is None and not settings.components_from_ground_truth:
        artifact = artifact.named(read_components(settings.components).names)  # what people called the clipped features
    if settings.output is not None and distributed.is_main():
        artifact.save(settings.output)
    return artifact


def _fit(
    settings: SpuFixFitSettings, target: ModelAdapter, plugin: BenchmarkPlugin, on_class: Callable[[str], None] | None
) -> SpuFixArtifact:
    features, train_data, limit = settings.features, settings.train_data, settings.limit
    if settings.source_alphas is not None:
        path = settings.source_alphas
        alphas = distributed.from_main(lambda: SourceAlphas.load(path), "receiving the source alphas from rank 0")
        train = require(plugin, TrainingData).training_split(sorted(alphas.alphas), train_data, limit)
        return fit_transfer(target, train, alphas, features, on_class=on_class)
    with distributed.main_first("waiting for rank 0 to load the source model"):
        src = source_model(target, target.name, settings.checkpoint, settings.source_model, settings.source_checkpoint)
    if settings.components_from_ground_truth:
        truth = require(plugin, GroundTruthSource).ground_truth(plugin.parse_options({}))
        if truth is None:
            raise SpurbenchError(f"--components-from-ground-truth: benchmark {plugin.name!r} has no ground truth")
        # the fit's own images: the ground truth's training split as it is (not generated again), unless
        # a limit or a source asks the plugin for another
        train = (
            truth.train if limit is None and train_data is None else require(plugin, TrainingData).training_split(None, train_data, limit)
        )
        # Under torchrun: compare the ranks' inputs before rank 0 spends time on the choice (the others wait for it)
        check_same_inputs("models, training images or options", [target, src], train, features)
        chosen = replace(truth, train=train)
        table = distributed.from_main(
            lambda: ground_truth_components(src, chosen, features), "waiting for rank 0 to choose the ground-truth components"
        )
    else:
        table = load_components(settings.components)
        train = require(plugin, TrainingData).training_split(sorted(table), train_data, limit)
    alphas, npcas = fit_source(src, train, table, features, on_class=on_class)
    if settings.save_alphas is not None and distributed.is_main():
        alphas.save(settings.save_alphas)
    if src is target:
        return distributed.from_main(
            lambda: self_artifact(src, npcas, alphas), "receiving the artifact from rank 0"
        )  # the NPCAs are rank 0's
    return fit_transfer(target, train, alphas, features, on_class=on_class)


__all__ = [
    "ModelRun",
    "RunPlan",
    "check_components_source",
    "check_data_path",
    "demo_artifacts",
    "demo_models",
    "fit_spufix",
    "is_complete",
    "model_entries",
    "model_runs",
    "plan_run",
    "source_model",
]
