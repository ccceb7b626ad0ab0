"""SpuFix artifacts: per-class means and directions as safetensors, facts as JSON. Never a pickle.

Layout of an artifact folder (local, or a Hub model repo for ``hf://ORG/NAME[@REVISION]``):
    spufix.safetensors   mean.<k> [D], directions.<k> [L_k, D] for every corrected class k
    spufix.json          source and target model, target weights revision, components, images per class, version
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from spurbench.cache import atomic_path
from spurbench.errors import SpurbenchError

FORMAT_VERSION = 1
TENSORS_FILE = "spufix.safetensors"
META_FILE = "spufix.json"
DEFAULT_HUB_ORG = "spurbench"  # `--spufix auto` looks for <org>/spufix-<model slug>


@dataclass
class SpuFixArtifact:
    source_model: str
    target_model: str
    target_weights_revision: str | None
    components: dict[int, list[int]]  # class -> source NPCA component ranks (0-based, eigenvalue order)
    images_per_class: dict[int, int]
    directions: dict[int, tuple[torch.Tensor, torch.Tensor]]  # class -> (mean psi [D], unit directions [L, D])
    spurbench_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The source model's weights: a Hub revision, or a local checkpoint's content digest (sha256:...)
    source_weights_revision: str | None = None

    def metadata(self) -> dict[str, Any]:
        from spurbench import __version__

        return {
            "format": FORMAT_VERSION,
            "source_model": self.source_model,
            "source_weights_revision": self.source_weights_revision,
            "target_model": self.target_model,
            "target_weights_revision": self.target_weights_revision,
            "components": {str(k): v for k, v in sorted(self.components.items())},
            "images_per_class": {str(k): v for k, v in sorted(self.images_per_class.items())},
            "spurbench_version": self.spurbench_version or __version__,
            "extra": self.extra,
        }

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
        tensors = {}
        for k, (mean, dirs) in self.directions.items():
            tensors[f"mean.{k}"] = mean.detach().to(torch.float64).contiguous()
            tensors[f"directions.{k}"] = dirs.detach().to(torch.float64).contiguous()
        with atomic_path(folder / TENSORS_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": str(FORMAT_VERSION)})
        with atomic_path(folder / META_FILE) as tmp:
            tmp.write_text(json.dumps(self.metadata(), indent=1) + "\n")
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

    def head(self, weight: torch.Tensor, bias: torch.Tensor):
        from spurbench.heads import SpuFixHead

        return SpuFixHead.from_directions(weight, bias, self.directions)


def load_artifact(location: str | Path, revision: str | None = None, token: str | bool | None = None) -> SpuFixArtifact:
    """Load from a local folder or ``hf://ORG/NAME[@REVISION]`` (a Hub model repo, pinned by revision)."""
    folder = resolve_location(str(location), revision, token)
    meta_path, tensor_path = folder / META_FILE, folder / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        raise SpurbenchError(f"{location}: not a SpuFix artifact (needs {META_FILE} and {TENSORS_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError) as exc:
        raise SpurbenchError(f"{location}: unreadable SpuFix artifact ({exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise SpurbenchError(f"{location}: SpuFix artifact format {meta.get('format')!r}, this spurbench reads {FORMAT_VERSION}")
    classes = sorted(int(name.split(".", 1)[1]) for name in tensors if name.startswith("mean."))
    directions = {k: (tensors[f"mean.{k}"], tensors[f"directions.{k}"]) for k in classes}
    return SpuFixArtifact(
        source_model=meta["source_model"],
        source_weights_revision=meta.get("source_weights_revision"),
        target_model=meta["target_model"],
        target_weights_revision=meta["target_weights_revision"],
        components={int(k): v for k, v in meta["components"].items()},
        images_per_class={int(k): v for k, v in meta["images_per_class"].items()},
        directions=directions,
        spurbench_version=meta.get("spurbench_version", ""),
        extra=meta.get("extra", {}),
    )


def auto_location(model_name: str, org: str = DEFAULT_HUB_ORG) -> str:
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-")
    return f"hf://{org}/spufix-{slug}"


def resolve_location(location: str, revision: str | None = None, token: str | bool | None = None) -> Path:
    if not location.startswith("hf://"):
        path = Path(location)
        if not path.is_dir():
            raise SpurbenchError(f"SpuFix artifact folder {location} does not exist")
        return path
    repo, _, pinned = location[len("hf://") :].partition("@")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(repo, revision=pinned or revision, allow_patterns=[META_FILE, TENSORS_FILE], token=token))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise SpurbenchError(f"no SpuFix artifact at {location}: {type(exc).__name__} (offline, missing, or no access)") from None


def push_artifact(folder: str | Path, repo_id: str, token: str | None = None) -> str:
    """Upload an artifact folder (and a model card) to a Hub model repo; returns the commit url.

    Pin what you pushed with ``hf://REPO@<commit sha>`` (the last part of the url).
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    artifact = load_artifact(folder)  # never publish something that does not load
    operations = [CommitOperationAdd(name, str(Path(folder) / name)) for name in (META_FILE, TENSORS_FILE)]
    operations.append(CommitOperationAdd("README.md", _model_card(artifact, repo_id).encode()))
    api = HfApi(token=token)
    try:  # one commit: the artifact never appears without its card
        api.create_repo(repo_id, exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=f"SpuFix for {artifact.target_model} (source {artifact.source_model})")
    except (HfHubHTTPError, OSError) as exc:
        raise SpurbenchError(f"cannot push the SpuFix artifact to {repo_id}: {type(exc).__name__} (no token, no write access, or offline)") from None
    return str(info.commit_url)


def _model_card(artifact: SpuFixArtifact, repo_id: str) -> str:
    n_components = sum(len(v) for v in artifact.components.values())
    return f"""---
library_name: spurbench
tags: [spurbench, spufix, spurious-features]
---
# SpuFix for `{artifact.target_model}`

A spurbench SpuFix artifact: it removes the positive contribution of
{n_components} spurious neural-PCA components in {len(artifact.components)} classes from the logits of
`{artifact.target_model}` (weights `{artifact.target_weights_revision}`), with no retraining.
Source of the components: `{artifact.source_model}` (weights `{artifact.source_weights_revision}`). Fitted with spurbench {artifact.spurbench_version}.

```bash
spurbench run --model {artifact.target_model} --spufix hf://{repo_id}
```

Files: `{TENSORS_FILE}` (per-class means and unit directions, float64) and `{META_FILE}` (source,
target, components, images per class). No pickles.
"""
