"""SpuFix fitting through the real data path (feature cache, artifacts) on tiny random models."""

import pytest
import torch

from spurbench.errors import DataError, SpurbenchError
from spurbench.features import extract_features
from spurbench.harness import evaluate
from spurbench.settings import FeatureSettings, RunSettings
from spurbench.spufix.artifact import load_artifact
from spurbench.spufix.fit import SourceAlphas, fit_source, fit_transfer, self_artifact
from spurbench.testing import TinyAdapter, tiny_benchmark

FEATURES = FeatureSettings(batch_size=4, progress=False)
COMPONENTS = {0: [0, 2], 3: [1]}


def _settings(model: TinyAdapter, spufix: str) -> RunSettings:
    """The tiny benchmark scored by ``model`` with the SpuFix artifact at ``spufix``."""
    return RunSettings(model=model.name, benchmark="tiny", spufix=spufix, bootstrap=0, features=FEATURES)


def _train():
    bench = tiny_benchmark(per_role=10)
    bench.name = "tiny-train"
    return bench


class WideTiny(TinyAdapter):
    """A different 'architecture' for transfer: other seed, other width."""

    def __init__(self, spec="wide", **kw):
        super().__init__(spec, **kw)
        torch.manual_seed(5)
        from torch import nn

        self.backbone = nn.Sequential(nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
        self.fc = nn.Linear(6, 4)


def test_source_alphas_follow_image_order_and_round_trip(tmp_path):
    source, train = TinyAdapter(), _train()
    alphas, npcas = fit_source(source, train, COMPONENTS, FEATURES)
    feats = extract_features(source, train, FEATURES)
    for k, comps in COMPONENTS.items():
        rows = [i for i, im in enumerate(train.images) if im.class_index == k]
        assert alphas.image_ids[k] == [train.images[i].image_id for i in rows]
        assert torch.allclose(alphas.alphas[k], npcas[k].alphas(feats.features[rows])[:, comps])
    loaded = SourceAlphas.load(alphas.save(tmp_path / "alphas"))
    assert loaded.image_ids == alphas.image_ids and all(torch.equal(loaded.alphas[k], alphas.alphas[k]) for k in COMPONENTS)


def test_self_transfer_through_the_data_path_matches_source_spufix(tmp_path):
    source, train = TinyAdapter(), _train()
    alphas, npcas = fit_source(source, train, COMPONENTS, FEATURES)
    direct = self_artifact(source, npcas, alphas)
    transferred = fit_transfer(source, train, alphas, FEATURES)
    W, b = source.head
    feats = extract_features(source, tiny_benchmark(), FEATURES).features
    assert torch.allclose(direct.head(W, b)(feats), transferred.head(W, b)(feats), atol=1e-4)
    assert not torch.allclose(direct.head(W, b)(feats), direct.head(W, b).plain(feats))  # it does change something


def test_transfer_artifact_round_trip_and_evaluation(tmp_path):
    source, target, train = TinyAdapter(), WideTiny(), _train()
    alphas, _ = fit_source(source, train, COMPONENTS, FEATURES)
    artifact = fit_transfer(target, train, alphas, FEATURES)
    folder = artifact.save(tmp_path / "artifact")
    loaded = load_artifact(folder)
    assert loaded.target_model == "tiny:wide" and loaded.components == COMPONENTS
    assert loaded.images_per_class == {0: 20, 3: 20}
    result = evaluate(_settings(target, str(folder)), model=target)
    assert set(result.heads) == {"plain", "spufix"}
    plain, fixed = result.heads["plain"], result.heads["spufix"]
    changed = [r.class_index for r, q in zip(plain.classes, fixed.classes) if r.auc != q.auc or r.mean_prob_val != q.mean_prob_val]
    assert set(changed) <= {0, 1, 2, 3} and changed  # SpuFix moved some scores
    # an artifact for another model or weights revision is refused
    with pytest.raises(SpurbenchError, match="fitted for"):
        evaluate(_settings(source, str(folder)), model=source)
    artifact.target_weights_revision = "other"
    artifact.save(tmp_path / "stale")
    with pytest.raises(SpurbenchError, match="weights"):
        evaluate(_settings(target, str(tmp_path / "stale")), model=target)


def test_alpha_rows_not_matching_images_is_an_error():
    source, train = TinyAdapter(), _train()
    alphas, _ = fit_source(source, train, COMPONENTS, FEATURES)
    alphas.image_ids[0] = alphas.image_ids[0][:-1] + ["positive/0/unknown"]
    with pytest.raises(DataError, match="class 0"):
        fit_transfer(WideTiny(), train, alphas, FEATURES)


def test_component_out_of_range():
    with pytest.raises(SpurbenchError, match="out of range"):
        fit_source(TinyAdapter(), _train(), {0: [99]}, FEATURES)


def test_missing_artifact_folder(tmp_path):
    with pytest.raises(SpurbenchError, match="does not exist"):
        load_artifact(tmp_path / "nope")
