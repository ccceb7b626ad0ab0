"""Feature names ("Name what you see", issue 28) travel from a components file to everything downstream:
the SpuFix artifact's metadata (``component_names``, format 3), the mining index (each component's
``component_name``, from the components file or the artifact), the exported benchmark's card and README,
a ``spurious-folder`` result (``benchmark.class_component_names``) and the board's worst-classes table.
Files written before names existed (format-2 artifacts, mining indexes, cards, results) still load.
The whole loop on planted, names included, is tests/test_mine_loop.py (mined by discovery) and
tests/test_label_loop.py (named in the browser)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from spurbench.benchmarks import get_benchmark, load_benchmark
from spurbench.errors import SpurbenchError
from spurbench.mining.index import INDEX_FILE, read_mining
from spurbench.mining.pipeline import mine
from spurbench.results import read_result
from spurbench.settings import DiscoverySettings, FeatureSettings, MiningSettings
from spurbench.spufix.artifact import SpuFixArtifact, _model_card, load_artifact
from spurbench.testing import TinyAdapter, tiny_benchmark
from tests.support.label_server import tiny_discovery
from tests.test_spurious_folder import FACTS, mined_items

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = FeatureSettings(batch_size=8, progress=False)
COMMITTED = sorted((ROOT / "leaderboard" / "results").glob("planted__*.json"))


def _artifact(components: dict[int, list[int]], width: int = 8) -> SpuFixArtifact:
    generator = torch.Generator().manual_seed(0)
    directions = {}
    for k, ranks in components.items():
        dirs = torch.linalg.qr(torch.randn(width, len(ranks), generator=generator, dtype=torch.float64))[0].T.contiguous()
        directions[k] = (torch.randn(width, generator=generator, dtype=torch.float64), dirs)
    return SpuFixArtifact(
        source_model="tiny:net",
        target_model="tiny:net",
        target_weights_revision=None,
        components=components,
        images_per_class=dict.fromkeys(components, 20),
        directions=directions,
    )


# ------------------------------------------------------------------------------------------ SpuFix artifacts


def test_an_artifact_records_the_names_of_what_it_clips(tmp_path) -> None:
    plain = _artifact({1: [0, 2], 3: [1]})
    named = plain.named({1: {2: "bird feeder", 5: "not clipped"}, 3: {1: "watermark"}, 7: {0: "no such class"}})
    assert named.component_names == {1: {2: "bird feeder"}, 3: {1: "watermark"}}  # only what it clips
    meta = json.loads((named.save(tmp_path / "named") / "spufix.json").read_text())
    assert meta["format"] == 3 and meta["component_names"] == {"1": {"2": "bird feeder"}, "3": {"1": "watermark"}}
    loaded = load_artifact(tmp_path / "named")
    assert loaded.component_names == {1: {2: "bird feeder"}, 3: {1: "watermark"}}
    # names are metadata: the tensors, the fingerprint (a result's config hash) and the head are those of the unnamed artifact
    plain.save(tmp_path / "plain")
    assert (tmp_path / "named" / "spufix.safetensors").read_bytes() == (tmp_path / "plain" / "spufix.safetensors").read_bytes()
    assert loaded.fingerprint() == load_artifact(tmp_path / "plain").fingerprint() == plain.fingerprint()
    assert "class 1 component 2: bird feeder; class 3 component 1: watermark" in _model_card(loaded, "org/x")


def test_an_artifact_without_names_is_written_and_read_as_before(tmp_path) -> None:
    """Format 2, the keys spurbench wrote before names existed: an older spurbench reads it, and so does this one."""
    folder = _artifact({1: [0, 2]}).save(tmp_path / "plain")
    meta = json.loads((folder / "spufix.json").read_text())
    assert meta["format"] == 2 and set(meta) == {
        "format",
        "source_model",
        "source_weights_revision",
        "target_model",
        "target_weights_revision",
        "components",
        "images_per_class",
        "spurbench_version",
        "extra",
        "tensors_sha256",
    }
    assert load_artifact(folder).component_names == {}
    assert "as people named them" not in _model_card(load_artifact(folder), "org/x")


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m["component_names"]["1"].update({"1": "x"}), "class 1 names [1] component(s) it does not clip"),
        (lambda m: m["component_names"].update({"4": {"0": "x"}}), "class 4 names [0] component(s) it does not clip"),
        (lambda m: m["component_names"].update({"1": {}}), "class 1 names no component(s)"),
        (lambda m: m["component_names"]["1"].update({"2": "x" * 61}), "component_names.1.2"),
        (lambda m: m["component_names"]["1"].update({"2": "two\nlines"}), "not a feature name"),
        (lambda m: m["component_names"]["1"].update({"2": 3}), "component_names.1.2"),
        (lambda m: m.update(format=2), "names components, which format 2 does not"),
        (lambda m: m.update(format=4), "SpuFix artifact format 4, this spurbench reads 2 and 3"),
    ],
)
def test_bad_names_in_an_artifact_are_one_line(tmp_path, edit, needle) -> None:
    folder = _artifact({1: [0, 2]}).named({1: {2: "bird feeder"}}).save(tmp_path / "a")
    meta = json.loads((folder / "spufix.json").read_text())
    edit(meta)
    (folder / "spufix.json").write_text(json.dumps(meta))
    with pytest.raises(SpurbenchError) as caught:
        load_artifact(folder)
    assert needle in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


# ------------------------------------------------------------------------------------------------- mining


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pool")
    for i, image in enumerate(tiny_benchmark(per_role=4, name="pool-source").images):
        image.open().save(folder / f"{i}.png")
    return folder


def _mine(tmp_path: Path, pool: Path, components: dict | None, **bases) -> Path:
    listed = None
    tmp_path.mkdir(exist_ok=True)
    if components is not None:
        listed = tmp_path / "components.json"
        listed.write_text(json.dumps(components))
    out = tmp_path / "m"
    settings = MiningSettings(
        model="tiny:net",
        components=listed,
        pool=pool,
        out=out,
        per_component=4,
        require_predicted="none",
        dedup_cosine=1 - 1e-6,
        features=SETTINGS,
        **bases,
    )
    mine(settings, model=TinyAdapter())
    return out


def _names(folder: Path) -> dict[tuple[int, int], str | None]:
    return {(e.class_index, e.component): e.component_name for e in read_mining(folder).components}


@pytest.fixture(scope="module")
def discovery(tmp_path_factory) -> Path:
    return tiny_discovery(tmp_path_factory, [0, 1, 2])


def test_mining_by_a_discovery_records_the_names_of_the_components_file(discovery, pool, tmp_path) -> None:
    exported = {"components": {"1": [0, 1], "2": [0]}, "names": {"1": {"1": "bird feeder"}, "2": {"0": "watermark"}}}
    out = _mine(tmp_path, pool, exported, discovery=discovery)
    assert _names(out) == {(1, 0): None, (1, 1): "bird feeder", (2, 0): "watermark"}
    raw = json.loads((out / INDEX_FILE).read_text())
    assert {(e["class_index"], e["component"]): e["component_name"] for e in raw["components"]} == _names(out)


def test_a_neuron_discovery_names_its_components_by_the_units_listed(tmp_path_factory, pool, tmp_path) -> None:
    """An export of a neurons discovery lists (and names) units; the mining index records discovery ranks."""
    from spurbench.discovery.index import read_index
    from spurbench.discovery.pipeline import discover

    folder = tmp_path_factory.mktemp("neurons")
    train = tiny_benchmark(per_role=10)
    train.name = "tiny-train"
    settings = DiscoverySettings(
        model="tiny:net",
        benchmark="tiny",
        out=folder,
        classes=[1],
        components_per_class=3,
        top_images=2,
        npfv_steps=0,
        basis="neurons",
        features=SETTINGS,
    )
    discover(settings, model=TinyAdapter(), train=train)
    units = [c.neuron for c in read_index(folder).classes["1"].components]
    exported = {"components": {"1": [units[2], units[0]]}, "names": {"1": {str(units[2]): "stripes"}}, "basis": "neurons"}
    out = _mine(tmp_path, pool, exported, discovery=folder)
    entries = {e.component: (e.neuron, e.component_name) for e in read_mining(out).components}
    assert entries == {2: (units[2], "stripes"), 0: (units[0], None)}


def test_mining_by_an_artifact_takes_its_names_unless_the_components_file_names_them(pool, tmp_path) -> None:
    from spurbench.spufix.fit import fit_source, self_artifact

    model = TinyAdapter()
    alphas, npcas = fit_source(model, tiny_benchmark(per_role=10), {1: [0, 2], 3: [1]}, SETTINGS)
    artifact = self_artifact(model, npcas, alphas).named({1: {0: "stripes", 2: "dots"}})
    folder = str(artifact.save(tmp_path / "artifact"))
    assert _names(_mine(tmp_path / "a", pool, None, spufix=folder)) == {(1, 0): "stripes", (1, 2): "dots", (3, 1): None}
    listed = {"components": {"1": [2, 0]}, "names": {"1": {"2": "spots"}}}  # a components file's name wins over the artifact's
    assert _names(_mine(tmp_path / "b", pool, listed, spufix=folder)) == {(1, 0): "stripes", (1, 2): "spots"}


def test_a_mining_index_without_names_still_loads_and_a_bad_name_is_one_line(discovery, pool, tmp_path) -> None:
    out = _mine(tmp_path, pool, {"components": {"1": [0]}, "names": {"1": {"0": "dots"}}}, discovery=discovery)
    raw = json.loads((out / INDEX_FILE).read_text())
    for entry in raw["components"]:
        del entry["component_name"]  # as `mine` wrote it before names existed
    (out / INDEX_FILE).write_text(json.dumps(raw))
    assert _names(out) == {(1, 0): None}
    raw["components"][0]["component_name"] = "two\nlines"
    (out / INDEX_FILE).write_text(json.dumps(raw))
    with pytest.raises(SpurbenchError) as caught:
        read_mining(out)
    assert "components.0.component_name" in str(caught.value) and "\n" not in str(caught.value)


def test_export_names_each_classes_features_on_the_card(discovery, pool, tmp_path) -> None:
    from spurbench.mining.verdicts import export_benchmark, record_verdict

    exported = {"components": {"1": [0, 1], "2": [0]}, "names": {"1": {"1": "bird | feeder"}, "2": {"0": "watermark"}}}
    out = _mine(tmp_path, pool, exported, discovery=discovery)
    for entry in read_mining(out).components:
        for c in entry.candidates:
            record_verdict(out, entry.class_index, c.image_id, "absent", "ann")
    export_benchmark(out, tmp_path / "bench", name="named")
    card = json.loads((tmp_path / "bench" / "spurbench.json").read_text())
    named = {k: entry.get("component_names") for k, entry in card["classes"].items()}
    assert named == {"1": {"1": "bird | feeder"}, "2": {"0": "watermark"}} and "component_names" not in card["provenance"]
    readme = (tmp_path / "bench" / "README.md").read_text()
    assert "| 1 | class1 | 0, 1 (bird \\| feeder) | 6 |" in readme and "| 2 | class2 | 0 (watermark) | 4 |" in readme  # (a | ends a cell)


# ---------------------------------------------------------------------------------- the card and the results


def test_the_card_and_a_results_benchmark_record_carry_the_names(tmp_path) -> None:
    from spurbench.tasks.common import benchmark_info

    facts = {**FACTS, "component_names": {"2": {"1": "triangle", "7": "not exported"}, "9": {"0": "no such class"}}}
    get_benchmark("spurious-folder").write_mined(tmp_path / "named", mined_items(), facts)
    card = json.loads((tmp_path / "named" / "spurbench.json").read_text())
    assert card["classes"]["2"]["component_names"] == {"1": "triangle"} and "component_names" not in card["classes"]["8"]
    assert "| 2 |  | 1 (triangle) | 3 |" in (tmp_path / "named" / "README.md").read_text()
    bench = load_benchmark("spurious-folder", data_dir=str(tmp_path / "named"))
    assert bench.class_component_names == {2: {1: "triangle"}}
    assert benchmark_info(bench).class_component_names == {"2": {"1": "triangle"}}
    # a card without names (what `mine export` wrote before they existed) reads as before
    get_benchmark("spurious-folder").write_mined(tmp_path / "plain", mined_items(), FACTS)
    card = json.loads((tmp_path / "plain" / "spurbench.json").read_text())
    assert all("component_names" not in entry for entry in card["classes"].values())
    plain = load_benchmark("spurious-folder", data_dir=str(tmp_path / "plain"))
    assert plain.class_component_names == {} and benchmark_info(plain).class_component_names == {}


@pytest.mark.parametrize(
    "names, needle",
    [({"3": "x"}, "names component '3', which the class does not list"), ({"1": "a\nb"}, "classes.2.component_names.1")],
)
def test_bad_names_on_a_card_are_one_line(tmp_path, names, needle) -> None:
    from spurbench.errors import DataError

    get_benchmark("spurious-folder").write_mined(tmp_path / "m", mined_items(), {**FACTS, "component_names": {"2": {"1": "triangle"}}})
    card = json.loads((tmp_path / "m" / "spurbench.json").read_text())
    card["classes"]["2"]["component_names"] = names
    (tmp_path / "m" / "spurbench.json").write_text(json.dumps(card))
    with pytest.raises(DataError) as caught:
        load_benchmark("spurious-folder", data_dir=str(tmp_path / "m"))
    assert needle in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


def test_results_without_names_still_read(tmp_path) -> None:
    assert COMMITTED and all(read_result(p).benchmark.class_component_names == {} for p in COMMITTED)
    data = json.loads(COMMITTED[0].read_text())
    data["benchmark"]["class_component_names"] = {"2": {"1": "triangle"}}
    (tmp_path / "named.json").write_text(json.dumps(data))
    assert read_result(tmp_path / "named.json").benchmark.class_component_names == {"2": {"1": "triangle"}}


def test_the_board_shows_the_names_in_the_worst_classes(tmp_path) -> None:
    """A result that names its classes' components: the built page's worst-classes table shows the names
    (escaped), where it showed component numbers or the benchmark's description."""
    from spurbench.leaderboard.build import build_board

    results = tmp_path / "results"
    results.mkdir()
    for path in COMMITTED:
        shutil.copy(path, results)
    named = results / COMMITTED[0].name
    data = json.loads(named.read_text())
    data["benchmark"]["class_component_names"] = {"2": {"1": "bird <feeder>"}}
    named.write_text(json.dumps(data))
    page = build_board(sorted(results.glob("*.json")), tmp_path / "site", model_lists_dir=ROOT / "model-lists").html.read_text()
    assert page.count(">bird &lt;feeder&gt; (component 1)</td>") == 1  # one model's table: the other result names nothing
