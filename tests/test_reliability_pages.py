"""Issue 23, the label and verify pages and their stores: no file served outside the folder (symlinks
at every level), strict request bodies checked from the pages' OpenAPI schema with property-based
requests, the append-only ledger (O(1) saves, crash and migration behaviour), `label export` refusals
and warnings, and the cheap checks made before torch is imported. The browser test of fast keyboard
labelling is at the end (slow)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spurbench.errors import SpurbenchError
from tests.support.label_server import free_port, tiny_discovery
from tests.support.one_line import one_line_error
from tests.test_verify import mined  # noqa: F401  (a module-scoped fixture: a real tiny mining folder)

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "http://127.0.0.1:8765"
LEGACY = "labels.json"  # what spurbench wrote before the ledger


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A real discovery of the tiny model: classes 0 and 1, three components, two top images each."""
    return tiny_discovery(tmp_path_factory, [0, 1], components=3, top=2)


@pytest.fixture
def folder(made, tmp_path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "discovery"))


@pytest.fixture
def mining(mined, tmp_path) -> Path:  # noqa: F811
    return Path(shutil.copytree(mined, tmp_path / "mining"))


def _record_count(folder: Path) -> int:
    from spurbench.discovery.labels import read_labels

    return len(read_labels(folder).records)


def _legacy_labels(folder: Path, records: list[tuple[int, int, str, str]]) -> str:
    """A format-1 labels.json as spurbench wrote it before the ledger; returns its text."""
    index = json.loads((folder / "discovery.json").read_text())
    raw = {
        "format": 1,
        "model": index["model"]["name"],
        "weights_revision": index["model"]["weights_revision"],
        "basis": index["basis"],
        "records": [
            {"class_index": k, "rank": r, "label": label, "labeler": who, "at": f"2024-01-01T00:00:{i % 60:02d}Z"}
            for i, (k, r, label, who) in enumerate(records)
        ],
    }
    text = json.dumps(raw, indent=1) + "\n"
    (folder / LEGACY).write_text(text)
    return text


# ------------------------------------------------------------------ security: served files stay inside DIR


