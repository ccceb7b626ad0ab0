"""The mining loop closed on planted (issue 14 sec. 4): discover planted:cnn, pick each planted class's
feature component, mine the generated pool (written to a folder, so the folder reader, digests and
file bytes are what is tested), verify a handful of candidates on the real verify page in headless
Chromium and the rest with the ground truth playing the person, export the benchmark, and score
planted:cnn and planted:resnet on it, plain and SpuFix, through `spurbench run --benchmark
spurious-folder`.

The components: per planted class, the first component after the leading one (the class's overall
evidence) whose top training images all carry the planted feature, named as a labeller would (the names
reach the mining, the verify page's heading, the exported card and the ``spurious-folder`` results), what a person labelling from
the page would mark (the browser loop of the discovery marks the same component 1 for triangle and
crescent; for ell, where the ground-truth demo clips nothing, it is component 1 too on this machine).

What the test asserts is what the issue asks: >= 90 % of the top 50 candidates of every planted class
carry the feature; on the exported benchmark the planted classes score >= 0.3 below the control
classes of the generator's own held-out set, and SpuFix raises them. The figures are printed to
test-artifacts/mine-loop.json (the README reports them) with screenshots of the verify pages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spurbench.benchmarks import get_benchmark
from spurbench.benchmarks.planted import write_pool
from spurbench.discovery.index import read_index
from spurbench.mining.index import read_mining
from spurbench.mining.verdicts import read_verdicts, record_verdict
from spurbench.results import read_result, result_filename
from spurbench.tasks import get_task
from tests.support.label_server import chromium, open_page, serve, wait_until

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
BY_BROWSER = 4  # candidates per planted class verified through the page; the rest by the ground truth


def _verify_in_browser(folder: Path, truth, planted: list[int], names: dict[int, str]) -> None:
    from selenium.webdriver.common.by import By

    with serve(folder, "person") as url, chromium() as driver:
        open_page(driver, url + "/")
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "verify-index.png"))
        for k in planted:
            open_page(driver, f"{url}/class/{k}")
            heading = driver.find_element(By.CSS_SELECTOR, ".component h2").text
            assert f"“{names[k]}”" in heading, heading  # the feature's name, as the components file gives it
            cards = driver.find_elements(By.CSS_SELECTOR, ".candidate")[:BY_BROWSER]
            for i, card in enumerate(cards):
                verdict = "absent" if truth.objects[card.get_attribute("data-image")] != k else "present"
                if i % 2:  # the keyboard: select the card (a click on its caption: one on its image zooms), then a / p
                    card.find_element(By.CSS_SELECTOR, ".meta").click()
                    driver.execute_script("document.activeElement && document.activeElement.blur()")
                    from selenium.webdriver.common.action_chains import ActionChains

                    ActionChains(driver).send_keys(verdict[0]).perform()
                else:
                    card.find_element(By.CSS_SELECTOR, f'button[data-verdict="{verdict}"]').click()
                wait_until(
                    lambda c=card, v=verdict: c.get_attribute("data-verdict") == v, what=f"candidate {i} of class {k} to show {verdict}"
                )
            if k == planted[0]:
                driver.save_screenshot(str(ARTIFACTS / "verify-class.png"))
        open_page(driver, f"{url}/class/{planted[0]}")  # a reload shows them
        shown = {
            c.get_attribute("data-image"): c.get_attribute("data-verdict")
            for c in driver.find_elements(By.CSS_SELECTOR, ".candidate")[:BY_BROWSER]
        }
        assert all(shown.values()), shown


@pytest.mark.slow
def test_discover_mine_verify_export_run(cli, trained, tmp_path, monkeypatch) -> None:
    cache, _models = trained
    env = {"SPURBENCH_CACHE": str(cache)}
    monkeypatch.setenv("SPURBENCH_CACHE", str(cache))
    gt = get_benchmark("planted").ground_truth({"seed": 0})
    planted = sorted(gt.features)

    proc = cli(
        "discover",
        "-m",
        "planted:cnn",
        "--train-data",
        "planted",
        "--out",
        "d",
        "--components-per-class",
        "5",
        "--npfv-steps",
        "20",
        "-q",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    index = read_index(tmp_path / "d")
    picks = {}
    for k in planted:
        carries = [all(gt.carriers.get(t.image_id) == gt.features[k] for t in c.top_images) for c in index.classes[str(k)].components]
        picks[k] = next(rank for rank in range(1, len(carries)) if carries[rank])
    names = {k: f"planted feature {gt.features[k]}" for k in picks}  # as a labeller named them (label export's "names")
    listed = {"components": {str(k): [r] for k, r in picks.items()}, "names": {str(k): {str(r): names[k]} for k, r in picks.items()}}
    (tmp_path / "components.json").write_text(json.dumps(listed))

    truth = write_pool(tmp_path / "pool")
    (tmp_path / "pool" / "part-0" / "broken.png").write_bytes(b"a failed download")
    proc = cli(
        "mine",
        "-m",
        "planted:cnn",
        "--discovery",
        "d",
        "--components",
        "components.json",
        "--pool",
        "pool",
        "--out",
        "m",
        "-q",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 unreadable pool files: part-0/broken.png" in proc.stdout  # skipped, named, counted
    mining = read_mining(tmp_path / "m")
    figures: dict = {"components": picks, "top50": {}}
    for entry in mining.components:
        k, top = entry.class_index, entry.candidates[:50]
        carry = sum(truth.features[c.image_id] == gt.features[k] for c in top) / len(top)
        feature_only = sum(truth.features[c.image_id] == gt.features[k] and truth.objects[c.image_id] is None for c in top) / len(top)
        figures["top50"][k] = {"carry": carry, "feature_only": feature_only, "candidates": len(entry.candidates)}
        assert len(top) == 50 and carry >= 0.9, (k, carry)
        assert entry.component_name == names[k]

    _verify_in_browser(tmp_path / "m", truth, planted, names)
    by_page = len(read_verdicts(tmp_path / "m").records)
    assert by_page == BY_BROWSER * len(planted)
    for entry in mining.components:  # the ground truth plays the person for the rest
        for c in entry.candidates:
            if c.rank > BY_BROWSER:
                record_verdict(
                    tmp_path / "m",
                    entry.class_index,
                    c.image_id,
                    "absent" if truth.objects[c.image_id] != entry.class_index else "present",
                    "person",
                )

    proc = cli("mine", "export", "m", "--out", "bench", "--min-per-class", "20", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "bench" / "spurbench.json").read_text())
    figures["verified"] = card["provenance"]["classes"]
    assert {k: entry.get("component_names") for k, entry in card["classes"].items()} == {str(k): {str(picks[k]): names[k]} for k in picks}

    for arch in ("cnn", "resnet"):
        model = f"planted:{arch}"
        source = [] if arch == "cnn" else ["--source-model", "planted:cnn"]
        fit = cli(
            "spufix",
            "fit",
            "-m",
            model,
            *source,
            "--train-data",
            "planted",
            "--components",
            "components.json",
            "-o",
            f"spufix-{arch}",
            "-q",
            cwd=tmp_path,
            env=env,
        )
        assert fit.returncode == 0, fit.stderr
        meta = json.loads((tmp_path / f"spufix-{arch}" / "spufix.json").read_text())  # the names travel into the artifact
        assert meta["format"] == 3 and meta["component_names"] == listed["names"], arch
        run = cli(
            "run",
            "-m",
            model,
            "--benchmark",
            "spurious-folder",
            "--data-dir",
            "bench",
            "--spufix",
            f"spufix-{arch}",
            "--bootstrap",
            "0",
            "-q",
            "-o",
            "out",
            cwd=tmp_path,
            env=env,
        )
        assert run.returncode == 0, run.stderr
        # the held-out planted benchmark with the same (shipped) weights: the committed result, which
        # tests/test_planted_weights.py checks a fresh run reproduces
        held_out = read_result(ROOT / "leaderboard" / "results" / result_filename(model, "planted")).heads["plain"]
        control = [c.auc for c in held_out.classes if c.group == "control"]
        files = list((tmp_path / "out").glob(f"*{result_filename(model, 'x').split('__')[-1]}"))
        result = read_result(next(f for f in files if "spurious-folder" in f.name))
        assert result.benchmark.class_component_names == {str(k): {str(picks[k]): names[k]} for k in picks}  # the board's source
        worst = {row["class_index"]: row for part in get_task(result.kind).board([result], {}).sections[0].models for row in part.rows}
        assert {k: (worst[k]["feature"], worst[k]["spufix_clips"]) for k in picks} == {
            k: (f"{names[k]} (component {picks[k]})", names[k]) for k in picks
        }  # the board's worst classes: the mined feature, and what SpuFix clips, by name
        plain = {c.class_index: c.auc for c in result.heads["plain"].classes}
        fixed = {c.class_index: c.auc for c in result.heads["spufix"].classes}
        assert set(plain) == set(planted)
        assert max(plain.values()) <= min(control) - 0.3, (arch, plain, min(control))
        assert sum(fixed.values()) > sum(plain.values()), (arch, plain, fixed)
        top1 = result.heads["plain"].image_top1
        sufficiency = {
            k: sum(v for i, v in top1.items() if result.images[i].role == "negative" and result.images[i].class_index == k)
            / sum(1 for i in result.images.values() if i.role == "negative" and i.class_index == k)
            for k in planted
        }
        figures[arch] = {"auc_plain": plain, "auc_spufix": fixed, "control_auc_held_out_min": min(control), "sufficiency": sufficiency}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "mine-loop.json").write_text(json.dumps(figures, indent=1, default=str))
