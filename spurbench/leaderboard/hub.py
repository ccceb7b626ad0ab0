"""Publish the leaderboard to a Hub dataset repo, and fetch published results back."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from spurbench._version import __version__
from spurbench.errors import SpurbenchError
from spurbench.hub import check_repo_id, commit, snapshot
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
    """Verify, then upload ``results/*.json`` (and the built ``site/``) with a dataset card as one commit;
    returns the commit url."""
    check_repo_id(repo_id, "--repo")  # before verifying every result
    paths = sorted(Path(results).glob("*.json"))
    verify_all(paths)  # never publish a result that does not verify
    files: dict[str, Path | bytes] = {f"{RESULTS_IN_REPO}/{p.name}": p for p in paths}
    if site is not None and Path(site).is_dir():
        files.update({f"{SITE_IN_REPO}/{p.relative_to(site).as_posix()}": p for p in sorted(Path(site).rglob("*")) if p.is_file()})
    files["README.md"] = _card(repo_id, len(paths)).encode()
    return commit(repo_id, files, repo_type="dataset", message=f"leaderboard: {len(paths)} results", token=token)


def pull_leaderboard(repo_id: str, out: Path, revision: str | None = None, token: str | None = None) -> list[Path]:
    """Download the published results into ``out`` (each verified first); returns the written files."""
    check_repo_id(repo_id, "--repo")
    folder = snapshot(repo_id, repo_type="dataset", revision=revision, token=token, allow_patterns=[f"{RESULTS_IN_REPO}/*.json"])
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
