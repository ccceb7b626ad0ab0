"""The loop a real user runs, closed on the planted benchmark: `spurbench discover` on planted:cnn, a
person labels each planted class's feature component on the real label page in headless Chromium,
`spurbench label export`, then `spufix fit --components exported.json` clips the components the
ground-truth demo (`spufix fit --components-from-ground-truth`) picks, and `run --spufix` gains on the
planted classes, for the source model and for the transfer to planted:resnet; a board built from those
results names the clipped features.

The person is played by the generator's ground truth: for each planted class, with the page's keys, they
name spurious the components the ground-truth demo picks (the test first checks what the page shows them:
all top images of the first pick carry the planted feature, some of those of a further pick: its position's
digit, ``t``, the name, Enter) and mark the rest not spurious with ``a``; a class where the demo picks none
(clipping no component raised its validation AUC) gets only ``a``. The names reach the export and the
SpuFix artifacts. Screenshots: test-artifacts/label-planted-index.png and
test-artifacts/label-planted-class.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spurbench.benchmarks import get_benchmark
from spurbench.discovery.index import read_index
from spurbench.results import read_result, result_filename
from spurbench.settings import FeatureSettings
from spurbench.spufix.components import load_components, read_components
from spurbench.spufix.ground_truth import ground_truth_choices
from tests.support.label_server import active_label, chromium, open_class, open_page, press, serve, wait_until

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
COMPONENTS = 5


def _spufix_aucs(
    cli, tmp_path: Path, env: dict, model: str, artifact: Path, out: str
) -> tuple[dict[int, float], dict[int, float], dict[int, str]]:
    run = cli(
        "run", "--model", model, "--spufix", str(artifact), "--bootstrap", "0", "-q", "-o", str(tmp_path / out), cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr
    result = read_result(tmp_path / out / result_filename(model, "planted"))
    plain = {c.class_index: c.auc for c in result.heads["plain"].classes}
    fixed = {c.class_index: c.auc for c in result.heads["spufix"].classes}
    return plain, fixed, {c.class_index: c.group for c in result.heads["plain"].classes}


@pytest.mark.slow
def test_discover_label_export_fit_gives_the_ground_truth_demos_gains(cli, trained, tmp_path, monkeypatch) -> None:
    cache, models = trained
    env = {"SPURBENCH_CACHE": str(cache)}
    monkeypatch.setenv("SPURBENCH_CACHE", str(cache))
    folder = tmp_path / "discovery"
    proc = cli(
        "discover",
        "-m",
        "planted:cnn",
        "--train-data",
        "planted",
        "--out",
        str(folder),
        "--components-per-class",
        str(COMPONENTS),
        "--npfv-steps",
        "20",
        "-q",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    index = read_index(folder)
    truth = get_benchmark("planted").ground_truth({"seed": 0})
    picked = {k: choice.components for k, choice in ground_truth_choices(models["cnn"], truth, FeatureSettings(progress=False)).items()}
    assert set(picked) == set(truth.features) and any(picked.values()), picked  # a class may get none (no validation gain)
    for k, ranks in picked.items():  # what the person sees on the page supports the labels
        for position, rank in enumerate(ranks):
            assert rank < COMPONENTS, (k, ranks)
            carried = [truth.carriers.get(t.image_id) == truth.features[k] for t in index.classes[str(k)].components[rank].top_images]
            # the demo's first pick shows the feature in all its top images; a further pick (added because
            # clipping it too raised the validation AUC) may show it in only some of them
            assert all(carried) if position == 0 else any(carried), (k, rank, carried)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    names = {k: f"planted feature {truth.features[k]}" for k in picked}
    with serve(folder, "person") as url, chromium() as driver:
        for k, ranks in sorted(picked.items()):
            # the keyboard, most important component first: its position's digit, t and the feature's name, then a (the rest not spurious)
            open_class(driver, url, k, order="share")
            shown = [
                int(r) for r in driver.execute_script("return [...document.querySelectorAll('.component')].map((s) => s.dataset.rank)")
            ]
            for rank in ranks:
                press(driver, str(shown.index(rank) + 1))
                press(driver, "t")
                ActionChains(driver).send_keys(names[k] + Keys.ENTER).perform()
            press(driver, "a")
            wait_until(lambda: driver.execute_script("return document.getElementById('saves').dataset.state") == "saved", what="the saves")
            if k == min(picked):  # the whole page, as tall as it is, to look at
                open_class(driver, url, k)
                ARTIFACTS.mkdir(exist_ok=True)
                driver.set_window_size(1280, driver.execute_script("return document.documentElement.scrollHeight") + 120)
                driver.save_screenshot(str(ARTIFACTS / "label-planted-class.png"))
                driver.set_window_size(1280, 1600)
        for k, ranks in picked.items():  # a reload shows every label kept
            open_class(driver, url, k)
            assert [active_label(driver, rank) for rank in range(COMPONENTS)] == [
                "spurious" if r in ranks else "not_spurious" for r in range(COMPONENTS)
            ]
        open_page(driver, url + "/")
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "label-planted-index.png"))

    exported = tmp_path / "exported.json"
    proc = cli("label", "export", str(folder), "--out", str(exported), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert load_components(exported) == {k: sorted(v) for k, v in picked.items() if v}
    assert json.loads(exported.read_text())["model"] == "planted:cnn"
    assert read_components(exported).names == {k: dict.fromkeys(v, names[k]) for k, v in picked.items() if v}

    for model, source in (("planted:cnn", []), ("planted:resnet", ["--source-model", "planted:cnn"])):
        fitted = tmp_path / f"spufix-labelled-{model.split(':')[1]}"
        fit = cli(
            "spufix",
            "fit",
            "-m",
            model,
            *source,
            "--train-data",
            "planted",
            "--components",
            str(exported),
            "-o",
            str(fitted),
            "-q",
            cwd=tmp_path,
            env=env,
        )
        assert fit.returncode == 0, fit.stderr
        meta = json.loads((fitted / "spufix.json").read_text())
        # the labels' artifact clips what `--components-from-ground-truth` would (ground_truth_choices: `picked`),
        # so it has the demo's gains; and the names travel into it
        assert meta["components"] == {str(k): sorted(v) for k, v in picked.items() if v}, meta["components"]
        named = meta["component_names"]
        assert named == {str(k): {str(r): names[k] for r in v} for k, v in picked.items() if v}, named
        plain, labelled, groups = _spufix_aucs(cli, tmp_path, env, model, fitted, f"out-labelled-{model}")
        seeded = [k for k, g in groups.items() if g == "planted"]
        assert sum(labelled[k] - plain[k] for k in seeded) / len(seeded) > 0.02, model  # and they are gains
        recorded = read_result(tmp_path / f"out-labelled-{model}" / result_filename(model, "planted")).spufix
        assert recorded is not None and recorded.component_names == named, recorded  # the result records them

    # and the board names, in each model's worst classes, the features its SpuFix head clips
    runs = [str(tmp_path / f"out-labelled-{model}") for model in ("planted:cnn", "planted:resnet")]
    board = cli("leaderboard", "build", *runs, "--out", str(tmp_path / "board"), "--model-lists-dir", str(tmp_path), cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    page = (tmp_path / "board" / "index.html").read_text()
    for k, ranks in picked.items():  # the class's cell in each model's worst classes (10 of 10 classes)
        assert page.count(f">{', '.join([names[k]] * len(ranks))}</td>") == 2 if ranks else names[k] not in page, k
