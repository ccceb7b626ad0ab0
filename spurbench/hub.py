"""All Hugging Face Hub I/O, and the one mapping of its errors to one-line spurbench errors.

Datasets, SpuFix artifacts, the leaderboard and the model adapters go through these functions:
``snapshot`` (download, or resolve from the local Hub cache with ``HF_HUB_OFFLINE=1``), ``commit``
(upload files as one commit), ``cached_commit`` (which commit of a repo the cache holds),
``cached_snapshot`` (a snapshot already in the cache, never downloaded) and
``hub_error`` (exception -> SpurbenchError). Uploads and downloads are tested against the local
Hub server in ``tests/support/hub_server.py``; the real Hub cannot be reached from the development sandbox.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import huggingface_hub
from huggingface_hub import CommitOperationAdd, HfApi, constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from spurbench.errors import AccessError, DataError, SpurbenchError

RepoType = Literal["model", "dataset"]


def check_repo_id(repo_id: str, what: str = "Hub repo") -> str:
    """``repo_id`` when it is a valid Hub repo id (``NAME`` or ``ORG/NAME``), else a one-line SpurbenchError.
    Every id a user gives (--pool hf://..., --dataset-repo, --repo, --push) passes here before any work."""
    try:
        huggingface_hub.utils.validate_repo_id(repo_id)
    except HFValidationError:
        raise SpurbenchError(
            f"{what} {repo_id!r} is not a Hub repo id: expected NAME or ORG/NAME (letters, digits, '-', '_', '.'; no '..', no leading or trailing '/' or '.')"
        ) from None
    return repo_id


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def exception_chain(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and everything it was raised from or during."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def hub_error(exc: BaseException, what: str, hint: str = "", gated_howto: str | None = None) -> BaseException:
    """A one-line SpurbenchError for a Hub failure of ``what``, or ``exc`` itself when it is not one.

    ``gated_howto``: for a gated repo, how to get access; a gated repo answers 404 to a token without
    access, so then "not found" is reported as an AccessError with this how-to.
    """
    if isinstance(exc, SpurbenchError):
        return exc
    if isinstance(exc, LocalEntryNotFoundError) and isinstance(exc.__cause__, HfHubHTTPError):
        exc = exc.__cause__  # snapshot_download wraps some HTTP failures (403, 5xx) into "not in cache"
    tail = f"; {hint}" if hint else ""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, (GatedRepoError, RepositoryNotFoundError)) and gated_howto:
        return AccessError(f"no access to {what} with this token ({type(exc).__name__}): {gated_howto}")
    if isinstance(exc, GatedRepoError):
        return AccessError(f"{what} is gated and this token has no access: accept its terms on the Hub{tail}")
    if isinstance(exc, RepositoryNotFoundError):
        return DataError(f"{what} not found on the Hub (or private and no valid token){tail}")
    if isinstance(exc, RevisionNotFoundError):
        return DataError(f"{what}: revision not found on the Hub{tail}")
    if isinstance(exc, HfHubHTTPError):
        if _status(exc) in (401, 403):
            return AccessError(f"{what}: Hub refused access (HTTP {_status(exc)}): " + (gated_howto or f"check your token{tail}"))
        return DataError(f"{what}: Hub error: {first}{tail}")
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return DataError(f"{what} is not in the local Hub cache and the Hub cannot be reached (HF_HUB_OFFLINE=1 or no connection){tail}")
    if isinstance(exc, OSError):
        return DataError(f"{what}: {type(exc).__name__}: {first}{tail}")
    return exc


@contextlib.contextmanager
def mapped_errors(what: str, hint: str = "", gated_howto: str | None = None) -> Iterator[None]:
    """Hub failures inside the block become ``hub_error``'s one-line errors; anything else passes through."""
    try:
        yield
    except Exception as exc:
        mapped = hub_error(exc, what, hint, gated_howto)
        if mapped is exc:
            raise
        raise mapped from None


def resolve_token(token: str | bool | None, howto: str) -> str:
    """``token`` if given, else the logged-in / ``HF_TOKEN`` one; AccessError with ``howto`` if there is none."""
    if isinstance(token, str) and token:
        return token
    found = None if token is False else huggingface_hub.get_token()
    if not found:
        raise AccessError(howto)
    return found


def snapshot(
    repo_id: str,
    *,
    repo_type: RepoType = "model",
    revision: str | None = None,
    token: str | bool | None = None,
    allow_patterns: Sequence[str] | None = None,
    local_dir: str | Path | None = None,
    hint: str = "",
    gated_howto: str | None = None,
) -> Path:
    """The folder of ``repo_id@revision`` (downloaded, or from the Hub cache when offline); one-line errors."""
    check_repo_id(repo_id, f"Hub {repo_type}")
    with mapped_errors(f"Hub {repo_type} {repo_id}@{revision or 'main'}", hint, gated_howto):
        path = huggingface_hub.snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            token=token,
            allow_patterns=list(allow_patterns) if allow_patterns else None,
            local_dir=str(local_dir) if local_dir is not None else None,
        )
    return Path(path)


