"""The library face: ``spurbench.list_models``, ``list_benchmarks``, ``load_model``, ``load_benchmark``,
``evaluate``, ``fit_spufix``, ``discover`` and ``mine`` are the real functions, typed for type checkers,
imported lazily (``import spurbench`` loads no torch), each taking the typed settings its command
builds; the settings refuse what the command refuses, in its words; and the library gives the numbers
the commands give."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

import spurbench
from spurbench.adapters import ModelAdapter
from spurbench.benchmarks import Benchmark
from spurbench.errors import SpurbenchError
from spurbench.settings import CommandSettings, DiscoverySettings, MiningSettings, RunSettings, SpuFixFitSettings
from spurbench.testing import tiny_benchmark
from tests.support.one_line import one_line_error

ROOT = Path(__file__).resolve().parents[1]
FACE = ["list_models", "list_benchmarks", "load_model", "load_benchmark", "evaluate", "fit_spufix", "discover", "mine"]
TAKES = {"evaluate": RunSettings, "fit_spufix": SpuFixFitSettings, "discover": DiscoverySettings, "mine": MiningSettings}
HOMES = {
    "list_models": "spurbench.adapters.catalog",
    "load_model": "spurbench.adapters.catalog",
    "load_benchmark": "spurbench.benchmarks.catalog",
    "evaluate": "spurbench.harness",
    "fit_spufix": "spurbench.runs",
    "discover": "spurbench.discovery.pipeline",
    "mine": "spurbench.mining.pipeline",
}


def test_every_name_is_the_real_typed_function() -> None:
    from spurbench import discover, evaluate, fit_spufix, list_benchmarks, list_models, load_benchmark, load_model, mine

    imported = dict(zip(FACE, [list_models, list_benchmarks, load_model, load_benchmark, evaluate, fit_spufix, discover, mine]))
    assert set(FACE) <= set(spurbench.__all__) and set(FACE) <= set(dir(spurbench))
    for name, function in imported.items():
        hints = typing.get_type_hints(function)
        assert "return" in hints, name
        if name in HOMES:
            assert function is getattr(sys.modules[HOMES[name]], name), name
        if name in TAKES:
            assert hints["settings"] is TAKES[name], (name, hints)
    assert typing.get_type_hints(load_model)["return"] is ModelAdapter and typing.get_type_hints(load_benchmark)["return"] is Benchmark
    assert typing.get_type_hints(list_benchmarks)["return"] == list[str] and "tiny" in list_benchmarks()  # spurbench.testing's
    assert typing.get_type_hints(list_models)["return"] == dict[str, list[str]]
    with pytest.raises(AttributeError, match="has no attribute 'evalute'"):
        spurbench.evalute  # type: ignore[attr-defined]  # noqa: B018


def test_import_spurbench_loads_no_torch() -> None:
    probe = "import sys, spurbench; print('torch' in sys.modules, sorted(spurbench.__all__))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0 and run.stdout.startswith("False ["), run.stdout + run.stderr
    assert all(repr(name) in run.stdout for name in FACE), run.stdout


GOOD = """\
from pathlib import Path

import spurbench
from spurbench.adapters import ModelAdapter
from spurbench.discovery.index import DiscoveryIndex
from spurbench.mining.index import MiningIndex
from spurbench.settings import DiscoverySettings, MiningSettings, RunSettings, SpuFixFitSettings
from spurbench.spufix.artifact import SpuFixArtifact
from spurbench.tasks import TaskResult

names: list[str] = spurbench.list_benchmarks()
families: dict[str, list[str]] = spurbench.list_models("tiny:*")
model: ModelAdapter = spurbench.load_model("tiny:net")
found: DiscoveryIndex = spurbench.discover(DiscoverySettings(model="tiny:net", benchmark="tiny", out=Path("d")), model=model)
mined: MiningIndex = spurbench.mine(MiningSettings(model="tiny:net", spufix="art", pool="pool", out=Path("m")))
fitted: SpuFixArtifact = spurbench.fit_spufix(SpuFixFitSettings(model="tiny:net"), model=model)
result: TaskResult = spurbench.evaluate(RunSettings(model="tiny:net", benchmark="tiny"))
"""
BAD = """\
from pathlib import Path

import spurbench
from spurbench.settings import DiscoverySettings, RunSettings

