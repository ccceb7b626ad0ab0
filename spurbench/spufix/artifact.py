"""SpuFix artifacts: per-class means and directions as safetensors, facts as JSON. Never a pickle.

Layout of an artifact folder (local, or a Hub model repo for ``hf://ORG/NAME[@REVISION]``):
    spufix.safetensors   mean.<k> [D], directions.<k> [L_k, D] (unit rows, float64) for every corrected class k
    spufix.json          source and target model and weights revisions, components, images per class,
                         the names people gave the clipped features (format 3, where any has one),
                         version, and the sha256 of spufix.safetensors

Loading validates everything before a score can change: the JSON against a strict schema, the file's
digest, tensor names against the components, dtypes, shapes, finiteness, unit-norm directions and
their linear independence; ``head()`` checks classes and width against the model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt, StrictInt, ValidationError
from safetensors.torch import load_file, save_file

from spurbench._version import __version__
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError
from spurbench.files import atomic_path, remove_stale_temporaries, slug, strict_json
from spurbench.heads import SpuFixHead
from spurbench.hub import commit, snapshot
from spurbench.schemas import FEATURE_NAME_LENGTH, feature_name, first_error_line
from spurbench.spufix.npca import ClassDirections

FORMAT_VERSION = 3  # 2: spufix.json records the tensors' sha256; 3: and the clipped features' names
UNNAMED_FORMAT = 2  # what an artifact without names is written as: an older spurbench reads it as before
READ_FORMATS = (UNNAMED_FORMAT, FORMAT_VERSION)
UNIT_TOLERANCE = 1e-6  # directions are stored as unit rows
MAX_CONDITION = 1e10  # a Gram matrix of the directions beyond this is treated as singular
TENSORS_FILE = "spufix.safetensors"
META_FILE = "spufix.json"
DEFAULT_HUB_ORG = "spurbench"  # `--spufix auto` looks for <org>/spufix-<model slug>


# A JSON value must already be an integer: pydantic's lax mode would read ``true`` as 1 and ``1.0`` as 1
# (keys stay lax, since JSON object keys are strings).
Rank = Annotated[StrictInt, Field(ge=0)]


def _checked_name(value: str) -> str:
    if feature_name(value) is None:
        raise ValueError(f"not a feature name (one line, 1 to {FEATURE_NAME_LENGTH} characters)")
    return value


FeatureName = Annotated[str, AfterValidator(_checked_name)]  # as people give it on the label page (``schemas.feature_name``)


class ArtifactMeta(BaseModel):
    """The schema of ``spufix.json``; anything else in it is an error."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format: int
    source_model: str
    source_weights_revision: str | None = None
    target_model: str
    target_weights_revision: str | None
    components: dict[NonNegativeInt, list[Rank]]
    component_names: dict[NonNegativeInt, dict[NonNegativeInt, FeatureName]] = Field(default_factory=dict)  # format 3
    images_per_class: dict[NonNegativeInt, Rank]
    spurbench_version: str
    extra: dict[str, Any] = Field(default_factory=dict)
    tensors_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass
