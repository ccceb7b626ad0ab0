"""Verifying mined candidates: the verdict store (who, when, latest wins, no lost verdicts under
concurrency, another mining's verdicts refused), the tally and the export rule, the verify pages
through FastAPI's test client, and the bad inputs of `spurbench label --mode verify`."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spurbench.errors import SpurbenchError
from spurbench.labelpage.verdict_pages import create_verdict_app
from spurbench.mining.index import candidates_by_class, read_mining
from spurbench.mining.pipeline import mine
from spurbench.mining.verdicts import VERIFY_FILE, latest_verdicts, read_verdicts, record_verdict, tally, verified_absent
from spurbench.settings import FeatureSettings, MiningSettings
from spurbench.testing import TinyAdapter, tiny_benchmark
from tests.support.label_server import tiny_discovery

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def mined(tmp_path_factory) -> Path:
    """A real mining of the tiny model: classes 1 and 2, two components each, over 40 pool images."""
    discovery = tiny_discovery(tmp_path_factory, [0, 1, 2])
    pool = tmp_path_factory.mktemp("pool")
    for i, image in enumerate(tiny_benchmark(per_role=5, name="pool-source").images):
        image.open().save(pool / f"{i}.png")
    out = tmp_path_factory.mktemp("mining")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPURBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        components = tmp_path_factory.mktemp("components") / "components.json"
        components.write_text('{"components": {"1": [0, 1], "2": [0]}}')
        settings = MiningSettings(
            model="tiny:net",
            discovery=discovery,
            components=components,
            pool=pool,
            out=out,
            per_component=6,
            require_predicted="none",
            dedup_cosine=1 - 1e-6,
            features=FeatureSettings(batch_size=8, progress=False),
        )
        mine(settings, model=TinyAdapter())
    return out


@pytest.fixture
def folder(mined, tmp_path) -> Path:
    return Path(shutil.copytree(mined, tmp_path / "mining"))


def test_verdicts_record_who_when_and_latest_wins(folder) -> None:
    index = read_mining(folder)
    first = candidates_by_class(index)[1][0].image_id
    record_verdict(folder, 1, first, "present", "alice")
    record_verdict(folder, 1, first, "absent", "alice")
    record_verdict(folder, 1, first, "absent", "bob")
    stored = read_verdicts(folder)
    assert [r.verdict for r in stored.records] == ["present", "absent", "absent"]  # the history stays
    current = latest_verdicts(stored)
    assert current[(1, first, "alice")].verdict == "absent" and current[(1, first, "alice")].at.tzinfo is not None
    assert tally(index, stored)[1][first] == {"absent": 2, "present": 0, "unsure": 0}
    raw = json.loads((folder / VERIFY_FILE).read_text().splitlines()[0])  # the ledger's header
    assert raw["model"] == "tiny:net" and raw["pool_revision"] == index.pool.revision


def test_the_export_rule() -> None:
    assert verified_absent({"absent": 1, "present": 0, "unsure": 3}, 1)
    assert not verified_absent({"absent": 3, "present": 1, "unsure": 0}, 1)  # anyone seeing the object keeps it out
    assert not verified_absent({"absent": 1, "present": 0, "unsure": 0}, 2)


def test_concurrent_verdicts_are_all_kept(folder) -> None:
    ids = [c.image_id for c in candidates_by_class(read_mining(folder))[1]]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: record_verdict(folder, 1, i, "unsure", "alice"), ids * 2))
    assert len(read_verdicts(folder).records) == 2 * len(ids) and {i for (_, i, _) in latest_verdicts(read_verdicts(folder))} == set(ids)


def test_bad_verdicts(folder) -> None:
    with pytest.raises(SpurbenchError, match="no candidates of class 0"):
        record_verdict(folder, 0, "x", "absent", "alice")
    with pytest.raises(SpurbenchError, match="is not a candidate of class 1"):
        record_verdict(folder, 1, "nope.png", "absent", "alice")
    some = candidates_by_class(read_mining(folder))[1][0].image_id
    with pytest.raises(SpurbenchError, match="verdict 'gone': expected one of absent, present, unsure"):
        record_verdict(folder, 1, some, "gone", "alice")
    raw = json.loads((folder / "candidates.json").read_text())
    record_verdict(folder, 1, some, "absent", "alice")
    raw["pool"]["revision"] = "another"
    (folder / "candidates.json").write_text(json.dumps(raw))
    with pytest.raises(SpurbenchError, match="verdicts on a mining of tiny:net .* not this one's"):
        read_verdicts(folder)
    (folder / VERIFY_FILE).write_text("{not json")
    with pytest.raises(SpurbenchError, match="not a valid verdicts file"):
        read_verdicts(folder)


def test_verify_pages(folder) -> None:
    client = TestClient(create_verdict_app(folder, "alice"), base_url=LOCAL)
    index = client.get("/")
    assert index.status_code == 200 and "0 / 2 classes verified" in index.text and 'href="/class/1"' in index.text
    page = client.get("/class/1")
    by_class = candidates_by_class(read_mining(folder))
    assert page.status_code == 200 and page.text.count('class="candidate"') == sum(
        len(e.candidates) for e in read_mining(folder).components if e.class_index == 1
    )
    sources = re.findall(r'src="(/files/[^"]+)"', page.text)
    assert sources and all(client.get(s).status_code == 200 and client.get(s).headers["content-type"] == "image/png" for s in set(sources))
    image = by_class[1][0].image_id
    answer = client.post("/api/verdicts", json={"class_index": 1, "image_id": image, "verdict": "absent"})
    assert (
        answer.status_code == 200
        and answer.json()["mine"][image]["verdict"] == "absent"
        and answer.json()["progress"]["1"] == [1, len(by_class[1])]
    )
    assert client.post("/api/verdicts", json={"class_index": 1, "image_id": "nope", "verdict": "absent"}).status_code == 404
    assert client.post("/api/verdicts", json={"class_index": 1, "image_id": image, "verdict": "maybe"}).status_code == 422
    assert client.get("/class/3").status_code == 404 and client.get("/api/verdicts/3").status_code == 404
    for bad in ("/files/candidates.json", "/files/../verify.json", "/files/thumbs/../candidates.json", "/files/%2e%2e/x"):
        assert client.get(bad).status_code == 404, bad


def test_label_mode_verify_bad_inputs(cli, folder, tmp_path) -> None:
    proc = cli("label", str(folder), "--mode", "check", cwd=tmp_path)
    assert proc.returncode == 2 and "--mode 'check': expected label or verify" in proc.stderr and proc.stderr.count("\n") == 1
    proc = cli("label", str(tmp_path), "--mode", "verify", cwd=tmp_path)
    assert proc.returncode == 2 and "not a mining folder" in proc.stderr and proc.stderr.count("\n") == 1


def test_export_writes_the_verified_absent_images_or_nothing(folder, tmp_path, cli) -> None:
    from spurbench.mining.verdicts import export_benchmark

    by_class = candidates_by_class(read_mining(folder))
    for k, cands in by_class.items():
        for i, c in enumerate(cands):
            record_verdict(folder, k, c.image_id, "absent" if i % 3 else "present", "alice")
    vetoed = by_class[1][1].image_id
    record_verdict(folder, 1, vetoed, "present", "bob")  # one labeler seeing the object keeps it out
    proc = cli("mine", "export", str(folder), "--out", str(tmp_path / "refused"), "--min-per-class", "99", cwd=tmp_path)
    assert proc.returncode == 2 and "fewer than --min-per-class 99" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "refused").exists()
    checksum, per_class = export_benchmark(folder, tmp_path / "bench", name="tiny-mined")
    card = json.loads((tmp_path / "bench" / "spurbench.json").read_text())
    exported = {im["pool_image_id"] for im in card["images"] if im["class_index"] == 1}
    expected = {c.image_id for i, c in enumerate(by_class[1]) if i % 3} - {vetoed}
    assert exported == expected and per_class[1]["exported"] == len(expected) and card["checksum"] == checksum
    for im in card["images"]:  # the pool files' own bytes
        assert (tmp_path / "bench" / im["file"]).read_bytes() == Path(
            read_mining(folder).components[0].candidates[0].source
        ).parent.joinpath(Path(im["pool_image_id"]).name).read_bytes()
