"""Typed result files: one JSON per (model, benchmark), pydantic schema, atomic writes. Each is the
:class:`TaskResult` of the task that scored it (its ``kind``; the built-in ``Result`` and ``ViewResult``
are here, a plugin's task brings its own), read through the table of tasks kept here, ``TASKS``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, NonNegativeInt, ValidationError

from spurbench.errors import SpurbenchError
from spurbench.files import atomic_path, slug, strict_json
from spurbench.metrics import ClassMetrics, HeadMetrics, Unit
from spurbench.protocols import EvalProtocol
from spurbench.registry import Registry, suggest
from spurbench.schemas import Strict, first_error_line

# 2: pooled_ap, per-role input sizes in the protocol, per-head temperature, full sha256 checkpoint digests
# 3: class groups instead of a per-class boolean flag, named components, per-head benchmark-specific metrics
SCHEMA_VERSION: Final = 3
VIEW_SEPARATOR = "::"  # a views benchmark's row id: "<image id>::<view name>"


class ModelInfo(Strict):
    """Facts about one set of weights, copied into every result file; adapters carry it as ``card``."""

    name: str  # full name including the family prefix, e.g. "timm:resnet18.a1_in1k"
    family: str
    weights_revision: str | None
    num_params: int
    label_space: str  # "imagenet-1k", "imagenet-21k-google", "imagenet-21k", or a benchmark's own
    num_classes: int
    # timm-style data config: input_size (C, H, W), interpolation, mean, std, crop_pct, crop_mode
    data_config: dict[str, Any] = Field(default_factory=dict)


ModelCard = ModelInfo  # the adapters' name for it


class BenchmarkInfo(Strict):
    name: str
    label_space: str
    repo: str | None
    revision: str | None
    checksum: str | None
    positives_source: str | None
    num_classes: NonNegativeInt
    num_positives: NonNegativeInt
    num_negatives: NonNegativeInt
    component_names: dict[str, str] = Field(default_factory=dict)  # spurious component id -> short name, when known
    # class -> its own component -> feature name (a mined benchmark's); left out of the file when empty, as in files written before it
    class_component_names: dict[str, dict[str, str]] = Field(default_factory=dict, exclude_if=lambda names: not names)
    extra: dict[str, Any] = Field(default_factory=dict)  # the benchmark's own provenance facts; never read back


class RoleGeometry(Strict):
    """What the images of one role were turned into before the forward pass."""

    input_size: list[int]  # [C, H, W] actually fed to the model
    crop_pct: float  # center crop of the resized image (1.0: no crop)
    interpolation: str | None = None  # the resize's (absent from files written before protocols were declared per benchmark)


Precision = Literal["fp32", "bf16", "fp16"]  # the backbone's autocast dtype (features, heads, metrics: float32/64)


class ProtocolInfo(Strict):
    name: Literal["paper", "model"]
    description: str  # ``declared.describe()``
    declared: EvalProtocol | None = None  # in full (absent from files written before protocols were declared per benchmark)
    images: dict[Literal["positive", "negative"], RoleGeometry]  # per image set: class images, spurious-only images
    precision: Precision = "fp32"  # default: files written before --precision existed were fp32


class Aggregate(HeadMetrics, Strict):
    bootstrap_draws: NonNegativeInt


class ClassRow(ClassMetrics, Strict):
    class_index: int
    class_name: str
    components: list[int]
    group: str | None  # the benchmark's class group (e.g. seeded feature vs control), if it has groups
    feature: str | None
    num_positives: NonNegativeInt
    num_negatives: NonNegativeInt


class HeadResult(Strict):
    temperature: Annotated[float, Field(gt=0, allow_inf_nan=False)]  # logits were divided by this before the softmax (1.0: none)
    aggregate: Aggregate
    extra_metrics: dict[str, Unit] = Field(default_factory=dict)  # the benchmark plugin's own metrics (e.g. mean AUC per class group)
    classes: list[ClassRow]
    image_prob: dict[str, Unit]  # image id -> softmax probability of its class k
    image_top1: dict[str, bool]  # image id -> was k the top-1 prediction


class ImageRecord(Strict):
    class_index: int
    role: Literal["positive", "negative"]
    component: int | None


class Provenance(Strict):
    spurbench_version: str
    git_sha: str | None
    python: str
    packages: dict[str, str | None]
    device: str
    date: str  # when the features were computed (kept across resumes, so reruns are byte-identical)


class SpuFixInfo(Strict):
    """What a result records of the SpuFix artifact its ``spufix`` head came from: which artifact, what it
    clips, and what people called the clipped features. Provenance for readers and the board: no score
    is computed from it."""

    source_model: str  # the model the components were found on (the artifact transfers them to this one)
    fingerprint: str  # the artifact's content sha256 (``SpuFixArtifact.fingerprint``), as in the config hash
    clipped: dict[str, list[NonNegativeInt]]  # class -> the source components whose positive contributions it clips
    component_names: dict[str, dict[str, str]] = Field(default_factory=dict, exclude_if=lambda names: not names)

    def names_of(self, class_index: int) -> list[str]:
        """Class ``class_index``'s clipped components, by name where it has one, else "component c"."""
        named = self.component_names.get(str(class_index), {})
        return [named.get(str(c), f"component {c}") for c in self.clipped.get(str(class_index), [])]


