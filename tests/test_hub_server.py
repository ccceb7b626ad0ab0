"""Tests of the local Hub server (tests/support/hub_server.py), driven through the real huggingface_hub client over HTTP."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support.hub_server import LocalHub, local_hub


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    with local_hub(tmp_path, monkeypatch) as h:
        yield h


FOLDER_FILES: dict[str, bytes] = {
    "notes.txt": b"first version\n",
    "sub/dir/nested.json": b'{"labels": ["cat", "dog"]}\n',
    "weights.bin": random.Random(0).randbytes(200_000),  # ~200 kB of binary, incompressible
}


def make_folder(root: Path, files: dict[str, bytes] = FOLDER_FILES) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


def read_tree(folder: str | Path) -> dict[str, bytes]:
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def upload(hub: LocalHub, tmp_path: Path, repo_id: str, repo_type: str) -> str:
    """create_repo + upload_folder through the client; returns the commit sha."""
    api = HfApi()
    url = api.create_repo(repo_id, repo_type=repo_type)
    assert url.repo_id == repo_id and url.startswith(hub.url)
    info = api.upload_folder(repo_id=repo_id, repo_type=repo_type, folder_path=make_folder(tmp_path / "upload"))
    return info.oid


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_upload_list_info_and_download_roundtrip(hub: LocalHub, tmp_path: Path, repo_type: str) -> None:
    repo_id = "org/roundtrip"
    sha = upload(hub, tmp_path, repo_id, repo_type)
    expected = {".gitattributes", *FOLDER_FILES}

    # What the server stored: one commit on top of the repo's initial one, byte-identical files.
    assert hub.commits(repo_id, repo_type) == [hub.commits(repo_id, repo_type)[0], sha]
    stored = hub.files(repo_id, repo_type)
    assert {p: stored[p] for p in FOLDER_FILES} == FOLDER_FILES

    api = HfApi()
    assert sorted(api.list_repo_files(repo_id, repo_type=repo_type)) == sorted(expected)
    info = api.repo_info(repo_id, repo_type=repo_type, files_metadata=True)
    assert info.sha == sha and info.id == repo_id
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["weights.bin"] == 200_000 and set(sizes) == expected
    typed_info = api.dataset_info(repo_id) if repo_type == "dataset" else api.model_info(repo_id)
    assert typed_info.sha == sha

    folder = snapshot_download(repo_id, repo_type=repo_type)
    assert Path(folder).name == sha
    assert read_tree(folder) == {**FOLDER_FILES, ".gitattributes": stored[".gitattributes"]}
    # The download ran against our server, not a cache: the client HEADed and GETted every file.
    prefix = "/datasets" if repo_type == "dataset" else ""
    assert ("GET", f"{prefix}/{repo_id}/resolve/{sha}/weights.bin") in hub.requests


def test_pinned_revision_keeps_old_content(hub: LocalHub, tmp_path: Path) -> None:
    repo_id = "org/pinned"
    first = upload(hub, tmp_path, repo_id, "model")
    api = HfApi()
    second = api.upload_file(repo_id=repo_id, path_or_fileobj=b"second version\n", path_in_repo="notes.txt").oid
    assert second != first and hub.commits(repo_id)[-2:] == [first, second]

    assert read_tree(snapshot_download(repo_id, revision=first))["notes.txt"] == b"first version\n"
    assert read_tree(snapshot_download(repo_id))["notes.txt"] == b"second version\n"
    assert Path(hf_hub_download(repo_id, "notes.txt", revision=first)).read_bytes() == b"first version\n"
    assert api.repo_info(repo_id, revision=first).sha == first
    assert hub.files(repo_id, revision=first)["notes.txt"] == b"first version\n"

    # Re-uploading unchanged content: the server reports the current blob oids, so the client commits nothing.
    assert api.upload_file(repo_id=repo_id, path_or_fileobj=b"second version\n", path_in_repo="notes.txt").oid == second
    assert hub.commits(repo_id)[-1] == second

    # Deleting a file is a new commit; the old commits still have it.
    third = api.delete_file("sub/dir/nested.json", repo_id=repo_id).oid
    assert "sub/dir/nested.json" not in api.list_repo_files(repo_id)
    assert "sub/dir/nested.json" in api.list_repo_files(repo_id, revision=second)
    assert hub.commits(repo_id)[-1] == third


def test_branches(hub: LocalHub, tmp_path: Path) -> None:
    repo_id = "org/branched"
    first = upload(hub, tmp_path, repo_id, "dataset")
    api = HfApi()
    api.create_branch(repo_id, repo_type="dataset", branch="v1")
    api.create_branch(repo_id, repo_type="dataset", branch="v1", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_branch(repo_id, repo_type="dataset", branch="v1")
    assert err.value.response.status_code == 409
    on_branch = api.upload_file(
        repo_id=repo_id, repo_type="dataset", path_or_fileobj=b"branch version\n", path_in_repo="notes.txt", revision="v1"
    ).oid
    # the branch moved, main did not
    assert hub.store.log("dataset", repo_id, "v1")[-2:] == [first, on_branch] and hub.commits(repo_id, "dataset")[-1] == first
    assert read_tree(snapshot_download(repo_id, repo_type="dataset", revision="v1"))["notes.txt"] == b"branch version\n"
    assert read_tree(snapshot_download(repo_id, repo_type="dataset"))["notes.txt"] == b"first version\n"
    # a branch can start at a commit
    api.create_branch(repo_id, repo_type="dataset", branch="old", revision=first)
    assert hub.files(repo_id, "dataset", "old")["notes.txt"] == b"first version\n"
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token="hf_wrong").create_branch(repo_id, repo_type="dataset", branch="v2")
    assert err.value.response.status_code == 401


def test_hf_hub_download_single_file_and_missing_entries(hub: LocalHub, tmp_path: Path) -> None:
    repo_id = "org/single"
    sha = upload(hub, tmp_path, repo_id, "dataset")
    path = hf_hub_download(repo_id, "sub/dir/nested.json", repo_type="dataset")
    assert Path(path).read_bytes() == FOLDER_FILES["sub/dir/nested.json"]
    assert f"snapshots/{sha}/sub/dir/nested.json" in Path(path).as_posix()

    local = hf_hub_download(repo_id, "weights.bin", repo_type="dataset", local_dir=tmp_path / "local")
    assert Path(local).read_bytes() == FOLDER_FILES["weights.bin"]

    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "notes.txt", repo_type="dataset", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        HfApi().repo_info(repo_id, repo_type="dataset", revision="no-such-branch")
    # Model and dataset namespaces are separate, as on the Hub.
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "notes.txt")


def test_create_repo_exist_ok(hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("org/exists")
    before = hub.commits("org/exists")
    assert api.create_repo("org/exists", exist_ok=True).repo_id == "org/exists"
    assert hub.commits("org/exists") == before  # nothing was reset
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("org/exists")
    assert err.value.response.status_code == 409
    # The same name as a dataset is another repo.
    api.create_repo("org/exists", repo_type="dataset")


def test_unknown_repo_raises_repository_not_found(hub: LocalHub) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("org/nope")
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_files("org/nope", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("org/nope")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/nope", "x.txt", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        api.upload_file(repo_id="org/nope", path_or_fileobj=b"x", path_in_repo="x.txt")


def test_tree_pagination_and_wrong_token(hub: LocalHub, tmp_path: Path) -> None:
    hub.tree_page_size = 2  # force several pages: the client must follow the Link header
    repo_id = "org/paged"
    upload(hub, tmp_path, repo_id, "model")
    assert sorted(HfApi().list_repo_files(repo_id)) == sorted({".gitattributes", *FOLDER_FILES})
    assert any("/tree/" in path and "cursor=" in path for _, path in hub.requests)
    top = {e.path for e in HfApi().list_repo_tree(repo_id)}
    assert top == {".gitattributes", "notes.txt", "sub", "weights.bin"}

    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token="hf_wrong").upload_file(repo_id=repo_id, path_or_fileobj=b"x", path_in_repo="x.txt")
    assert err.value.response.status_code == 401


def test_seeded_repo_and_subprocess_sees_same_hub(hub: LocalHub, tmp_path: Path) -> None:
    sha = hub.add_commit("org/seeded", {"a.txt": b"A", "b/c.txt": b"C"}, repo_type="dataset")
    script = textwrap.dedent(
        f"""
        import pathlib
        from huggingface_hub import snapshot_download
        folder = pathlib.Path(snapshot_download("org/seeded", repo_type="dataset"))
        assert folder.name == {sha!r}, folder
        print((folder / "a.txt").read_text() + (folder / "b" / "c.txt").read_text())
        """
    )
    env = {**os.environ, **hub.env}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AC"
    assert ("GET", f"/datasets/org/seeded/resolve/{sha}/b/c.txt") in hub.requests
