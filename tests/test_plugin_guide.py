"""The plugin guide (docs/extending/) holds: its example plugins (docs/examples/, included in the guide
with ``--8<--``) register, run end to end through the real CLI, give the numbers the guide prints,
and every contract violation the guide promises is one line with exit status 2."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shlex
from pathlib import Path

import pytest

from spurbench.adapters import ADAPTERS
from spurbench.benchmarks import BENCHMARKS, BenchmarkPlugin, TrainingData, register_benchmark
from spurbench.errors import SpurbenchError
from tests.support.one_line import one_line_error

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
GUIDE = ROOT / "docs" / "extending"


@pytest.fixture
def examples(monkeypatch):
    """The example modules, importable and registered (as an installed distribution's entry points would)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    benchmark, models = importlib.import_module("dots_benchmark"), importlib.import_module("dots_models")
    register_benchmark(benchmark.DotsBenchmark)
    ADAPTERS.register("dotsnet", models.DotsNet)
    yield benchmark, models
    BENCHMARKS.unregister("dots")
    ADAPTERS.unregister("dotsnet")


def console_commands(page: Path) -> list[list[str]]:
    """The ``$ spurbench ...`` lines of a page's console blocks, as argument lists."""
    return [shlex.split(line)[1:] for line in re.findall(r"^\$ (spurbench .*)$", page.read_text(), flags=re.M)]


def test_every_command_of_the_guide_runs(examples, cli, tmp_path):
    ran = []
    for page in sorted(GUIDE.glob("*.md")):
        cwd = tmp_path / page.stem
        cwd.mkdir()
        for args in console_commands(page):
            result = cli(*args, cwd=cwd)
            assert result.returncode == 0, f"{page.name}: spurbench {' '.join(args)}\n{result.stderr}"
            ran.append((page.name, args))
    assert ("index.md", ["run", "-b", "dots"]) in ran
    assert ("benchmarks.md", ["leaderboard", "verify", "results/dots__dotsnet_small.json"]) in ran
    assert len(ran) >= 4


def class_auc(result: dict, head: str, k: int) -> float:
    (row,) = [row for row in result["heads"][head]["classes"] if row["class_index"] == k]
    return row["auc"]


def test_the_spufix_demo_gives_the_guides_numbers(examples, cli, tmp_path):
    result = cli("run", "-b", "dots", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = {name: json.loads((tmp_path / "out" / f"dots__dotsnet_{name}.json").read_text()) for name in ("small", "large")}
    # The table in docs/extending/benchmarks.md: model, class 0 AUC plain, class 0 AUC SpuFix.
    table = re.findall(r"^\| `dotsnet:(\w+)`[^|]*\| ([\d.]+) \| ([\d.]+) \|$", (GUIDE / "benchmarks.md").read_text(), flags=re.M)
    assert {name for name, _, _ in table} == {"small", "large"}
    for name, plain, spufix in table:
        assert class_auc(files[name], "plain", 0) == pytest.approx(float(plain), abs=5e-4)
        assert class_auc(files[name], "spufix", 0) == pytest.approx(float(spufix), abs=5e-4)
        assert float(spufix) > float(plain)
    for name, data in files.items():
        for k in (1, 2):  # the control classes: the model never reads their corner dot
            assert class_auc(data, "plain", k) == class_auc(data, "spufix", k) == 1.0, name
        extra = data["heads"]["plain"]["extra_metrics"]
        assert extra["mauc_seeded"] < extra["mauc_control"] == 1.0
    # The demo's index.md sentence quotes the same numbers, rounded.
    index = (GUIDE / "index.md").read_text()
    assert "from 0.43 to 0.83 (small) and from 0.74 to 1.00 (large" in index
    assert "SpuFix demo" in result.stdout


def test_the_example_pyproject_declares_the_example_plugins(examples):
    benchmark, models = examples
    text = (EXAMPLES / "pyproject.toml").read_text()  # read without tomllib, which Python 3.10 lacks
    declared, group = {}, None
    for line in text.splitlines():
        section = re.fullmatch(r'\[(?:project\.entry-points\."([\w.]+)"|.*)\]', line)
        if section:
            group = section[1]
        elif group and (entry := re.fullmatch(r'([\w-]+) = "([\w.]+):(\w+)"', line)):
            declared[group, entry[1]] = getattr(importlib.import_module(entry[2]), entry[3])
    assert declared == {("spurbench.benchmarks", "dots"): benchmark.DotsBenchmark, ("spurbench.adapters", "dotsnet"): models.DotsNet}
    assert benchmark.DotsBenchmark.name == "dots" and models.DotsNet.family == "dotsnet"
    assert 'py-modules = ["dots_benchmark", "dots_models"]' in text


def test_the_testing_examples_run(examples):
    tests = importlib.import_module("dots_plugin_tests")
    assert 0.5 < tests.dotsnet_on_the_tiny_benchmark() <= 1.0
    assert tests.dots_benchmark_on_its_own_model() == pytest.approx(5 / 6, abs=0.1)


def test_a_ground_truth_without_spurious_only_images_is_one_line(examples, cli, tmp_path):
    benchmark, _ = examples

    class NoSpuriousOnly(benchmark.DotsBenchmark):
        name = "dots-broken"

        def ground_truth(self, options):
            truth = super().ground_truth(options)
            truth.validation.images = [im for im in truth.validation.images if im.role == "positive"]
            return type(truth)(truth.train, truth.validation, truth.features, truth.carriers)

    register_benchmark(NoSpuriousOnly)
    try:
        line = one_line_error(cli("run", "-b", "dots-broken", "-o", "out", cwd=tmp_path))
    finally:
        BENCHMARKS.unregister("dots-broken")
    assert "has no spurious-only images of seeded class 0" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_option_out_of_bounds_is_one_line(examples, cli, tmp_path):
    line = one_line_error(cli("run", "-b", "dots", "-O", "stripe=2", cwd=tmp_path))
    assert "stripe" in line


def test_an_unknown_model_spec_is_one_line(examples, cli, tmp_path):
    line = one_line_error(cli("run", "-b", "dots", "-m", "dotsnet:huge", cwd=tmp_path))
    assert "unknown dotsnet model 'huge'" in line


def test_a_capability_named_but_not_implemented_is_refused_when_the_class_is_defined():
    with pytest.raises(SpurbenchError, match="names the capability TrainingData but does not implement TrainingData.training_split"):

        class Incomplete(TrainingData, BenchmarkPlugin):
            name = "incomplete"
            description = "names TrainingData without training_split"

            def load(self, options):
                raise NotImplementedError

            def reference(self, revision):
                return None

    assert SpurbenchError.exit_code == 2


def digest(image) -> str:
    return hashlib.sha256(image.loader().tobytes()).hexdigest()


def test_the_examples_training_validation_and_test_images_are_distinct_draws(examples):
    """The guide's invariant (benchmarks.md, Ground truth): no image of one split is an image of another,
    under any id; for the default seed and another one."""
    benchmark, _ = examples
    plugin = benchmark.DotsBenchmark()
    for seed in (0, 3):
        options = plugin.parse_options({"seed": seed})
        truth = plugin.ground_truth(options)
        splits = {"test": plugin.load(options), "validation": truth.validation, "train": truth.train}
        pixels = {name: {im.image_id: digest(im) for im in bench.images} for name, bench in splits.items()}
        assert [len(p) for p in pixels.values()] == [144, 144, 180]
        ids = [image_id for p in pixels.values() for image_id in p]
        assert len(set(ids)) == len(ids)
        owner: dict[str, str] = {}
        for name, images in pixels.items():
            for image_id, data in images.items():
                assert data not in owner, f"seed {seed}: {name} image {image_id} is also a {owner[data]} image"
                owner[data] = name
    seed_3, seed_0 = (plugin.load(plugin.parse_options({"seed": seed})) for seed in (3, 0))
    assert not {digest(im) for im in seed_3.images} & {digest(im) for im in seed_0.images}  # --seed draws other images
