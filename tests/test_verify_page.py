"""Issue 28, the verify page (`spurbench label MINED`): an image mined for several components of a class
is decided once and its verdict recorded for each of them (the record's ``components``); verdicts
written before (today's ledger and the older verify.json) are read as they were and a new one is
appended without rewriting them; the many-image form of POST /api/verdicts ("the rest of a component
absent", one write); per-class counts of distinct images on the class list. In headless Chromium
(slow), on a real planted mining: the cursor stops once per image and the selected card is never
under a bar, the zoom, Shift+A, the class list's search; screenshots into $SPURBENCH_SCREENSHOTS."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from spurbench.errors import SpurbenchError
from spurbench.labelpage.verdict_pages import create_verdict_app
from spurbench.ledger import Ledger
from spurbench.mining.index import candidates_by_class, read_mining
from spurbench.mining.verdicts import (
    VERIFY_FILE,
    candidate_components,
    class_counts,
    export_benchmark,
    read_verdicts,
    record_verdict,
    record_verdicts,
    tally,
)
from tests.support.label_server import free_port, wait_until
from tests.test_verify import mined  # noqa: F401  (a module-scoped fixture: a real tiny mining folder)

LOCAL = "http://127.0.0.1:8765"
# the tiny mining: class 1 has components 0 and 1 (six candidates each, three images in both), class 2 component 0
CLASS = 1


@pytest.fixture
def folder(mined, tmp_path) -> Path:  # noqa: F811
    return Path(shutil.copytree(mined, tmp_path / "mining"))


def _shared(folder: Path) -> list[str]:
    """The images of CLASS that are candidates of two of its components."""
    return sorted(i for (k, i), ranks in candidate_components(read_mining(folder)).items() if k == CLASS and len(ranks) > 1)


def test_a_shared_image_is_one_verdict_recorded_for_each_of_its_components(folder) -> None:
    index = read_mining(folder)
    shared = _shared(folder)
    assert shared, "the tiny mining has no image mined for two components"
    distinct = len(candidates_by_class(index)[CLASS])
    cards = sum(len(e.candidates) for e in index.components if e.class_index == CLASS)
    assert cards == distinct + len(shared)  # each shared image is in both grids

    with TestClient(create_verdict_app(folder, "alice"), base_url=LOCAL) as client:
        page = client.get(f"/class/{CLASS}").text
        assert page.count('class="candidate"') == cards
        assert page.count('data-repeat="yes"') == len(shared)  # the second card of each: the cursor skips it
        assert page.count('data-components="0 1"') == 2 * len(shared)
        answer = client.post("/api/verdicts", json={"class_index": CLASS, "image_id": shared[0], "verdict": "absent"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["record"]["components"] == [0, 1] and answer.json()["records"] == [answer.json()["record"]]
    assert answer.json()["progress"][str(CLASS)] == [1, distinct]  # distinct images, not cards
    assert answer.json()["counts"] == {"candidates": distinct, "verified": 1, "absent": 1, "present": 0, "unsure": 0}

    stored = read_verdicts(folder)
    assert [(r.image_id, r.components) for r in stored.records] == [(shared[0], [0, 1])]
    assert tally(index, stored)[CLASS][shared[0]] == {"absent": 1, "present": 0, "unsure": 0}
    assert len(tally(index, stored)[CLASS]) == distinct
    for k, cands in candidates_by_class(index).items():  # everything else absent too: the export counts each image once
        record_verdicts(folder, k, [c.image_id for c in cands if c.image_id != shared[0]], "absent", "alice", index=index)
    _, per_class = export_benchmark(folder, folder.parent / "bench")
    assert per_class[CLASS]["candidates"] == per_class[CLASS]["exported"] == distinct
    card = json.loads((folder.parent / "bench" / "spurbench.json").read_text())
    assert sum(im["class_index"] == CLASS for im in card["images"]) == distinct


def test_the_many_image_form_is_one_write(folder, monkeypatch) -> None:
    images = [c.image_id for c in candidates_by_class(read_mining(folder))[CLASS]]
    writes = []
    original = Ledger.append_many
    monkeypatch.setattr(
        Ledger, "append_many", lambda self, records, identity: writes.append(len(records)) or original(self, records, identity)
    )
    with TestClient(create_verdict_app(folder, "alice"), base_url=LOCAL) as client:

        def post(**body) -> object:
            return client.post("/api/verdicts", json={"class_index": CLASS, "verdict": "absent", **body})

        refused = {
            "unknown image": post(image_ids=[images[0], "nope.png"]),
            "twice": post(image_ids=[images[0], images[0]]),
            "empty": post(image_ids=[]),
            "both forms": post(image_id=images[0], image_ids=[images[1]]),
            "neither": post(),
            "a number": post(image_ids=[images[0], 7]),
            "another class": client.post("/api/verdicts", json={"class_index": 0, "image_ids": images[:1], "verdict": "absent"}),
        }
        assert {why: a.status_code for why, a in refused.items()} == {
            "unknown image": 404,
            "twice": 409,
            "empty": 422,
            "both forms": 422,
            "neither": 422,
            "a number": 422,
            "another class": 404,
        }
        assert "'nope.png' is not a candidate of class 1" in refused["unknown image"].json()["detail"]
        assert read_verdicts(folder).records == [] and writes == []  # nothing stored, nothing written

        answer = post(image_ids=images[:4])
    assert answer.status_code == 200, answer.text
    assert writes == [4]  # one locked, synced append for the four
    records = answer.json()["records"]
    assert [r["image_id"] for r in records] == images[:4] and len({r["at"] for r in records}) == 1
    stored = read_verdicts(folder).records
    placements = candidate_components(read_mining(folder))
    assert [(r.image_id, r.verdict, r.labeler, r.components) for r in stored] == [
        (i, "absent", "alice", placements[(CLASS, i)]) for i in images[:4]
    ]
    assert answer.json()["progress"][str(CLASS)] == [4, len(images)]


def test_verdicts_written_before_are_read_and_kept_as_written(folder) -> None:
    """Today's ledger and the older verify.json (records without components) are read unchanged and
    mean a verdict on the image for all of its components; a new verdict is appended after them."""
    index = read_mining(folder)
    shared = _shared(folder)[0]
    other = next(c.image_id for c in candidates_by_class(index)[CLASS] if c.image_id != shared)
    identity = {"model": index.model.name, "weights_revision": index.model.weights_revision, "pool_revision": index.pool.revision}
    old = [
        {"class_index": CLASS, "image_id": shared, "verdict": "present", "labeler": "bob", "at": "2025-01-02T10:00:00Z"},
        {"class_index": CLASS, "image_id": other, "verdict": "absent", "labeler": "alice", "at": "2025-01-02T10:00:01Z"},
    ]
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    ledger_text = "".join(json.dumps(line, **compact) + "\n" for line in [{"ledger": "verdicts", "format": 2, **identity}, *old])
    legacy_text = json.dumps({"format": 1, **identity, "records": old}, indent=1)

    for kind in ("ledger", "legacy"):
        case = Path(shutil.copytree(folder, folder.parent / kind))
        (case / VERIFY_FILE).write_text(ledger_text) if kind == "ledger" else (case / "verify.json").write_text(legacy_text)
        stored = read_verdicts(case)
        assert [r.model_dump(mode="json") for r in stored.records] == old and all(r.components is None for r in stored.records)
        counts = class_counts(index, stored, "alice")[CLASS]
        assert counts["verified"] == 1 and counts["absent"] == 1  # bob's present is not alice's
        assert tally(index, stored)[CLASS][shared] == {"absent": 0, "present": 1, "unsure": 0}  # once, for both its components
        with TestClient(create_verdict_app(case, "bob"), base_url=LOCAL) as client:
            state = client.get(f"/api/verdicts/{CLASS}").json()
            assert state["mine"][shared]["verdict"] == "present" and state["progress"][str(CLASS)][0] == 1
            assert client.post("/api/verdicts", json={"class_index": CLASS, "image_id": other, "verdict": "unsure"}).status_code == 200
        lines = (case / VERIFY_FILE).read_text().splitlines(keepends=True)
        if kind == "ledger":
            assert "".join(lines[:3]) == ledger_text  # appended, the old lines untouched
        else:
            assert (case / "verify.json.migrated").read_text() == legacy_text and not (case / "verify.json").exists()
            assert [json.loads(line) for line in lines[1:3]] == old  # moved over as they were: no components key
        assert len(lines) == 4 and json.loads(lines[3])["components"] == candidate_components(index)[(CLASS, other)]
        assert [(r.image_id, r.verdict, r.labeler) for r in read_verdicts(case).records] == [
            (shared, "present", "bob"),
            (other, "absent", "alice"),
            (other, "unsure", "bob"),
        ]


def test_class_counts_are_of_distinct_images_for_one_labeler(folder) -> None:
    index = read_mining(folder)
    shared = _shared(folder)
    images = [c.image_id for c in candidates_by_class(index)[CLASS]]
    record_verdict(folder, CLASS, shared[0], "present", "alice")
    record_verdict(folder, CLASS, shared[0], "absent", "alice")  # the last one counts
    record_verdict(folder, CLASS, shared[1], "unsure", "alice")
    record_verdict(folder, CLASS, images[-1], "present", "bob")
    assert class_counts(index, read_verdicts(folder), "alice") == {
        1: {"candidates": len(images), "verified": 2, "absent": 1, "present": 0, "unsure": 1},
        2: {"candidates": len(candidates_by_class(index)[2]), "verified": 0, "absent": 0, "present": 0, "unsure": 0},
    }
    with pytest.raises(SpurbenchError, match="is not a candidate of class 2"):
        record_verdicts(folder, 2, [images[0]], "absent", "alice")

    with TestClient(create_verdict_app(folder, "alice"), base_url=LOCAL) as client:
        page = client.get("/").text
    assert 'id="search"' in page and "0 / 2 classes verified" in page
    row = page[page.index('<tr data-index="1"') :]
    row = row[: row.index("</tr>")]
    assert f'"num verified">2 / {len(images)}<' in row
    assert '"num absent">1<' in row and '"num present zero">0<' in row and '"num unsure">1<' in row


# ------------------------------------------------------------------ in the browser (slow)


@pytest.fixture(scope="module")
def planted_mining(tmp_path_factory) -> Path:
    """A real mining of planted:cnn over the generated planted pool: triangle (2) and crescent (8), two
    components each, 24 candidates per component (some images are candidates of both)."""
    from spurbench.discovery.pipeline import discover
    from spurbench.mining.pipeline import mine
    from spurbench.settings import DiscoverySettings, FeatureSettings, MiningSettings

    base = tmp_path_factory.mktemp("planted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPURBENCH_CACHE", str(base / "cache"))
        features = FeatureSettings(progress=False)
        discover(
            DiscoverySettings(
                model="planted:cnn",
                benchmark="planted",
                out=base / "d",
                classes=[2, 8],
                components_per_class=3,
                npfv_steps=20,
                features=features,
            )
        )
        (base / "components.json").write_text('{"components": {"2": [1, 2], "8": [1, 2]}}')
        mine(
            MiningSettings(
                model="planted:cnn",
                discovery=base / "d",
                components=base / "components.json",
                pool="planted",
                out=base / "m",
                per_component=24,
                features=features,
            )
        )
    return base / "m"


class _CountedPosts:
    """An ASGI wrapper that counts the POSTs reaching the app and can hold each one ``delay`` seconds."""

    def __init__(self, app, delay: float = 0.0) -> None:
        self.app, self.delay, self.posts = app, delay, 0

    async def __call__(self, scope, receive, send) -> None:
        import asyncio

        if scope["type"] == "http" and scope["method"] == "POST":
            self.posts += 1
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


@contextlib.contextmanager
def _served(app) -> Iterator[str]:
    import uvicorn

    from spurbench.labelpage.server import bind

    sock = bind(free_port())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _screenshot(driver, name: str) -> None:
    """Save the window as NAME.png into $SPURBENCH_SCREENSHOTS when it names a folder (never in CI)."""
    folder = os.environ.get("SPURBENCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _type(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("document.activeElement && document.activeElement.blur()")
    ActionChains(driver).send_keys(keys).perform()


CURRENT = "return document.querySelector('.candidate.current').dataset.image"
# the current card's top and bottom, the header's bottom and the key bar's top, in the viewport
IN_VIEW = """
const card = document.querySelector('.candidate.current').getBoundingClientRect();
return [card.top, card.bottom, document.querySelector('header.bar').getBoundingClientRect().bottom,
        document.querySelector('.keys').getBoundingClientRect().top];
