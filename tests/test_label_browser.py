"""The label pages in a real headless Chromium against the real server (``python -m spurbench label``):
search and filter the classes, label with the mouse and the keyboard, labels kept over a reload, two
tabs labelling at once without losing each other's labels, the progress, then ``spurbench label export``.
Screenshots go to test-artifacts/label-index.png and test-artifacts/label-class.png (CI uploads them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spurbench.discovery.index import read_index
from spurbench.discovery.labels import LABELS_FILE, latest, read_labels
from spurbench.spufix.components import load_components
from tests.support.label_server import (
    active_label,
    chromium,
    click_label,
    current_component,
    open_class,
    open_page,
    press,
    serve,
    tiny_discovery,
    wait_for_label,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.slow  # the server's start-up imports the whole pipeline


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A tiny discovery of three classes, three components and two top images each."""
    return tiny_discovery(tmp_path_factory, [0, 1, 2])


def _visible_classes(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-index") for row in driver.find_elements(By.CSS_SELECTOR, "#classes tbody tr") if row.is_displayed()]


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _stored(folder: Path) -> dict[tuple[int, int], str]:
    return {(k, rank): r.label for (k, rank, who), r in latest(read_labels(folder)).items() if who == "alice"}


def test_labelling_in_the_browser(folder, tmp_path, cli) -> None:
    from selenium.webdriver.common.by import By

    work = Path(shutil.copytree(folder, tmp_path / "discovery"))
    with serve(work, "alice") as url, chromium() as driver:
        # the class list: progress, search by name or index, the link to a class
        open_page(driver, url + "/")
        assert _text(driver, "#progress") == "0 / 3 classes done" and _visible_classes(driver) == ["0", "1", "2"]
        search = driver.find_element(By.ID, "search")
        search.send_keys("CLASS1")
        assert _visible_classes(driver) == ["1"]
        search.clear()
        search.send_keys("2")
        assert _visible_classes(driver) == ["2"]
        search.clear()
        search.send_keys(" ")
        driver.find_element(By.LINK_TEXT, "class1").click()
        wait_until(
            lambda: driver.execute_script("return document.body.dataset.ready") == "yes" and driver.current_url.endswith("/class/1"),
            what="class 1",
        )

        # the class opens most important first, at its most important unlabelled component; the link switches to rank order
        shares = {c.rank: c.variance_share for c in read_index(work).classes["1"].components}
        assert current_component(driver) == max(shares, key=lambda r: (shares[r], -r))
        driver.find_element(By.ID, "order-toggle").click()
        wait_until(
            lambda: (
                driver.execute_script("return document.body.dataset.ready") == "yes" and driver.current_url.endswith("/class/1?order=rank")
            ),
            what="class 1 in rank order",
        )

        # mouse, then keyboard: j moves to the next component, n labels it and moves on
        assert [active_label(driver, r) for r in range(3)] == [None, None, None] and current_component(driver) == 0
        click_label(driver, 0, "spurious")
        press(driver, "j")
        assert current_component(driver) == 1
        press(driver, "n")
        wait_for_label(driver, 1, "not_spurious")
        assert current_component(driver) == 2 and _stored(work) == {(1, 0): "spurious", (1, 1): "not_spurious"}
        assert "by alice" in _text(driver, "#component-1 .mine")

        # a reload shows what is on disk
        open_class(driver, url, 1)
        assert [active_label(driver, r) for r in range(3)] == ["spurious", "not_spurious", None]
        assert current_component(driver) == 2  # the first unlabelled one

        # a second tab labels component 2; the first, not reloaded, relabels component 1: both kept
        first = driver.current_window_handle
        driver.switch_to.new_window("tab")
        open_class(driver, url, 1)
        click_label(driver, 2, "inconsistent")
        driver.switch_to.window(first)
        assert active_label(driver, 2) is None  # this tab has not heard of it yet
        click_label(driver, 1, "spurious")
        wait_for_label(driver, 2, "inconsistent")  # the answer carries the other tab's label
        assert _stored(work) == {(1, 0): "spurious", (1, 1): "spurious", (1, 2): "inconsistent"}
        assert len((work / LABELS_FILE).read_text().splitlines()) == 1 + 4  # the ledger's header and four labels
        wait_until(lambda: _text(driver, "header .progress") == "1 / 3 classes done", what="the progress to change")
        assert _text(driver, "#class-status") == "done"
        assert driver.find_element(By.ID, "next-unlabelled").get_attribute("href").endswith("/class/2?order=rank")
        driver.execute_script("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "label-class.png"))

        # an image opens enlarged, with its GradCAM; Esc closes it
        driver.find_element(By.CSS_SELECTOR, "#component-0 .group:not(.npfv) figure img").click()
        zoomed = driver.find_elements(By.CSS_SELECTOR, "#zoom img")
        assert driver.find_element(By.ID, "zoom").is_displayed() and len(zoomed) == 2 and zoomed[0].size["width"] > 400
        press(driver, "\ue00c")  # Escape
        assert not driver.find_element(By.ID, "zoom").is_displayed()

        # ] and [ move between classes
        press(driver, "]")
        wait_until(lambda: driver.current_url.endswith("/class/2?order=rank"), what="the next class, in the same order")
        wait_until(lambda: driver.execute_script("return document.body.dataset.ready") == "yes", what="class 2 to render")
        press(driver, "[")
        wait_until(lambda: driver.current_url.endswith("/class/1?order=rank"), what="the previous class")

        # back on the class list: the progress and the "only unlabelled" filter
        open_page(driver, url + "/")
        assert _text(driver, "#progress") == "1 / 3 classes done"
        search = driver.find_element(By.ID, "search")
        search.clear()
        driver.find_element(By.ID, "only-unlabelled").click()
        assert _visible_classes(driver) == ["0", "2"]
        driver.find_element(By.ID, "only-unlabelled").click()
        assert driver.save_screenshot(str(ARTIFACTS / "label-index.png"))

    proc = cli("label", "export", str(work), "--out", str(tmp_path / "components.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_components(tmp_path / "components.json") == {1: [0, 1]}