class SpuFixArtifact:
    source_model: str
    target_model: str
    target_weights_revision: str | None
    components: dict[int, list[int]]  # class -> source NPCA component ranks (0-based, eigenvalue order)
    images_per_class: dict[int, int]
    directions: dict[int, ClassDirections]  # class -> mean psi [D] and unit directions [L, D]
    spurbench_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The source model's weights: a Hub revision, or a local checkpoint's content digest (sha256:...)
    source_weights_revision: str | None = None
    # class -> clipped component -> the name people gave its feature (from the components file); metadata
    # only: no score, fingerprint or config hash depends on it
    component_names: dict[int, dict[int, str]] = field(default_factory=dict)

    def named(self, names: dict[int, dict[int, str]]) -> SpuFixArtifact:
        """This artifact with the names of the components it clips (``names``: class -> component -> name,
        as a components file gives them; names of other components are left out)."""
        clipped = {k: {c: n for c, n in sorted(by.items()) if c in self.components.get(k, [])} for k, by in sorted(names.items())}
        return replace(self, component_names={k: by for k, by in clipped.items() if by})

    def metadata(self) -> dict[str, Any]:
        names = {str(k): {str(c): n for c, n in sorted(by.items())} for k, by in sorted(self.component_names.items()) if by}
        return {
            "format": FORMAT_VERSION if names else UNNAMED_FORMAT,
            "source_model": self.source_model,
            "source_weights_revision": self.source_weights_revision,
            "target_model": self.target_model,
            "target_weights_revision": self.target_weights_revision,
            "components": {str(k): v for k, v in sorted(self.components.items())},
            **({"component_names": names} if names else {}),
            "images_per_class": {str(k): v for k, v in sorted(self.images_per_class.items())},
            "spurbench_version": self.spurbench_version or __version__,
            "extra": self.extra,
        }

    def check_model(self, weight: torch.Tensor) -> None:
        """Refuse directions for classes the model does not have or of another feature width."""
        num_classes, width = weight.shape
        for k, (mean, _) in sorted(self.directions.items()):
            if k >= num_classes:
                raise SpurbenchError(f"SpuFix artifact corrects class {k}, but {self.target_model} has {num_classes} classes")
            if mean.shape[0] != width:
                raise SpurbenchError(f"SpuFix artifact directions have width {mean.shape[0]}, {self.target_model}'s features have {width}")

    def fingerprint(self) -> str:
        """sha256 of the facts that decide the corrected logits (target, components, tensors)."""
        facts = [self.target_model, self.target_weights_revision, sorted(self.components.items()), self.source_weights_revision]
        digest = hashlib.sha256(json.dumps(facts).encode())
        for k in sorted(self.directions):
            for tensor in self.directions[k]:
                digest.update(tensor.detach().to(torch.float64).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)  # of a save that was killed
        tensors = {}
        for k, (mean, dirs) in self.directions.items():
            tensors[f"mean.{k}"] = mean.detach().to(torch.float64).contiguous()
            tensors[f"directions.{k}"] = dirs.detach().to(torch.float64).contiguous()
        with atomic_path(folder / TENSORS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": str(UNNAMED_FORMAT)})  # the tensors' layout: unchanged by names
        meta = {**self.metadata(), "tensors_sha256": content_digest(folder / TENSORS_FILE).removeprefix("sha256:")}
        with atomic_path(folder / META_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=1) + "\n")
        return folder

    def check_target(self, model_name: str, weights_revision: str | None) -> None:
        """Refuse an artifact fitted for another model or another weights revision."""
        if model_name != self.target_model:
            raise SpurbenchError(f"SpuFix artifact was fitted for {self.target_model!r}, not {model_name!r}")
        if weights_revision != self.target_weights_revision:
            raise SpurbenchError(
                f"SpuFix artifact for {model_name!r} was fitted on weights {self.target_weights_revision!r}, "
                f"but the model has {weights_revision!r}"
            )

    def head(self, weight: torch.Tensor, bias: torch.Tensor) -> SpuFixHead:
        self.check_model(weight)
        directions: dict[int, tuple[torch.Tensor, torch.Tensor]] = dict(self.directions)  # (heads takes plain tuples)
        return SpuFixHead.from_directions(weight, bias, directions)


