"""CTC-CRF loss: den log Z against brute force, gradients, CTC equivalence, padding, errors."""

from __future__ import annotations

import kaldifst
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.lang.den_graph import DenGraph, compose_den_fst, den_graph_from_fst
from pipeline.lang.phone_lm import estimate_phone_lm, lm_to_fst
from pipeline.loss.ctc_crf import CtcCrfLoss, required_frames
from pipeline.loss.den import DenLogZ

torch.set_num_threads(1)


def lm_den_graph(num_units: int, order: int = 2) -> DenGraph:
    """T(den) o phone LM over a few training sequences."""
    seqs = [[1, 2, 2, 1], [2, 1], [1, 1, 2], [num_units - 1, 1]]
    lm = estimate_phone_lm(seqs, num_units, order=order, max_extra_states=3)
    return den_graph_from_fst(compose_den_fst(num_units, lm_to_fst(lm)), num_units)


def zero_lm_den_graph(num_units: int) -> DenGraph:
    """T(den) o (one-state LM, every weight 0): den = T with zero weights."""
    lm = kaldifst.StdVectorFst()
    lm.add_state()
    lm.start = 0
    lm.set_final(0, 0.0)
    for p in range(1, num_units):
        lm.add_arc(0, kaldifst.StdArc(p + 1, p + 1, 0.0, 0))
    return den_graph_from_fst(compose_den_fst(num_units, lm), num_units)


def random_graph(seed: int) -> DenGraph:
    """A small nondeterministic acceptor whose states are entered on mixed labels."""
    rng = np.random.default_rng(seed)
    num_states, num_units = 4, 3
    src, dst, lab = [], [], []
    for s in range(num_states):
        for _ in range(3):
            src.append(s)
            dst.append(int(rng.integers(num_states)))
            lab.append(int(rng.integers(num_units)))
    final = np.where(rng.random(num_states) < 0.6, rng.normal(size=num_states), -np.inf)
    final[[0, 2]] = [0.2, -0.3]  # start final: length-0 utterances have a path
    return DenGraph(
        num_states,
        num_units,
        0,
        np.array(src),
        np.array(dst),
        np.array(lab),
        rng.normal(size=len(src)),
        final,
    )


def brute_logz(graph: DenGraph, log_probs: torch.Tensor) -> torch.Tensor:
    """log Z by listing every path of len(log_probs) arcs: (T, K) -> scalar (autograd)."""
    partial = [(graph.start, log_probs.new_zeros(()))]
    for t in range(log_probs.shape[0]):
        partial = [
            (int(graph.dst[a]), score + log_probs[t, graph.label[a]] + graph.weight[a])
            for state, score in partial
            for a in np.nonzero(graph.src == state)[0]
        ]
    ends = [score + graph.final[s] for s, score in partial if np.isfinite(graph.final[s])]
    return torch.logsumexp(torch.stack(ends), 0) if ends else log_probs.new_tensor(-np.inf)


@pytest.mark.parametrize("impl", ["torch", "fused"])
@pytest.mark.parametrize(
    "make_graph",
    [
        lambda: lm_den_graph(3),
        lambda: lm_den_graph(4, 3),
        lambda: random_graph(0),
        lambda: random_graph(1),
    ],
)
def test_logz_and_gradient_match_brute_force(make_graph, impl):
    graph = make_graph()
    torch.manual_seed(0)
    lengths = torch.tensor([6, 4, 1, 0])
    log_probs = torch.randn(4, 6, graph.num_units, dtype=torch.float64).requires_grad_()
    loss = CtcCrfLoss(graph, implementation=impl)
    logz = loss.den_logz(log_probs, lengths)
    ref = torch.stack([brute_logz(graph, log_probs[b, :n]) for b, n in enumerate(lengths)])
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(logz, ref, atol=1e-6, rtol=0)
    weights = torch.tensor([1.0, -0.5, 2.0, 0.7], dtype=torch.float64)
    (grad,) = torch.autograd.grad((logz * weights).sum(), log_probs)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), log_probs)
    torch.testing.assert_close(grad, grad_ref, atol=1e-6, rtol=0)
    assert grad[1, 4:].abs().max() == 0 and grad[3].abs().max() == 0  # padding frames


