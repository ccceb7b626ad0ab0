"""`spurbench discover`: neural PCA statistics and top images per component, resumable, sharing the
feature cache with `spufix fit`; checked on a tiny random model and on the planted ground truth."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from spurbench.basis import fit_neurons_streaming
from spurbench.cli.discover import parse_classes
from spurbench.discovery import index as discovery_index
from spurbench.discovery import pipeline, statistics
from spurbench.discovery.gradcam import component_cams
from spurbench.discovery.index import INDEX_FILE, read_index
from spurbench.discovery.npfv import visualise
from spurbench.discovery.pipeline import discover
from spurbench.errors import SpurbenchError
from spurbench.features import class_subset, extract_features
from spurbench.settings import BASES, DiscoverySettings, FeatureSettings
from spurbench.spufix.fit import fit_source
from spurbench.spufix.npca import fit_npca
from spurbench.testing import TinyAdapter, tiny_benchmark

SETTINGS = FeatureSettings(batch_size=4, progress=False)


def _settings(out, **values) -> DiscoverySettings:
    """A discovery of the tiny model into ``out``, with a few APGD steps (the visualisations are tested on their own below)."""
    return DiscoverySettings(model="tiny:net", benchmark="tiny", out=out, features=SETTINGS, **{"npfv_steps": 5, **values})


def _train():
    bench = tiny_benchmark(per_role=10)
    bench.name = "tiny-train"
    return bench


def test_statistics_and_top_images_follow_the_definitions(tmp_path) -> None:
    model, train = TinyAdapter(), _train()
    index = discover(_settings(tmp_path, classes=[1, 2], components_per_class=4, top_images=3), model=model, train=train)
    assert set(index.classes) == {"1", "2"} and read_index(tmp_path) == index
    weight, bias = model.head
    for k in (1, 2):
        subset = class_subset(train, k)
        feats = extract_features(model, subset, settings=SETTINGS)
        npca = fit_npca(feats.features.double(), weight[k])
        alphas = npca.alphas(feats.features)  # [N, D]
        logits = feats.features.double() @ weight[k].double() + bias[k].double()
        record = index.classes[str(k)]
        saved = discovery_index.class_basis(tmp_path, index, k)  # what `mine` ranks by, without refitting
        assert saved.eigenvectors.shape == (8, 4) and torch.allclose(saved.alphas(feats.features), alphas[:, :4], atol=1e-12)
        assert record.num_images == len(subset.images) and record.logit_mean == pytest.approx(float(logits.mean()), abs=1e-9)
        for comp in record.components:
            a = alphas[:, comp.rank]
            assert comp.eigenvalue == pytest.approx(float(npca.eigenvalues[comp.rank]), rel=1e-9)
            # Var(alpha_l) / Var(f_k): components are uncorrelated, so the shares of all D add up to 1
            assert comp.variance_share == pytest.approx(float(a.var(unbiased=False) / logits.var(unbiased=False)), rel=1e-6, abs=1e-12)
            assert comp.alpha_quantiles["q50"] == pytest.approx(
                float(a.median() if len(a) % 2 else torch.quantile(a, 0.5)), rel=1e-9, abs=1e-12
            )
            order = torch.argsort(a, descending=True)[:3]
            assert [t.image_id for t in comp.top_images] == [feats.image_ids[int(i)] for i in order]
            assert [t.alpha for t in comp.top_images] == pytest.approx([float(a[i]) for i in order])
            for top in comp.top_images:
                with Image.open(tmp_path / top.file) as saved:
                    assert saved.format == "PNG" and saved.size == (16, 16)
            with Image.open(tmp_path / comp.npfv.file) as shown:
                assert shown.size == (16, 16) and comp.npfv.steps == 5 and comp.npfv.eps == pytest.approx(30 * 16 / 224)
            for cam_file in [comp.npfv.cam_file, *(t.cam_file for t in comp.top_images)]:  # GradCAM overlays of alpha_l
                with Image.open(tmp_path / cam_file) as overlay:
                    assert overlay.format == "PNG" and overlay.size == (16, 16)
    raw = json.loads((tmp_path / INDEX_FILE).read_text())
    assert raw["format"] == 1 and raw["model"]["name"] == "tiny:net" and raw["training"]["name"] == "tiny-train"


def test_a_killed_discovery_resumes_and_spufix_fit_forwards_nothing(tmp_path, monkeypatch) -> None:
    model, train = TinyAdapter(), _train()
    real = pipeline.discover_class
    calls = []

    def dies_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "discover_class", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        discover(_settings(tmp_path, components_per_class=3, top_images=2), model=model, train=train)
    assert list(read_index(tmp_path).classes) == ["0"]  # the finished class was kept
    first = read_index(tmp_path).classes["0"]
    monkeypatch.setattr(pipeline, "discover_class", real)
    done = []
    index = discover(
        _settings(tmp_path, components_per_class=3, top_images=2), model=model, train=train, on_class=lambda i, n, k: done.append(k)
    )
    assert done == [1, 2, 3] and sorted(index.classes) == ["0", "1", "2", "3"] and index.classes["0"] == first
    # The same feature-cache entries serve spufix fit: no backbone forward at all.
    before = model.forward_calls
    fit_source(model, train, {1: [0], 2: [1]}, settings=SETTINGS)
    assert model.forward_calls == before


def test_another_model_or_setting_in_the_same_folder_is_refused(tmp_path) -> None:
    discover(_settings(tmp_path, classes=[0], components_per_class=2, top_images=2), model=TinyAdapter(), train=_train())
    with pytest.raises(SpurbenchError, match="holds a discovery of tiny:net .* with other settings; use another --out"):
        discover(_settings(tmp_path, classes=[0], components_per_class=3, top_images=2), model=TinyAdapter(), train=_train())
    with pytest.raises(SpurbenchError, match=r"--classes: 7 is not a class of tiny:net \(its label space toy has classes 0-3\)"):
        discover(_settings(tmp_path / "other", classes=[7], components_per_class=2, top_images=2), model=TinyAdapter(), train=_train())
    with pytest.raises(SpurbenchError, match="has no images of class 7"):  # in the label space, not in the training data
        discover(
            _settings(tmp_path / "other", classes=[7], components_per_class=2, top_images=2),
            model=TinyAdapter(num_classes=8),
            train=_train(),
        )
    (tmp_path / INDEX_FILE).write_text('{"format": 1, "format": 2}')
    with pytest.raises(SpurbenchError, match="not a valid discovery index"):
        read_index(tmp_path)
    with pytest.raises(SpurbenchError, match="not a discovery folder"):
        read_index(tmp_path / "nothing")


def test_npfv_maximises_the_component_within_its_budget() -> None:
    model, train = TinyAdapter(), _train()
    feats = extract_features(model, class_subset(train, 1), settings=SETTINGS)
    npca = fit_npca(feats.features.double(), model.head[0][1])
    made = visualise(model, 1, npca, [0, 1, 2], steps=30)
    grey = torch.full_like(made.images, 0.5)
    assert made.eps == pytest.approx(30 * 16 / 224)
    assert ((made.images - grey).flatten(1).norm(dim=1) <= made.eps + 1e-4).all() and made.images.min() >= 0 and made.images.max() <= 1
    config = model.data_config
    mean, std = torch.tensor(config["mean"]).view(1, 3, 1, 1), torch.tensor(config["std"]).view(1, 3, 1, 1)

    def alpha(images: torch.Tensor, rank: int) -> torch.Tensor:  # <1, v_l> <w_k * phi(x), v_l>, from the definition
        v = npca.eigenvectors[:, rank].float()
        with torch.no_grad():
            return (model.features((images - mean) / std) * model.head[0][1]) @ v * v.sum()

    for i, rank in enumerate((0, 1, 2)):
        assert float(made.alphas[i]) == pytest.approx(float(alpha(made.images[i : i + 1], rank)), rel=1e-4, abs=1e-5)
        assert float(made.alphas[i]) > float(alpha(grey[i : i + 1], rank))  # better than the grey start
    again = visualise(model, 1, npca, [0, 1, 2], steps=30)
    assert torch.equal(again.images, made.images)  # deterministic for a seed
    alone = visualise(model, 1, npca, [1], steps=30)
    assert float(alone.alphas[0]) == pytest.approx(float(made.alphas[1]), rel=1e-3)  # a batch solves each alone


def test_class_lists() -> None:
    assert parse_classes("all") is None and parse_classes("1,3-5, 9") == [1, 3, 4, 5, 9]
    with pytest.raises(SpurbenchError, match="expected 'all' or class indices"):
        parse_classes("1,x")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--classes", "two"], "expected 'all' or class indices"),
        (["--components-per-class", "0"], "--components-per-class"),
        (["--train-data", "nowhere", "--benchmark", "planted"], "generates its training images"),
    ],
)
def test_bad_discover_input_is_one_line(cli, tmp_path, args, needle) -> None:
    proc = cli("discover", "-m", "planted:cnn.seed3", "--out", str(tmp_path / "d"), *args, cwd=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "d" / INDEX_FILE).exists()


@pytest.mark.slow
def test_planted_features_are_found_among_the_top_components(cli, trained, tmp_path, monkeypatch) -> None:
    cache, _ = trained
    from spurbench.benchmarks import get_benchmark

    proc = cli(
        "discover",
        "-m",
        "planted:cnn",
        "--train-data",
        "planted",
        "--out",
        str(tmp_path / "d"),
        "--components-per-class",
        "5",
        "--npfv-steps",
        "20",
        "-q",
        cwd=tmp_path,
        env={"SPURBENCH_CACHE": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr
    truth = get_benchmark("planted").ground_truth({"seed": 0})
    index = read_index(tmp_path / "d")
    assert len(index.classes) == 10
    for k, feature in truth.features.items():
        carried = [all(truth.carriers.get(t.image_id) == feature for t in c.top_images) for c in index.classes[str(k)].components[:3]]
        assert any(carried), (k, carried)  # one of the top-3 components has top-5 images that all carry the feature
    shares = [sum(c.variance_share for c in record.components) for record in index.classes.values()]
    assert all(0.5 < s <= 1 + 1e-9 for s in shares) and np.isfinite(shares).all()


def test_neuron_basis_follows_salient_imagenet(tmp_path) -> None:
    """--basis neurons: the class's top units by mean(phi_j w_kj), alpha_j = w_kj phi_j, and the rest as for npca."""
    model, train = TinyAdapter(), _train()
    index = discover(_settings(tmp_path, classes=[1], components_per_class=3, top_images=2, basis="neurons"), model=model, train=train)
    assert index.basis == "neurons" and read_index(tmp_path) == index
    feats = extract_features(model, class_subset(train, 1), settings=SETTINGS)
    weight, bias = model.head
    psi = feats.features.double() * weight[1].double()  # [N, D]
    logits = psi.sum(1) + bias[1].double()
    record = index.classes["1"]
    expected = torch.argsort(psi.mean(0), descending=True)[:3].tolist()
    assert torch.allclose(discovery_index.class_basis(tmp_path, index, 1).alphas(feats.features), psi[:, expected], atol=1e-12)
    assert [c.neuron for c in record.components] == expected and [c.rank for c in record.components] == [0, 1, 2]
    assert record.logit_mean == pytest.approx(float(logits.mean()), abs=1e-9)
    for comp in record.components:
        a = psi[:, comp.neuron]
        assert comp.eigenvalue is None and comp.alpha_mean == pytest.approx(float(a.mean()), rel=1e-9)
        assert comp.variance_share == pytest.approx(float(a.var(unbiased=False) / logits.var(unbiased=False)), rel=1e-6)
        order = torch.argsort(a, descending=True)[:2]
        assert [t.image_id for t in comp.top_images] == [feats.image_ids[int(i)] for i in order]
        assert comp.npfv is not None and comp.npfv.alpha > float(a.min())  # the visualisation is at least a plausible image's worth
        assert comp.npfv.cam_file and all(t.cam_file for t in comp.top_images)
    assert statistics.BASES == BASES  # the list DiscoverySettings (and so the CLI) accepts


