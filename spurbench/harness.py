"""The evaluation pipeline: adapter -> benchmark -> features -> heads -> metrics -> result."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spurbench._version import __version__
from spurbench.adapters import ModelAdapter, declared_model, load_model
from spurbench.benchmarks import Benchmark, BenchmarkOptions, default_benchmark, get_benchmark
from spurbench.benchmarks.base import ROLES
from spurbench.cache import content_digest
from spurbench.errors import DataError, SpurbenchError
from spurbench.features import FeatureSet, extract_features
from spurbench.files import plain, stable_hash
from spurbench.heads import PLAIN, SPUFIX, LinearHead
from spurbench.imagenet import class_columns
from spurbench.metrics import MAX_BOOTSTRAP_DRAWS
from spurbench.pixelcache import DEFAULT_GB, PixelCache
from spurbench.preprocessing import check_protocol, role_geometry
from spurbench.protocols import EvalProtocol, scored_protocol
from spurbench.result_conflicts import existing_result
from spurbench.results import (
    BenchmarkInfo,
    ImageRecord,
    ProtocolInfo,
    Provenance,
    Result,
    RoleGeometry,
    ViewImage,
    ViewProtocolInfo,
    ViewResult,
    check_output_dir,
    git_sha,
    package_versions,
    python_version,
    result_filename,
    write_result,
)
from spurbench.runtime import check_device, check_precision, check_workers
from spurbench.scoring import plugin_of, score_heads, score_view_heads
from spurbench.spufix.artifact import SpuFixArtifact, load_artifact


def spufix_reference(artifact: SpuFixArtifact | None) -> str | None:
    """What a result's config hash records of its SpuFix artifact: its content fingerprint, so a refitted
    or re-pushed artifact at the same location is a new configuration."""
    return None if artifact is None else f"artifact-sha256:{artifact.fingerprint()}"


def checkpoint_identity(checkpoint: str | Path | None) -> str | None:
    """A local checkpoint's content digest (memoised; see ``cache.content_digest``): what identifies it,
    not its path, so replacing the weights at the same path is a new configuration."""
    if checkpoint is None:
        return None
    if not Path(checkpoint).is_file():
        raise SpurbenchError(f"checkpoint {str(checkpoint)!r} does not exist")
    return content_digest(checkpoint)


def check_bootstrap(draws: int) -> int:
    """Bootstrap draws in 0..MAX_BOOTSTRAP_DRAWS, the bound ``leaderboard verify`` recomputes."""
    if not 0 <= draws <= MAX_BOOTSTRAP_DRAWS:
        raise SpurbenchError(f"--bootstrap {draws}: use 0 to {MAX_BOOTSTRAP_DRAWS} draws")
    return draws


def check_temperature(value: float, what: str = "temperature") -> float:
    """Softmax temperatures must be positive and finite (a one-line error otherwise)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise SpurbenchError(f"{what} must be a positive number, not {value!r}")
    return float(value)


def run_config_hash(
    model_name: str,
    checkpoint: str | None,
    benchmark_name: str,
    options: BenchmarkOptions | None,
    protocol: EvalProtocol,
    bootstrap: int,
    spufix: str | None = None,
    temperature: float = 1.0,
    spufix_temperature: float | None = None,
    precision: str = "fp32",
) -> str:
    """Hash of the inputs that determine a result, known before the model is loaded (sweeps skip on it).

    ``precision`` changes the features, so it is hashed, but only when it is not fp32: every fp32
    result written before the option existed keeps its hash (and is not re-run by a sweep). Not hashed,
    like the device: workers, the pixel cache (the same pixels either way) and channels-last (a memory
    layout; the same arithmetic up to float rounding, as on another device or CPU)."""
    return stable_hash(
        {
            "model": model_name,
            "checkpoint": checkpoint_identity(checkpoint),
            "benchmark": benchmark_name,
            "options": options.model_dump() if options is not None else None,  # the token is excluded
            "protocol": protocol.model_dump(mode="json"),  # all of it: what the name means is the plugin's to change
            "bootstrap": bootstrap,
            "spufix": spufix,
            "temperature": temperature,
            "spufix_temperature": temperature if spufix_temperature is None else spufix_temperature,
            "spurbench": __version__,
            **({"precision": precision} if precision != "fp32" else {}),
        }
    )