spurbench.discover(RunSettings(model="tiny:net", benchmark="tiny"))
spurbench.mine(DiscoverySettings(model="tiny:net", out=Path("d")))
spurbench.fit_spufix("tiny:net")
spurbench.evalute
"""


@pytest.mark.slow
def test_type_checkers_see_the_face_and_refuse_a_wrong_call(tmp_path) -> None:
    """mypy (the project's configuration, from the checkout, so its cache serves: a few seconds warm)."""
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(tmp_path / "good.py"), str(tmp_path / "bad.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    lines = run.stdout.splitlines()
    # (not errors inside spurbench; mypy's warm cache may name the snippets by an earlier run's folder)
    mine = [found.group(1) for line in lines if (found := re.match(r".*?/((?:good|bad)\.py:\d+: .*)", line))]
    assert not [line for line in mine if line.startswith("good.py")], run.stdout + run.stderr
    bad = sorted(line.split(": error: ")[0] + ": " + line.rsplit("[", 1)[-1] for line in mine if line.startswith("bad.py"))
    assert bad == ["bad.py:6: arg-type]", "bad.py:7: arg-type]", "bad.py:8: arg-type]", "bad.py:9: attr-defined]"], run.stdout + run.stderr


def _discovery(**values) -> DiscoverySettings:
    return DiscoverySettings(**{"model": "tiny:net", "benchmark": "tiny", "out": Path("d"), **values})


def _mining(**values) -> MiningSettings:
    return MiningSettings(**{"model": "tiny:net", "spufix": "art", "pool": "pool", "out": Path("m"), **values})


def _fit(**values) -> SpuFixFitSettings:
    return SpuFixFitSettings(**{"model": "tiny:net", **values})


COUNTS = "--components-per-class and --top-images must be at least 1, --bottom-images and --npfv-steps at least 0"
BOUNDS = "--per-component must be at least 1, --dedup-cosine in (0, 1], --require-predicted top1, top5 or none"


@pytest.mark.parametrize(
    "build, values, words",
    [
        (_discovery, {"components_per_class": 0}, COUNTS),
        (_discovery, {"top_images": 0}, COUNTS),
        (_discovery, {"npfv_steps": -1}, COUNTS),
        (_discovery, {"basis": "pixels"}, "--basis 'pixels': expected one of npca, neurons"),
        (_discovery, {"benchmark": "tiyn"}, "unknown benchmark 'tiyn'"),
        (_discovery, {"model": "tiny"}, "model name 'tiny' must look like FAMILY:SPEC"),
        (_discovery, {"checkpoint": "missing.safetensors"}, "checkpoint 'missing.safetensors' does not exist"),
        (_mining, {"require_predicted": "top3"}, "--require-predicted 'top3': expected one of top1, top5, none"),
        (_mining, {"per_component": 0}, BOUNDS),
        (_mining, {"dedup_cosine": 0.0}, BOUNDS),
        (_mining, {"dedup_cosine": 1.5}, BOUNDS),
        (_mining, {"dedup_cosine": math.nan}, BOUNDS),
        (_mining, {"spufix": None}, "give the bases to rank by: --discovery DIR (with --components) or --spufix ARTIFACT"),
        (_mining, {"discovery": Path("d")}, "give the bases to rank by: --discovery DIR (with --components) or --spufix ARTIFACT"),
        (_mining, {"spufix": None, "discovery": Path("d")}, "--discovery needs --components (the file `spurbench label export` writes)"),
        (
            _fit,
            {"source_alphas": Path("alphas"), "source_model": "tiny:net"},
            "give either --source (precomputed alphas) or --source-model, not both",
        ),
        (_fit, {"source_model": "tiny"}, "model name 'tiny' must look like FAMILY:SPEC"),
        (_fit, {"source_checkpoint": "missing.safetensors"}, "checkpoint 'missing.safetensors' does not exist"),
    ],
)
def test_settings_refuse_what_their_command_refuses_in_its_words(build, values, words) -> None:
    with pytest.raises(SpurbenchError) as raised:
        build(**values)
    assert words in one_line_error(raised)


@pytest.mark.parametrize("settings", [DiscoverySettings, MiningSettings, SpuFixFitSettings])
def test_settings_refuse_unknown_keys_and_changes(settings: type[CommandSettings]) -> None:
    build = {DiscoverySettings: _discovery, MiningSettings: _mining, SpuFixFitSettings: _fit}[settings]
    with pytest.raises(ValidationError, match="extra_forbidden"):
        build(component_per_class=3)
    with pytest.raises(SpurbenchError) as raised:  # as a command builds them: one line
        settings.from_command(**build().model_dump(), component_per_class=3)
    assert one_line_error(raised) == "component_per_class: Extra inputs are not permitted"
    with pytest.raises(SpurbenchError) as raised:  # a bound pydantic checks, in one line too
        settings.from_command(**{**build().model_dump(), "features": {"batch_size": 0}})
    assert one_line_error(raised) == "features.batch_size: Input should be greater than or equal to 1"
    with pytest.raises(ValidationError, match="frozen"):
        build().model = "tiny:other"  # type: ignore[misc]


def test_a_benchmark_named_as_training_data_is_that_benchmarks_split() -> None:
    named = _fit(train_data="tiny")  # --train-data NAME of a registered benchmark: its own split, from no other source
    assert (named.benchmark, named.train_data) == ("tiny", None) and _fit(**named.model_dump()) == named
    assert _fit(train_data="/data/train").train_data == "/data/train"


@pytest.mark.slow
def test_the_library_gives_what_the_commands_give(cli, tmp_path) -> None:
    """discover, spufix fit and mine on the planted benchmark's training split (the shipped planted:cnn
    weights): through the CLI and through ``spurbench`` with the settings the CLI builds, byte for byte."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, image in enumerate(tiny_benchmark(per_role=3, name="pool-source").images):
        image.open().save(pool / f"{i}.png")
    (tmp_path / "components.json").write_text(json.dumps({"components": {"2": [0, 1]}}))
    model, split = ["-m", "planted:cnn"], ["--train-data", "planted", "--limit", "20", "-q", "--batch-size", "8"]
    discovered = cli(
        "discover",
        *model,
        *split,
        "--classes",
        "2",
        "--components-per-class",
        "2",
        "--top-images",
        "2",
        "--npfv-steps",
        "3",
        "-o",
        "d-cli",
        cwd=tmp_path,
    )
    fitted = cli("spufix", "fit", *model, *split, "--components", "components.json", "-o", "a-cli", cwd=tmp_path)
    mined = cli(
        "mine",
        *model,
        "--discovery",
        "d-cli",
        "--components",
        "components.json",
        "--pool",
        "pool",
        "--per-component",
        "4",
        "--require-predicted",
        "none",
        "-q",
        "-o",
        "m-cli",
        cwd=tmp_path,
    )
    assert [p.returncode for p in (discovered, fitted, mined)] == [0, 0, 0], discovered.stderr + fitted.stderr + mined.stderr

    features = {"batch_size": 8, "progress": False}
    shared = {"model": "planted:cnn", "train_data": "planted", "limit": 20, "features": features}
    spurbench.discover(DiscoverySettings(**shared, out=tmp_path / "d-lib", classes=[2], components_per_class=2, top_images=2, npfv_steps=3))
    artifact = spurbench.fit_spufix(SpuFixFitSettings(**shared, components=tmp_path / "components.json", output=tmp_path / "a-lib"))
    assert sum(len(ranks) for ranks in artifact.components.values()) == 2
    mining = MiningSettings(
        model="planted:cnn",
        discovery=tmp_path / "d-cli",
        components=tmp_path / "components.json",
        pool="pool",  # as the command was given it, from the same folder (the cli fixture's): a pool is recorded as named
        out=tmp_path / "m-lib",
        per_component=4,
        require_predicted="none",
        features=features,
    )
    index = spurbench.mine(mining)
    assert sum(len(c.candidates) for c in index.components) == 8
    for cli_folder, lib_folder in (("d-cli", "d-lib"), ("a-cli", "a-lib"), ("m-cli", "m-lib")):
        made = {p.relative_to(tmp_path / cli_folder): p.read_bytes() for p in sorted((tmp_path / cli_folder).rglob("*")) if p.is_file()}
        again = {p.relative_to(tmp_path / lib_folder): p.read_bytes() for p in sorted((tmp_path / lib_folder).rglob("*")) if p.is_file()}
        assert made.keys() == again.keys() and len(made) >= 2, (cli_folder, sorted(made), sorted(again))
        assert [name for name in made if made[name] != again[name]] == [], cli_folder
