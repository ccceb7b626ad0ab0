"""Model lists for sweeps (``model-lists/*.yaml``).

A model list is a YAML mapping with a top-level ``models:`` list; each entry names a model
the adapters can load (``family:spec``) plus descriptive fields. A list may also carry an
``unmapped:`` list of models that a source (e.g. a paper table) reports but that have no
loadable name, each with the ``reason``. ``paper:`` numbers on either kind of entry are
what a paper *reports*, kept for reference; spurbench never treats them as measurements. A top-level
``paper_benchmark:`` names the benchmark they are for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from spurbench.benchmarks import BENCHMARKS
from spurbench.errors import SpurbenchError
from spurbench.registry import suggest
from spurbench.schemas import first_error

# Training-data groups of the paper's Table 2 (Spurious Features Everywhere, App. D). A model trained
# on a benchmark's own training split (a generated benchmark's models) names that benchmark instead.
DATA_GROUPS: tuple[str, ...] = (
    "in1k",
    "in21k-ft-in1k",
    "in21k",
    "JFT",
    "IG-1B",
    "YFCC",
    "LAION",
    "CLIP/MIM",
)


def data_groups() -> tuple[str, ...]:
    """The allowed ``data:`` values: the paper's groups and the registered benchmarks' names."""
    return DATA_GROUPS + tuple(BENCHMARKS.names())


def _check_data_group(value: str) -> str:
    if value not in data_groups():
        raise PydanticCustomError(
            "data_group",
            "unknown training-data group {group}; allowed groups: {allowed}",
            {"group": repr(value), "allowed": ", ".join(data_groups())},
        )
    return value


DataGroup = Annotated[str, AfterValidator(_check_data_group)]


class PaperNumbers(BaseModel):
    """Numbers a paper reports for a model (references, never spurbench measurements).

    The unit is the paper's: the model list states it in a comment (e.g. accuracy in percent, scores as
    fractions in [0, 1]). Each key says which metric it holds, so that a board compares like with like:
    Spurious Features Everywhere prints "mAUC" in Table 2, but the authors' code computes those figures
    with ``average_precision_score``, so they are ``mean_ap``; spurbench compares them with its
    ``mean_ap`` (never with its ROC-AUC ``mauc``).
    """

    model_config = ConfigDict(extra="forbid")

    benchmark: str | None = None  # the benchmark the numbers are for (default: the list's `paper_benchmark:`)
    accuracy: float | None = Field(default=None, ge=0, le=100)  # ImageNet-1k top-1, original model
    mean_ap: float | None = Field(default=None, ge=0, le=1)  # mean over classes of the average precision, original model
    mean_ap_spufix: float | None = Field(default=None, ge=0, le=1)  # the same after SpuFix
    accuracy_spufix: float | None = Field(default=None, ge=0, le=100)  # ImageNet-1k top-1 with SpuFix
    table: str | None = None  # where the paper reports them, e.g. "Table 2"


Temperature = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ModelEntry(BaseModel):
    # Unknown keys are errors: a typo such as `chekpoint:` must not run the model without its checkpoint.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str  # adapter name, e.g. "timm:convnext_large.fb_in22k_ft_in1k"
    display_name: str | None = None
    architecture: str | None = None
    data: DataGroup | None = None  # training-data group, one of DATA_GROUPS
    checkpoint: str | None = None
    # Logits / T before the softmax: the plain head, and the SpuFix head (default: the same T).
    temperature: Temperature = 1.0
    spufix_temperature: Temperature | None = None
    paper: PaperNumbers | None = None
    note: str | None = None  # mapping caveats (renamed tag, resolution, ...)
    checkpoint_note: str | None = None  # which weights to pass as `checkpoint:` and where they come from


class UnmappedEntry(BaseModel):
    """A model a source reports that has no loadable ``family:spec`` name."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    display_name: str
    reason: str = Field(min_length=1)  # why no model name fits
    architecture: str | None = None
    data: DataGroup | None = None
    temperature: Temperature = 1.0  # what the source evaluated the plain head with (for a later `checkpoint:` entry)
    spufix_temperature: Temperature | None = None
    paper: PaperNumbers | None = None
    note: str | None = None


_Entry = TypeVar("_Entry", bound=BaseModel)


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpurbenchError(f"{path}: cannot read model list ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpurbenchError(f"{path}: malformed YAML{where}") from None
    if not isinstance(raw, dict):
        raise SpurbenchError(f"{path}: a model list needs a top-level 'models:' list")
    return raw


def _paper_benchmark(path: Path, raw: dict[str, Any], entries: list[_Entry], key: str) -> list[_Entry]:
    """Fill each entry's ``paper.benchmark`` from the list's ``paper_benchmark:``; paper numbers without a
    benchmark are an error (a board compares them only with results of that benchmark)."""
    default = raw.get("paper_benchmark")
    if default is not None and not isinstance(default, str):
        raise SpurbenchError(f"{path}: 'paper_benchmark:' must be a benchmark name")
    for i, entry in enumerate(entries):
        paper = getattr(entry, "paper", None)
        if paper is not None and paper.benchmark is None:
            if default is None:
                raise SpurbenchError(
                    f"{path}: {key}[{i}].paper: which benchmark are these numbers for? Set paper.benchmark or a top-level 'paper_benchmark:'"
                )
            paper.benchmark = default
    return entries


def _validate_items(path: Path, key: str, items: list[Any], cls: type[_Entry]) -> list[_Entry]:
    entries = []
    for i, item in enumerate(items):
        try:
            entries.append(cls.model_validate(item))
        except ValidationError as exc:
            first = first_error(exc, root="<entry>")
            msg = first.message
            if first.kind == "extra_forbidden":
                known = _fields_at(cls, first.loc[:-1])
                msg = f"unknown key {first.loc[-1]!r}.{suggest(str(first.loc[-1]), known)} Known keys: {', '.join(known)}"
            raise SpurbenchError(f"{path}: {key}[{i}].{first.where}: {msg}") from None
    return entries


def _fields_at(cls: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) model at ``loc``: where an unknown key was found."""
    model: Any = cls
    for part in loc:
        annotation = model.model_fields[part].annotation if isinstance(part, str) and part in model.model_fields else None
        model = next((a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def load_model_list(path: str | Path) -> list[ModelEntry]:
    """Read ``{models: [{model: ..., ...}, ...]}``; one-line SpurbenchError on any problem."""
    path = Path(path)
    raw = _read_mapping(path)
    if not isinstance(raw.get("models"), list):
        raise SpurbenchError(f"{path}: a model list needs a top-level 'models:' list")
    return _paper_benchmark(path, raw, _validate_items(path, "models", raw["models"], ModelEntry), "models")


def load_unmapped(path: str | Path) -> list[UnmappedEntry]:
    """Read the optional ``unmapped:`` list of a model list (``[]`` when absent); one-line errors."""
    path = Path(path)
    raw = _read_mapping(path)
    items = raw.get("unmapped")
    if items is None:
        return []
    if not isinstance(items, list):
        raise SpurbenchError(f"{path}: 'unmapped:' must be a list")
    return _paper_benchmark(path, raw, _validate_items(path, "unmapped", items, UnmappedEntry), "unmapped")


def model_list_files(root: str | Path = "model-lists") -> list[Path]:
    """The ``*.yaml`` model lists of a folder, sorted (none when the folder does not exist)."""
    root = Path(root)
    return sorted(root.glob("*.yaml")) if root.is_dir() else []