def test_gradcheck():
    loss = CtcCrfLoss(lm_den_graph(3))
    graph = loss.graph_tensors(torch.device("cpu"), torch.float64)
    lengths = torch.tensor([5, 3])
    log_probs = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: DenLogZ.apply(x, lengths, graph), (log_probs,))
    fused = CtcCrfLoss(random_graph(2), implementation="fused")
    log_probs = torch.randn(3, 5, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])
    assert torch.autograd.gradcheck(lambda x: fused.den_logz(x, lengths), (log_probs,))


def test_zero_weight_lm_gives_logz_zero_and_plain_ctc():
    k = 5
    loss = CtcCrfLoss(zero_lm_den_graph(k), lamb=0.0, reduction="sum")
    torch.manual_seed(1)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        logits = torch.randn(3, 20, k, dtype=dtype, requires_grad=True)
        lengths = torch.tensor([20, 15, 9])
        labels = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 0, 0]])
        label_lengths = torch.tensor([4, 2, 2])
        out = loss(logits.log_softmax(-1), lengths, labels, label_lengths)
        # log Z and the per-utterance values are float64 whatever the input dtype
        torch.testing.assert_close(
            out.den_logz, torch.zeros(3, dtype=torch.float64), atol=tol, rtol=0
        )
        ctc = F.ctc_loss(
            logits.log_softmax(-1).transpose(0, 1), labels, lengths, label_lengths, reduction="none"
        )
        torch.testing.assert_close(out.per_utt, ctc.double(), atol=tol, rtol=1e-6)
        assert out.feasible.all()
        (g_crf,) = torch.autograd.grad(out.loss, logits)
        (g_ctc,) = torch.autograd.grad(ctc.sum(), logits)
        torch.testing.assert_close(g_crf, g_ctc, atol=tol, rtol=1e-5)


def test_long_utterance_numerator_gradient_matches_float64():
    """At T = 1500 a float32 CTC numerator's gradient is off by up to ~4e-2; ours is not."""
    k = 41
    loss = CtcCrfLoss(zero_lm_den_graph(k), lamb=0.0, reduction="sum")
    torch.manual_seed(3)
    logits = torch.randn(2, 1500, k) * 4
    labels = torch.randint(1, k, (2, 300))
    lengths, label_lengths = torch.tensor([1500, 1200]), torch.tensor([300, 250])

    def grad(dtype):
        x = logits.to(dtype).requires_grad_()
        out = loss(x.log_softmax(-1), lengths, labels, label_lengths)
        return torch.autograd.grad(out.loss, x)[0].double(), out.num_logp

    g32, num32 = grad(torch.float32)
    g64, num64 = grad(torch.float64)
    assert float((g32 - g64).abs().max()) < 1e-5
    torch.testing.assert_close(num32, num64, rtol=1e-6, atol=1e-3)


def test_loss_is_den_minus_scaled_ctc_and_mean_reduction():
    graph = lm_den_graph(4, 3)
    torch.manual_seed(2)
    log_probs = torch.randn(3, 12, 4, dtype=torch.float64).log_softmax(-1)
    lengths = torch.tensor([12, 10, 2])
    labels = torch.tensor([[1, 2, 3], [3, 3, 1], [2, 2, 0]])
    label_lengths = torch.tensor([3, 3, 2])
    out = CtcCrfLoss(graph, lamb=0.1)(log_probs, lengths, labels, label_lengths)
    ctc = F.ctc_loss(log_probs.transpose(0, 1), labels, lengths, label_lengths, reduction="none")
    assert out.feasible.tolist() == [True, True, False]  # [2, 2] needs 3 frames
    torch.testing.assert_close(out.per_utt[:2], out.den_logz[:2] + 1.1 * ctc[:2])
    torch.testing.assert_close(out.num_logp[:2], -ctc[:2])
    assert out.per_utt[2] == 0 and out.loss == pytest.approx(out.per_utt[:2].sum() / 2)
    # Z = sum_pi prod_t y_t(pi_t) P_LM(B(pi)) < sum_pi prod_t y_t(pi_t) = 1
    assert (out.den_logz[:2] < 0).all()


