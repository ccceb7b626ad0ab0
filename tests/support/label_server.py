"""Helpers for driving the real label server (``python -m spurbench label DIR``) in headless Chromium:
start it on a free port, open a browser, open a class page and label components the way a person does.

Reusable by any browser test::

    with serve(folder, "alice") as url, chromium() as driver:
        open_class(driver, url, 3)
        click_label(driver, rank=0, label="spurious")
        press(driver, "s")                     # keyboard: labels the current component
        wait_for_label(driver, rank=1, label="spurious")
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def tiny_discovery(tmp_path_factory, classes: list[int], components: int = 3, top: int = 2, bottom: int = 1, robust: bool = False) -> Path:
    """A real discovery of the tiny test model (its own feature cache), for the label page's tests."""
    from spurbench.discovery.pipeline import discover
    from spurbench.settings import DiscoverySettings, FeatureSettings
    from spurbench.testing import TinyAdapter, tiny_benchmark

    out = tmp_path_factory.mktemp("discovery")
    train = tiny_benchmark(per_role=10)
    train.name = "tiny-train"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPURBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        settings = DiscoverySettings(
            model="tiny:net",
            benchmark="tiny",
            out=out,
            classes=classes,
            components_per_class=components,
            top_images=top,
            bottom_images=bottom,
            npfv_steps=2,
            robust=robust,
            features=FeatureSettings(batch_size=4, progress=False),
        )
        discover(settings, model=TinyAdapter(), train=train)
    return out


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def serve(folder: Path, labeler: str, port: int | None = None, timeout: float = 180.0) -> Iterator[str]:
    """Run ``python -m spurbench label FOLDER --port PORT --labeler LABELER`` (PORT: a free one) until
    the block ends; yields its base URL (``http://127.0.0.1:PORT``) once it answers. The server is
    stopped (SIGTERM, then SIGKILL) when the block exits; its output is in the error if it dies early."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "spurbench", "label", str(folder), "--port", str(port), "--labeler", labeler]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the label server exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/", timeout=2) as response:  # both modes serve their class list there
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    try:
        wait_until(answers, timeout, f"the label server on {url}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()


@contextlib.contextmanager
def chromium(window_size: str = "1280,1600") -> Iterator[object]:
    """A headless Chromium (Debian's ``chromium`` and ``chromium-driver``) as a selenium WebDriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "install Debian's chromium and chromium-driver (see README)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={window_size}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _ready(driver) -> bool:
    return driver.execute_script("return document.body && document.body.dataset.ready === 'yes'")


def open_page(driver, url: str) -> None:
    """Load a label page and wait until its script has rendered the labels."""
    driver.get(url)
    wait_until(lambda: _ready(driver), what=f"{url} to render")


def open_class(driver, url: str, class_index: int, order: str = "rank") -> None:
    """The class page; in rank order unless ``order`` says otherwise (the tests that name components by
    rank press keys in rank order; the page's default order is by share of the logit's variance)."""
    open_page(driver, f"{url}/class/{class_index}" + ("?order=rank" if order == "rank" else ""))


def active_label(driver, rank: int) -> str | None:
    """The label highlighted on component ``rank`` of the open class page (None: none)."""
    from selenium.webdriver.common.by import By

    pressed = driver.find_elements(By.CSS_SELECTOR, f"#component-{rank} button.label.active")
    return pressed[0].get_attribute("data-label") if pressed else None


def wait_for_label(driver, rank: int, label: str | None, timeout: float = 10.0) -> None:
    wait_until(lambda: active_label(driver, rank) == label, timeout, f"component {rank} to show {label}")


def click_label(driver, rank: int, label: str) -> None:
    """Click component ``rank``'s button for ``label`` ("spurious", "not_spurious", "inconsistent") and
    wait until the page shows the saved label."""
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.CSS_SELECTOR, f'#component-{rank} button[data-label="{label}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    wait_for_label(driver, rank, label)


def current_component(driver) -> int:
    """The rank of the component the keyboard acts on."""
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.CSS_SELECTOR, ".component.current").get_attribute("data-rank"))


def press(driver, keys: str) -> None:
    """Type ``keys`` on the page (no element focused), as the keyboard shortcuts expect."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("document.activeElement && document.activeElement.blur()")
    ActionChains(driver).send_keys(keys).perform()
