"""The evaluation pipeline: adapter -> benchmark -> features -> heads -> metrics -> result."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spurbench import __version__
from spurbench.adapters import ModelAdapter, load_model
from spurbench.adapters.label_maps import class_columns
from spurbench.benchmarks import Benchmark, BenchmarkOptions, load_benchmark
from spurbench.cache import stable_hash
from spurbench.errors import DataError
from spurbench.features import FeatureSet, extract_features
from spurbench.heads import LinearHead, class_probabilities
from spurbench.metrics import ClassScores, aggregate_metrics, class_metrics
from spurbench.preprocessing import check_protocol, describe
from spurbench.results import (
    Aggregate,
    BenchmarkInfo,
    ClassRow,
    HeadResult,
    ImageRecord,
    ModelInfo,
    ProtocolInfo,
    Provenance,
    Result,
    git_sha,
    package_versions,
    python_version,
    result_filename,
    write_result,
)
from spurbench.spufix.artifact import SpuFixArtifact, load_artifact


def spufix_reference(artifact: SpuFixArtifact | None) -> str | None:
    """What a result's config hash records of its SpuFix artifact: its content fingerprint, so a refitted
    or re-pushed artifact at the same location is a new configuration."""
    return None if artifact is None else f"artifact-sha256:{artifact.fingerprint()}"


def run_config_hash(
    model_name: str, checkpoint: str | None, benchmark_name: str, options: BenchmarkOptions, protocol: str, bootstrap: int, spufix: str | None = None
) -> str:
    """Hash of the inputs that determine a result, known before anything is loaded (sweeps skip on it)."""
    return stable_hash(
        {
            "model": model_name,
            "checkpoint": checkpoint,
            "benchmark": benchmark_name,
            "options": {k: v for k, v in vars(options).items() if k != "token"},
            "protocol": protocol,
            "bootstrap": bootstrap,
            "spufix": spufix,
            "spurbench": __version__,
        }
    )


def score_heads(
    benchmark: Benchmark, features: FeatureSet, columns: dict[int, int], heads: dict[str, nn.Module], bootstrap: int
) -> dict[str, HeadResult]:
    """Score every head on the same features and compute per-class and aggregate metrics."""
    images = benchmark.images
    column_per_image = torch.tensor([columns[im.class_index] for im in images], dtype=torch.long)
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: {"positive": [], "negative": []})
    for row, im in enumerate(images):
        by_class[im.class_index][im.role].append(row)
    for cls in benchmark.classes:
        roles = by_class.get(cls.index)
        if roles is None or not roles["positive"] or not roles["negative"]:
            raise DataError(f"benchmark class {cls.index} ({cls.name}) needs both class images and spurious-only images")

    out: dict[str, HeadResult] = {}
    for head_name, head in heads.items():
        prob, top1 = class_probabilities(head, features.features, column_per_image)
        prob_np, top1_np = prob.numpy(), top1.numpy()
        per_class: list[ClassScores] = []
        rows: list[ClassRow] = []
        for cls in benchmark.classes:
            pos, neg = by_class[cls.index]["positive"], by_class[cls.index]["negative"]
            scores = ClassScores(cls.index, prob_np[pos], prob_np[neg], top1_np[pos], top1_np[neg])
            per_class.append(scores)
            rows.append(
                ClassRow(
                    class_index=cls.index,
                    class_name=cls.name,
                    components=list(cls.components),
                    planted=cls.planted,
                    feature=cls.feature,
                    num_positives=len(pos),
                    num_negatives=len(neg),
                    **class_metrics(scores),
                )
            )
        agg = aggregate_metrics(per_class, draws=bootstrap)
        out[head_name] = HeadResult(
            aggregate=Aggregate(bootstrap_draws=bootstrap, **agg),
            classes=rows,
            image_prob={im.image_id: float(p) for im, p in zip(images, prob_np)},
            image_top1={im.image_id: bool(t) for im, t in zip(images, top1_np)},
        )
    return out


def evaluate(
    model: str | ModelAdapter = "planted:cnn",
    benchmark: str | Benchmark = "planted",
    *,
    options: BenchmarkOptions | None = None,
    checkpoint: str | None = None,
    protocol: str = "paper",
    batch_size: int = 64,
    device: str = "cpu",
    use_cache: bool = True,
    bootstrap: int = 1000,
    output_dir: str | Path | None = None,
    progress: bool = True,
    spufix: "str | Path | SpuFixArtifact | None" = None,
) -> Result:
    """Evaluate one model on one benchmark; write ``<output_dir>/<benchmark>__<model>.json`` if given.

    ``spufix``: a SpuFix artifact (folder, ``hf://ORG/NAME[@REV]`` or a loaded ``SpuFixArtifact``) fitted
    for this model; its head is scored next to the plain head from the same features.
    """
    options = options or BenchmarkOptions()
    check_protocol(protocol)
    model_name = model if isinstance(model, str) else model.name
    bench_name = benchmark if isinstance(benchmark, str) else benchmark.name
    artifact = None if spufix is None else spufix if isinstance(spufix, SpuFixArtifact) else load_artifact(spufix)
    config_hash = run_config_hash(model_name, checkpoint, bench_name, options, protocol, bootstrap, spufix_reference(artifact))

    bench = load_benchmark(benchmark, options) if isinstance(benchmark, str) else benchmark
    adapter = load_model(model, checkpoint=checkpoint) if isinstance(model, str) else model
    # Fail on an unscorable class before spending any time on features.
    class_indices = [c.index for c in bench.classes]
    columns = dict(zip(class_indices, class_columns(bench.label_space, adapter.label_space, class_indices, adapter.num_classes)))
    if artifact is not None:
        artifact.check_target(adapter.name, adapter.card.weights_revision)

    feats = extract_features(
        adapter, bench, protocol=protocol, batch_size=batch_size, device=device, use_cache=use_cache, progress=progress
    )
    weight, bias = adapter.head
    heads: dict[str, nn.Module] = {"plain": LinearHead(weight.cpu(), bias.cpu())}
    if artifact is not None:
        heads["spufix"] = artifact.head(weight.cpu(), bias.cpu())
    head_results = score_heads(bench, feats, columns, heads, bootstrap)

    counts = bench.counts()
    result = Result(
        config_hash=config_hash,
        model=ModelInfo(
            name=adapter.name,
            family=adapter.card.family,
            weights_revision=adapter.card.weights_revision,
            num_params=adapter.card.num_params,
            label_space=adapter.label_space,
            num_classes=adapter.num_classes,
            data_config=_jsonable(adapter.data_config),
        ),
        benchmark=BenchmarkInfo(
            name=bench.name,
            label_space=bench.label_space,
            repo=bench.repo,
            revision=bench.revision,
            checksum=bench.checksum,
            positives_source=bench.positives_source,
            num_classes=counts["classes"],
            num_positives=counts["positives"],
            num_negatives=counts["negatives"],
            extra=_jsonable(bench.extra),
        ),
        protocol=ProtocolInfo(name=protocol, description=describe(protocol)),
        heads=head_results,
        images={im.image_id: ImageRecord(class_index=im.class_index, role=im.role, component=im.component) for im in bench.images},
        provenance=Provenance(
            spurbench_version=__version__,
            git_sha=git_sha(),
            python=python_version(),
            packages=package_versions(),
            device=_device_name(device),
            date=feats.computed_at,
        ),
    )
    if output_dir is not None:
        write_result(result, Path(output_dir) / result_filename(adapter.name, bench.name))
    return result


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _jsonable(value):
    """Tuples and numpy scalars -> plain JSON types, so results compare equal after a round trip."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