"""


def _mine(folder: Path, labeler: str = "alice") -> dict[str, tuple[str, list[int] | None]]:
    return {r.image_id: (r.verdict, r.components) for r in read_verdicts(folder).records if r.labeler == labeler}


@pytest.mark.slow
def test_the_verify_page_in_a_browser(planted_mining, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    from tests.support.label_server import chromium, open_page

    folder = Path(shutil.copytree(planted_mining, tmp_path / "m"))
    index = read_mining(folder)
    crescent = 8
    placements = candidate_components(index)
    grids = [c.image_id for e in index.components if e.class_index == crescent for c in e.candidates]
    stops = list(dict.fromkeys(grids))  # each image once, where it is shown first
    shared = [i for i in stops if len(placements[(crescent, i)]) > 1]
    assert shared and len(grids) == len(stops) + len(shared)
    first_component = [c.image_id for c in next(e for e in index.components if e.class_index == crescent).candidates]
    counted = _CountedPosts(create_verdict_app(folder, "alice"))
    with _served(counted) as url, chromium("1280,900") as driver:
        open_page(driver, f"{url}/class/{crescent}")
        # the cursor stops once per image, and the card under it is always clear of both bars
        visited = [driver.execute_script(CURRENT)]
        for _ in range(len(stops) + 1):
            _type(driver, "j")
            visited.append(driver.execute_script(CURRENT))
            top, bottom, header, keys = driver.execute_script(IN_VIEW)
            assert header <= top and bottom <= keys, (visited[-1], top, bottom, header, keys)
        assert visited == [*stops, stops[-1], stops[-1]]  # and stays on the last
        assert driver.execute_script("return window.scrollY") > 1000  # the page did scroll
        for _ in range(len(stops)):
            _type(driver, "k")
            top, bottom, header, keys = driver.execute_script(IN_VIEW)
            assert header <= top and bottom <= keys, (driver.execute_script(CURRENT), top, bottom, header, keys)
        assert driver.execute_script(CURRENT) == stops[0]

        # a shared image: one key decides it on both cards, recorded for both components
        position = stops.index(shared[0])
        _type(driver, "k" * len(stops) + "j" * position + "a")
        wait_until(lambda: _mine(folder).get(shared[0]) == ("absent", [1, 2]), what="the shared image's verdict")
        verdicts = f"return [...document.querySelectorAll('.candidate[data-image=\"{shared[0]}\"]')].map((c) => c.dataset.verdict)"
        wait_until(lambda: driver.execute_script(verdicts) == ["absent", "absent"], what="both cards to show it")

        # the zoom: the image under the cursor large, its components' references beside it; keys work in it
        _type(driver, "k" * len(stops) + "z")
        zoomed = driver.find_element(By.ID, "zoom")
        assert zoomed.is_displayed()
        big = driver.find_element(By.CSS_SELECTOR, "#zoom figure img")
        assert big.get_attribute("src").endswith(
            next(c.thumbnail for e in index.components for c in e.candidates if c.image_id == stops[0])
        )
        assert big.size["width"] >= 600 and big.size["height"] >= 600, big.size  # a 40 px thumbnail, 15x and more
        refs = driver.find_elements(By.CSS_SELECTOR, "#zoom .refs img")
        entry = next(e for e in index.components if e.class_index == crescent and e.component == placements[(crescent, stops[0])][0])
        assert len(refs) >= len(entry.reference) + 1 and all(r.size["width"] >= 140 for r in refs)
        assert "no verdict yet" in zoomed.text
        _screenshot(driver, "verify-zoom")
        _type(driver, "p")  # decides the image under the zoom, and the zoom moves on with the cursor
        wait_until(lambda: _mine(folder).get(stops[0], ("",))[0] == "present", what="the verdict given in the zoom")
        assert (
            driver.find_element(By.CSS_SELECTOR, "#zoom figure img")
            .get_attribute("src")
            .endswith(next(c.thumbnail for e in index.components for c in e.candidates if c.image_id == stops[1]))
        )
        _type(driver, "\ue00c")  # Esc
        assert not zoomed.is_displayed()
        driver.find_elements(By.CSS_SELECTOR, ".candidate img")[3].click()  # a click on an image zooms it
        assert zoomed.is_displayed() and driver.execute_script(CURRENT) == stops[3]
        zoomed.click()
        assert not zoomed.is_displayed()

        # Shift+A: the rest of the cursor's component absent in one save; then the next component's first undecided image
        driver.execute_script("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'A', bubbles: true}))")  # caps lock: no Shift
        posts = counted.posts
        _type(driver, "A")
        wait_until(lambda: driver.execute_script("return document.getElementById('saves').dataset.state") == "saved", what="the save")
        assert counted.posts == posts + 1
        mine = _mine(folder)
        assert {i for i in first_component if mine.get(i, ("",))[0] == "absent"} == set(first_component) - {stops[0]}
        assert mine[stops[0]][0] == "present"  # decided before: kept
        later = next(i for i in stops if i not in first_component)
        assert driver.execute_script(CURRENT) == later and later not in mine
        _type(driver, "upa")  # three kinds of verdict on screen for the picture
        wait_until(lambda: len(_mine(folder)) == len(mine) + 3, what="the three verdicts")
        _screenshot(driver, "verify-class")
        mine = _mine(folder)

        # the class list: counts, search, Enter opens the first match
        open_page(driver, url + "/")
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-index="{crescent}"]')
        absent = sum(v == "absent" for v, _ in mine.values())
        assert row.find_element(By.CSS_SELECTOR, ".verified").text == f"{len(mine)} / {len(stops)}"
        assert row.find_element(By.CSS_SELECTOR, ".absent").text == str(absent)
        assert row.find_element(By.CSS_SELECTOR, ".present").text == "2" and row.find_element(By.CSS_SELECTOR, ".unsure").text == "1"
        _type(driver, "/cresc")
        assert driver.execute_script("return document.activeElement.id") == "search"
        hidden = driver.execute_script("return [...document.querySelectorAll('#classes tbody tr')].map((r) => [r.dataset.index, r.hidden])")
        assert hidden == [["2", True], ["8", False]]
        _screenshot(driver, "verify-index")
        from selenium.webdriver.common.keys import Keys

        driver.find_element(By.ID, "search").send_keys(Keys.ENTER)
        wait_until(lambda: driver.current_url.endswith(f"/class/{crescent}"), what="Enter to open crescent")
        open_page(driver, url + "/")
        driver.find_element(By.ID, "search").clear()
        driver.find_element(By.ID, "search").send_keys("2", Keys.ENTER)  # an index
        wait_until(lambda: driver.current_url.endswith("/class/2"), what="Enter to open class 2")


@pytest.mark.slow
def test_shift_a_never_overrides_a_verdict_still_on_its_way(planted_mining, tmp_path) -> None:
    """A key decides the image it was pressed on even when its save is still out: Shift+A right after
    it leaves that image alone, and the two saves go in order."""
    from tests.support.label_server import chromium, open_page

    folder = Path(shutil.copytree(planted_mining, tmp_path / "m"))
    index = read_mining(folder)
    first_component = [c.image_id for c in next(e for e in index.components if e.class_index == 2).candidates]
    slow = _CountedPosts(create_verdict_app(folder, "alice"), delay=0.5)
    with _served(slow) as url, chromium() as driver:
        open_page(driver, f"{url}/class/2")
        _type(driver, "pA")
        pending = driver.execute_script("return Number(document.getElementById('saves').dataset.pending)")
        wait_until(lambda: driver.execute_script("return document.getElementById('saves').dataset.state") == "saved", 30, "the saves")
    assert pending == 2  # both were queued while the first was out
    records = read_verdicts(folder).records
    assert [(r.image_id, r.verdict) for r in records] == [(first_component[0], "present")] + [(i, "absent") for i in first_component[1:]]
    assert slow.posts == 2
