"""The documentation site: ``mkdocs build --strict`` passes (and fails on a broken link or anchor), the
generated references hold what the code holds, and the built site works in headless Chromium: its
navigation lists the plan's sections, a page's pictures load, search finds a word. Screenshots go to
test-artifacts/docs-*.png."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.label_server import chromium, wait_until

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
# The site's sections, in order (the docs plan; mkdocs.yml's nav).
SECTIONS = [
    "Home",
    "Getting started",
    "Concepts",
    "Benchmarks",
    "SpuFix",
    "Discovery and labelling",
    "Mining and verification",
    "Leaderboard",
    "Running at scale",
    "Reliability",
    "Reproducing the papers",
    "Architecture",
    "What was measured",
    "Extending spurbench",
    "Reference",
]

pytestmark = pytest.mark.slow  # two strict builds (about 10 s each on 2 cores) and a browser


def mkdocs_build(config: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # material's notice about its successor, not a warning of this build
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT / "mkdocs.yml", out, ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_the_nav_is_the_plans():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "python"))["nav"]
    assert [next(iter(entry)) for entry in nav] == SECTIONS


def _small_site(root: Path, links: str) -> Path:
    """Two pages under the project's mkdocs.yml (its theme, plugins and link validation; its own nav, no
    build hook): a whole copy of the docs would cost a second full build for the same check."""
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "index.md").write_text(f"# Home\n\n[the other page](other.md)\n{links}\n")
    (docs / "other.md").write_text("# Other\n\n## A section\n")
    config = (ROOT / "mkdocs.yml").read_text()
    assert config.count("\ndocs_dir: docs\n") == 1 and config.count("\nhooks:\n  - docs/hooks.py\n") == 1 and config.count("\nnav:\n") == 1
    config = config.replace("\ndocs_dir: docs\n", f"\ndocs_dir: {docs}\n").replace("\nhooks:\n  - docs/hooks.py\n", "\n")
    config = config[: config.index("\nnav:\n")] + "\nnav:\n  - Home: index.md\n  - Other: other.md\n"
    (root / "mkdocs.yml").write_text(config)
    return root / "mkdocs.yml"


def test_a_broken_link_or_anchor_fails_the_strict_build(tmp_path):
    sound = mkdocs_build(_small_site(tmp_path / "sound", "[a section](other.md#a-section)"), tmp_path / "out1", ROOT)
    assert sound.returncode == 0, sound.stderr[-4000:]  # the same pages, every link sound: built
    broken = mkdocs_build(
        _small_site(tmp_path / "broken", "[a page](no-such-page.md) and [an anchor](other.md#no-such-anchor)"), tmp_path / "out2", ROOT
    )
    assert broken.returncode != 0
    assert "no-such-page.md" in broken.stderr and "#no-such-anchor" in broken.stderr, broken.stderr[-4000:]
    assert "WARNING" in broken.stderr


def test_the_cli_reference_lists_every_command_and_option(site):
    import typer

    from spurbench.cli import app

    page = (site / "reference" / "cli.html").read_text()
    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        assert f'id="spurbench-{name}"' in page, name
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in page, f"spurbench {name} {opt}"
    assert 'id="spurbench-leaderboard-verify"' in page


def test_the_result_reference_is_the_json_schema(site):
    import json

    from spurbench.results import SCHEMA_VERSION, Result

    assert json.loads((site / "reference" / "schema" / "spurious-auc.json").read_text()) == Result.model_json_schema()
    page = (site / "reference" / "results.html").read_text()
    for field in Result.model_fields:
        assert f"<code>{field}</code>" in page, field
    assert f"<strong>{SCHEMA_VERSION}</strong>" in page
    assert "pooled_ap" in page  # the history, from the comments above SCHEMA_VERSION
    assert "image id -&gt; softmax probability of its class k" in page  # a field comment, read from the source


def test_the_api_reference_documents_the_plugin_records(site):
    page = (site / "reference" / "api.html").read_text()
    for name in ("BenchmarkPlugin", "Benchmark", "BenchmarkImage", "BenchmarkClass", "BenchmarkOptions", "Reference", "GroundTruth"):
        assert re.search(rf'id="spurbench\.benchmarks\.\w+\.{name}"', page), name
    for name in ("ModelAdapter", "Task", "EvaluationContext", "SpurbenchError", "DataError", "GroundTruthSource", "TrainingData"):
        assert re.search(rf'id="spurbench\.[\w.]+\.{name}"', page), name
    # A field's comment in the source is its description.
    assert "unique and stable across runs; keys per-image results and the feature cache" in page


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def page_with_pictures() -> str:
    """The first page of the nav's order whose Markdown shows an image of docs/images/."""
    for path in sorted((ROOT / "docs").rglob("*.md")):
        if re.search(r"!\[[^\]]*\]\((\.\./)*images/", path.read_text()):
            return path.relative_to(ROOT / "docs").with_suffix(".html").as_posix()
    raise AssertionError("no docs page shows a picture")


def test_the_site_in_chromium(site):
    ARTIFACTS.mkdir(exist_ok=True)
    with served(site) as url, chromium("1280,1000") as driver:
        driver.get(f"{url}/index.html")
        wait_until(lambda: driver.execute_script("return document.readyState") == "complete", what="the home page")
        nav = driver.execute_script("return document.querySelector('nav.md-nav--primary').textContent")
        labels = [" ".join(text.split()) for text in nav.split("\n") if text.strip()]
        for section in SECTIONS[1:]:
            assert section in labels, f"{section!r} not in the navigation: {labels}"
        driver.save_screenshot(str(ARTIFACTS / "docs-home.png"))

        pictures = page_with_pictures()
        driver.get(f"{url}/{pictures}")
        loaded = "return [...document.querySelectorAll('article img')].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth])"
        wait_until(lambda: all(width for _, width in driver.execute_script(loaded)), what=f"the pictures of {pictures}")
        images = driver.execute_script(loaded)
        assert images and all(width > 0 for _, width in images), images
        driver.execute_script("document.querySelector('article img').scrollIntoView()")
        driver.save_screenshot(str(ARTIFACTS / "docs-pictures.png"))

        driver.get(f"{url}/extending/benchmarks.html")
        driver.save_screenshot(str(ARTIFACTS / "docs-plugin-guide.png"))
        driver.execute_script("document.querySelector('label[for=__search]').click()")
        box = driver.find_element("css selector", "input.md-search__input")
        box.send_keys("carriers")
        hits = "return [...document.querySelectorAll('.md-search-result__item a')].map(a => a.href)"
        wait_until(lambda: driver.execute_script(hits), timeout=20, what="search results for 'carriers'")
        assert any("extending/benchmarks.html" in href for href in driver.execute_script(hits))
        driver.save_screenshot(str(ARTIFACTS / "docs-search.png"))

        driver.get(f"{url}/reference/api.html")
        driver.save_screenshot(str(ARTIFACTS / "docs-api.png"))