def _link(path: Path, target: str | Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    path.symlink_to(target)


def _out_of(folder: Path, absolute: bool) -> str:
    """A link target that is the machine's root: absolute, or relative through enough ``..``."""
    return "/" if absolute else os.path.relpath("/", folder)


@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_a_label_folder_whose_images_lead_out_is_refused_at_start(folder, absolute) -> None:
    from spurbench.labelpage.app import create_app

    _link(folder / "images", _out_of(folder, absolute))
    with pytest.raises(SpurbenchError, match="leads out of") as caught:
        create_app(folder, "alice")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("served", ["thumbs", "reference"])
@pytest.mark.parametrize("absolute", [True, False], ids=["absolute", "relative"])
def test_a_mining_folder_whose_served_folders_lead_out_is_refused_at_start(mining, served, absolute) -> None:
    from spurbench.labelpage.verdict_pages import create_verdict_app

    _link(mining / served, _out_of(mining, absolute))
    with pytest.raises(SpurbenchError, match="leads out of"):
        create_verdict_app(mining, "alice")


def test_the_pages_refuse_to_start_through_the_cli(cli, folder, mining, tmp_path, monkeypatch) -> None:
    from spurbench.labelpage import server

    served = []
    monkeypatch.setattr(server, "serve", lambda app, sock: served.append(sock))  # today's code would serve / forever
    _link(folder / "images", "/")
    _link(mining / "thumbs", "/")
    for args in (["label", str(folder)], ["label", str(mining), "--mode", "verify"]):
        proc = cli(*args, "--port", str(free_port()), cwd=tmp_path)
        one_line_error(proc, "leads out of", "spurbench reads only inside the folder it was given")
    assert served == []


SNEAKY = [
    "/{d}/../discovery.json",
    "/{d}/..%2Fdiscovery.json",
    "/{d}/%2e%2e/discovery.json",
    "/{d}/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/{d}//etc/passwd",
    "/{d}/%2Fetc%2Fpasswd",
    "/{d}/..%5Cdiscovery.json",
    "/{d}/..\\discovery.json",
    "/{d}/%00",
    "/{d}/abs-file.png",
    "/{d}/rel-file.png",
    "/{d}/abs-dir/passwd",
    "/{d}/rel-dir/passwd",
    "/{d}/sub/abs-file.png",
    "/{d}/sub/rel-dir/passwd",
    "/{d}/to-sibling.png",
]


def _plant_links(served: Path, folder: Path) -> None:
    """Links out of ``served`` at every level below it: files and folders, absolute and relative, one to
    a sibling file of the folder; plus links that stay inside (served)."""
    (served / "abs-file.png").symlink_to("/etc/passwd")
    (served / "rel-file.png").symlink_to(os.path.relpath("/etc/passwd", served))
    (served / "abs-dir").symlink_to("/etc")
    (served / "rel-dir").symlink_to(os.path.relpath("/etc", served))
    (served / "sub").mkdir()
    (served / "sub" / "abs-file.png").symlink_to("/etc/passwd")
    (served / "sub" / "rel-dir").symlink_to(os.path.relpath("/etc", served / "sub"))
    (served / "to-sibling.png").symlink_to(
        folder / "discovery.json" if (folder / "discovery.json").exists() else folder / "candidates.json"
    )
    inside = next(p for p in sorted(served.rglob("*.png")) if not p.is_symlink())
    (served / "sub" / "alias.png").symlink_to(os.path.relpath(inside, served / "sub"))
    (served / "loop").symlink_to(".")


def _assert_nothing_leaks(client: TestClient, prefix: str) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    for path in SNEAKY:
        answer = client.get(path.format(d=prefix))
        assert answer.status_code in (404, 400), (path, answer.status_code)
        assert answer.content != passwd and b"root:" not in answer.content, path
    assert client.get(f"/{prefix}/sub/alias.png").status_code == 200  # a link that stays inside is served
    assert client.get(f"/{prefix}/loop/sub/alias.png").status_code == 200


def test_the_label_page_serves_no_file_outside_the_folder(folder) -> None:
    from spurbench.labelpage.app import create_app

    _plant_links(folder / "images", folder)
    with TestClient(create_app(folder, "alice"), base_url=LOCAL) as client:
        _assert_nothing_leaks(client, "images")
        # made a link out after the start: refused per request, not only at start
        shutil.move(folder / "images", folder.parent / "moved")
        (folder / "images").symlink_to("/")
        assert client.get("/images/etc/passwd").status_code == 404


@pytest.mark.parametrize("served", ["thumbs", "reference"])
def test_the_verify_page_serves_no_file_outside_the_folder(mining, served) -> None:
    from spurbench.labelpage.verdict_pages import create_verdict_app

    _plant_links(mining / served, mining)
    with TestClient(create_verdict_app(mining, "alice"), base_url=LOCAL) as client:
        _assert_nothing_leaks(client, f"files/{served}")
        for bad in ("/files/candidates.json", "/files/etc/passwd", "/files//etc/passwd", "/files/%2Fetc%2Fpasswd"):
            assert client.get(bad).status_code == 404, bad
        shutil.move(mining / served, mining.parent / "moved")
        (mining / served).symlink_to("/")
        assert client.get(f"/files/{served}/etc/passwd").status_code == 404


# ------------------------------------------------------------------ case 3: strict bodies, from the schema


@pytest.mark.parametrize(
    "body",
    [
        {"class_index": 0, "rank": True, "label": "spurious"},
        {"class_index": True, "rank": 0, "label": "spurious"},
        {"class_index": 0, "rank": 0.0, "label": "spurious"},
        {"class_index": "0", "rank": 0, "label": "spurious"},
        {"class_index": 0, "rank": 0, "label": "spurious", "labeler": "mallory"},
    ],
    ids=["rank-true", "class-true", "rank-float", "class-string", "extra-field"],
)
def test_a_malformed_label_body_is_refused_and_stores_nothing(folder, body) -> None:
    from spurbench.labelpage.app import create_app

    with TestClient(create_app(folder, "alice"), base_url=LOCAL) as client:
        answer = client.post("/api/labels", json=body)
    assert answer.status_code == 422, answer.text
    assert _record_count(folder) == 0


@pytest.mark.parametrize(
    "change",
    [{"class_index": True}, {"image_id": 7}, {"class_index": 1.0}, {"extra": 1}],
    ids=["class-true", "id-number", "class-float", "extra-field"],
)
def test_a_malformed_verdict_body_is_refused_and_stores_nothing(mining, change) -> None:
    from spurbench.labelpage.verdict_pages import create_verdict_app
    from spurbench.mining.index import candidates_by_class, read_mining
    from spurbench.mining.verdicts import read_verdicts

    image = candidates_by_class(read_mining(mining))[1][0].image_id
    with TestClient(create_verdict_app(mining, "alice"), base_url=LOCAL) as client:
        answer = client.post("/api/verdicts", json={"class_index": 1, "image_id": image, "verdict": "absent", **change})
    assert answer.status_code == 422, answer.text
    assert read_verdicts(mining).records == []


def _property_run(app, post_path: str, valid_bodies, count, check_record, examples: int = 250) -> dict[int, int]:
    """Requests drawn from ``app``'s OpenAPI schema (schemathesis, positive and negative) plus valid
    bodies (so that 2xx answers are reached too): no 5xx; a 2xx to a POST stored exactly the answer's
    record, made of exactly what was sent (no coerced value: ``true`` is no 1), a 4xx stored nothing.
    Returns how many answers had each status."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    # The apps publish no schema (openapi_url=None: a local page for one person needs none, and each
    # route less is less to defend); app.openapi() still builds it from the routes and their models.
    schema = schemathesis.openapi.from_dict(app.openapi())
    valid = valid_bodies.map(lambda body: {"method": "POST", "url": LOCAL + post_path, "json": body, "headers": {}, "params": {}})
    drawn = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE), schema.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    ).map(lambda case: case.as_transport_kwargs(base_url=LOCAL))
    statuses: dict[int, int] = {}
    with TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client:

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        @given(st.one_of(drawn, valid))
        def request(kwargs: dict) -> None:
            before = count()
            body = {"json": kwargs["json"]} if "json" in kwargs else {"content": kwargs["data"]} if "data" in kwargs else {}
            headers = {k: v for k, v in kwargs.get("headers", {}).items() if k.lower() not in ("host", "content-length")}
            answer = client.request(kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, **body)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, (kwargs, answer.text)
            after = count()
            if kwargs["method"] == "POST" and 200 <= answer.status_code < 300:
                assert after == before + 1, kwargs
                sent = kwargs["json"] if "json" in kwargs else json.loads(kwargs["data"])
                check_record(answer.json()["record"], sent)
            else:
                assert 400 <= answer.status_code < 500 or kwargs["method"] == "GET", (kwargs, answer.status_code)
                assert after == before, (kwargs, answer.status_code)

        request()
    return statuses


def _exactly(sent: object, stored, fields: tuple[str, ...]) -> bool:
    """The body sent holds the stored record's fields and nothing else, each of the very same type."""
    return (
        isinstance(sent, dict)
        and set(sent) == set(fields)
        and all(type(sent[f]) is type(getattr(stored, f)) and sent[f] == getattr(stored, f) for f in fields)
    )


@pytest.mark.slow
def test_the_label_page_from_its_schema(folder) -> None:
    from hypothesis import strategies as st

    from spurbench.discovery.labels import LABELS, LabelRecord, read_labels
    from spurbench.labelpage.app import create_app

    def stored_as_answered(record: dict, sent: dict) -> None:
        last = read_labels(folder).records[-1]
        assert (
            last == LabelRecord.model_validate(record)
            and last.labeler == "alice"
            and (last.class_index, last.rank) in {(k, r) for k in (0, 1) for r in range(3)}
        )
        assert _exactly(sent, last, ("class_index", "rank", "label")), (sent, last)

    bodies = st.fixed_dictionaries(
        {"class_index": st.sampled_from([0, 1]), "rank": st.sampled_from([0, 1, 2]), "label": st.sampled_from(LABELS)}
    )
    statuses = _property_run(create_app(folder, "alice"), "/api/labels", bodies, lambda: _record_count(folder), stored_as_answered)
    assert statuses.get(200) and statuses.get(422) and statuses.get(404), statuses  # every kind of answer was reached


@pytest.mark.slow
def test_the_verify_page_from_its_schema(mining) -> None:
    from hypothesis import strategies as st

    from spurbench.labelpage.verdict_pages import create_verdict_app
    from spurbench.mining.index import candidates_by_class, read_mining
    from spurbench.mining.verdicts import VERDICTS, VerdictRecord, read_verdicts

    pairs = [(k, c.image_id) for k, cands in candidates_by_class(read_mining(mining)).items() for c in cands]

    def stored_as_answered(record: dict, sent: dict) -> None:
        last = read_verdicts(mining).records[-1]
        assert last == VerdictRecord.model_validate(record) and last.labeler == "alice" and (last.class_index, last.image_id) in pairs
        assert _exactly(sent, last, ("class_index", "image_id", "verdict")), (sent, last)

    bodies = st.tuples(st.sampled_from(pairs), st.sampled_from(VERDICTS)).map(
        lambda t: {"class_index": t[0][0], "image_id": t[0][1], "verdict": t[1]}
    )
    statuses = _property_run(
        create_verdict_app(mining, "alice"), "/api/verdicts", bodies, lambda: len(read_verdicts(mining).records), stored_as_answered
    )
    assert statuses.get(200) and statuses.get(422) and statuses.get(404), statuses


# ------------------------------------------------------------------ case 7: the ledger


def test_labels_written_before_the_ledger_are_read_then_migrated(folder) -> None:
    from spurbench.discovery.labels import LABELS_FILE, latest, read_labels, record_label

    old = [(0, 0, "spurious", "bob"), (0, 1, "not_spurious", "bob"), (0, 0, "inconsistent", "bob"), (1, 2, "spurious", "carol")]
    text = _legacy_labels(folder, old)
    labels = read_labels(folder)
    assert [(r.class_index, r.rank, r.label, r.labeler) for r in labels.records] == old
    assert (folder / LEGACY).read_text() == text and not (folder / LABELS_FILE).exists()  # reading writes nothing
    record_label(folder, 0, 0, "spurious", "alice")
    after = read_labels(folder)
    assert [(r.class_index, r.rank, r.label, r.labeler) for r in after.records] == old + [(0, 0, "spurious", "alice")]
    assert latest(after)[(0, 0, "bob")].label == "inconsistent" and after.records[0].at == labels.records[0].at
    assert not (folder / LEGACY).exists() and (folder / (LEGACY + ".migrated")).read_text() == text  # kept, never read again
    lines = (folder / LABELS_FILE).read_text().splitlines()
    assert (
        json.loads(lines[0]) == {"ledger": "labels", "format": 2, "model": "tiny:net", "weights_revision": "seed0", "basis": "npca"}
        and len(lines) == 1 + len(old) + 1
    )


def test_legacy_labels_of_another_model_are_not_migrated(folder) -> None:
    from spurbench.discovery.labels import LABELS_FILE, record_label

    text = _legacy_labels(folder, [(0, 0, "spurious", "bob")]).replace('"tiny:net"', '"tiny:other"')
    (folder / LEGACY).write_text(text)
    with pytest.raises(SpurbenchError, match="labels of tiny:other .* but the discovery is of tiny:net"):
        record_label(folder, 0, 1, "spurious", "alice")
    assert (folder / LEGACY).read_text() == text and not (folder / LABELS_FILE).exists()


def test_verdicts_written_before_the_ledger_are_read_then_migrated(mining) -> None:
    from spurbench.mining.index import candidates_by_class, read_mining
    from spurbench.mining.verdicts import VERIFY_FILE, read_verdicts, record_verdict

    index = read_mining(mining)
    image = candidates_by_class(index)[1][0].image_id
    old = {
        "format": 1,
        "model": index.model.name,
        "weights_revision": index.model.weights_revision,
        "pool_revision": index.pool.revision,
        "records": [{"class_index": 1, "image_id": image, "verdict": "present", "labeler": "bob", "at": "2024-01-01T00:00:00Z"}],
    }
    (mining / "verify.json").write_text(json.dumps(old))
    assert [r.verdict for r in read_verdicts(mining).records] == ["present"]
    record_verdict(mining, 1, image, "absent", "alice")
    assert [(r.verdict, r.labeler) for r in read_verdicts(mining).records] == [("present", "bob"), ("absent", "alice")]
    assert (mining / VERIFY_FILE).exists() and (mining / "verify.json.migrated").exists() and not (mining / "verify.json").exists()


def test_a_torn_last_line_is_ignored_then_cut_by_the_next_save(folder) -> None:
    from spurbench.discovery.labels import LABELS_FILE, labels_ledger, read_labels, record_label

    record_label(folder, 0, 0, "spurious", "alice")
    ledger = labels_ledger(folder)
    assert len(read_labels(folder, ledger=ledger).records) == 1
    with open(folder / LABELS_FILE, "ab") as handle:  # a writer killed mid-line: never acknowledged
        handle.write(b'{"class_index": 0, "rank": 1, "lab')
    assert len(read_labels(folder, ledger=ledger).records) == 1 and len(read_labels(folder).records) == 1
    record_label(folder, 0, 2, "not_spurious", "alice")
    assert [(r.rank, r.label) for r in read_labels(folder, ledger=ledger).records] == [(0, "spurious"), (2, "not_spurious")]
    assert (folder / LABELS_FILE).read_text().count("\n") == 3 and '"rank": 1, "lab' not in (folder / LABELS_FILE).read_text()


@pytest.mark.parametrize(
    "line, needle",
    [
        (b"{not json}\n", "at line 3"),
        (b'{"class_index": 0, "rank": true, "label": "spurious", "labeler": "a", "at": "2024-01-01T00:00:00Z"}\n', "at line 3: rank"),
        (b'{"class_index": 0, "rank": 0, "rank": 1, "label": "spurious", "labeler": "a", "at": "2024-01-01T00:00:00Z"}\n', "duplicate key"),
    ],
)
def test_a_bad_line_inside_the_ledger_is_a_one_line_error_never_skipped(folder, line, needle) -> None:
    from spurbench.discovery.labels import LABELS_FILE, read_labels, record_label

    record_label(folder, 0, 0, "spurious", "alice")
    with open(folder / LABELS_FILE, "ab") as handle:
        handle.write(line)
    record_label(folder, 0, 1, "spurious", "alice")  # appending needs only the header: O(1)
    with pytest.raises(SpurbenchError, match=needle) as caught:
        read_labels(folder)
    assert "\n" not in str(caught.value)


def test_an_app_sees_labels_saved_by_another_server_and_a_replaced_ledger(folder) -> None:
    from spurbench.discovery.labels import LABELS_FILE, record_label
    from spurbench.labelpage.app import create_app

    with TestClient(create_app(folder, "alice"), base_url=LOCAL) as client:
        client.post("/api/labels", json={"class_index": 0, "rank": 0, "label": "spurious"}).raise_for_status()
        record_label(folder, 0, 1, "inconsistent", "bob")  # another server on the folder
        assert client.get("/api/classes/0").json()["others"]["1"][0]["labeler"] == "bob"
        lines = (folder / LABELS_FILE).read_text().splitlines()
        (folder / "new.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n")
        os.replace(folder / "new.jsonl", folder / LABELS_FILE)  # replaced by a shorter file: read again whole
        labels = client.get("/api/labels").json()["labels"]
        assert [(x["labeler"], x["rank"]) for x in labels] == [("bob", 1)]


def test_the_cheap_checks_name_the_discoverys_own_files() -> None:
    from spurbench.discovery import labels
    from spurbench.discovery.images import IMAGES_DIR
    from spurbench.discovery.index import BASES_DIR, INDEX_FILE
    from spurbench.mining import verdicts as verification
    from spurbench.mining.index import INDEX_FILE as MINING_INDEX
    from spurbench.mining.pipeline import REFERENCE_DIR
    from spurbench.mining.thumbnails import THUMBS_DIR

    assert labels.DISCOVERY_FILE == INDEX_FILE and labels.DISCOVERY_FOLDERS == (IMAGES_DIR, BASES_DIR)  # [0] is the served one
    assert verification.MINING_FILE == MINING_INDEX and verification.SERVED_FOLDERS == (THUMBS_DIR, REFERENCE_DIR)


def test_a_long_or_looping_name_is_a_404_not_a_500(tmp_path) -> None:
    from spurbench.files import file_inside

    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for name in ("a" * 300, "a/" * 3000, "loop/x"):  # ENAMETOOLONG and ELOOP, which Path.is_file re-raises
        assert file_inside(tmp_path, name) is None


def test_a_link_in_place_of_the_ledger_or_its_lock_is_refused(tmp_path) -> None:
    from spurbench.discovery.labels import LabelRecord, labels_ledger
    from spurbench.errors import SpurbenchError

    outside = tmp_path / "outside"
    outside.mkdir()
    for own in ("lock", "path"):
        folder = tmp_path / own
        folder.mkdir()
        ledger = labels_ledger(folder)
        getattr(ledger, own).symlink_to(outside / f"{own}.target")  # dangling: a save would create it out there
        record = LabelRecord(class_index=0, rank=0, label="spurious", labeler="a", at="2026-01-01T00:00:00Z")
        with pytest.raises(SpurbenchError, match="leads out of"):
            ledger.append(record, {"model": "m", "weights_revision": None, "basis": "npca"})
        assert not list(outside.iterdir())


# ------------------------------------------------------------------ case 5 and 8: what label export writes


def _aliases(folder: Path, tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "alias.json").symlink_to(folder / LEGACY)
    (tmp_path / "dir-alias").symlink_to(folder)
    return {
        "labels.json": folder / LEGACY,
        "labels.jsonl": folder / "labels.jsonl",
        "discovery.json": folder / "discovery.json",
        "lock": folder / ".labels.lock",
        "dotdot": folder / "images" / ".." / LEGACY,
        "file link": tmp_path / "alias.json",
        "folder link": tmp_path / "dir-alias" / "discovery.json",
        "an image": next((folder / "images").rglob("*.png")),
    }


@pytest.mark.parametrize(
    "target", ["labels.json", "labels.jsonl", "discovery.json", "lock", "dotdot", "file link", "folder link", "an image"]
)
def test_export_never_writes_over_the_folders_own_files(cli, folder, tmp_path, target) -> None:
    text = _legacy_labels(folder, [(0, 0, "spurious", "bob")])
    out = _aliases(folder, tmp_path)[target]
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    proc = cli("label", "export", str(folder), "--out", str(out), cwd=tmp_path)
    one_line_error(proc, f"--out {out}", "write the components to another file")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before and (folder / LEGACY).read_text() == text


@pytest.mark.parametrize("labels", [[], [(0, 0, "not_spurious", "bob"), (1, 1, "inconsistent", "bob")]], ids=["no labels", "none spurious"])
def test_export_of_nothing_is_an_error_not_an_empty_file(cli, folder, tmp_path, labels) -> None:
    if labels:
        _legacy_labels(folder, labels)
    proc = cli("label", "export", str(folder), "--out", str(tmp_path / "c.json"), cwd=tmp_path)
    one_line_error(proc, "no component has 1 or more 'spurious' votes", "nothing to export")
    assert not (tmp_path / "c.json").exists()


def test_labels_of_components_the_discovery_lacks_are_named_in_a_warning(cli, folder, tmp_path) -> None:
    _legacy_labels(
        folder, [(0, 0, "spurious", "bob"), (7, 0, "spurious", "bob"), (1, 9, "spurious", "carol"), (1, 1, "not_spurious", "bob")]
    )
    proc = cli("label", "export", str(folder), "--out", str(tmp_path / "c.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "warning: 2 label(s) name classes or components the discovery does not have (first: class 1 rank 9); they are left out of the export"
    ]
    assert json.loads((tmp_path / "c.json").read_text())["components"] == {"0": [0]}


# ------------------------------------------------------------------ case 9: cheap checks before torch

CHILD = """
import sys
from spurbench.cli import main
try:
    main(sys.argv[1:])
    code = 0
except SystemExit as exc:
    code = exc.code
print("torch imported" if "torch" in sys.modules else "no torch", code)
"""


def _child(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", CHILD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # nine fresh interpreters
def test_bad_folders_ports_and_outs_fail_before_torch_is_imported(folder, mining, tmp_path) -> None:
    (tmp_path / "corrupt").mkdir()
    shutil.copy(folder / "discovery.json", tmp_path / "corrupt" / "discovery.json")
    (tmp_path / "corrupt" / LEGACY).write_text("{not json")
    labelled = Path(shutil.copytree(folder, tmp_path / "labelled"))
    _legacy_labels(labelled, [(0, 0, "spurious", "bob")])
    other = Path(shutil.copytree(folder, tmp_path / "other"))
    _legacy_labels(other, [(0, 0, "spurious", "bob")])
    (other / LEGACY).write_text((other / LEGACY).read_text().replace('"seed0"', '"seed9"'))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        cases = {
            "serve: not a discovery folder": (["label", str(tmp_path)], "not a discovery folder"),
            "serve: a corrupt labels file": (["label", str(tmp_path / "corrupt"), "--port", port], "not a valid labels file"),
            "serve: another model's labels": (["label", str(other)], "but the discovery is of tiny:net (seed0"),
            "serve: port in use": (["label", str(folder), "--port", port], "is in use"),
            "verify: not a mining folder": (["label", str(tmp_path), "--mode", "verify"], "not a mining folder"),
            "verify: port in use": (["label", str(mining), "--port", port], "is in use"),
            "export: not a discovery folder": (
                ["label", "export", str(tmp_path), "--out", str(tmp_path / "c.json")],
                "not a discovery folder",
            ),
            "export: --out is the labels": (
                ["label", "export", str(labelled), "--out", str(labelled / LEGACY)],
                "write the components to another file",
            ),
            "export: a corrupt labels file": (
                ["label", "export", str(tmp_path / "corrupt"), "--out", str(tmp_path / "c.json")],
                "not a valid labels file",
            ),
        }
        for name, (args, needle) in cases.items():
            proc = _child(*args, cwd=tmp_path)
            assert proc.stdout.split() == ["no", "torch", "2"], (name, proc.stdout, proc.stderr)
            assert needle in proc.stderr and proc.stderr.count("\n") == 1, (name, proc.stderr)


# ------------------------------------------------------------------ case 7: keys faster than saves, in the browser

SAVE_DELAY = 0.4  # seconds each save is held back by the test's server: far slower than the keys


def _large_discovery(base: Path, out: Path, classes: int = 1000, components: int = 10) -> Path:
    """A discovery of ``classes`` classes with ``components`` components each (class 0's records of a
    real discovery, repeated), and a labels.json of ``classes * components`` records by bob, written
    as spurbench wrote labels before the ledger (format 1): 10,000 records by default."""
    folder = Path(shutil.copytree(base, out))
    index = json.loads((folder / "discovery.json").read_text())
    template = index["classes"]["0"]
    parts = template["components"]
    index["components_per_class"] = components
    index["classes"] = {
        str(k): {
            **template,
            "class_index": k,
            "class_name": f"class{k}",
            "components": [{**parts[r % len(parts)], "rank": r} for r in range(components)],
        }
        for k in range(classes)
    }
    (folder / "discovery.json").write_text(json.dumps(index))
    _legacy_labels(
        folder,
        [(k, r, ("spurious", "not_spurious", "inconsistent")[(k + r) % 3], "bob") for k in range(classes) for r in range(components)],
    )
    return folder


class _SlowSaves:
    """ASGI wrapper: every POST is answered only after ``delay`` seconds (then handled as usual), so a
    test can type faster than the server saves whatever the machine."""

    def __init__(self, app, delay: float) -> None:
        self.app, self.delay = app, delay
        self.posts = 0
        self.in_flight = 0

    async def __call__(self, scope, receive, send) -> None:
        import asyncio

        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        self.posts += 1
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


@pytest.fixture
def slow_server():
    """Serve an app (wrapped in _SlowSaves) with uvicorn on 127.0.0.1 in a thread; yields a starter
    ``start(app) -> url``; stopped at the end."""
    import threading

    import uvicorn

    from spurbench.labelpage.server import bind

    running = []

    def start(app) -> str:
        sock = bind(free_port())
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        host, port = sock.getsockname()
        return f"http://{host}:{port}"

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _bar(driver) -> tuple[str, int, str]:
    """The save indicator: (state, pending saves, text); ("missing", 0, "") on a page without one."""
    return driver.execute_script(
        "const b = document.getElementById('saves'); return b ? [b.dataset.state, Number(b.dataset.pending), b.textContent] : ['missing', 0, '']"
    )


def _settled(driver, slow: _SlowSaves, timeout: float = 60) -> None:
    """Wait until the page has nothing left to save and the server has no save in hand."""
    from tests.support.label_server import wait_until

    def quiet() -> bool:
        if _bar(driver)[0] not in ("saved", "missing") or slow.in_flight:
            return False
        time.sleep(2 * SAVE_DELAY)  # and stays so: a page without a queue may still send
        return _bar(driver)[0] in ("saved", "missing") and not slow.in_flight

    wait_until(quiet, timeout, "the saves to finish")


def _type(driver, keys: str, pause: float = 0.0) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("document.activeElement && document.activeElement.blur()")
    chain = ActionChains(driver)
    for key in keys:
        chain.send_keys(key)
        if pause:
            chain.pause(pause)
    chain.perform()


def _alice(folder: Path, class_index: int) -> list[tuple[int, str]]:
    from spurbench.discovery.labels import read_labels

    return [(r.rank, r.label) for r in read_labels(folder).records if r.labeler == "alice" and r.class_index == class_index]


@pytest.mark.slow
def test_keys_faster_than_saves_each_label_their_own_component(made, tmp_path, slow_server) -> None:
    from spurbench.discovery.labels import LABELS_FILE, read_labels
    from spurbench.labelpage.app import create_app
    from tests.support.label_server import (
        active_label,
        chromium,
        current_component,
        open_class,
        wait_until,
    )

    folder = _large_discovery(made, tmp_path / "large")
    assert len(read_labels(folder).records) == 10_000
    slow = _SlowSaves(create_app(folder, "alice"), SAVE_DELAY)
    url = slow_server(slow)
    names = {"s": "spurious", "n": "not_spurious", "i": "inconsistent"}
    with chromium() as driver:
        # ten keys at once: each labels the component it was pressed on, in order
        open_class(driver, url, 5)
        assert current_component(driver) == 0
        keys = "snisnisnis"
        _type(driver, keys)
        (state, pending, _), cursor = _bar(driver), current_component(driver)
        _settled(driver, slow)
        expected = [(rank, names[key]) for rank, key in enumerate(keys)]
        assert _alice(folder, 5) == expected
        assert [active_label(driver, r) for r in range(10)] == [label for _, label in expected]
        assert cursor == 9 and state == "saving" and pending >= len(keys) - 1, (cursor, state, pending)  # typed while the saves were out

        # at 250 ms a key, each save slower: s-n-s-n-s-n, then back one and relabel it
        open_class(driver, url, 6)
        _type(driver, "snsnsn", pause=0.25)
        _type(driver, "ki")
        _settled(driver, slow)
        assert _alice(folder, 6) == [
            (0, "spurious"),
            (1, "not_spurious"),
            (2, "spurious"),
            (3, "not_spurious"),
            (4, "spurious"),
            (5, "not_spurious"),
            (5, "inconsistent"),
        ]
        assert active_label(driver, 5) == "inconsistent" and current_component(driver) == 6

        # a failed save is shown, holds the ones after it, and goes through on retry (r)
        (folder / ".labels.lock").unlink()
        (folder / ".labels.lock").mkdir()  # the store cannot be written now: its lock cannot be opened
        open_class(driver, url, 7)
        _type(driver, "sn")
        wait_until(lambda: _bar(driver)[0] == "failed", 30, "the failed save to show")
        state, pending, text = _bar(driver)
        assert pending == 2 and "2 not saved" in text and "cannot write the labels" in text, text
        assert driver.execute_script("return document.getElementById('component-0').dataset.saving") == "failed"
        assert "not saved: spurious" in driver.execute_script("return document.querySelector('#component-0 .mine').textContent")
        assert _alice(folder, 7) == []
        (folder / ".labels.lock").rmdir()
        _type(driver, "r")
        wait_until(lambda: _bar(driver)[0] == "saved", 30, "the retried saves")
        assert _alice(folder, 7) == [(0, "spurious"), (1, "not_spurious")]

    # nothing of the 10,000 labels written before the ledger was lost; all posts reached the server
    labels = read_labels(folder)
    assert len(labels.records) == 10_000 + 10 + 7 + 2 and (folder / "labels.json.migrated").exists() and (folder / LABELS_FILE).exists()
    assert slow.posts >= 10 + 7 + 2 + 1


@pytest.mark.slow
def test_keys_faster_than_saves_on_the_verify_page(mining, slow_server) -> None:
    from spurbench.labelpage.verdict_pages import create_verdict_app
    from spurbench.mining.index import candidates_by_class, read_mining
    from spurbench.mining.verdicts import read_verdicts
    from tests.support.label_server import chromium, open_class

    images = [c.image_id for c in candidates_by_class(read_mining(mining))[1]]
    slow = _SlowSaves(create_verdict_app(mining, "alice"), SAVE_DELAY)
    url = slow_server(slow)
    names = {"a": "absent", "p": "present", "u": "unsure"}
    keys = ("apu" * len(images))[: len(images)]
    with chromium() as driver:
        open_class(driver, url, 1)
        _type(driver, keys)
        state, pending, _ = _bar(driver)
        _settled(driver, slow)
        shown = driver.execute_script(
            "return [...document.querySelectorAll('.candidate')].map((c) => [c.dataset.image, (c.querySelector('button.active') || {dataset: {}}).dataset.verdict])"
        )
    # the page's order of cards is the order the keys went to
    got = [(r.image_id, r.verdict) for r in read_verdicts(mining).records if r.labeler == "alice"]
    order = list(dict.fromkeys(image for image, _ in shown))  # the cursor stops once per image, at its first card
    assert len(order) == len(keys) < len(shown) and got == [(image, names[key]) for image, key in zip(order, keys)]
    final = dict(zip(order, (names[key] for key in keys)))
    assert all(verdict == final[image] for image, verdict in shown)  # an image in two components' grids: its one verdict on both
    assert state == "saving" and pending >= len(keys) - 1, (state, pending)  # typed while the saves were out


# ------------------------------------------------------------------ one keyboard for both pages, in the browser


@pytest.mark.slow
@pytest.mark.parametrize("page", ["label", "verify"])
def test_keys_typed_into_a_field_are_text_not_votes(page, folder, mining, slow_server) -> None:
    """Both pages run the base template's one keyboard script: a key typed into a form field (here a
    search box the test adds to the class page, as a later part of the page or a browser extension
    would) is the field's text, never a vote, a move or a link; the same keys outside the field vote."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from spurbench.discovery.labels import read_labels
    from spurbench.labelpage.app import create_app
    from spurbench.labelpage.verdict_pages import create_verdict_app
    from spurbench.mining.verdicts import read_verdicts
    from tests.support.label_server import chromium, open_class, wait_until

    if page == "label":
        app, class_index, keys, stored = create_app(folder, "alice"), 0, "sjni]u[r", lambda: read_labels(folder).records
    else:
        app, class_index, keys, stored = create_verdict_app(mining, "alice"), 1, "ajpu]n[r", lambda: read_verdicts(mining).records
    counted = _SlowSaves(app, 0.0)  # counts the posts that reach the server
    url = slow_server(counted)
    with chromium() as driver:
        open_class(driver, url, class_index)
        page_url = driver.current_url
        cursor = driver.execute_script("return [...document.querySelectorAll('.current')].map((e) => e.id || e.dataset.image)")
        driver.execute_script(
            "const field = Object.assign(document.createElement('input'), {type: 'search', id: 'typed'});"
            "document.querySelector('main').prepend(field); field.focus();"
        )
        ActionChains(driver).send_keys(keys).perform()
        assert driver.find_element(By.ID, "typed").get_attribute("value") == keys  # every key reached the field
        time.sleep(1.0)  # a vote would have been posted by now (the server answers at once)
        assert counted.posts == 0 and stored() == [] and list(_bar(driver)[:2]) == ["saved", 0]
        assert driver.current_url == page_url  # ] [ u n followed no link
        assert driver.execute_script("return [...document.querySelectorAll('.current')].map((e) => e.id || e.dataset.image)") == cursor

        _type(driver, keys[0])  # the field left: the same key votes
        wait_until(lambda: counted.posts == 1 and _bar(driver)[0] == "saved", 30, "the vote outside the field")
        assert len(stored()) == 1