def test_gradcam_of_one_neuron_is_its_activation_map() -> None:
    """For a unit after global average pooling, GradCAM of w_kj phi_j at that layer is the unit's own
    (rectified, min-max scaled) activation map: Salient ImageNet's neural activation map."""
    model, train = TinyAdapter(), _train()
    feats = extract_features(model, class_subset(train, 1), settings=SETTINGS)
    units = fit_neurons_streaming([feats.features], model.head[0][1], 2)
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for rank, unit in enumerate(units.neurons):
        maps = component_cams(model, 1, units, rank, images)
        with torch.no_grad():
            activation = torch.relu(model.backbone[0]((images - 0.5) / 0.25))[:, unit].double().numpy()  # [N, 16, 16]
        low = activation.reshape(3, -1).min(1)[:, None, None]
        scaled = (activation - low) / (1e-7 + (activation - low).reshape(3, -1).max(1)[:, None, None])
        assert np.allclose(maps, scaled, atol=1e-4), rank


def test_bad_basis_is_one_line(cli, tmp_path) -> None:
    proc = cli("discover", "-m", "planted:cnn", "--basis", "pixels", "--out", str(tmp_path / "d"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--basis 'pixels': expected one of npca, neurons" in proc.stderr


def test_discovery_reaches_the_features_stage_without_spufix_fitting() -> None:
    # the per-class streaming helpers live in spurbench.features: discover imports no SpuFix fitting code
    probe = "import sys, spurbench.discovery.pipeline; print(sorted(m for m in sys.modules if m.startswith('spurbench.spufix.')))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "['spurbench.spufix.npca']", run.stdout + run.stderr
