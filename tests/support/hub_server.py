"""A small, file-backed Hugging Face Hub HTTP server for tests.

Why: code that publishes or fetches models and datasets goes through `huggingface_hub`. Mocking the client's
functions would test our assumptions about the client, not the client. Instead this module serves the subset of the
Hub HTTP API that `huggingface_hub` (2.4.0) really calls for `create_repo`, `upload_folder`, `upload_file`,
`create_commit`, `list_repo_files` / `list_repo_tree`, `repo_info` / `model_info` / `dataset_info`,
`snapshot_download` and `hf_hub_download`, on `http://127.0.0.1:<port>`. The real client then runs its normal network
code path (HEAD/GET on `/resolve`, preupload, NDJSON commit, paginated tree listing, its on-disk cache), offline.

Repos live on disk under a root folder (see `RepoStore`): every commit is a full file-tree snapshot with a 40-hex
sha, files are content-addressed by their git blob sha (the same "oid" the real Hub reports for regular files) and
branch `main` points at the newest commit. A new repo starts with one commit holding a `.gitattributes`, as on the Hub.
Writes need `Authorization: Bearer <token>` (the fixture's dummy token), a wrong token is a 401 everywhere, and private
repos look missing (404 `RepoNotFound`) to anonymous readers, as on the Hub.

Not implemented, on purpose: LFS/Xet uploads (preupload answers `uploadMode: "regular"` for every file, so the
client never needs them), pull requests, tags, spaces, gated repos. Branches other than `main` exist only as far as
`create_branch` (from a branch head or commit) and committing to / downloading from a branch go.

Usage in a test module::

    from tests.support.hub_server import LocalHub, local_hub

    @pytest.fixture
    def hub(tmp_path, monkeypatch) -> Iterator[LocalHub]:
        with local_hub(tmp_path, monkeypatch) as h:
            yield h

    def test_something(hub):
        HfApi().create_repo("org/name")           # goes to hub.url
        subprocess.run([...], env={**os.environ, **hub.env})   # a CLI run talks to the same server
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

if TYPE_CHECKING:
    import pytest

REPO_TYPES = ("model", "dataset")
DEFAULT_BRANCH = "main"
# Namespace used when `create_repo` is called with a bare name: the real Hub uses the token owner's namespace.
DEFAULT_USER = "local-user"
DEFAULT_TOKEN = "hf_local_hub_test_token"
# Page size of the tree listing; the real Hub uses 1000 (tests may lower it to exercise pagination).
TREE_PAGE_SIZE = 1000

# The file the Hub puts in the first commit of every new repo (abridged; this server gives it no meaning).
INITIAL_GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pt filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_SHA_RE = re.compile(r"[0-9a-f]{40}")


class HubError(Exception):
    """An HTTP error answered the way the Hub does: status, `X-Error-Code` / `X-Error-Message` and a JSON body."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def git_blob_sha(data: bytes) -> str:
    """git's blob id (`git hash-object`): the oid/ETag the Hub reports for a regular file, and what the client
    compares with to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now_iso() -> str:
    # The client's `parse_datetime` wants exactly '%Y-%m-%dT%H:%M:%S.%fZ' (milliseconds, as the Hub sends).
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _check_repo_type(repo_type: str | None) -> str:
    repo_type = repo_type or "model"
    if repo_type not in REPO_TYPES:
        raise HubError(400, f"Repo type {repo_type!r} is not supported by the local test hub")
    return repo_type


def _valid_repo_id(repo_id: str) -> bool:
    parts = repo_id.split("/")
    # Both parts become folder names: validation also keeps '..' and friends out of the store.
    return len(parts) == 2 and all(_NAME_RE.fullmatch(p) and ".." not in p for p in parts)


def _check_repo_id(repo_id: str) -> str:
    if not _valid_repo_id(repo_id):
        # Reading a repo that cannot exist: answer as the Hub does for any unknown repo.
        raise HubError(404, f"Repository {repo_id!r} not found", "RepoNotFound")
    return repo_id


def _json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw or b"{}")
    except ValueError as e:  # a client bug, not a server crash: answer 400
        raise HubError(400, f"Malformed JSON body: {e}") from e


def _check_file_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, f"Invalid file path {path!r}")
    return path


class RepoStore:
    """Repos on disk, one folder per repo: `<root>/<type>s/<namespace>/<name>/` holding

    - `repo.json`: creation date and visibility,
    - `refs/main`: sha of the branch head,
    - `commits/<sha>.json`: parent, message, date and the *full* tree `{path: blob oid}` (snapshot, not a diff),
    - `blobs/<oid>`: file contents, content-addressed by git blob sha.

    Writes are serialised with one lock; reads of commits and blobs need none since those files never change.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    # -- lookup --------------------------------------------------------------------------------------------------

    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / f"{_check_repo_type(repo_type)}s" / _check_repo_id(repo_id)

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.repo_dir(repo_type, repo_id) / "repo.json").is_file()

    def meta(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        if not path.is_file():
            raise HubError(404, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def branch_head(self, repo_type: str, repo_id: str, branch: str) -> str | None:
        ref = self.repo_dir(repo_type, repo_id) / "refs" / branch
        # Branch names come from URLs: only plain names map to a ref file ('refs/pr/1' and the like don't exist).
        if "/" in branch or branch in ("", ".", "..") or not ref.is_file():
            return None
        return ref.read_text().strip()

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        """Branch name or full commit sha -> commit sha. Raises RepoNotFound / RevisionNotFound like the Hub."""
        self.meta(repo_type, repo_id)
        head = self.branch_head(repo_type, repo_id, revision)
        if head is not None:
            return head
        commit_file = self.repo_dir(repo_type, repo_id) / "commits" / f"{revision}.json"
        if _SHA_RE.fullmatch(revision) and commit_file.is_file():
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def commit_record(self, repo_type: str, repo_id: str, sha: str) -> dict[str, Any]:
        return json.loads((self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json").read_text())

    def tree(self, repo_type: str, repo_id: str, sha: str) -> dict[str, str]:
        return self.commit_record(repo_type, repo_id, sha)["tree"]

    def blob_path(self, repo_type: str, repo_id: str, oid: str) -> Path:
        return self.repo_dir(repo_type, repo_id) / "blobs" / oid

    def read_blob(self, repo_type: str, repo_id: str, oid: str) -> bytes:
        return self.blob_path(repo_type, repo_id, oid).read_bytes()

    def log(self, repo_type: str, repo_id: str, branch: str = DEFAULT_BRANCH) -> list[str]:
        """Commit shas reachable from `branch`, oldest first."""
        shas: list[str] = []
        sha = self.branch_head(repo_type, repo_id, branch)
        while sha is not None:
            shas.append(sha)
            sha = self.commit_record(repo_type, repo_id, sha)["parent"]
        return shas[::-1]

    # -- writes --------------------------------------------------------------------------------------------------

    def create_branch(self, repo_type: str, repo_id: str, branch: str, starting_point: str = DEFAULT_BRANCH) -> bool:
        """Point the new `branch` at `starting_point` (branch or commit sha); False if it already exists."""
        with self.lock:
            if "/" in branch or branch in ("", ".", ".."):
                raise HubError(400, f"Invalid branch name {branch!r}")
            sha = self.resolve(repo_type, repo_id, starting_point)
            if self.branch_head(repo_type, repo_id, branch) is not None:
                return False
            (self.repo_dir(repo_type, repo_id) / "refs" / branch).write_text(sha)
            return True

    def create(self, repo_type: str, repo_id: str, *, private: bool = False) -> bool:
        """Create the repo with its initial `.gitattributes` commit; False if it already exists."""
        with self.lock:
            if self.exists(repo_type, repo_id):
                return False
            folder = self.repo_dir(repo_type, repo_id)
            for sub in ("refs", "commits", "blobs"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            meta = {"createdAt": _now_iso(), "private": private}
            (folder / "repo.json").write_text(json.dumps(meta))
            initial = {".gitattributes": INITIAL_GITATTRIBUTES}
            self.commit(repo_type, repo_id, DEFAULT_BRANCH, "initial commit", changes=initial)
            return True

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        summary: str,
        *,
        description: str = "",
        changes: dict[str, bytes | None] | None = None,
        deleted_folders: list[str] | None = None,
        parent_commit: str | None = None,
    ) -> str:
        """Write a new commit on `branch`: `changes` maps path -> new content (None deletes the file), applied in
        order after `deleted_folders`. Returns the new commit sha."""
        with self.lock:
            folder = self.repo_dir(repo_type, repo_id)
            head = self.branch_head(repo_type, repo_id, branch)  # None only for the initial commit
            if parent_commit is not None and (head is None or not head.startswith(parent_commit)):
                # What the Hub answers when the branch moved since the client's `parent_commit`.
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(self.tree(repo_type, repo_id, head)) if head else {}
            for prefix in deleted_folders or []:
                prefix = prefix.rstrip("/") + "/"
                doomed = [p for p in tree if p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {prefix}", "EntryNotFound")
                for p in doomed:
                    del tree[p]
            for path, content in (changes or {}).items():
                _check_file_path(path)
                if content is None:
                    if path not in tree:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del tree[path]
                    continue
                oid = git_blob_sha(content)
                blob = folder / "blobs" / oid
                if not blob.exists():
                    tmp = blob.with_name(f"{oid}.{threading.get_ident()}.tmp")
                    tmp.write_bytes(content)
                    tmp.replace(blob)  # atomic: concurrent readers never see a partial blob
                tree[path] = oid
            record = {
                "parent": head,
                "summary": summary,
                "description": description,
                "date": _now_iso(),
                "tree": dict(sorted(tree.items())),
            }
            # Any 40-hex id will do; hashing the record plus a clock makes it unique even for identical commits.
            sha = hashlib.sha1(json.dumps(record, sort_keys=True).encode() + str(time.time_ns()).encode()).hexdigest()
            (folder / "commits" / f"{sha}.json").write_text(json.dumps(record))
            (folder / "refs" / branch).write_text(sha)
            return sha


class _HubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the store and what tests may want to look at."""

    daemon_threads = True  # a client's idle keep-alive connection must not block shutdown

    def __init__(self, store: RepoStore, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.store = store
        self.token = token
        self.tree_page_size = TREE_PAGE_SIZE
        self.requests: list[tuple[str, str]] = []  # (method, path?query) in arrival order
        self.errors: list[str] = []  # tracebacks of requests that crashed the handler (answered 500)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _HubHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 so the client's pooled keep-alive connections behave as against the Hub; every response therefore
    # carries an exact Content-Length.
    protocol_version = "HTTP/1.1"
    timeout = 60  # drop idle keep-alive connections eventually
    server: _HubHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; `server.requests` records the traffic instead

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        # The body must be consumed even on errors, or the next request on this keep-alive connection is garbage.
        body = self._read_body()
        split = urlsplit(self.path)
        self.server.requests.append((method, self.path))
        # Unquote per segment: the client quotes revisions and tree paths with safe="" ('refs%2Fpr%2F1', 'a%2Fb'),
        # so a '%2F' must stay inside its segment.
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            self._route(method, segments, query, body)
        except HubError as e:
            self._send_error(e, head=method == "HEAD")
        except Exception:
            self.server.errors.append(f"{method} {self.path}\n{traceback.format_exc()}")
            self._send_error(HubError(500, "Internal error in the local test hub"), head=method == "HEAD")

    def _send(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _send_error(self, error: HubError, head: bool = False) -> None:
        headers = {"X-Error-Message": " ".join(error.message.split()), **error.headers}
        if error.code:
            # `hf_raise_for_status` maps this header to RepositoryNotFoundError / RevisionNotFoundError / ...
            headers["X-Error-Code"] = error.code
        self._send(error.status, json.dumps({"error": error.message}).encode(), headers=headers, head=head)

    def _authorized(self, required: bool) -> bool:
        """Like the Hub: a wrong token is always rejected, no token is fine for public reads only."""
        auth = self.headers.get("Authorization")
        if auth is None:
            if required:
                raise HubError(401, "You must be authenticated to access this resource")
            return False
        if auth != f"Bearer {self.server.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _readable(self, repo_type: str, repo_id: str) -> RepoStore:
        store = self.server.store
        _check_repo_id(repo_id)
        meta = store.meta(repo_type, repo_id)
        if meta["private"] and not self._authorized(required=False):
            # The Hub hides private repos from anonymous users instead of answering 403.
            raise HubError(404, f"Repository {repo_type}s/{repo_id} not found", "RepoNotFound")
        return store

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.server.url}/{prefix}{repo_id}"

    # -- routing -------------------------------------------------------------------------------------------------

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: bytes) -> None:
        self._authorized(required=False)  # a wrong token is rejected everywhere, as on the Hub
        if segments[:1] == ["api"]:
            api = segments[1:]
            if method == "POST" and api == ["repos", "create"]:
                return self._create_repo(body)
            if method == "POST" and api == ["validate-yaml"]:
                # Called by `create_commit` before committing a README.md; metadata is not checked here.
                return self._send_json({"errors": [], "warnings": []})
            if method == "GET" and api == ["agent-harnesses"]:
                # Fetched once a day for the user-agent when telemetry is on: an empty registry = "no agent".
                return self._send_json({"standardEnvVars": [], "harnesses": {}})
            if len(api) >= 2 and api[0] in ("models", "datasets"):
                if len(api) == 2:  # single-segment (canonical) ids: none exist here
                    raise HubError(404, f"Repository {api[1]!r} not found", "RepoNotFound")
                repo_type, repo_id, rest = api[0][:-1], f"{api[1]}/{api[2]}", api[3:]
                if method == "GET" and rest == []:
                    return self._repo_info(repo_type, repo_id, DEFAULT_BRANCH, query)
                if method == "GET" and len(rest) == 2 and rest[0] == "revision":
                    return self._repo_info(repo_type, repo_id, rest[1], query)
                if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                    return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]), query)
                if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                    return self._preupload(repo_type, repo_id, rest[1], query, body)
                if method == "POST" and len(rest) == 2 and rest[0] == "commit":
                    return self._commit(repo_type, repo_id, rest[1], query, body)
                if method == "POST" and len(rest) == 2 and rest[0] == "branch":
                    return self._create_branch(repo_type, repo_id, rest[1], body)
        elif method in ("GET", "HEAD"):
            # File downloads: /{ns}/{name}/resolve/{rev}/{path} (models), /datasets/{ns}/{name}/resolve/... .
            repo_type, parts = ("dataset", segments[1:]) if segments[:1] == ["datasets"] else ("model", segments)
            if len(parts) >= 4 and parts[1] == "resolve":  # single-segment (canonical) ids: none exist here
                raise HubError(404, f"Repository {parts[0]!r} not found", "RepoNotFound")
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), method)
        raise HubError(404, f"Sorry, we can't find the page you are looking for: {method} {self.path}")

    # -- endpoints -----------------------------------------------------------------------------------------------

    def _create_repo(self, body: bytes) -> None:
        self._authorized(required=True)
        payload = _json(body)
        repo_type = _check_repo_type(payload.get("type"))
        namespace = payload.get("organization") or DEFAULT_USER
        repo_id = f"{namespace}/{payload.get('name', '')}"
        if not _valid_repo_id(repo_id):
            raise HubError(400, f"Invalid repo id {repo_id!r}: expected '<namespace>/<name>'")
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        url = self._repo_url(repo_type, repo_id)
        if not self.server.store.create(repo_type, repo_id, private=private):
            # The client's `exist_ok=True` relies on exactly this status, and still reads "url" from the body.
            self._send_json(
                {"error": f"You already created this {repo_type} repo", "url": url},
                status=409,
                headers={"X-Error-Message": f"You already created this {repo_type} repo"},
            )
            return
        self._send_json({"url": url, "name": repo_id, "id": hashlib.sha1(url.encode()).hexdigest()[:24]})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str, query: dict[str, str]) -> None:
        store = self._readable(repo_type, repo_id)
        sha = store.resolve(repo_type, repo_id, revision)
        record = store.commit_record(repo_type, repo_id, sha)
        meta = store.meta(repo_type, repo_id)
        with_blobs = query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, oid in record["tree"].items():
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:  # `files_metadata=True`
                sibling.update(size=store.blob_path(repo_type, repo_id, oid).stat().st_size, blobId=oid)
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "lastModified": record["date"],
            "createdAt": meta["createdAt"],
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        self._send_json(info)

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, query: dict[str, str]) -> None:
        store = self._readable(repo_type, repo_id)
        sha = store.resolve(repo_type, repo_id, revision)
        tree = store.tree(repo_type, repo_id, sha)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        recursive = query.get("recursive", "").lower() in ("1", "true")

        files = {p: oid for p, oid in tree.items() if p.startswith(prefix)}
        if prefix and not files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        # Folders are implicit in a flat tree: derive them (and a stable oid from their content) from file paths.
        folders: dict[str, list[str]] = {}
        for p, oid in files.items():
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folders.setdefault(prefix + "/".join(parts[:depth]), []).append(f"{p} {oid}")
        entries: list[dict[str, Any]] = []
        for folder, content in folders.items():
            if recursive or "/" not in folder[len(prefix) :]:
                oid = hashlib.sha1("\n".join(sorted(content)).encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
        for p, oid in files.items():
            if recursive or "/" not in p[len(prefix) :]:
                size = store.blob_path(repo_type, repo_id, oid).stat().st_size
                entries.append({"type": "file", "oid": oid, "size": size, "path": p})
        entries.sort(key=lambda e: e["path"])

        # Paginate like the Hub: a GitHub-style `Link: <...>; rel="next"` header, followed by the client.
        start = int(query.get("cursor") or 0)
        stop = start + self.server.tree_page_size
        headers = {}
        if stop < len(entries):
            next_query = urlencode({**query, "cursor": str(stop)})
            headers["Link"] = f'<{self.server.url}{urlsplit(self.path).path}?{next_query}>; rel="next"'
        self._send_json(entries[start:stop], headers=headers)

    def _preupload(self, repo_type: str, repo_id: str, revision: str, query: dict[str, str], body: bytes) -> None:
        self._authorized(required=True)
        store = self._readable(repo_type, repo_id)
        if query.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by the local test hub")
        head = store.branch_head(repo_type, repo_id, revision)
        if head is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        tree = store.tree(repo_type, repo_id, head)
        files = [
            {
                "path": f["path"],
                # Always "regular": the content then travels base64-encoded inside the commit call (no LFS/Xet).
                "uploadMode": "regular",
                "shouldIgnore": False,
                # The current blob oid lets the client drop files that did not change (no empty commits).
                "oid": tree.get(f["path"]),
            }
            for f in _json(body).get("files", [])
        ]
        self._send_json({"files": files, "commitOid": head})

    def _create_branch(self, repo_type: str, repo_id: str, branch: str, body: bytes) -> None:
        self._authorized(required=True)
        store = self._readable(repo_type, repo_id)
        starting_point = (_json(body) if body.strip() else {}).get("startingPoint") or DEFAULT_BRANCH
        if not store.create_branch(repo_type, repo_id, branch, starting_point):
            # `create_branch(exist_ok=True)` relies on this status.
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        self._send_json({})

    def _commit(self, repo_type: str, repo_id: str, revision: str, query: dict[str, str], body: bytes) -> None:
        self._authorized(required=True)
        store = self._readable(repo_type, repo_id)
        if query.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by the local test hub")
        if store.branch_head(repo_type, repo_id, revision) is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

        header: dict[str, Any] = {}
        changes: dict[str, bytes | None] = {}
        deleted_folders: list[str] = []
        # NDJSON: one {"key": ..., "value": ...} per line, the "header" line first.
        for line in body.splitlines():
            if not line.strip():
                continue
            item = _json(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                raw = value["content"]
                content = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                changes[_check_file_path(value["path"])] = content
            elif key == "deletedFile":
                changes[_check_file_path(value["path"])] = None
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            elif key == "lfsFile":
                raise HubError(400, "LFS files are not supported by the local test hub (preupload says 'regular')")
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        if not header.get("summary"):
            raise HubError(400, "Commit summary is required")

        sha = store.commit(
            repo_type,
            repo_id,
            revision,
            header["summary"],
            description=header.get("description", ""),
            changes=changes,
            deleted_folders=deleted_folders,
            parent_commit=header.get("parentCommit"),
        )
        self._send_json(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self._repo_url(repo_type, repo_id)}/commit/{sha}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, method: str) -> None:
        store = self._readable(repo_type, repo_id)
        sha = store.resolve(repo_type, repo_id, revision)
        oid = store.tree(repo_type, repo_id, sha).get(path)
        if oid is None:
            # X-Repo-Commit on the 404 lets the client cache the file's absence (`.no_exist/<sha>/<path>`).
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        data = store.read_blob(repo_type, repo_id, oid)
        headers = {
            # The three headers `get_hf_file_metadata` needs: commit, ETag (cache blob name) and the size.
            "X-Repo-Commit": sha,
            "ETag": f'"{oid}"',
            "Accept-Ranges": "bytes",
        }
        status = 200
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        if ranged and method == "GET":
            # `http_get` resumes an interrupted download with a Range header.
            first = int(ranged.group(1))
            last = min(int(ranged.group(2)) if ranged.group(2) else len(data) - 1, len(data) - 1)
            if first >= len(data) or first > last:
                unsatisfiable = {"Content-Range": f"bytes */{len(data)}"}
                raise HubError(416, "Requested range not satisfiable", headers=unsatisfiable)
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            data, status = data[first : last + 1], 206
        self._send(status, data, content_type="application/octet-stream", headers=headers, head=method == "HEAD")


class LocalHubServer:
    """The server in a background thread; `start()` / `stop()`, or use it as a context manager."""

    def __init__(self, root: Path, token: str = DEFAULT_TOKEN) -> None:
        self.store = RepoStore(root)
        self.httpd = _HubHTTPServer(self.store, token)
        # A short poll interval makes `shutdown()` (hence every test teardown) return quickly.
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="local-hub", daemon=True)

    @property
    def url(self) -> str:
        return self.httpd.url

    def start(self) -> LocalHubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalHubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LocalHub:
    """What `local_hub` yields: the server's URL, its storage root, the token it accepts, an environment for
    subprocesses, and helpers to look at (or seed) the stored repos without going through HTTP."""

    url: str
    root: Path
    token: str
    env: dict[str, str]
    server: LocalHubServer = field(repr=False)

    @property
    def store(self) -> RepoStore:
        return self.server.store

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path?query) of every request served so far, in order."""
        return self.server.httpd.requests

    @property
    def tree_page_size(self) -> int:
        return self.server.httpd.tree_page_size

    @tree_page_size.setter
    def tree_page_size(self, value: int) -> None:
        self.server.httpd.tree_page_size = value

    def files(self, repo_id: str, repo_type: str = "model", revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """Full content of the repo at `revision` (branch or commit sha), `{path: bytes}`."""
        sha = self.store.resolve(repo_type, repo_id, revision)
        tree = self.store.tree(repo_type, repo_id, sha)
        return {path: self.store.read_blob(repo_type, repo_id, oid) for path, oid in tree.items()}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """Commit shas on `main`, oldest first (the first one is the repo's initial `.gitattributes` commit)."""
        self.store.meta(repo_type, repo_id)
        return self.store.log(repo_type, repo_id)

    def add_commit(self, repo_id: str, files: dict[str, bytes], repo_type: str = "model", message: str = "Seed files") -> str:
        """Create the repo if needed and commit `files` straight to disk (no HTTP): for tests that only download."""
        self.store.create(repo_type, repo_id)
        return self.store.commit(repo_type, repo_id, DEFAULT_BRANCH, message, changes=dict(files))


def _patch_present(monkeypatch: pytest.MonkeyPatch, target: object, name: str, value: object) -> None:
    # Some HF_HOME-derived constants are newer than others; patch whichever this client version has.
    if hasattr(target, name):
        monkeypatch.setattr(target, name, value)


@contextmanager
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str = DEFAULT_TOKEN) -> Iterator[LocalHub]:
    """Start a local Hub and point `huggingface_hub` (this process) at it; stop it and undo everything at exit.

    `huggingface_hub.constants` reads its environment once, at import, so setting env vars alone is not enough in
    this process: the constants (and the copies derived from them at import) that the download/upload code reads per
    call are patched as well. The env vars are still set, for code that reads them directly and for subprocesses
    (`hub.env` is the minimal set to merge into a child's environment).

    Fails at exit if a request crashed the server (answered 500), so server bugs can't hide behind client retries.
    """
    import huggingface_hub.constants as hf_constants
    import huggingface_hub.hf_api as hf_api
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub.utils import close_session

    tmp_path = Path(tmp_path)
    hf_home = tmp_path / "hf_home"
    hub_cache = hf_home / "hub"
    server = LocalHubServer(tmp_path / "hub_server", token=token).start()
    url = server.url
    env = {
        "HF_ENDPOINT": url,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_TOKEN": token,
        "HF_HUB_OFFLINE": "0",
        # Keeps the client from fetching its agent registry and writing it under HF_HOME: quieter, hermetic runs.
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    try:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # Env vars that would override the ones above (token sources, staging endpoint, offline flag, cache paths).
        for key in (
            "HUGGINGFACE_CO_STAGING",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_OIDC_RESOURCE",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN",
            "TRANSFORMERS_OFFLINE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_ASSETS_CACHE",
            "HUGGINGFACE_ASSETS_CACHE",
            "HF_XET_CACHE",
            "HF_TOKEN_PATH",
        ):
            monkeypatch.delenv(key, raising=False)

        # Endpoint: HfApi() and hf_hub_url() read ENDPOINT / the URL template built from it at import.
        monkeypatch.setattr(hf_constants, "ENDPOINT", url)
        url_template = url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url_template)
        monkeypatch.setattr(hf_constants, "HF_URL_HOSTS", hf_constants.HF_URL_HOSTS | {"127.0.0.1"})
        # Origins trusted when following /resolve redirects (auth header kept): built from ENDPOINT at import.
        monkeypatch.setattr(hf_http, "_HUB_ORIGINS", hf_http._HUB_ORIGINS | {hf_http._url_origin(url)})
        # The module-level HfApi behind `huggingface_hub.create_repo`, `upload_folder`, ... froze the endpoint.
        monkeypatch.setattr(hf_api.api, "endpoint", url)

        # Offline flag, token handling and telemetry are read per call from these constants.
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
        monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)

        # Everything derived from HF_HOME at import, so nothing is read from or written to the real ~/.cache.
        monkeypatch.setattr(hf_constants, "HF_HOME", str(hf_home))
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub_cache))
        for name, value in {
            "HUGGINGFACE_HUB_CACHE": hub_cache,
            "HF_ASSETS_CACHE": hf_home / "assets",
            "HUGGINGFACE_ASSETS_CACHE": hf_home / "assets",
            "HF_XET_CACHE": hf_home / "xet",
            "HF_TOKEN_PATH": hf_home / "token",
            "HF_STORED_TOKENS_PATH": hf_home / "stored_tokens",
            "AGENT_HARNESSES_PATH": hf_home / ".agent_harnesses.json",
            "CHECK_FOR_UPDATE_DONE_PATH": hf_home / ".check_for_update_done",
            "CHECK_FOR_SKILL_UPDATE_DONE_PATH": hf_home / ".check_for_skill_update_done",
        }.items():
            _patch_present(monkeypatch, hf_constants, name, str(value))
        # Copies taken with `from ..constants import ...` at import (cache scanning helpers).
        import huggingface_hub.utils._cache_assets as hf_cache_assets
        import huggingface_hub.utils._cache_manager as hf_cache_manager

        _patch_present(monkeypatch, hf_cache_manager, "HF_HUB_CACHE", str(hub_cache))
        _patch_present(monkeypatch, hf_cache_assets, "HF_ASSETS_CACHE", str(hf_home / "assets"))

        # The shared HTTP client may hold keep-alive connections to an earlier server on a now-reused port.
        close_session()
        yield LocalHub(url=url, root=server.store.root, token=token, env=env, server=server)
    finally:
        close_session()
        server.stop()
    if server.httpd.errors:
        raise AssertionError("The local hub server crashed on:\n" + "\n".join(server.httpd.errors))
