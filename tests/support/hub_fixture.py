"""Build a real Hugging Face Hub cache layout on disk, so loading code runs its normal path offline.

Layout (what huggingface_hub reads with HF_HUB_OFFLINE=1):
    $HF_HOME/hub/{models,datasets}--ORG--NAME/refs/main            -> commit sha
    $HF_HOME/hub/{models,datasets}--ORG--NAME/snapshots/SHA/<path>  -> file
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def write_hub_repo(hf_home: Path, repo_id: str, files: dict[str, bytes], repo_type: str = "model", revision: str | None = None) -> str:
    """Place ``files`` (path -> content) as one commit of ``repo_id``; return the commit sha."""
    sha = revision or hashlib.sha1(repo_id.encode() + b"".join(sorted(files.values()))).hexdigest()
    folder = Path(hf_home) / "hub" / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(sha)
    for rel, content in files.items():
        target = folder / "snapshots" / sha / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return sha


def offline_hub(tmp_path: Path, monkeypatch) -> Path:
    """Offline Hub, Hub cache and spurbench cache under tmp_path; returns HF_HOME.

    huggingface_hub reads HF_HOME / HF_HUB_OFFLINE into module constants at import time, so the
    constants it consults per call are patched too.
    """
    import huggingface_hub.constants as hf_constants

    hf_home = Path(tmp_path) / "hf_home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPURBENCH_CACHE", str(Path(tmp_path) / "spurbench_cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return hf_home