class TaskResult(Strict):
    """What every result file holds; a task's model narrows ``kind``, ``protocol`` (with at least ``name``,
    ``description``, ``precision``), ``heads`` (each with its ``temperature``) and ``images``, in this order."""

    kind: str  # the task that scored it (its benchmark plugin's ``task``): which model reads the file
    schema_version: int  # bumped on any incompatible change of the task's model
    config_hash: str  # hash of everything that determines this result; a sweep skips files whose hash matches
    model: ModelInfo
    benchmark: BenchmarkInfo
    protocol: Any
    heads: dict[str, Any]  # "plain", and SpuFix heads when fitted
    images: dict[str, Any]
    provenance: Provenance
    # the SpuFix artifact of the ``spufix`` head; left out of the file without one, as in files written before it
    spufix: SpuFixInfo | None = Field(default=None, exclude_if=lambda info: info is None)

    def recorded_facts(self) -> dict[str, Any]:
        """What else of its configuration it records, by ``planned_facts`` keys (``result_conflicts`` compares)."""
        return {}


AnyResult = TaskResult  # any task's result


class Result(TaskResult):
    """The result of a spurious-AUC benchmark: class images against spurious-only images."""

    kind: Literal["spurious-auc"] = "spurious-auc"
    schema_version: Literal[3] = SCHEMA_VERSION
    protocol: ProtocolInfo
    heads: dict[str, HeadResult]
    images: dict[str, ImageRecord]

    def recorded_facts(self) -> dict[str, Any]:
        return {"bootstrap": self.heads["plain"].aggregate.bootstrap_draws} if "plain" in self.heads else {}


Finite = Annotated[float, Field(allow_inf_nan=False)]


class ViewRows(Strict):
    """Per row (``row_ids`` order) of one head: top-1 correct, P(its class), P(each watched class)."""

    correct: list[bool]
    prob: list[Unit]
    watched: dict[str, list[Unit]] = Field(default_factory=dict)


class ViewClassRow(Strict):
    class_index: int
    class_name: str
    group: str | None
    metrics: dict[str, Finite | None]  # the plugin's per-class metrics (None: undefined for this class)


class ViewHeadResult(Strict):
    temperature: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    metrics: dict[str, Finite | None]  # the plugin's aggregate metrics
    classes: list[ViewClassRow]
    rows: ViewRows


class ViewImage(Strict):
    class_index: int
    views: list[str]  # its rows, in order, are <image id>::<view>


class ViewProtocolInfo(Strict):
    name: Literal["paper", "model"]
    description: str  # ``declared.describe()``
    declared: EvalProtocol | None = None  # the benchmark's protocol in full (see ProtocolInfo)
    interpolation: str | None = None
    input_size: list[int]  # [C, H, W] fed to the model (every view)
    crop_pct: float
    precision: Precision = "fp32"


class ViewResult(TaskResult):
    """The result of a views benchmark (noised or watermarked images, ...): every image in several views,
    per row its outputs, and the plugin's metrics. ``benchmark.num_positives``: its images (no negatives)."""

    kind: Literal["views"] = "views"
    schema_version: Literal[3] = SCHEMA_VERSION
    protocol: ViewProtocolInfo
    heads: dict[str, ViewHeadResult]
    images: dict[str, ViewImage]

    def row_ids(self) -> list[str]:
        """Every row's id, in the order of ``heads[*].rows``."""
        return [f"{image_id}{VIEW_SEPARATOR}{view}" for image_id, image in self.images.items() for view in image.views]


# Task name -> task class (``spurbench.tasks``; others: entry-point group ``spurbench.tasks``), imported when first asked.
TASKS: Registry[Any] = Registry("task", entry_point_group="spurbench.tasks")
TASKS.register("spurious-auc", "spurbench.tasks.spurious_auc:SpuriousAUC")
TASKS.register("views", "spurbench.tasks.views:Views")
DEFAULT_KIND = "spurious-auc"  # what a file without a ``kind`` is (none was written before views benchmarks)


def result_filename(model_name: str, benchmark_name: str) -> str:
    """One file per (benchmark, model): a run of another configuration into the same folder is refused
    unless ``--force`` (see ``result_conflicts.existing_result``), so the name never has to carry the configuration."""
    return f"{benchmark_name}__{slug(model_name)}.json"


def check_output_dir(folder: str | Path) -> Path:
    """Fail in one line, before any computation, if result files could not be written under ``folder``.

    Nothing is created: the nearest existing folder on the way must take a file (a probe file is written
    and removed, which also catches read-only mounts where root's permission bits say yes)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise SpurbenchError(f"output folder {str(folder)!r}: {str(existing)!r} exists and is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".spurbench-write-probe-"):
            pass
    except OSError as exc:
        raise SpurbenchError(
            f"output folder {str(folder)!r}: cannot write in {str(existing)!r} ({exc.strerror or type(exc).__name__})"
        ) from None
    return folder


def write_result(result: TaskResult, path: Path) -> Path:
    """Write atomically: a temporary file in the same folder, then rename, so no half-written result exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(result.model_dump_json(indent=1) + "\n")
    return path


def read_result(path: Path) -> TaskResult:
    """Parse and validate a result file as the model of its task (its ``kind``); one-line SpurbenchError
    if it is not a valid result."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpurbenchError(f"{path}: cannot read result file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpurbenchError(f"{path}: not a result file (not UTF-8 text)") from None
    try:
        data = strict_json(text)
    except ValueError as exc:
        raise SpurbenchError(f"{path}: not a result file (invalid JSON: {' '.join(str(exc).split())[:200]})") from None
    kind = data.get("kind", DEFAULT_KIND) if isinstance(data, dict) else DEFAULT_KIND
    if not isinstance(kind, str) or kind not in (known := TASKS.names()):
        raise SpurbenchError(f"{path}: invalid result file at kind: {kind!r} is no registered task.{suggest(str(kind), known)}")
    model: type[TaskResult] = TASKS.get(kind).result_model
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpurbenchError(f"{path}: invalid result file at {first_error_line(exc, root='<root>')}") from None