def planned_facts(
    spufix: bool,
    protocol: str,
    precision: str,
    bootstrap: int,
    temperature: float,
    spufix_temperature: float | None,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """What a run's result file will record of its configuration (``results.configuration_differences``
    names what an existing file records differently); a checkpoint's weights are recorded by their digest."""
    return {
        "weights": checkpoint_identity(checkpoint),
        "heads": f"{PLAIN}+{SPUFIX}" if spufix else PLAIN,
        "protocol": protocol,
        "precision": precision,
        "bootstrap": bootstrap,
        "temperature": temperature,
        "spufix_temperature": (temperature if spufix_temperature is None else spufix_temperature) if spufix else None,
        "spurbench": __version__,
    }


def evaluate(
    model: str | ModelAdapter,
    benchmark: str | Benchmark | None = None,
    *,
    options: BenchmarkOptions | dict[str, Any] | None = None,
    checkpoint: str | None = None,
    protocol: str = "paper",
    batch_size: int = 64,
    device: str = "cpu",
    use_cache: bool = True,
    bootstrap: int = 1000,
    output_dir: str | Path | None = None,
    progress: bool = True,
    spufix: str | Path | SpuFixArtifact | None = None,
    temperature: float = 1.0,
    spufix_temperature: float | None = None,
    num_workers: int | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    pixel_cache: str | Path | PixelCache | None = None,
    pixel_cache_gb: float = DEFAULT_GB,
    force: bool = False,
) -> Result | ViewResult:
    """Evaluate one model on one benchmark; write ``<output_dir>/<benchmark>__<model>.json`` if given.

    ``benchmark``: a registry name (default: the default benchmark) loaded with ``options`` (its
    plugin's options, as a model or a dict), or an already loaded ``Benchmark``.

    ``spufix``: a SpuFix artifact (folder, ``hf://ORG/NAME[@REV]`` or a loaded ``SpuFixArtifact``) fitted
    for this model; its head is scored next to the plain head from the same features.
    ``temperature``: the plain head's logits are divided by it before the softmax; ``spufix_temperature``
    does the same for the SpuFix head (default: ``temperature``). The authors used T = 0.7156 for their
    robust ResNet-50's plain head and none (1) for its SpuFix head.

    Data path (see ``spurbench.features``): ``num_workers`` loader workers (default: available cores - 1);
    ``precision`` fp32 / bf16 / fp16, autocast for the backbone only (recorded in the result and its
    config hash); ``channels_last`` for the model and its inputs; ``pixel_cache``: a folder of decoded
    uint8 inputs shared by models with the same preprocessing, bounded to ``pixel_cache_gb``.

    A result file of another configuration already at the output path is refused (one line naming what
    differs) before any work, unless ``force``; a result of this very configuration is written again.
    """
    check_protocol(protocol)
    check_device(device)
    check_bootstrap(bootstrap)
    check_workers(num_workers)
    check_precision(precision, device)
    if output_dir is not None:
        check_output_dir(output_dir)
    pixels = (
        pixel_cache if pixel_cache is None or isinstance(pixel_cache, PixelCache) else PixelCache.open(pixel_cache, pixel_cache_gb)
    )  # (creates its folder)
    temperature = check_temperature(temperature)
    spufix_temperature = temperature if spufix_temperature is None else check_temperature(spufix_temperature, "spufix temperature")
    model_name = model if isinstance(model, str) else model.name
    if isinstance(benchmark, Benchmark):  # loaded already; its plugin (if registered) parses the options it was loaded with
        plugin, bench_name = plugin_of(benchmark), benchmark.name
        parsed = (
            options
            if isinstance(options, BenchmarkOptions)
            else plugin.parse_options(options)
            if plugin is not None and options is not None
            else None
        )  # parsed: by the plugin that loaded it
        spec = scored_protocol(benchmark.protocols, protocol, bench_name)
    else:
        plugin = get_benchmark(benchmark or default_benchmark())
        parsed = plugin.parse_options(options)
        bench_name = plugin.benchmark_name(parsed)
        spec = scored_protocol(
            plugin.protocols_for(parsed), protocol, bench_name
        )  # before the data loads and the model downloads or trains
    artifact = None if spufix is None else spufix if isinstance(spufix, SpuFixArtifact) else load_artifact(spufix)
    config_hash = run_config_hash(
        model_name, checkpoint, bench_name, parsed, spec, bootstrap, spufix_reference(artifact), temperature, spufix_temperature, precision
    )
    planned = planned_facts(artifact is not None, protocol, precision, bootstrap, temperature, spufix_temperature, checkpoint)
    if output_dir is not None and not force:  # before any work: the file is named by the model as given ...
        existing_result(Path(output_dir) / result_filename(model_name, bench_name), config_hash, planned)

    declared = declared_model(model) if isinstance(model, str) and plugin is not None else None
    if declared is not None:
        plugin.check_model(declared)
    bench = benchmark if isinstance(benchmark, Benchmark) else plugin.load(parsed)
    if bench.protocols.get(protocol) != spec:
        raise SpurbenchError(
            f"benchmark plugin {plugin.name if plugin else bench.name}: load() gave protocols other than protocols_for() said; a plugin states them once"
        )
    adapter = load_model(model, checkpoint=checkpoint) if isinstance(model, str) else model
    if bench.render_views is not None and (plugin is None or plugin.task != "views"):
        raise DataError(f"benchmark {bench.name} renders views but no registered views plugin scores it")
    if plugin is not None:
        plugin.check_model(adapter)  # e.g. an ImageNet-1k benchmark refuses other label spaces, in its own words
    # Fail on an unscorable class before spending any time on features.
    class_indices = [c.index for c in bench.classes]
    columns = dict(zip(class_indices, class_columns(bench.label_space, adapter.label_space, class_indices, adapter.num_classes)))
    if artifact is not None:
        artifact.check_target(adapter.name, adapter.card.weights_revision)
    if (
        output_dir is not None and not force and (adapter.name, bench.name) != (model_name, bench_name)
    ):  # ... and written by its loaded name
        existing_result(Path(output_dir) / result_filename(adapter.name, bench.name), config_hash, planned)

    weight, bias = adapter.head
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise DataError(f"{adapter.name}: its classifier weights contain NaN or inf")
    watched_columns: dict[str, int] = {}
    if plugin is not None and plugin.task == "views":
        watched = plugin.watched_classes(bench.label_space)
        watched_columns = dict(
            zip(watched, class_columns(bench.label_space, adapter.label_space, list(watched.values()), adapter.num_classes))
        )
    feats = extract_features(
        adapter,
        bench,
        protocol=protocol,
        batch_size=batch_size,
        device=device,
        use_cache=use_cache,
        progress=progress,
        num_workers=num_workers,
        precision=precision,
        channels_last=channels_last,
        pixel_cache=pixels,
    )
    heads: dict[str, nn.Module] = {PLAIN: LinearHead(weight.cpu(), bias.cpu())}
    if artifact is not None:
        heads[SPUFIX] = artifact.head(weight.cpu(), bias.cpu())
    temperatures = {PLAIN: temperature, SPUFIX: spufix_temperature}
    if plugin is not None and plugin.task == "views":
        result = ViewResult(
            config_hash=config_hash,
            model=adapter.card.model_copy(update={"data_config": plain(adapter.data_config)}),
            benchmark=_benchmark_info(bench),
            protocol=ViewProtocolInfo(
                name=protocol,
                description=spec.describe(),
                declared=spec,
                precision=precision,
                **role_geometry(adapter.data_config, spec, "positive"),
            ),  # type: ignore[arg-type]
            heads=score_view_heads(bench, plugin, feats, columns, watched_columns, heads, temperatures),
            images={im.image_id: ViewImage(class_index=im.class_index, views=list(im.views)) for im in bench.images},
            provenance=_provenance(feats, device),
        )
        if output_dir is not None:
            write_result(result, Path(output_dir) / result_filename(adapter.name, bench.name))
        return result
    head_results = score_heads(bench, feats, columns, heads, bootstrap, temperatures)

    result = Result(
        config_hash=config_hash,
        model=adapter.card.model_copy(update={"data_config": plain(adapter.data_config)}),
        benchmark=_benchmark_info(bench),
        protocol=ProtocolInfo(
            name=protocol,
            description=spec.describe(),
            declared=spec,
            images={role: RoleGeometry(**role_geometry(adapter.data_config, spec, role)) for role in ROLES},
            precision=precision,  # type: ignore[arg-type]
        ),
        heads=head_results,
        images={im.image_id: ImageRecord(class_index=im.class_index, role=im.role, component=im.component) for im in bench.images},
        provenance=_provenance(feats, device),
    )
    if output_dir is not None:
        write_result(result, Path(output_dir) / result_filename(adapter.name, bench.name))
    return result


def _benchmark_info(bench: Benchmark) -> BenchmarkInfo:
    counts = bench.counts()
    return BenchmarkInfo(
        name=bench.name,
        label_space=bench.label_space,
        repo=bench.repo,
        revision=bench.revision,
        checksum=bench.checksum,
        positives_source=bench.positives_source,
        num_classes=counts["classes"],
        num_positives=counts["positives"],
        num_negatives=counts["negatives"],
        component_names={str(k): v for k, v in sorted(bench.component_names.items())},
        extra=plain(bench.facts),
    )


def _provenance(feats: FeatureSet, device: str) -> Provenance:
    return Provenance(
        spurbench_version=__version__,
        git_sha=git_sha(),
        python=python_version(),
        packages=package_versions(),
        device=", ".join(_device_name(d) for d in feats.devices) or _device_name(device),  # the devices that ran the forward passes
        date=feats.computed_at,
    )


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device
