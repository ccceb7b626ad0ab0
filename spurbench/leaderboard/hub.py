"""Publish the leaderboard to a Hub dataset repo, and fetch published results back."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from spurbench import __version__
from spurbench.errors import SpurbenchError
from spurbench.leaderboard.verify import verify_all, verify_result

RESULTS_IN_REPO = "results"
SITE_IN_REPO = "site"


def _card(repo_id: str, n_results: int) -> str:
    return f"""---
license: mit
pretty_name: spurbench leaderboard
tags: [spurbench, spurious-features, leaderboard]
---
# spurbench leaderboard results

{n_results} verified spurbench result files (`{RESULTS_IN_REPO}/*.json`, one per benchmark and model,
with per-image probabilities so every metric can be recomputed) and the rendered board (`{SITE_IN_REPO}/`).
Published with spurbench {__version__}. Fetch them with `spurbench leaderboard pull --repo {repo_id}`
and check them with `spurbench leaderboard verify`.
"""


def push_leaderboard(repo_id: str, results: Path, site: Path | None = None, token: str | None = None) -> str:
    """Verify, then upload ``results/*.json`` (and the built ``site/``) with a dataset card; returns the commit url."""
    from huggingface_hub import CommitOperationAdd, HfApi

    paths = sorted(Path(results).glob("*.json"))
    verify_all(paths)  # never publish a result that does not verify
    operations = [CommitOperationAdd(f"{RESULTS_IN_REPO}/{p.name}", str(p)) for p in paths]
    if site is not None and Path(site).is_dir():
        operations += [CommitOperationAdd(f"{SITE_IN_REPO}/{p.relative_to(site).as_posix()}", str(p)) for p in sorted(Path(site).rglob("*")) if p.is_file()]
    operations.append(CommitOperationAdd("README.md", _card(repo_id, len(paths)).encode()))
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=f"leaderboard: {len(paths)} results", repo_type="dataset")
    except (HfHubHTTPError, OSError) as exc:
        raise SpurbenchError(f"cannot push the leaderboard to {repo_id}: {type(exc).__name__} (no token, no write access, or offline)") from None
    return str(info.commit_url)


def pull_leaderboard(repo_id: str, out: Path, revision: str | None = None, token: str | None = None) -> list[Path]:
    """Download the published results into ``out`` (each verified first); returns the written files."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=[f"{RESULTS_IN_REPO}/*.json"], token=token))
    except (RepositoryNotFoundError, RevisionNotFoundError, LocalEntryNotFoundError, HfHubHTTPError) as exc:
        raise SpurbenchError(f"cannot fetch leaderboard results from {repo_id}: {type(exc).__name__} (offline, missing, or no access)") from None
    files = sorted((folder / RESULTS_IN_REPO).glob("*.json"))
    if not files:
        raise SpurbenchError(f"{repo_id} has no {RESULTS_IN_REPO}/*.json")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:  # verify everything before touching `out`
        for path in files:
            verify_result(path)
            shutil.copyfile(path, Path(staging) / path.name)
        written = []
        for path in sorted(Path(staging).glob("*.json")):
            target = out / path.name
            shutil.copyfile(path, target)
            written.append(target)
    return written


__all__ = ["pull_leaderboard", "push_leaderboard"]