def commit(
    repo_id: str,
    files: Mapping[str, Path | bytes],
    *,
    repo_type: RepoType = "model",
    message: str,
    token: str | None = None,
    branch: str | None = None,
) -> str:
    """Create the repo if needed and upload ``files`` (path in repo -> local file or bytes) as one commit;
    returns the commit url (its last part is the commit sha to pin)."""
    check_repo_id(repo_id, f"Hub {repo_type}")
    operations = [CommitOperationAdd(name, content if isinstance(content, bytes) else str(content)) for name, content in files.items()]
    api = HfApi(token=token)
    with mapped_errors(f"Hub {repo_type} {repo_id}", "needs a token with write access (HF_TOKEN or a login)"):
        api.create_repo(repo_id, repo_type=repo_type, exist_ok=True)
        if branch and branch != "main":
            api.create_branch(repo_id, repo_type=repo_type, branch=branch, exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=message, repo_type=repo_type, revision=branch)
    return str(info.commit_url)


def cached_commit(repo_id: str, filenames: Sequence[str], revision: str | None = None) -> str | None:
    """Commit sha of the cached snapshot holding one of ``filenames``, or None if not cached."""
    for filename in filenames:
        found = huggingface_hub.try_to_load_from_cache(repo_id, filename, revision=revision)
        if isinstance(found, str):
            parts = Path(found).parts
            if "snapshots" in parts:
                return parts[parts.index("snapshots") + 1]
    return None


def cached_snapshot(repo_id: str, revision: str, repo_type: RepoType = "dataset") -> Path | None:
    """The local Hub cache's snapshot of ``repo_id`` at ``revision``, or None: never a download (what a
    board build may show without network or tokens)."""
    try:
        return Path(huggingface_hub.snapshot_download(repo_id, repo_type=repo_type, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, FileNotFoundError, ValueError):
        return None


PROBE_SECONDS = 3.0  # how long a weights download waits for the Hub's address to answer before going offline


@functools.cache
def hub_reachable(endpoint: str | None = None, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the Hub endpoint (``HF_ENDPOINT``) opens within ``timeout`` s; asked
    once per process. Why: without a Hub, huggingface_hub retries each missing file five times with
    backoff (about 23 s and 12 warning lines per file), and a model library asks for several files."""
    url = urllib.parse.urlsplit(endpoint or constants.ENDPOINT)
    if urllib.request.getproxies() and not urllib.request.proxy_bypass(url.hostname or ""):
        return True  # reached through a proxy, which huggingface_hub uses and a plain socket would not: let it try
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def weights_from_hub(what: str) -> Iterator[None]:
    """Around a model library's weight download (timm, open_clip, transformers): when the Hub cannot be
    reached, load from the local cache only (offline mode, no retries), and huggingface_hub's retry
    warnings never reach the terminal; weights that are missing then end in one line (see below)."""
    offline_before = constants.HF_HUB_OFFLINE
    unreachable = not offline_before and not hub_reachable()
    hub_logger = logging.getLogger("huggingface_hub")
    level_before = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    if unreachable:
        constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub (constants.is_offline_mode)
    try:
        yield
    except Exception as exc:
        raise_if_weights_unavailable(exc, what, unreachable=unreachable)
        raise
    finally:
        constants.HF_HUB_OFFLINE = offline_before
        hub_logger.setLevel(level_before)


def raise_if_weights_unavailable(exc: BaseException, what: str, unreachable: bool = False) -> None:
    """Re-raise "weights not in the local Hub cache and no network" as one SpurbenchError.

    Model libraries (timm, open_clip, transformers) wrap the Hub's error in their own (OSError,
    RuntimeError, ...), so the whole exception chain is searched. Returns normally for anything else:
    the caller re-raises it.
    """
    if isinstance(exc, SpurbenchError) or not any(
        isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled, urllib.error.URLError)) for e in exception_chain(exc)
    ):
        return  # (a SpurbenchError already says it in one line: the caller re-raises it as it is)
    if unreachable:
        why = f"the Hub ({constants.ENDPOINT}) cannot be reached"
    else:
        why = "HF_HUB_OFFLINE=1 is set" if constants.HF_HUB_OFFLINE else "the network could not be reached"
    raise SpurbenchError(
        f"weights for {what} are not in the local Hugging Face Hub cache ({constants.HF_HUB_CACHE}) and {why}; "
        "download them once with network access (HF_HUB_OFFLINE unset), or use local weights: --checkpoint FILE.safetensors "
        "(a state dict in the model library's parameter names; the README's 'Local weights' says how to convert one)"
    ) from exc


__all__ = [
    "cached_commit",
    "check_repo_id",
    "commit",
    "exception_chain",
    "hub_error",
    "hub_reachable",
    "mapped_errors",
    "raise_if_weights_unavailable",
    "resolve_token",
    "snapshot",
    "weights_from_hub",
]
