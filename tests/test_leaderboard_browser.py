"""The built leaderboard page in a real headless Chromium (Debian `chromium` + `chromium-driver`).

Opens `index.html` built from the committed results, from disk (file://, offline), and checks the
table rows, sorting by a header click, the filter, and that the scatter plot rendered. A screenshot
is saved to test-artifacts/leaderboard.png (CI uploads it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spurbench.leaderboard.build import build_board
from spurbench.results import Result, ViewResult, read_result

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Required, not skipped: .ci/run and the tests workflow install chromium and chromium-driver.
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "install Debian's chromium and chromium-driver (see README)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("board")
    results = folder / "results"
    results.mkdir()
    for path in sorted((ROOT / "leaderboard" / "results").glob("*.json")):
        shutil.copy(path, results)
    return build_board(sorted(results.glob("*.json")), folder / "site", model_lists_dir=ROOT / "model-lists").html


def _column(driver, table_id: str, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[index].text for r in rows if r.is_displayed()]


def test_page_sorts_filters_and_renders_the_scatter(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    table = "board-planted"
    names = {"planted:cnn": "Planted CNN", "planted:resnet": "Planted ResNet"}
    results = [r for p in sorted((ROOT / "leaderboard" / "results").glob("*.json")) if isinstance(r := read_result(p), Result)]
    ranked = [names[r.model.name] for r in sorted(results, key=lambda r: -r.heads["plain"].aggregate.mauc)]
    assert _column(browser, table, 1) == ranked  # ranked by mAUC
    assert _column(browser, table, 0) == ["1", "2"]

    headers = browser.find_elements(By.CSS_SELECTOR, f"#{table} thead th")
    mauc = next(h for h in headers if h.text.startswith("mAUC (ROC-AUC) [95% CI]"))
    mauc.click()  # ascending
    assert _column(browser, table, 1) == ranked[::-1]
    mauc.click()  # descending again
    assert _column(browser, table, 1) == ranked
    mean_ap = next(h for h in headers if h.text == "mean AP")
    mean_ap.click()  # ascending by the mean AP column: the order its values give
    by_ap = [names[r.model.name] for r in sorted(results, key=lambda r: r.heads["plain"].aggregate.mean_ap)]
    assert _column(browser, table, 1) == by_ap
    assert "average precision" in browser.find_element(By.CSS_SELECTOR, "p.legend").text

    mauc.click()
    mauc.click()  # back to the ranking
    box = browser.find_element(By.CSS_SELECTOR, f"input.filter[data-table='{table}']")
    box.send_keys("resnet")
    assert _column(browser, table, 1) == ["Planted ResNet"]
    box.clear()
    box.send_keys(" ")  # an input event with a blank needle shows rows containing a space: both names
    assert len(_column(browser, table, 1)) == 2

    scatter = browser.find_element(By.CSS_SELECTOR, "#scatter-planted svg")
    size = scatter.size
    assert size["width"] > 200 and size["height"] > 150
    # one marker per model at its plain (accuracy, mAUC): the group carries the gid the build gives it
    points = browser.find_elements(By.CSS_SELECTOR, "#scatter-planted svg g[id='plain-point'] use")
    assert len(points) == 2 and all(p.is_displayed() for p in points)
    # per-model anchors list the worst classes; the planted classes come first
    link = browser.find_element(By.LINK_TEXT, "Planted CNN")
    assert link.get_attribute("href").endswith("#model-planted-planted_cnn")
    worst = browser.find_elements(By.CSS_SELECTOR, "#model-planted-planted_cnn tbody tr td:nth-child(2)")
    assert {w.text for w in worst[:3]} == {"triangle", "crescent", "ell"}

    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "leaderboard.png"))


def test_page_shows_views_sections_across_table_and_pictures(browser, page):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    names = {"planted:cnn": "Planted CNN", "planted:resnet": "Planted ResNet"}
    views = [r for p in sorted((ROOT / "leaderboard" / "results").glob("*.json")) if isinstance(r := read_result(p), ViewResult)]
    assert len(views) == 2
    ranked = [names[r.model.name] for r in sorted(views, key=lambda r: -r.heads["plain"].metrics["gap"])]
    assert _column(browser, "board-planted-salient", 1) == ranked  # ranked by the core − spurious gap
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#board-planted-salient thead th")]
    assert headers[3:7] == ["clean acc.", "core acc.", "spurious acc.", "core − spurious"]
    gap = next(h for h in browser.find_elements(By.CSS_SELECTOR, "#board-planted-salient thead th") if h.text == "core − spurious")
    gap.click()  # ascending
    assert _column(browser, "board-planted-salient", 1) == ranked[::-1]
    # across benchmarks: one row per model, both benchmarks' headlines
    cells = {name: [_column(browser, "across", i)[j] for i in range(4)] for j, name in enumerate(_column(browser, "across", 0))}
    assert set(cells) == set(names.values())
    for r in views:
        assert cells[names[r.model.name]][3] == f"{r.heads['plain'].metrics['gap']:+.3f}"
    # the pictures are decoded images (inline PNGs), with their captions
    for gallery in ("gallery-planted", "gallery-planted-salient"):
        images = browser.find_elements(By.CSS_SELECTOR, f"[id='{gallery}'] img")
        assert len(images) == 3 and all(browser.execute_script("return arguments[0].naturalWidth", im) >= 100 for im in images)
    caption = browser.find_element(By.CSS_SELECTOR, "[id='gallery-planted-salient'] figcaption").text
    assert "object mask (core, blue)" in caption and "planted generator" in caption
    gallery = browser.find_element(By.CSS_SELECTOR, "[id='gallery-planted-salient']")
    browser.execute_script("arguments[0].scrollIntoView()", gallery)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "leaderboard-views.png"))


@pytest.fixture(scope="module")
def page_with_inw(tmp_path_factory) -> Path:
    """The committed results plus an ImageNet-W result of a small random ImageNet-1k model on real
    photos laid out as a val folder: a model on one benchmark only, and the watermark's pictures."""
    from spurbench.harness import evaluate
    from spurbench.settings import FeatureSettings, RunSettings
    from spurbench.testing import TinyAdapter
    from tests.test_imagenet_w import write_val

    folder = tmp_path_factory.mktemp("board-inw")
    results = folder / "results"
    results.mkdir()
    for path in sorted((ROOT / "leaderboard" / "results").glob("*.json")):
        shutil.copy(path, results)
    val = write_val(folder / "val")
    features = FeatureSettings(progress=False, use_cache=False)
    settings = RunSettings(
        model="tiny:net", benchmark="imagenet-w", options={"imagenet_val": str(val)}, output=results, bootstrap=0, features=features
    )
    evaluate(settings, model=TinyAdapter(num_classes=1000, label_space="imagenet-1k"))
    return build_board(sorted(results.glob("*.json")), folder / "site", board_dir=folder, model_lists_dir=ROOT / "model-lists").html


