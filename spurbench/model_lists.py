"""Model lists for sweeps (``registry/*.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from spurbench.errors import SpurbenchError


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str  # adapter name, e.g. "timm:convnext_large.fb_in22k_ft_in1k"
    display_name: str | None = None
    architecture: str | None = None
    data: str | None = None  # training-data group
    checkpoint: str | None = None


def load_model_list(path: str | Path) -> list[ModelEntry]:
    """Read ``{models: [{model: ..., ...}, ...]}``; one-line SpurbenchError on any problem."""
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpurbenchError(f"{path}: cannot read model list ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpurbenchError(f"{path}: malformed YAML{where}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise SpurbenchError(f"{path}: a model list needs a top-level 'models:' list")
    entries = []
    for i, item in enumerate(raw["models"]):
        try:
            entries.append(ModelEntry.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "<entry>"
            raise SpurbenchError(f"{path}: models[{i}].{field}: {first['msg']}") from None
    return entries


def registry_files(root: str | Path = "registry") -> list[Path]:
    root = Path(root)
    return sorted(root.glob("*.yaml")) if root.is_dir() else []
