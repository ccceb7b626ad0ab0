"""Source alphas: alpha_l of the spurious components on each class's training images (what SpuFix
transfers to another model by matched directions), saved as safetensors plus a JSON index."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt
from safetensors.torch import load_file, save_file

from spurbench.errors import DataError, SpurbenchError
from spurbench.files import atomic_path
from spurbench.schemas import read_model
from spurbench.spufix.artifact import Rank

ALPHAS_FILE = "alphas.safetensors"
ALPHAS_META = "alphas.json"


class AlphasMeta(BaseModel):
    """The schema of ``alphas.json``; anything else in it is an error."""

    model_config = ConfigDict(extra="forbid")

    source_model: str
    source_weights_revision: str | None = None
    components: dict[NonNegativeInt, list[Rank]]
    image_ids: dict[NonNegativeInt, list[str]]
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass
class SourceAlphas:
    """alpha_l of the spurious components on each class's training images, with those images' ids in row order."""

    source_model: str
    components: dict[int, list[int]]
    image_ids: dict[int, list[str]]  # row order of alphas[k]
    alphas: dict[int, torch.Tensor]  # [N_k, L_k], columns in the order of components[k]
    extra: dict[str, Any] | None = None
    source_weights_revision: str | None = None  # Hub revision or checkpoint content digest of the source model

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / ALPHAS_FILE) as tmp:
            save_file({f"alphas.{k}": a.to(torch.float64).contiguous() for k, a in self.alphas.items()}, str(tmp))
        meta = {
            "source_model": self.source_model,
            "source_weights_revision": self.source_weights_revision,
            "components": {str(k): v for k, v in sorted(self.components.items())},
            "image_ids": {str(k): v for k, v in sorted(self.image_ids.items())},
            "extra": self.extra or {},
        }
        with atomic_path(folder / ALPHAS_META) as tmp:
            tmp.write_text(json.dumps(meta) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SourceAlphas:
        """A source-alphas folder as ``save`` writes it; every malformed part is a one-line error."""
        folder = Path(folder)
        if not (folder / ALPHAS_FILE).is_file() or not (folder / ALPHAS_META).is_file():
            raise SpurbenchError(f"{folder}: not a source-alphas folder (needs {ALPHAS_FILE} and {ALPHAS_META})")
        meta = read_model(folder / ALPHAS_META, AlphasMeta, "source-alphas file")
        try:
            tensors = load_file(str(folder / ALPHAS_FILE))
        except Exception as exc:  # safetensors raises its own error types for a damaged header or body
            raise DataError(f"{folder / ALPHAS_FILE}: not a readable safetensors file ({' '.join(str(exc).split())[:160]})") from None
        alphas: dict[int, torch.Tensor] = {}
        for name, tensor in tensors.items():
            kind, _, index = name.partition(".")
            if (
                kind != "alphas"
                or not (index.isascii() and index.isdigit() and len(index) <= 18)
                or tensor.ndim != 2
                or not torch.isfinite(tensor).all()
            ):
                raise DataError(f"{folder / ALPHAS_FILE}: tensor {name!r} is not a finite 2-d alphas.<class> tensor")
            alphas[int(index)] = tensor
        for k, a in alphas.items():
            if a.shape[0] != len(meta.image_ids.get(k, [])):
                raise DataError(f"{folder}: class {k} has {a.shape[0]} alpha rows but {len(meta.image_ids.get(k, []))} image ids")
            if a.shape[1] != len(meta.components.get(k, [])):
                raise DataError(f"{folder}: class {k} has {a.shape[1]} alpha columns but {len(meta.components.get(k, []))} components")
        return cls(meta.source_model, meta.components, meta.image_ids, alphas, meta.extra, meta.source_weights_revision)


__all__ = ["ALPHAS_FILE", "ALPHAS_META", "AlphasMeta", "SourceAlphas"]