def test_page_shows_the_imagenet_w_section_and_the_watermark(browser, page_with_inw):
    from selenium.webdriver.common.by import By

    browser.get(page_with_inw.as_uri())
    (inw,) = [r for p in sorted((page_with_inw.parent.parent / "results").glob("imagenet-w__*.json")) for r in [read_result(p)]]
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#board-imagenet-w thead th")]
    assert headers[3:8] == ["clean acc.", "IN-W acc.", "IN-W gap", "carton gap", "ΔP(carton)"] and headers[-1] == "images"
    (row,) = browser.find_elements(By.CSS_SELECTOR, "#board-imagenet-w tbody tr")
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    m = inw.heads["plain"].metrics
    assert (
        cells[1] == "tiny:net" and cells[5] == f"{m['inw_gap']:+.3f}" and cells[6] == "–" and cells[-1] == "9"
    )  # no carton image: "–", not 0
    # across benchmarks: "–" where a model has no result on a benchmark, never 0
    across = {name: [_column(browser, "across", i)[j] for i in range(5)] for j, name in enumerate(_column(browser, "across", 0))}
    columns = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#across thead th")]
    assert columns[2:] == ["imagenet-w: IN-W gap", "planted: mAUC [95% CI]", "planted-salient: core − spurious"]
    assert across["tiny:net"][2] == f"{m['inw_gap']:+.3f}" and across["tiny:net"][3:] == ["–", "–"] and across["Planted CNN"][2] == "–"
    images = browser.find_elements(By.CSS_SELECTOR, "[id='gallery-imagenet-w'] img")
    assert len(images) == 2 and all(browser.execute_script("return arguments[0].naturalWidth", im) >= 100 for im in images)
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "[id='gallery-imagenet-w'] figcaption")]
    assert "watermark" in captions[1] and all("CC BY 2.0" in c for c in captions)  # the photo's licence, shown
    clean, marked = (
        browser.execute_script(
            "var c=document.createElement('canvas');c.width=200;c.height=200;var x=c.getContext('2d');x.drawImage(arguments[0],0,0);return Array.from(x.getImageData(0,0,200,200).data).reduce((a,b)=>a+b,0)",
            im,
        )
        for im in images
    )
    assert marked > clean  # the white watermark brightens the picture
    browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, "[id='gallery-imagenet-w']"))
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "leaderboard-imagenet-w.png"))