def load_artifact(location: str | Path, revision: str | None = None, token: str | bool | None = None) -> SpuFixArtifact:
    """Load from a local folder or ``hf://ORG/NAME[@REVISION]`` (a Hub model repo, pinned by revision)."""
    folder = resolve_location(str(location), revision, token)
    meta_path, tensor_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise SpurbenchError(f"{location}: not a SpuFix artifact (needs {META_FILE} and {TENSORS_FILE})")
    try:
        raw = strict_json(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested past the decoder's limit
        raise SpurbenchError(f"{location}: {META_FILE} is not valid JSON ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(raw, dict) or raw.get("format") not in READ_FORMATS:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise SpurbenchError(
            f"{location}: SpuFix artifact format {found!r}, this spurbench reads {' and '.join(map(str, READ_FORMATS))} (refit it)"
        )
    if raw.get("format") == UNNAMED_FORMAT and "component_names" in raw:
        raise SpurbenchError(
            f"{location}: {META_FILE} names components, which format {UNNAMED_FORMAT} does not (format {FORMAT_VERSION} does)"
        )
    try:
        meta = ArtifactMeta.model_validate(raw)
    except ValidationError as exc:
        raise SpurbenchError(f"{location}: {META_FILE} at {first_error_line(exc, root='<root>')}") from None
    if content_digest(tensor_path) != f"sha256:{meta.tensors_sha256}":
        raise SpurbenchError(
            f"{location}: {TENSORS_FILE} does not match the digest in {META_FILE} (changed or damaged after it was written)"
        )
    try:
        tensors = load_file(str(tensor_path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise SpurbenchError(f"{location}: unreadable {TENSORS_FILE} ({type(exc).__name__})") from None
    directions = _checked_directions(str(location), meta, tensors)
    return SpuFixArtifact(
        source_model=meta.source_model,
        source_weights_revision=meta.source_weights_revision,
        target_model=meta.target_model,
        target_weights_revision=meta.target_weights_revision,
        components={k: list(v) for k, v in meta.components.items()},
        images_per_class=dict(meta.images_per_class),
        directions=directions,
        spurbench_version=meta.spurbench_version,
        extra=meta.extra,
        component_names={k: dict(by) for k, by in meta.component_names.items()},
    )


def _checked_directions(location: str, meta: ArtifactMeta, tensors: dict[str, torch.Tensor]) -> dict[int, ClassDirections]:
    """Mean and directions per class, after checking each tensor against the components and the others."""
    expected = {f"{kind}.{k}" for k in meta.components for kind in ("mean", "directions")}
    if set(tensors) != expected:
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise SpurbenchError(f"{location}: {TENSORS_FILE} does not match the components in {META_FILE} ({what})")
    if set(meta.images_per_class) != set(meta.components):
        raise SpurbenchError(f"{location}: images_per_class and components name different classes")
    for k, by in sorted(meta.component_names.items()):
        unclipped = [c for c in by if c not in meta.components.get(k, [])]
        if unclipped or not by:
            raise SpurbenchError(f"{location}: component_names: class {k} names {unclipped or 'no'} component(s) it does not clip")
    widths: set[int] = set()
    directions: dict[int, ClassDirections] = {}
    for k, ranks in sorted(meta.components.items()):
        mean, dirs = tensors[f"mean.{k}"], tensors[f"directions.{k}"]
        where = f"{location}: class {k}"
        if not ranks or len(set(ranks)) != len(ranks):
            raise SpurbenchError(f"{where}: components {ranks} must be distinct and at least one")
        if mean.dtype != torch.float64 or dirs.dtype != torch.float64:
            raise SpurbenchError(f"{where}: tensors are {mean.dtype}/{dirs.dtype}, an artifact stores float64")
        if mean.ndim != 1 or dirs.ndim != 2 or dirs.shape != (len(ranks), mean.shape[0]):
            raise SpurbenchError(
                f"{where}: mean {tuple(mean.shape)} and directions {tuple(dirs.shape)} do not fit {len(ranks)} component(s)"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(dirs).all()):
            raise SpurbenchError(f"{where}: tensors contain NaN or inf")
        norms = dirs.norm(dim=1)
        if ((norms - 1).abs() > UNIT_TOLERANCE).any():
            raise SpurbenchError(f"{where}: directions must be unit vectors (norms {[round(float(n), 6) for n in norms]})")
        if torch.linalg.cond(dirs @ dirs.T) > MAX_CONDITION:
            raise SpurbenchError(f"{where}: its {len(ranks)} directions are linearly dependent (singular direction matrix)")
        widths.add(int(mean.shape[0]))
        directions[k] = ClassDirections(mean, dirs)
    if len(widths) > 1:
        raise SpurbenchError(f"{location}: classes have directions of different widths {sorted(widths)}")
    return directions


def auto_location(model_name: str, org: str = DEFAULT_HUB_ORG) -> str:
    """Where ``--spufix auto`` looks for a model's published artifact: ``hf://<org>/spufix-<model slug>``."""
    return f"hf://{org}/spufix-{slug(model_name, '-')}"


def resolve_location(location: str, revision: str | None = None, token: str | bool | None = None) -> Path:
    if not location.startswith("hf://"):
        path = Path(location)
        if not path.is_dir():
            raise SpurbenchError(f"SpuFix artifact folder {location} does not exist")
        return path
    repo, _, pinned = location[len("hf://") :].partition("@")
    try:
        return snapshot(repo, revision=pinned or revision, token=token, allow_patterns=[META_FILE, TENSORS_FILE])
    except SpurbenchError as exc:
        raise SpurbenchError(f"no SpuFix artifact at {location}: {exc}") from None


def push_artifact(folder: str | Path, repo_id: str, token: str | None = None) -> str:
    """Upload an artifact folder and its model card to a Hub model repo as one commit (the artifact never
    appears without its card); returns the commit url. Pin what you pushed with ``hf://REPO@<commit sha>``."""
    artifact = load_artifact(folder)  # never publish something that does not load
    files: dict[str, Path | bytes] = {name: Path(folder) / name for name in (META_FILE, TENSORS_FILE)}
    files["README.md"] = _model_card(artifact, repo_id).encode()
    return commit(repo_id, files, message=f"SpuFix for {artifact.target_model} (source {artifact.source_model})", token=token)


def _model_card(artifact: SpuFixArtifact, repo_id: str) -> str:
    n_components = sum(len(v) for v in artifact.components.values())
    named = "; ".join(f"class {k} component {c}: {n}" for k, by in sorted(artifact.component_names.items()) for c, n in sorted(by.items()))
    named = f"\nThe clipped features, as people named them: {named}." if named else ""
    return f"""---
library_name: spurbench
tags: [spurbench, spufix, spurious-features]
---
# SpuFix for `{artifact.target_model}`

A spurbench SpuFix artifact: it removes the positive contribution of
{n_components} spurious neural-PCA components in {len(artifact.components)} classes from the logits of
`{artifact.target_model}` (weights `{artifact.target_weights_revision}`), with no retraining.
Source of the components: `{artifact.source_model}` (weights `{artifact.source_weights_revision}`). Fitted with spurbench {artifact.spurbench_version}.{named}

```bash
spurbench run --model {artifact.target_model} --spufix hf://{repo_id}
```

Files: `{TENSORS_FILE}` (per-class means and unit directions, float64) and `{META_FILE}` (source,
target, components, images per class). No pickles.
"""