def test_padding_invariance():
    graph = lm_den_graph(4, 3)
    loss = CtcCrfLoss(graph, lamb=0.01, reduction="sum")
    torch.manual_seed(3)
    logits = torch.randn(1, 7, 4, dtype=torch.float64)
    labels = torch.tensor([[1, 3, 2]])

    def run(batch_logits, lengths, batch_labels, label_lengths):
        x = batch_logits.clone().requires_grad_()
        out = loss(x.log_softmax(-1), lengths, batch_labels, label_lengths)
        (grad,) = torch.autograd.grad(out.loss, x)
        return out.per_utt, grad

    alone, g_alone = run(logits, torch.tensor([7]), labels, torch.tensor([3]))
    big = torch.randn(3, 15, 4, dtype=torch.float64)
    big[1, :7] = logits[0]
    big[1, 7:] = 50.0  # garbage in the padding
    batch_labels = torch.tensor([[2, 1, 2, 3, 1], [1, 3, 2, 0, 0], [3, 0, 0, 0, 0]])
    in_batch, g_batch = run(big, torch.tensor([15, 7, 11]), batch_labels, torch.tensor([5, 3, 1]))
    torch.testing.assert_close(in_batch[1], alone[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(g_batch[1, :7], g_alone[0], atol=1e-10, rtol=0)
    assert g_batch[1, 7:].abs().max() == 0


def test_concatenated_labels_equal_padded():
    loss = CtcCrfLoss(lm_den_graph(4, 3))
    log_probs = torch.randn(2, 9, 4).log_softmax(-1)
    lengths = torch.tensor([9, 6])
    padded = loss(log_probs, lengths, torch.tensor([[1, 2, 3], [2, 0, 0]]), torch.tensor([3, 1]))
    concat = loss(log_probs, lengths, torch.tensor([1, 2, 3, 2]), torch.tensor([3, 1]))
    torch.testing.assert_close(padded.per_utt, concat.per_utt)


def test_infeasible_utterances_are_flagged_and_finite():
    loss = CtcCrfLoss(lm_den_graph(4, 3))
    logits = torch.randn(3, 4, 4, requires_grad=True)
    labels = torch.tensor([[1, 1, 0], [1, 2, 3], [2, 3, 1]])
    out = loss(logits.log_softmax(-1), torch.tensor([2, 2, 4]), labels, torch.tensor([2, 3, 3]))
    assert out.feasible.tolist() == [False, False, True]
    assert torch.isfinite(out.per_utt).all() and torch.isfinite(out.loss)
    (grad,) = torch.autograd.grad(out.loss, logits)
    assert torch.isfinite(grad).all() and grad[:2].abs().max() == 0
    assert required_frames(labels, torch.tensor([2, 3, 3])).tolist() == [3, 3, 3]
    # No den path of the right length: log Z = -inf is flagged, never returned as a loss.
    dead = DenGraph(
        2,
        2,
        0,
        np.array([0]),
        np.array([1]),
        np.array([1]),
        np.array([0.0]),
        np.array([-np.inf, 0.0]),
    )
    out = CtcCrfLoss(dead)(
        torch.randn(1, 3, 2).log_softmax(-1),
        torch.tensor([3]),
        torch.tensor([[1]]),
        torch.tensor([1]),
    )
    assert not out.feasible[0] and out.loss == 0


def test_float32_matches_float64():
    loss = CtcCrfLoss(lm_den_graph(6, 4))
    log_probs = (3 * torch.randn(4, 80, 6, dtype=torch.float64)).log_softmax(-1)
    lengths = torch.tensor([80, 61, 40, 7])
    z64 = loss.den_logz(log_probs, lengths)
    z32 = loss.den_logz(log_probs.float(), lengths)
    torch.testing.assert_close(z32.double(), z64, rtol=1e-5, atol=1e-4)


def test_errors():
    graph = lm_den_graph(4)
    loss = CtcCrfLoss(graph)
    log_probs = torch.randn(1, 5, 4).log_softmax(-1)
    with pytest.raises(ValueError, match="label ids"):
        loss(log_probs, torch.tensor([5]), torch.tensor([[1, 4]]), torch.tensor([2]))  # id >= K
    with pytest.raises(ValueError, match="label ids"):
        loss(log_probs, torch.tensor([5]), torch.tensor([[0, 1]]), torch.tensor([2]))  # blank
    with pytest.raises(ValueError, match="columns"):
        loss(
            torch.randn(1, 5, 5).log_softmax(-1),
            torch.tensor([5]),
            torch.tensor([[1]]),
            torch.tensor([1]),
        )
    with pytest.raises(ValueError, match="input_lengths"):
        loss(log_probs, torch.tensor([6]), torch.tensor([[1]]), torch.tensor([1]))
    empty = DenGraph(0, 4, 0, *(np.zeros(0, dtype=np.int64),) * 3, np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="empty"):
        CtcCrfLoss(empty)
    bad_label = DenGraph(
        1, 3, 0, np.array([0]), np.array([0]), np.array([3]), np.array([0.0]), np.array([0.0])
    )
    with pytest.raises(ValueError, match="label"):
        CtcCrfLoss(bad_label)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    loss = CtcCrfLoss(lm_den_graph(6, 4), lamb=0.01)
    torch.manual_seed(4)
    logits = torch.randn(4, 50, 6)
    lengths = torch.tensor([50, 44, 30, 9])
    labels = torch.randint(1, 6, (4, 6))
    label_lengths = torch.tensor([6, 5, 4, 2])
    results = []
    for device in ("cpu", "cuda"):
        x = logits.to(device).requires_grad_()
        out = loss.to(device)(
            x.log_softmax(-1), lengths.to(device), labels.to(device), label_lengths.to(device)
        )
        (grad,) = torch.autograd.grad(out.loss, x)
        results.append((out.per_utt.cpu(), grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-4, rtol=1e-4)


def test_reported_loss_is_a_true_negative_log_likelihood(tts_data):
    """With the path weights prep writes, -log p(l|x) >= 0 for any network output; without
    them (the old report) the "loss" goes negative."""
    from pipeline.train.data import collate, load_utterances
    from pipeline.train.loss_parts import LossFn

    utts = load_utterances(tts_data / "train_sp")[:12]
    assert any(u.lm_logp < 0 for u in utts)
    batch = collate(utts)
    k = sum(1 for _ in open(tts_data / "lang" / "units.txt"))
    fn = LossFn("ctc_crf", 0.01, tts_data / "den" / "den.fst", k)
    lengths = batch.lengths // 3
    torch.manual_seed(0)
    for scale in (0.0, 1.0, 5.0):  # uniform, soft and peaky random outputs
        log_probs = (torch.randn(len(utts), int(lengths.max()), k) * scale).log_softmax(-1)
        parts = fn(log_probs, lengths, batch)
        assert parts.feasible.all()
        assert (parts.nll >= -1e-6).all(), parts.nll
        torch.testing.assert_close(parts.nll, parts.den + parts.ctc - parts.lm)
        no_weight = parts.den + parts.ctc  # log Z - log p_CTC, what was logged before
        if scale == 0.0:
            assert (no_weight < 0).any()
