"""Labelling discovered components: the labels store (who, when, latest wins, no lost writes, another
model's labels refused), the export ``spufix fit`` reads, the label pages' routes (FastAPI TestClient)
and ``spurbench label`` / ``spurbench label export`` on bad input. On a real tiny discovery."""

from __future__ import annotations

import getpass
import json
import multiprocessing
import os
import re
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from spurbench.discovery.index import read_index
from spurbench.discovery.label_export import export_components
from spurbench.discovery.labels import (
    LABELS_FILE,
    LEGACY_LABELS_FILE,
    UnknownComponentError,
    latest,
    progress,
    read_labels,
    record_label,
)
from spurbench.errors import SpurbenchError
from spurbench.spufix.components import load_components
from tests.support.label_server import free_port, tiny_discovery
from tests.support.one_line import one_line_error
from tests.test_cli import spurbench

ROOT = Path(__file__).resolve().parents[1]
OLD_TYPER = str(Path(os.environ["SPURBENCH_OLD_TYPER_PATH"]).resolve()) if os.environ.get("SPURBENCH_OLD_TYPER_PATH") else None
RANKS = (0, 1, 2)
LOCAL = "http://127.0.0.1:8765"  # what the browser sends as Host; the app answers no other
TOP = 2
BOTTOM = 1


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A real discovery of the tiny model: classes 0 and 1, three components, two top images and one lowest each."""
    return tiny_discovery(tmp_path_factory, [0, 1], components=len(RANKS), top=TOP, bottom=BOTTOM)


@pytest.fixture
def folder(made, tmp_path) -> Path:
    """A fresh copy of the discovery per test, so each starts without labels."""
    return Path(shutil.copytree(made, tmp_path / "discovery"))


def _edit_index(folder: Path, change) -> None:
    path = folder / "discovery.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


# ------------------------------------------------------------------------------------ the store


def test_a_label_is_stored_with_who_and_when(folder) -> None:
    before = datetime.now(timezone.utc)
    record_label(folder, 1, 2, "spurious", "alice")
    after = datetime.now(timezone.utc)
    labels = read_labels(folder)
    assert (labels.model, labels.weights_revision, labels.basis) == ("tiny:net", "seed0", "npca")
    [record] = labels.records
    assert (record.class_index, record.rank, record.label, record.labeler) == (1, 2, "spurious", "alice")
    assert before <= record.at <= after and record.at.utcoffset().total_seconds() == 0
    header, line = [json.loads(x) for x in (folder / LABELS_FILE).read_text().splitlines()]  # the ledger: a header, one line per label
    assert header == {"ledger": "labels", "format": 2, "model": "tiny:net", "weights_revision": "seed0", "basis": "npca"} and line[
        "at"
    ].endswith("Z")


def test_the_latest_label_per_labeler_wins_and_history_is_kept(folder) -> None:
    record_label(folder, 0, 0, "spurious", "alice")
    record_label(folder, 0, 0, "spurious", "bob")
    record_label(folder, 0, 0, "not_spurious", "alice")
    labels = read_labels(folder)
    assert [r.label for r in labels.records] == ["spurious", "spurious", "not_spurious"]
    current = latest(labels)
    assert current[(0, 0, "alice")].label == "not_spurious" and current[(0, 0, "bob")].label == "spurious"
    assert len(current) == 2


def test_unknown_components_labels_and_labelers_are_refused(folder) -> None:
    with pytest.raises(UnknownComponentError, match="no class 7"):
        record_label(folder, 7, 0, "spurious", "alice")
    with pytest.raises(UnknownComponentError, match="class 1 has no component of rank 3"):
        record_label(folder, 1, 3, "spurious", "alice")
    with pytest.raises(SpurbenchError, match="label 'maybe'"):
        record_label(folder, 1, 0, "maybe", "alice")
    with pytest.raises(SpurbenchError, match="labeler"):
        record_label(folder, 1, 0, "spurious", " ")
    assert not (folder / LABELS_FILE).exists()


def _every_component(labelers: list[str]) -> list[tuple]:
    return [
        (k, rank, ("spurious", "not_spurious", "inconsistent")[(k + rank) % 3], who) for who in labelers for k in (0, 1) for rank in RANKS
    ]


def _stored(folder: Path) -> set[tuple]:
    return {(k, rank, r.label, who) for (k, rank, who), r in latest(read_labels(folder)).items()}


def test_concurrent_threads_lose_no_label(folder) -> None:
    clicks = _every_component([f"t{i}" for i in range(4)])  # 24 writes, 12 at a time
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda click: record_label(folder, click[0], click[1], click[2], click[3]), clicks))
    assert _stored(folder) == set(clicks) and len(read_labels(folder).records) == len(clicks)


def test_concurrent_processes_lose_no_label(folder) -> None:
    clicks = _every_component([f"p{i}" for i in range(4)])
    with multiprocessing.get_context("fork").Pool(6) as pool:  # what two servers on one folder do
        pool.starmap(record_label, [(folder, k, rank, label, who) for k, rank, label, who in clicks], chunksize=1)
    assert _stored(folder) == set(clicks) and len(read_labels(folder).records) == len(clicks)


def test_labels_of_another_model_are_refused(folder) -> None:
    record_label(folder, 0, 0, "spurious", "alice")
    _edit_index(folder, lambda raw: raw["model"].update(name="tiny:other"))
    for call in (lambda: read_labels(folder), lambda: record_label(folder, 0, 1, "spurious", "alice"), lambda: export_components(folder)):
        with pytest.raises(SpurbenchError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and "labels of tiny:net" in message and "the discovery is of tiny:other" in message, message
    assert len((folder / LABELS_FILE).read_text().splitlines()) == 2  # nothing written: the header and one label


@pytest.mark.parametrize(
    "text, needle",
    [
        ("{not json", "not a valid labels file"),
        ('{"format": 1, "format": 1}', "duplicate key"),
        (
            '{"format": 1, "model": "tiny:net", "weights_revision": "seed0", "basis": "npca", "records": [{"class_index": 0, "rank": 0, "label": "yes", "labeler": "a", "at": "2024-01-01T00:00:00Z"}]}',
            "at records.0.label",
        ),
        ("[]", "not a valid labels file"),
    ],
)
def test_a_corrupt_labels_file_is_a_one_line_error(folder, text, needle) -> None:
    (folder / LEGACY_LABELS_FILE).write_text(text)  # the format-1 file (the ledger's bad lines: tests/test_reliability_pages.py)
    with pytest.raises(SpurbenchError) as caught:
        record_label(folder, 0, 0, "spurious", "alice")
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    assert (folder / LEGACY_LABELS_FILE).read_text() == text and not (folder / LABELS_FILE).exists()  # left as it was


def test_a_class_is_done_when_every_component_has_the_labelers_label(folder) -> None:
    def index_progress(who: str) -> tuple[int, int]:
        return progress(read_index(folder), read_labels(folder), who)

    assert index_progress("alice") == (0, 2)
    for rank in RANKS[:-1]:
        record_label(folder, 1, rank, "not_spurious", "alice")
    record_label(folder, 1, RANKS[-1], "spurious", "bob")
    assert index_progress("alice") == (0, 2) and index_progress("bob") == (0, 2)
    record_label(folder, 1, RANKS[-1], "inconsistent", "alice")
    assert index_progress("alice") == (1, 2) and index_progress("bob") == (0, 2)


# ------------------------------------------------------------------------------------ the export


def _two_labelers(folder: Path) -> None:
    for k, rank, label, who in [
        (0, 0, "spurious", "alice"),
        (0, 1, "spurious", "alice"),
        (1, 2, "spurious", "alice"),
        (0, 0, "spurious", "bob"),
        (0, 1, "not_spurious", "bob"),
        (1, 0, "inconsistent", "bob"),
        (1, 2, "spurious", "bob"),
        (1, 2, "not_spurious", "bob"),  # bob changes his mind: his latest label counts
    ]:
        record_label(folder, k, rank, label, who)


def test_export_counts_distinct_labelers_spurious_votes(folder, tmp_path) -> None:
    _two_labelers(folder)
    one = export_components(folder, 1, tmp_path / "one.json")
    assert one == {
        "components": {"0": [0, 1], "1": [2]},
        "names": {},
        "basis": "npca",
        "model": "tiny:net",
        "weights_revision": "seed0",
        "min_votes": 1,
        "labelers": ["alice", "bob"],
    }
    two = export_components(folder, 2, tmp_path / "two.json")
    assert two["components"] == {"0": [0]} and two["min_votes"] == 2  # a not_spurious vote does not veto, it just does not count
    assert export_components(folder, 3)["components"] == {}
    assert load_components(tmp_path / "one.json") == {0: [0, 1], 1: [2]}
    assert load_components(tmp_path / "two.json") == {0: [0]}
    assert json.loads((tmp_path / "one.json").read_text()) == one


def test_export_without_labels_is_empty_and_min_votes_is_at_least_one(folder) -> None:
    assert export_components(folder)["components"] == {} and export_components(folder)["labelers"] == []
    with pytest.raises(SpurbenchError, match="at least 1"):
        export_components(folder, 0)


def _as_neurons(raw: dict) -> None:
    raw["basis"] = "neurons"
    for record in raw["classes"].values():
        for c in record["components"]:
            c.update(eigenvalue=None, neuron=100 + 7 * c["rank"] + int(record["class_index"]))


def test_the_neurons_basis_exports_neuron_indices(folder, tmp_path) -> None:
    _edit_index(folder, _as_neurons)
    record_label(folder, 1, 2, "spurious", "alice")
    record_label(folder, 1, 0, "spurious", "alice")
    payload = export_components(folder, 1, tmp_path / "neurons.json")
    assert payload["basis"] == "neurons" and payload["components"] == {"1": [101, 115]}
    assert read_labels(folder).basis == "neurons"


# ------------------------------------------------------------------------------------ the pages


@pytest.fixture
def client(folder):
    from fastapi.testclient import TestClient

    from spurbench.labelpage.app import create_app

    with TestClient(create_app(folder, "alice"), base_url=LOCAL) as test_client:
        yield test_client


def _image_sources(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_the_index_page_lists_the_classes_and_the_progress(client, folder) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "0 / 2 classes done" in page.text and "labelling as <b>alice</b>" in page.text
    for k in (0, 1):
        assert f'href="/class/{k}"' in page.text and f">class{k}</a>" in page.text
    for rank in RANKS:
        client.post("/api/labels", json={"class_index": 0, "rank": rank, "label": "not_spurious"}).raise_for_status()
    page = client.get("/").text
    assert "1 / 2 classes done" in page and 'data-index="0" data-name="class0" data-done="yes"' in page
    assert 'id="next-unlabelled" href="/class/1"' in page


def test_the_class_page_shows_every_component_with_its_images(client, folder) -> None:
    page = client.get("/class/1")
    assert page.status_code == 200
    index = read_index(folder)
    shown = sorted(index.classes["1"].components, key=lambda c: (-c.variance_share, c.rank))  # most important first
    assert [int(r) for r in re.findall(r'<section class="component" id="component-(\d+)"', page.text)] == [c.rank for c in shown]
    for position, c in enumerate(shown, 1):
        assert f'data-rank="{c.rank}" data-position="{position}"' in page.text and f"<b>{100 * c.variance_share:.1f}%</b>" in page.text
        assert f"<b>{100 * c.positive_share:.1f}%</b> of the class's images" in page.text
        assert f"raises P(class1) by <b>{100 * c.probability_effect:.1f} points</b>" in page.text
    sources = _image_sources(page.text)
    # not robust: the feature visualisation small in the heading, without its GradCAM; then the top images and the lowest
    expected = [
        f"/{f}" for c in shown for f in [c.npfv.file, *(x for t in [*c.top_images, *c.bottom_images] for x in (t.file, t.cam_file))]
    ]
    assert sources == expected and len(sources) == len(RANKS) * (1 + 2 * TOP + 2 * BOTTOM)
    for src in sources:
        image = client.get(src)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png", src
        assert image.content == (folder / src.lstrip("/")).read_bytes()
    assert page.text.count('class="label"') == 3 * len(RANKS)
    assert client.get("/class/9").status_code == 404


def test_class_names_are_escaped(folder) -> None:
    from fastapi.testclient import TestClient

    from spurbench.labelpage.app import create_app

    _edit_index(folder, lambda raw: raw["classes"]["0"].update(class_name="<script>alert(1)</script>"))
    with TestClient(create_app(folder, "<b>eve</b>"), base_url=LOCAL) as client:
        for page in (client.get("/").text, client.get("/class/0").text):
            assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
            assert "<b>eve</b>" not in page and "&lt;b&gt;eve&lt;/b&gt;" in page


def test_posting_a_label_stores_it_and_answers_with_the_class_state(client, folder) -> None:
    record_label(folder, 1, 1, "inconsistent", "bob")  # another labeler, e.g. another server on the folder
    answer = client.post("/api/labels", json={"class_index": 1, "rank": 0, "label": "spurious"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["record"]["labeler"] == "alice" and body["mine"]["0"]["label"] == "spurious"
    assert body["others"] == {"1": [{"labeler": "bob", "label": "inconsistent", "at": body["others"]["1"][0]["at"], "name": None}]}
    assert body["done"] is False and body["progress"] == {"done": 0, "total": 2, "pace": None} and body["next_unlabelled"] == 0
    assert latest(read_labels(folder))[(1, 0, "alice")].label == "spurious"
    listed = client.get("/api/labels").json()
    assert {(x["class_index"], x["rank"], x["labeler"], x["label"]) for x in listed["labels"]} == {
        (1, 0, "alice", "spurious"),
        (1, 1, "bob", "inconsistent"),
    }
    assert client.get("/api/classes/1").json()["mine"] == body["mine"]


def test_the_class_page_of_neurons_without_visualisations_or_cams(folder) -> None:
    from fastapi.testclient import TestClient

    from spurbench.labelpage.app import create_app

    def bare_neurons(raw: dict) -> None:
        _as_neurons(raw)
        raw["npfv_steps"] = 0
        for c in raw["classes"]["1"]["components"]:
            c["npfv"] = None
            for top in [*c["top_images"], *c["bottom_images"]]:
                top["cam_file"] = None

    _edit_index(folder, bare_neurons)
    with TestClient(create_app(folder, "alice"), base_url=LOCAL) as client:
        page = client.get("/class/1").text
    for rank in RANKS:
        assert re.search(rf'<h2>Component {rank}</h2>\s*<span class="neuron">neuron {101 + 7 * rank}</span>', page)
    assert "eigenvalue" not in page and "feature visualisation" not in page.split('<details class="more">')[1]
    assert page.count("no GradCAM") == len(RANKS) * (TOP + BOTTOM) and len(_image_sources(page)) == len(RANKS) * (TOP + BOTTOM)


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"class_index": 9, "rank": 0, "label": "spurious"}, 404),
        ({"class_index": 0, "rank": 9, "label": "spurious"}, 404),
        ({"class_index": 0, "rank": 0, "label": "maybe"}, 422),
        ({"class_index": 0, "label": "spurious"}, 422),
        ({"class_index": "zero", "rank": 0, "label": "spurious"}, 422),
        ({"class_index": 0, "rank": 0, "ranks": [1], "label": "spurious"}, 422),
        ({"class_index": 0, "ranks": [0, 1], "label": "spurious", "name": "sky"}, 422),
        ({"class_index": 0, "ranks": [0, 9], "label": "not_spurious"}, 404),
        ({"class_index": 0, "ranks": [], "label": "not_spurious"}, 409),
        ({"class_index": 0, "ranks": [1, 1], "label": "not_spurious"}, 409),
        ({"class_index": 0, "rank": 0, "label": "not_spurious", "name": "sky"}, 409),
        ({"class_index": 0, "rank": 0, "label": "spurious", "name": "x" * 61}, 409),
        ({"class_index": 0, "rank": 0, "label": "spurious", "name": 7}, 422),
    ],
)
def test_bad_label_requests_are_client_errors(client, folder, payload, status) -> None:
    answer = client.post("/api/labels", json=payload)
    assert answer.status_code == status and answer.json()["detail"]
    assert not (folder / LABELS_FILE).exists()


def test_another_models_labels_are_a_client_error_not_a_crash(client, folder) -> None:
    record_label(folder, 0, 0, "spurious", "alice")
    header, *lines = (folder / LABELS_FILE).read_text().splitlines()
    (folder / LABELS_FILE).write_text("\n".join([json.dumps({**json.loads(header), "weights_revision": "other"}), *lines]) + "\n")
    answer = client.post("/api/labels", json={"class_index": 0, "rank": 1, "label": "spurious"})
    assert answer.status_code == 409 and "labels of tiny:net (other" in answer.json()["detail"]


def test_an_unwritable_labels_store_is_a_client_error_not_a_crash(client, folder) -> None:
    from spurbench.discovery.labels import LOCK_FILE

    (folder / LOCK_FILE).mkdir()  # cannot be opened for writing, even by root (unlike a chmod)
    answer = client.post("/api/labels", json={"class_index": 0, "rank": 1, "label": "spurious"})
    assert answer.status_code == 409 and "cannot write the labels" in answer.json()["detail"]


def test_requests_for_another_host_name_are_refused(client) -> None:
    # a page on another site that rebinds its DNS name to 127.0.0.1 sends its own name as Host
    assert client.get("/api/labels", headers={"Host": "evil.example:8765"}).status_code == 400
    assert (
        client.post("/api/labels", headers={"Host": "evil.example"}, json={"class_index": 0, "rank": 0, "label": "spurious"}).status_code
        == 400
    )
    assert client.get("/api/labels", headers={"Host": "localhost:8765"}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/images/../discovery.json",
        "/images/..%2Fdiscovery.json",
        "/images/%2e%2e/discovery.json",
        "/images/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/images//etc/passwd",
        "/images/outside.png",
        "/images/nothing.png",
        "/images/",
    ],
)
def test_only_files_under_images_are_served(client, folder, path) -> None:
    (folder / "images" / "outside.png").symlink_to(folder / "discovery.json")  # a link out of images/
    assert client.get(path).status_code == 404


# ------------------------------------------------------------------------------------ the command line


def test_label_export_writes_what_spufix_fit_reads(cli, folder, tmp_path) -> None:
    _two_labelers(folder)
    proc = cli("label", "export", str(folder), "--out", str(tmp_path / "c.json"), "--min-votes", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "exported 1 components in 1 classes" in proc.stdout and "alice, bob" in proc.stdout
    assert load_components(tmp_path / "c.json") == {0: [0]}
    assert json.loads((tmp_path / "c.json").read_text()) == export_components(folder, 2)


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def _other_models_labels(folder: Path) -> Path:
    record_label(folder, 0, 0, "spurious", "alice")
    _edit_index(folder, lambda raw: raw["model"].update(weights_revision="seed1"))
    return folder


BAD_INPUT = {
    "serve: not a discovery folder": (lambda f, t, p: ["label", str(t)], "not a discovery folder"),
    "serve (explicit): not a discovery folder": (lambda f, t, p: ["label", "serve", str(t / "missing")], "not a discovery folder"),
    "serve: another model's labels": (lambda f, t, p: ["label", str(_other_models_labels(f))], "but the discovery is of tiny:net (seed1"),
    "serve: a blank --labeler": (lambda f, t, p: ["label", str(f), "--labeler", " "], "expected a non-empty printable name"),
    "no command": (lambda f, t, p: ["label"], "Missing command"),
    "serve: port in use": (lambda f, t, p: ["label", str(f), "--port", str(p)], "is in use; pick another with --port"),
    "serve (explicit): port in use": (lambda f, t, p: ["label", "serve", str(f), "--port", str(p)], "is in use"),
    "export: not a discovery folder": (lambda f, t, p: ["label", "export", str(t), "--out", str(t / "c.json")], "not a discovery folder"),
    "export: another model's labels": (
        lambda f, t, p: ["label", "export", str(_other_models_labels(f)), "--out", str(t / "c.json")],
        "labels of tiny:net (seed0",
    ),
    "export: --min-votes 0": (lambda f, t, p: ["label", "export", str(f), "--out", str(t / "c.json"), "--min-votes", "0"], "--min-votes 0"),
    "export: --out a folder": (lambda f, t, p: ["label", "export", str(f), "--out", str(t)], "is a folder"),
    "export: --out in a missing folder": (
        lambda f, t, p: ["label", "export", str(f), "--out", str(t / "nope" / "c.json")],
        "does not exist",
    ),
    "export: no --out": (lambda f, t, p: ["label", "export", str(f)], "--out"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(cli, folder, tmp_path, busy_port, case) -> None:
    make_args, needle = BAD_INPUT[case]
    args = make_args(folder, tmp_path / "work", busy_port)
    (tmp_path / "work").mkdir(exist_ok=True)
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    one_line_error(proc, needle)
    assert not (tmp_path / "work" / "c.json").exists() and "http://" not in proc.stdout  # nothing exported, nothing served


def test_serve_defaults_to_the_os_user_and_serves_on_localhost(cli, folder, tmp_path, monkeypatch) -> None:
    from spurbench.labelpage import server

    served = []
    monkeypatch.setattr(server, "serve", lambda app, sock: served.append(sock.getsockname()))
    port = free_port()
    proc = cli("label", str(folder), "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"as {getpass.getuser()}: http://127.0.0.1:{port}/" in proc.stdout and served == [("127.0.0.1", port)]


@pytest.mark.parametrize("args", [["label", "--help"], ["label", "export", "--help"], ["label", "serve", "--help"]])
def test_label_help(cli, tmp_path, args) -> None:
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    assert "getpass.getuser()" in cli("label", "serve", "--help", cwd=tmp_path).stdout


@pytest.mark.skipif(OLD_TYPER is None, reason="SPURBENCH_OLD_TYPER_PATH names no typer of the line with the click package")
def test_the_label_group_works_with_the_older_typer(folder, tmp_path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([OLD_TYPER, str(ROOT)])}
    helped = spurbench("label", "--help", cwd=tmp_path, env=env)
    assert helped.returncode == 0 and "export" in helped.stdout and "serve" in helped.stdout, helped.stderr
    routed = spurbench("label", str(tmp_path), cwd=tmp_path, env=env)  # DIR first: the serve command
    assert routed.returncode == 2
    one_line_error(routed, "not a discovery folder")
    record_label(folder, 0, 2, "spurious", "alice")
    exported = spurbench("label", "export", str(folder), "--out", str(tmp_path / "c.json"), cwd=tmp_path, env=env)
    assert exported.returncode == 0, exported.stderr
    assert load_components(tmp_path / "c.json") == {0: [2]}
