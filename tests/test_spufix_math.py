"""The paper's formulas on small random models: NPCA identity, SpuFix, transfer, the fused head."""

import pytest
import torch

from spurbench.heads import SpuFixHead
from spurbench.spufix import (
    fit_npca,
    match_directions,
    match_directions_streaming,
    projection_coefficients,
)

torch.manual_seed(0)
N, D, D2, C = 200, 12, 9, 5


def _model(dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(C, dim, generator=g), torch.randn(C, generator=g)


def _features(n: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=g)
    return torch.relu(torch.randn(n, dim, generator=g) @ mix + 0.5)


def test_npca_logit_identity_and_order():
    W, b = _model(D, 1)
    phi = _features(N, D, 2)
    k = 3
    npca = fit_npca(phi, W[k])
    assert torch.all(npca.eigenvalues[:-1] >= npca.eigenvalues[1:])
    test = _features(7, D, 3)  # identity holds for any input, not only training images
    logits = (test @ W.T + b).double()
    rebuilt = npca.alphas(test).sum(1) + npca.constant + b[k]
    assert torch.allclose(rebuilt, logits[:, k], atol=1e-9)
    # covariance matches numpy-style population covariance
    psi = (phi * W[k]).double()
    cov = torch.cov(psi.T, correction=0)
    assert torch.allclose(npca.eigenvectors @ torch.diag(npca.eigenvalues) @ npca.eigenvectors.T, cov, atol=1e-9)


def test_streaming_equals_one_shot():
    W, _ = _model(D, 1)
    phi = _features(N, D, 2)
    one = fit_npca(phi, W[0])
    streamed = fit_npca(iter(phi.split(17)), W[0])
    assert torch.allclose(one.mean, streamed.mean, atol=1e-12)
    assert torch.allclose(one.eigenvalues, streamed.eigenvalues, atol=1e-9)
    whole = match_directions(one.alphas(phi)[:, :3], phi, W[0])
    parts = match_directions_streaming(zip(one.alphas(phi)[:, :3].split(23), phi.split(23)), W[0])
    assert torch.allclose(whole.directions, parts.directions, atol=1e-10) and torch.allclose(whole.mean, parts.mean, atol=1e-12)


def _direct_spufix(features, W, b, k, mean, dirs):
    """Per-class formula of the issue: f'_k - sum_l max(lambda_l <1,u_l>, 0)."""
    logits = (features @ W.T + b).double()
    lam = projection_coefficients(dirs, mean, features.double() * W[k].double())
    logits[:, k] -= torch.clamp(lam * dirs.double().sum(1), min=0).sum(1)
    return logits


def test_source_spufix_clips_positive_alphas():
    W, b = _model(D, 1)
    phi = _features(N, D, 2)
    k, spurious = 2, [0, 3]
    npca = fit_npca(phi, W[k])
    head = SpuFixHead.from_directions(W, b, {k: (npca.mean, npca.eigenvectors[:, spurious].T)})
    test = _features(11, D, 4)
    expected = (test @ W.T + b).double()
    expected[:, k] -= torch.clamp(npca.alphas(test)[:, spurious], min=0).sum(1)
    assert torch.allclose(head(test).double(), expected, atol=1e-4)
    assert torch.allclose(head.plain(test), test @ W.T + b)


def test_self_transfer_reproduces_source_spufix():
    """App. C.2: matching the source model's own alphas gives back its eigenvectors (up to sign)."""
    W, b = _model(D, 1)
    phi = _features(N, D, 2)
    k, spurious = 1, [0, 2, 5]
    npca = fit_npca(phi, W[k])
    matched = match_directions(npca.alphas(phi)[:, spurious], phi, W[k])
    dirs, mean = matched.directions, matched.mean
    assert dirs.shape == (3, D) and torch.allclose(mean, npca.mean)  # the class mean of psi, named: no order to get wrong
    v = npca.eigenvectors[:, spurious].T
    assert torch.allclose((dirs * v).sum(1).abs(), torch.ones(3, dtype=torch.float64), atol=1e-8)
    test = _features(9, D, 5)
    transferred = _direct_spufix(test, W, b, k, mean, dirs)
    source = (test @ W.T + b).double()
    source[:, k] -= torch.clamp(npca.alphas(test)[:, spurious], min=0).sum(1)
    assert torch.allclose(transferred, source, atol=1e-8)


@pytest.mark.parametrize("batch", [1, 6])
def test_fused_head_equals_per_class_formula(batch):
    Ws, _bs = _model(D, 1)
    Wt, bt = _model(D2, 7)
    phi_s, phi_t = _features(N, D, 2), _features(N, D2, 8)  # same images seen by two models
    directions = {}
    for k, spurious in {0: [0], 2: [1, 3], 4: [0, 1, 2]}.items():
        npca = fit_npca(phi_s, Ws[k])
        directions[k] = match_directions(npca.alphas(phi_s)[:, spurious], phi_t, Wt[k])  # what the head takes, as it is
    head = SpuFixHead.from_directions(Wt, bt, directions)
    test = _features(batch, D2, 9)
    expected = (test @ Wt.T + bt).double()
    for k, (mean, u) in directions.items():
        expected[:, k] = _direct_spufix(test, Wt, bt, k, mean, u)[:, k]
    assert torch.allclose(head(test).double(), expected, atol=1e-5)
    untouched = [1, 3]
    assert torch.equal(head(test)[:, untouched], head.plain(test)[:, untouched])
    # the correction only ever lowers logits
    assert torch.all(head(test) <= head.plain(test) + 1e-6)


def test_mismatched_rows_are_an_error():
    W, _ = _model(D, 1)
    with pytest.raises(ValueError, match="rows"):
        match_directions(torch.randn(5, 2), torch.randn(6, D), W[0])


def _random_head() -> SpuFixHead:
    W, b = _model(D, 1)
    phi = _features(N, D, 2)
    directions = {}
    for k, spurious in {0: [0], 3: [1, 2]}.items():
        npca = fit_npca(phi, W[k])
        directions[k] = (npca.mean, npca.eigenvectors[:, spurious].T.contiguous())
    return SpuFixHead.from_directions(W, b, directions).eval()


def test_fused_head_exports_with_torch_export():
    head = _random_head()
    x = _features(4, D, 5)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(head, (x,), dynamic_shapes=({0: batch},))
    for n in (1, 7):  # other batch sizes than the example: the batch dimension stays dynamic
        test = _features(n, D, 6 + n)
        assert torch.allclose(program.module()(test), head(test), atol=1e-6)


@pytest.mark.slow
def test_fused_head_exports_to_onnx_and_runs_in_onnxruntime(tmp_path):
    import onnxruntime as ort  # dev extra (torch.onnx.export needs onnxscript, also there)

    head = _random_head()
    path = tmp_path / "spufix_head.onnx"
    torch.onnx.export(
        head, (_features(4, D, 5),), str(path), input_names=["features"], output_names=["logits"], dynamic_shapes=({0: "batch"},)
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 9):
        test = _features(n, D, 20 + n)
        (out,) = session.run(None, {"features": test.numpy()})
        assert out.shape == (n, C)
        assert torch.allclose(torch.from_numpy(out), head(test), atol=1e-5)
        assert not torch.allclose(torch.from_numpy(out), head.plain(test), atol=1e-3)  # the correction is in the graph
