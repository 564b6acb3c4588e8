"""The fused den forward-backward extension against the pure-torch reference (float64), on
random graphs and on a den graph like the demo's (unsmoothed 4-gram), and its build."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pipeline.lang.den_graph import DenGraph, compose_den_fst, den_graph_from_fst
from pipeline.lang.phone_lm import estimate_phone_lm, lm_to_fst
from pipeline.lang.phone_lm_unsmoothed import estimate_unsmoothed_phone_lm
from pipeline.loss import den_fb_ext
from pipeline.loss.ctc_crf import CtcCrfLoss


def test_extension_is_built_and_current():
    """make install builds it; a stale or missing build would silently cost speed."""
    path = den_fb_ext.library_path()
    assert path is not None, "run 'make install' (python -m pipeline.loss.den_fb_ext)"
    assert not den_fb_ext._stale(path)
    assert den_fb_ext.load() is not None
    assert CtcCrfLoss(random_graph(0)).implementation == "fused"


def random_graph(seed: int, num_states: int = 30, num_units: int = 7) -> DenGraph:
    """A nondeterministic acceptor with mixed labels entering states and some dead ends."""
    rng = np.random.default_rng(seed)
    src, dst, lab = [], [], []
    for s in range(num_states):
        for _ in range(int(rng.integers(0, 6))):
            src.append(s)
            dst.append(int(rng.integers(num_states)))
            lab.append(int(rng.integers(num_units)))
    order = np.argsort(src, kind="stable")
    final = np.where(rng.random(num_states) < 0.5, rng.normal(size=num_states), -np.inf)
    final[0] = 0.1
    return DenGraph(
        num_states,
        num_units,
        0,
        np.array(src)[order],
        np.array(dst)[order],
        np.array(lab)[order],
        rng.normal(size=len(src)),
        final,
    )


def phone_lm_graph(unsmoothed: bool, num_units: int = 12) -> DenGraph:
    rng = random.Random(0)
    words = [[rng.randint(1, num_units - 1) for _ in range(rng.randint(2, 5))] for _ in range(30)]
    seqs = [[p for _ in range(rng.randint(1, 6)) for p in rng.choice(words)] for _ in range(300)]
    lm = (
        estimate_unsmoothed_phone_lm(seqs, num_units, 4, 100)
        if unsmoothed
        else estimate_phone_lm(seqs, num_units, 4, 100)
    )
    return den_graph_from_fst(compose_den_fst(num_units, lm_to_fst(lm)), num_units)


def both(graph: DenGraph, log_probs: torch.Tensor, lengths: torch.Tensor, weights=None):
    out = {}
    for impl in ("torch", "fused"):
        x = log_probs.clone().requires_grad_()
        logz = CtcCrfLoss(graph, implementation=impl).den_logz(x, lengths)
        w = torch.ones_like(logz) if weights is None else weights
        ok = torch.isfinite(logz)
        (logz[ok] * w[ok]).sum().backward()
        out[impl] = (logz.detach(), x.grad)
    return out["torch"], out["fused"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: random_graph(0),
        lambda: random_graph(5),
        lambda: phone_lm_graph(True),
        lambda: phone_lm_graph(False),
    ],
)
def test_fused_equals_reference_in_float64(make):
    graph = make()
    torch.manual_seed(1)
    lengths = torch.tensor([40, 33, 1, 0, 17, 40])
    log_probs = (3 * torch.randn(6, 40, graph.num_units, dtype=torch.float64)).log_softmax(-1)
    weights = torch.tensor([1.0, -0.5, 2.0, 0.7, 1.3, 0.2], dtype=torch.float64)
    (z_ref, g_ref), (z, g) = both(graph, log_probs, lengths, weights)
    finite = torch.isfinite(z_ref)
    assert torch.equal(finite, torch.isfinite(z))
    assert finite.sum() >= 3
    torch.testing.assert_close(z[finite], z_ref[finite], rtol=1e-6, atol=0)
    scale = g_ref.abs().max()
    assert float((g - g_ref).abs().max()) <= 1e-6 * float(scale)
    assert g[2, 1:].abs().max() == 0 and g[3].abs().max() == 0  # past T_b


def test_fused_float32_close_to_float64():
    graph = phone_lm_graph(True)
    torch.manual_seed(2)
    lengths = torch.tensor([300, 250, 120])
    log_probs = (4 * torch.randn(3, 300, graph.num_units, dtype=torch.float64)).log_softmax(-1)
    (z64, g64), _ = both(graph, log_probs, lengths)
    _, (z32, g32) = both(graph, log_probs.float(), lengths)
    torch.testing.assert_close(z32, z64, rtol=1e-5, atol=1e-3)
    assert float((g32.double() - g64).abs().max()) < 1e-4


def test_no_path_and_unreachable_final():
    # A graph whose only final state needs an even number of frames.
    graph = DenGraph(
        2,
        2,
        0,
        np.array([0, 1]),
        np.array([1, 0]),
        np.array([1, 1]),
        np.array([0.0, 0.0]),
        np.array([0.0, -np.inf]),
    )
    log_probs = torch.zeros(3, 3, 2, dtype=torch.float64)
    lengths = torch.tensor([2, 3, 0])
    (z_ref, g_ref), (z, g) = both(graph, log_probs, lengths)
    assert torch.isinf(z[1]) and torch.isinf(z_ref[1])  # 3 frames: no path
    torch.testing.assert_close(z[[0, 2]], z_ref[[0, 2]])
    assert g[1].abs().max() == 0
    torch.testing.assert_close(g, g_ref)


class _KeptAlphas:
    """The fused extension, recording the alphas each forward returns (what the autograd
    graph then holds until backward)."""

    def __init__(self, ext):
        self.ext, self.kept = ext, []

    def forward(self, *args):
        logz, alphas = self.ext.forward(*args)
        self.kept.append(alphas)
        return logz, alphas

    def __getattr__(self, name):
        return getattr(self.ext, name)


def test_without_gradient_keeps_no_alphas():
    """Log-probs that need no gradient (a model run under no_grad, as for the held-out loss;
    or a plain tensor) make the forward pass keep no alphas: T + 1 frames of S x B are
    hundreds of MB at WSJ size, for batches that never run backward. log Z is the same;
    with a gradient every frame's alphas are kept, for backward."""
    graph = phone_lm_graph(True)
    loss = CtcCrfLoss(graph, implementation="fused")
    spy = loss.ext = _KeptAlphas(loss.ext)
    torch.manual_seed(4)
    net = torch.nn.Linear(8, graph.num_units).double()
    feats = torch.randn(2, 30, 8, dtype=torch.float64)
    lengths = torch.tensor([30, 12])
    with torch.no_grad():
        log_probs = net(feats).log_softmax(-1)
        z_eval = loss.den_logz(log_probs, lengths)
    reference = CtcCrfLoss(graph, implementation="torch").den_logz(log_probs, lengths)
    z_plain = loss.den_logz(log_probs, lengths)  # grad mode on, but no input needs it
    for z in (z_eval, z_plain):
        torch.testing.assert_close(z, reference)
    assert [a.numel() for a in spy.kept] == [0, 0]
    z = loss.den_logz(net(feats).log_softmax(-1), lengths)  # training: kept for backward
    assert spy.kept[-1].shape[0] == 31 and spy.kept[-1].numel() >= 31 * graph.num_states * 2
    torch.testing.assert_close(z.detach(), reference)
    z.sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_bad_implementation_name():
    with pytest.raises(ValueError, match="implementation"):
        CtcCrfLoss(random_graph(0), implementation="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_cuda_equals_cpu_float64():
    graph = phone_lm_graph(True)
    loss = CtcCrfLoss(graph, implementation="fused")
    assert loss.ext.built_with_cuda()
    torch.manual_seed(3)
    log_probs = (3 * torch.randn(5, 200, graph.num_units, dtype=torch.float64)).log_softmax(-1)
    lengths = torch.tensor([200, 150, 3, 0, 199])
    out = []
    for device in ("cpu", "cuda"):
        x = log_probs.to(device).requires_grad_()
        z = loss.to(device).den_logz(x, lengths.to(device))
        ok = torch.isfinite(z)
        z[ok].sum().backward()
        out.append((z.cpu(), x.grad.cpu()))
    torch.testing.assert_close(out[1][0], out[0][0], rtol=1e-6, atol=0)
    torch.testing.assert_close(out[1][1], out[0][1], rtol=0, atol=1e-9)


def test_fused_equals_reference_on_a_prepared_den_graph(tts_data):
    """The den graph stnas prep builds for the tts corpus (unsmoothed LM), float64."""
    from pipeline.lang.den_graph import load_den_graph, read_units

    k, _ = read_units(tts_data / "lang" / "units.txt")
    graph = load_den_graph(tts_data / "den" / "den.fst", k)
    torch.manual_seed(5)
    lengths = torch.tensor([120, 97, 64, 120])
    log_probs = (3 * torch.randn(4, 120, k, dtype=torch.float64)).log_softmax(-1)
    (z_ref, g_ref), (z, g) = both(graph, log_probs, lengths)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z, z_ref, rtol=1e-6, atol=0)
    assert float((g - g_ref).abs().max()) <= 1e-6 * float(g_ref.abs().max())
