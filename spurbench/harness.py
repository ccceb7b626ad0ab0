"""The evaluation pipeline: adapter -> benchmark -> features -> heads -> metrics -> result."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from spurbench._version import __version__
from spurbench.adapters import ModelAdapter, load_model
from spurbench.benchmarks import Benchmark
from spurbench.errors import DataError, SpurbenchError
from spurbench.features import FeatureSet, extract_features
from spurbench.files import plain
from spurbench.heads import PLAIN, SPUFIX, LinearHead
from spurbench.label_spaces import class_columns
from spurbench.result_conflicts import existing_result
from spurbench.results import Provenance, SpuFixInfo, TaskResult, check_output_dir, write_result
from spurbench.settings import RunSettings
from spurbench.spufix.artifact import SpuFixArtifact, auto_location, load_artifact
from spurbench.tasks import EvaluationContext, task_of


def spufix_reference(artifact: SpuFixArtifact | None) -> str | None:
    """What a result's config hash records of its SpuFix artifact: its content fingerprint, so a refitted
    or re-pushed artifact at the same location is a new configuration."""
    return None if artifact is None else f"artifact-sha256:{artifact.fingerprint()}"


def spufix_info(artifact: SpuFixArtifact) -> SpuFixInfo:
    """What a result scored with ``artifact`` records of it (the board names the features it clips)."""
    return SpuFixInfo(
        source_model=artifact.source_model,
        fingerprint=artifact.fingerprint(),
        clipped={str(k): list(cs) for k, cs in sorted(artifact.components.items()) if cs},
        component_names={str(k): {str(c): n for c, n in sorted(by.items())} for k, by in sorted(artifact.component_names.items()) if by},
    )


def load_spufix(location: str | None, model_name: str) -> SpuFixArtifact | None:
    """The artifact ``--spufix`` names for a model: a folder, ``hf://ORG/NAME[@REV]``, or ``auto`` (the
    Hub location ``auto_location`` derives from the model name)."""
    if location is None:
        return None
    if location != "auto":
        return load_artifact(location)
    try:
        return load_artifact(auto_location(model_name))
    except SpurbenchError as exc:
        raise SpurbenchError(
            f"--spufix auto: no published SpuFix artifact for {model_name} ({exc}); fit one with `spurbench spufix fit`"
        ) from None


def evaluate(
    settings: RunSettings,
    *,
    model: ModelAdapter | None = None,
    benchmark: Benchmark | None = None,
    spufix: SpuFixArtifact | None = None,
) -> TaskResult:
    """Evaluate one model on one benchmark as ``settings`` say; write the result file where
    ``settings.output`` is set (``<output>/<benchmark>__<model>.json``).

    ``model``, ``benchmark`` and ``spufix`` are objects loaded already, else they are loaded from the
    settings: the model they name, their plugin's benchmark for their options, their SpuFix location.
    A loaded benchmark must be what their plugin loads (the same protocols; a test may change its
    images). The SpuFix head is scored next to the plain head from the same features.

    A result file of another configuration already at the output path is refused (one line naming what
    differs) before any work, unless ``settings.force``; a result of this very configuration is written
    again.
    """
    features = settings.features
    features.check_machine()
    if settings.output is not None:
        check_output_dir(settings.output)
    plugin, spec = settings.plugin(), settings.protocol()
    task = task_of(plugin)  # the task that scores the plugin's benchmarks (``plugin.task``)
    artifact = spufix if spufix is not None else load_spufix(settings.spufix, settings.model)
    config_hash = settings.config_hash(spufix_reference(artifact))
    planned = settings.planned_facts(artifact is not None)
    given = settings.result_file()
    if given is not None and not settings.force:  # before any work: the file is named by the model as given ...
        existing_result(given, config_hash, planned)

    options = settings.parsed_options()
    bench = benchmark if benchmark is not None else plugin.load(options)
    if bench.protocols.get(features.protocol) != spec:
        raise SpurbenchError(
            f"benchmark plugin {plugin.name}: load() gave protocols other than protocols_for() said; a plugin states them once"
        )
    # Result files are named by benchmark_name() before loading: a plugin whose load() names its benchmark
    # otherwise would write a file that run and sweep never find again. (A benchmark passed in is the caller's.)
    if benchmark is None and bench.name != (named := plugin.benchmark_name(options)):
        raise SpurbenchError(
            f"benchmark plugin {plugin.name}: load() gave a benchmark named {bench.name!r}, but benchmark_name() said {named!r}; a plugin states it once"
        )
    adapter = model if model is not None else load_model(settings.model, checkpoint=settings.checkpoint)
    plugin.check_model(adapter)  # e.g. an ImageNet-1k benchmark refuses other label spaces, in its own words
    # Fail on an unscorable class before spending any time on features.
    class_indices = [c.index for c in bench.classes]
    columns = dict(zip(class_indices, class_columns(bench.label_space, adapter.label_space, class_indices, adapter.num_classes)))
    if artifact is not None:
        artifact.check_target(adapter.name, adapter.card.weights_revision)
    loaded = settings.result_file(adapter.name, bench.name)
    if loaded is not None and not settings.force and loaded != given:  # ... and written by its loaded name
        existing_result(loaded, config_hash, planned)

    weight, bias = adapter.head
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise DataError(f"{adapter.name}: its classifier weights contain NaN or inf")
    task.check_run(bench, plugin, adapter.card)  # e.g. a views plugin's watched classes, before any feature
    feats = extract_features(adapter, bench, features)
    heads: dict[str, nn.Module] = {PLAIN: LinearHead(weight.cpu(), bias.cpu())}
    if artifact is not None:
        heads[SPUFIX] = artifact.head(weight.cpu(), bias.cpu())
    temperatures = {PLAIN: settings.temperature, SPUFIX: settings.effective_spufix_temperature()}
    card = adapter.card.model_copy(update={"data_config": plain(adapter.data_config)})
    result = task.evaluate_features(
        EvaluationContext(
            benchmark=bench,
            plugin=plugin,
            features=feats,
            columns=columns,
            heads=heads,
            temperatures=temperatures,
            bootstrap=settings.bootstrap,
            config_hash=config_hash,
            model=card,
            data_config=adapter.data_config,
            protocol=spec,
            precision=features.precision,
            provenance=_provenance(feats, features.device),
            spufix=spufix_info(artifact) if artifact is not None else None,
        )
    )
    if loaded is not None:
        write_result(result, loaded)
    return result


def _provenance(feats: FeatureSet, device: str) -> Provenance:
    return Provenance(
        spurbench_version=__version__,
        git_sha=git_sha(),
        python=python_version(),
        packages=package_versions(),
        device=", ".join(_device_name(d) for d in feats.devices) or _device_name(device),  # the devices that ran the forward passes
        date=feats.computed_at,
    )


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("torch", "torchvision", "timm", "open_clip_torch", "transformers", "scikit-learn", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


@functools.lru_cache(maxsize=1)
def git_sha() -> str | None:
    """Commit of the spurbench checkout, when running from one (asked once per process)."""
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def python_version() -> str:
    return platform.python_version()


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


__all__ = ["evaluate", "load_spufix", "spufix_info", "spufix_reference"]
