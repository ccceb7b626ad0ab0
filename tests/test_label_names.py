"""Labelling at scale, without a browser: names for spurious features (stored, chosen, exported, read by
``spufix fit`` and ``mine``), "the rest are not spurious" in one write, the page's order by importance,
the measured pace, and labels stores written before names (read as they are, then added to)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spurbench.discovery.index import read_index
from spurbench.discovery.label_export import export_components
from spurbench.discovery.labels import LABELS_FILE, LabelRecord, LabelsFile, check_name, latest, read_labels, record_label
from spurbench.errors import SpurbenchError
from spurbench.labelpage.app import create_app
from spurbench.labelpage.label_state import BREAK_S, done_classes, pace
from spurbench.labelpage.label_view import LabelViews
from spurbench.spufix.components import read_components
from tests.support.label_server import tiny_discovery

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    return tiny_discovery(tmp_path_factory, [0, 1], components=3, top=2, bottom=1)


@pytest.fixture
def folder(made, tmp_path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "discovery"))


@pytest.fixture
def client(folder):
    with TestClient(create_app(folder, "alice"), base_url=LOCAL) as test_client:
        yield test_client


def test_a_name_is_one_short_line_on_a_spurious_label_only() -> None:
    assert check_name("  bird \n feeder ", "spurious") == "bird feeder"
    assert check_name("   ", "spurious") is None and check_name(None, "not_spurious") is None
    with pytest.raises(SpurbenchError, match="a name is for a spurious label"):
        check_name("sky", "not_spurious")
    with pytest.raises(SpurbenchError, match="61 characters, at most 60"):
        check_name("x" * 61, "spurious")


def test_a_named_label_travels_through_the_export_to_what_spufix_and_mine_read(folder, tmp_path) -> None:
    record_label(folder, 0, 1, "spurious", "alice", name="bird  feeder")
    record_label(folder, 0, 2, "spurious", "alice")  # spurious, unnamed
    record_label(folder, 1, 0, "not_spurious", "alice")
    assert latest(read_labels(folder))[(0, 1, "alice")].name == "bird feeder"
    payload = export_components(folder, 1, tmp_path / "c.json")
    assert payload["components"] == {"0": [1, 2]} and payload["names"] == {"0": {"1": "bird feeder"}}
    found = read_components(tmp_path / "c.json")
    assert found.table == {0: [1, 2]} and found.names == {0: {1: "bird feeder"}}


def test_the_export_names_a_component_as_most_labelers_did_and_of_a_tie_the_latest(folder, tmp_path) -> None:
    for who, name in (("alice", "sky"), ("bob", "sky"), ("carol", "blue sky")):
        record_label(folder, 0, 0, "spurious", who, name=name)
    record_label(folder, 1, 2, "spurious", "alice", name="grass")
    record_label(folder, 1, 2, "spurious", "bob", name="lawn")  # one each: the later one
    record_label(folder, 1, 1, "spurious", "alice", name="fence")  # one vote: not exported at --min-votes 2, nor named
    assert export_components(folder, 1)["names"] == {"0": {"0": "sky"}, "1": {"1": "fence", "2": "lawn"}}
    assert export_components(folder, 2)["names"] == {"0": {"0": "sky"}, "1": {"2": "lawn"}}
    record_label(folder, 0, 0, "not_spurious", "bob")  # bob's latest label has no name any more
    record_label(folder, 0, 0, "spurious", "dave", name="blue sky")
    assert export_components(folder, 1)["names"]["0"] == {"0": "blue sky"}


def test_the_neurons_basis_names_its_units(folder) -> None:
    raw = json.loads((folder / "discovery.json").read_text())
    raw["basis"] = "neurons"
    for record in raw["classes"].values():
        for c in record["components"]:
            c.update(eigenvalue=None, neuron=100 + c["rank"])
    (folder / "discovery.json").write_text(json.dumps(raw))
    record_label(folder, 1, 2, "spurious", "alice", name="water")
    assert export_components(folder, 1)["names"] == {"1": {"102": "water"}}


@pytest.mark.parametrize(
    "names, needle",
    [
        ({"0": {"5": "sky"}}, "class 0 component 5 is not among the listed components"),
        ({"3": {"1": "sky"}}, "class 3 component 1 is not among the listed components"),
        ({"0": {"1": "x" * 61}}, "is not a feature name (one line, 1 to 60 characters)"),
        ({"0": {"1": "two\nlines"}}, "is not a feature name"),
        ({"0": {"1": 7}}, "is not a feature name"),
        ({"0": ["sky"]}, "names must map class indices to {component: name} tables"),
        (["sky"], "names must map class indices"),
    ],
)
def test_bad_names_in_a_components_file_are_one_line_errors(tmp_path, names, needle) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"components": {"0": [1]}, "names": names}))
    with pytest.raises(SpurbenchError, match=re.escape(needle)):
        read_components(path)


def test_the_rest_of_a_class_is_labelled_in_one_write(client, folder) -> None:
    client.post("/api/labels", json={"class_index": 0, "rank": 1, "label": "spurious", "name": "sky"}).raise_for_status()
    before = (folder / LABELS_FILE).read_text().splitlines()
    answer = client.post("/api/labels", json={"class_index": 0, "ranks": [0, 2], "label": "not_spurious"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(r["rank"], r["label"]) for r in body["records"]] == [(0, "not_spurious"), (2, "not_spurious")]
    assert body["done"] is True and body["next_unlabelled"] == 1 and body["mine"]["1"]["name"] == "sky"
    after = (folder / LABELS_FILE).read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 2
    assert len({json.loads(line)["at"] for line in after[len(before) :]}) == 1  # one write, one time
    refused = client.post("/api/labels", json={"class_index": 1, "ranks": [0, 7], "label": "not_spurious"})
    assert refused.status_code == 404 and (folder / LABELS_FILE).read_text().splitlines() == after  # nothing of it written


def test_names_used_in_the_folder_are_offered_most_used_first(client, folder) -> None:
    record_label(folder, 0, 0, "spurious", "bob", name="watermark")
    record_label(folder, 1, 0, "spurious", "carol", name="watermark")
    record_label(folder, 1, 1, "spurious", "bob", name="Bird feeder")
    body = client.get("/api/classes/0").json()
    assert body["names"] == ["watermark", "Bird feeder"] and body["others"]["0"][0]["name"] == "watermark"
    page = client.get("/class/0").text
    assert '<datalist id="feature-names"><option value="watermark"><option value="Bird feeder"></datalist>' in page


def test_the_class_page_orders_by_importance_or_by_rank_and_keeps_the_order_on_its_links(client, folder) -> None:
    components = read_index(folder).classes["0"].components
    by_share = [c.rank for c in sorted(components, key=lambda c: (-c.variance_share, c.rank))]
    assert by_share != [0, 1, 2]  # (the tiny model's shares do not follow rank, as the issue found on real models)

    def shown(html: str) -> list[int]:
        return [int(r) for r in re.findall(r'id="component-(\d+)" data-rank', html)]

    default, ranked = client.get("/class/0").text, client.get("/class/0?order=rank").text
    assert shown(default) == by_share and shown(ranked) == [0, 1, 2]
    assert 'id="next-class" href="/class/1?order=rank"' in ranked and 'id="next-class" href="/class/1"' in default
    assert client.get("/class/0?order=size").status_code == 422


def _at(start: datetime, seconds: float) -> datetime:
    return start + timedelta(seconds=seconds)


def test_the_pace_is_the_median_time_a_class_took_breaks_left_out(folder) -> None:
    raw = json.loads((folder / "discovery.json").read_text())
    for k in (2, 3, 4):  # five classes, copies of class 1
        raw["classes"][str(k)] = {**raw["classes"]["1"], "class_index": k}
    (folder / "discovery.json").write_text(json.dumps(raw))
    index, start = read_index(folder), datetime(2026, 1, 1, tzinfo=timezone.utc)
    finished = {0: 10, 1: 30, 2: 30 + BREAK_S + 1, 3: 30 + BREAK_S + 51}  # gaps 20, a break, 50
    records = [
        LabelRecord(class_index=k, rank=r, label="not_spurious", labeler="alice", at=_at(start, t - 2 + r))
        for k, t in finished.items()
        for r in range(3)
    ]
    records.append(LabelRecord(class_index=4, rank=0, label="spurious", labeler="alice", at=_at(start, 5000)))  # class 4 not done
    labels = LabelsFile(model="tiny:net", weights_revision="seed0", basis="npca", records=records)

    def measured(who: str) -> dict | None:
        return LabelViews().read(labels, lambda view: pace(index, view, done_classes(index, view, who), who))

    assert measured("alice") == {"seconds_per_class": 35.0, "seconds_left": 35.0} and measured("bob") is None


def test_a_store_written_before_names_is_read_and_added_to(folder, client) -> None:
    """labels.jsonl as today's pages wrote it (no "name" in its records) keeps every label, and takes named ones after."""
    header = {"ledger": "labels", "format": 2, "model": "tiny:net", "weights_revision": "seed0", "basis": "npca"}
    old = [
        {"class_index": 0, "rank": 0, "label": "spurious", "labeler": "bob", "at": "2026-11-01T10:00:00Z"},
        {"class_index": 0, "rank": 1, "label": "not_spurious", "labeler": "bob", "at": "2026-11-01T10:00:05Z"},
    ]
    text = "\n".join(json.dumps(line, separators=(",", ":")) for line in [header, *old]) + "\n"
    (folder / LABELS_FILE).write_text(text)
    assert [(r.rank, r.label, r.name) for r in read_labels(folder).records] == [(0, "spurious", None), (1, "not_spurious", None)]
    client.post("/api/labels", json={"class_index": 0, "rank": 2, "label": "spurious", "name": "sky"}).raise_for_status()
    stored = (folder / LABELS_FILE).read_text()
    assert stored.startswith(text) and len(stored.splitlines()) == 4  # appended, nothing rewritten
    assert export_components(folder)["names"] == {"0": {"2": "sky"}} and export_components(folder)["components"] == {"0": [0, 2]}
