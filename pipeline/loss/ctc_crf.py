"""CTC-CRF loss: ``log Z(x) - (1 + lambda) * log p_CTC(l | x)`` per utterance (paper §4).

CTC-CRF models ``log p(l|x) = log p_LM(l) + log p_CTC(l|x) - log Z(x)``. The numerator is
ordinary CTC (``torch.nn.functional.ctc_loss``, blank 0), computed in float64: in float32 its
gradient is off by 7e-3 on peaky random outputs at T = 1500 frames. ``log p_LM(l)`` is a constant per utterance
(the ``weight`` file) and is not part of the loss; adding it back gives the true negative
log-likelihood ``-log p(l|x) = log Z - log p_CTC - log p_LM`` that training reports. The denominator

    log Z(x) = log sum_{paths pi of den} exp( sum_t log y_t(label(pi_t)) + sum_t w(pi_t) + f(end) )

sums over every path of the den graph ``T(den) o phone-LM`` (:mod:`pipeline.lang.den_graph`)
with exactly ``T_b`` arcs for utterance b (arc weights w, final weights f, all natural-log).

Den forward-backward (:class:`DenLogZ`). Every arc entering a state of ``T o LM`` reads the
same label (other graphs are split into such a form first), so the forward recursion is

    alpha_t = (W^T alpha_{t-1}) * y_t[state_label]        W[s, d] = sum of exp(w) over arcs s->d

one sparse-dense product per frame for the whole batch: alphas live in probability space,
shape (S, B), renormalised to sum 1 per frame with the log of the scale accumulated in float64
(as Kaldi's chain denominator does), and frame probabilities are ``exp(log y_t - max_k log y_t)``
so nothing underflows in float32. The backward pass runs the mirror recursion
``beta_{t-1} = W (y_t[state_label] * beta_t)``; the gradient of log Z w.r.t. ``log y_t(k)`` is the
den occupancy of label k at frame t, ``sum_{s: label(s)=k} alpha_t(s) beta_t(s) / Z``, which is
computed per frame by normalising ``alpha_t * beta_t`` to sum 1 (every path is in exactly one
state at each frame). Same code on CPU and CUDA: the graph follows the device of the inputs.
On CPU (B=32, T=300, 5k states, 216k arcs) this forward pass took ~0.3 s where a log-space
version over CSR arcs (gather, scatter-max, exp, index_add, log per frame) took ~16 s: the arc
work here is one sparse product per frame instead of several passes over B x E values.
The CSR indices are int32 (less memory traffic), and every per-frame buffer is allocated once
per call: fresh (S, B) temporaries per frame cost up to 40 % more on CPU through page faults.

Gradients: the den part is exact for any log_probs. The numerator comes from torch's
``ctc_loss``, whose gradient is only correct once propagated through ``log_softmax`` (torch
returns ``exp(log_probs) - posterior``); feed log_softmax outputs, as the network does.
"""

from __future__ import annotations

import warnings
from typing import Dict, NamedTuple, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.lang.den_graph import DenGraph, state_labelled

REDUCTIONS = ("mean", "sum", "none")


class _GraphTensors(NamedTuple):
    """The den graph on one device, in one dtype (see the module docstring)."""

    trans_t: Tensor      # (S, S) sparse CSR, W^T: row = destination, column = source
    trans: Tensor        # (S, S) sparse CSR, W: row = source, column = destination
    state_label: Tensor  # (S,) int64, label read by the arcs entering each state (>= 0)
    final: Tensor        # (S,) exp(final weight), 0 for non-final states
    start: int
    num_states: int


def _frame_probs(log_probs: Tensor) -> Tuple[Tensor, Tensor]:
    """``exp(log y - max_k log y)`` and the max: (B, T, K) -> (T, K, B) contiguous, (T, B)."""
    ymax = log_probs.max(dim=-1).values
    ymax = torch.where(torch.isfinite(ymax), ymax, torch.zeros_like(ymax))
    probs = torch.exp(log_probs - ymax[..., None])
    return probs.permute(1, 2, 0).contiguous(), ymax.t()


def _csr32(coo: Tensor) -> Tensor:
    """COO -> CSR with int32 indices (less memory traffic per product than int64)."""
    csr = coo.coalesce().to_sparse_csr()
    return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(),
                                   csr.values(), csr.shape)


class DenLogZ(torch.autograd.Function):
    """log Z(x) of the den graph for a batch, with its exact gradient (occupancies)."""

    @staticmethod
    def forward(ctx, log_probs: Tensor, lengths: Tensor,  # type: ignore[override]
                graph: _GraphTensors) -> Tensor:
        """Run the scaled forward recursion and keep every alpha for the backward pass.

        Args:
            log_probs: (B, T, K) log y_t(k) (any values; log_softmax outputs in training).
            lengths: (B,) int64 valid frames, on the device of log_probs.
            graph: the den graph on that device and in that dtype.

        Returns:
            log Z, shape (B,), float64; ``-inf`` when no den path has T_b arcs.
        """
        lp = log_probs.detach()
        batch = lp.shape[0]
        frames = int(lengths.max()) if batch else 0  # frames past every length are skipped
        all_active = int(lengths.min()) if batch else 0  # frames every utterance still has
        lab = graph.state_label
        keep = ctx.needs_input_grad[0]  # alphas are only needed for the backward pass
        alphas = lp.new_empty(frames + 1 if keep else 2, graph.num_states, batch)
        alpha = alphas[0].zero_()
        alpha[graph.start] = 1.0
        log_scale = torch.zeros(batch, dtype=torch.float64, device=lp.device)
        probs, ymax = _frame_probs(lp[:, :frames])
        y_lab = torch.empty_like(alpha)  # per-frame buffers: no allocation inside the loop
        for t in range(frames):
            new = alphas[t + 1 if keep else (t + 1) % 2]
            torch.addmm(new, graph.trans_t, alpha, beta=0, out=new)
            new.mul_(torch.index_select(probs[t], 0, lab, out=y_lab))
            tot = new.sum(dim=0)
            new.div_(torch.where(tot > 0, tot, torch.ones_like(tot)))
            step = torch.where(tot > 0, torch.log(tot.double()), -torch.inf) + ymax[t].double()
            if t < all_active:
                log_scale = log_scale + step
            else:  # finished utterances keep their last alpha and scale
                active = t < lengths
                log_scale = torch.where(active, log_scale + step, log_scale)
                new.copy_(torch.where(active[None, :], new, alpha))
            alpha = new
        z = (graph.final[:, None] * alpha).sum(dim=0)
        logz = log_scale + torch.log(z.double())
        ctx.graph = graph
        ctx.save_for_backward(lp, lengths, logz, alphas if keep else alphas[:0])
        return logz

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logz: Tensor):  # type: ignore[override]
        """d log Z / d log y_t(k) = den occupancy of label k at frame t; 0 past T_b."""
        lp, lengths, logz, alphas = ctx.saved_tensors
        graph = ctx.graph
        batch, _, num_units = lp.shape
        frames = alphas.shape[0] - 1
        all_active = int(lengths.min()) if batch else 0
        lab = graph.state_label
        beta = lp.new_zeros(graph.num_states, batch)
        beta_new = torch.empty_like(beta)
        prod = torch.empty_like(beta)  # alpha_t * beta_t
        occ = lp.new_zeros(frames, num_units, batch)
        probs, _ = _frame_probs(lp[:, :frames])
        y_lab = torch.empty_like(beta)  # y_{t+1}[state_label], (S, B)
        for t in range(frames, 0, -1):
            if t == frames:
                beta.zero_()
            else:  # beta recursion (beta_{t+1} is not needed any more)
                torch.addmm(beta_new, graph.trans, beta.mul_(y_lab), beta=0, out=beta_new)
                beta, beta_new = beta_new, beta
            if t >= all_active:  # some utterance ends at t (starts with final) or before t
                beta.copy_(torch.where((t == lengths)[None, :], graph.final[:, None],
                                       torch.where((t < lengths)[None, :], beta, 0.0)))
            tot = beta.sum(dim=0)
            beta.div_(torch.where(tot > 0, tot, torch.ones_like(tot)))
            occ[t - 1].index_add_(0, lab, torch.mul(alphas[t], beta, out=prod))
            torch.index_select(probs[t - 1], 0, lab, out=y_lab)
        # Occupancy of each label at each frame: alpha_t * beta_t summed per label and
        # normalised to 1 per utterance (every path is in exactly one state at frame t).
        tot = occ.sum(dim=1, keepdim=True)
        occ.div_(torch.where(tot > 0, tot, torch.ones_like(tot)))
        grad = torch.zeros_like(lp)
        grad[:, :frames] = occ.permute(2, 0, 1)
        ok = torch.isfinite(logz)
        scale = torch.where(ok, grad_logz, torch.zeros_like(grad_logz))
        grad = torch.where(ok[:, None, None], grad, torch.zeros_like(grad)) \
            * scale.to(grad.dtype)[:, None, None]
        return grad, None, None


class _FusedGraph(NamedTuple):
    """The den graph for the fused extension: arcs grouped by destination (alphas) and by
    source (betas), int32 CSR, probabilities in the dtype of the log-probs."""

    in_ptr: Tensor
    in_src: Tensor
    in_w: Tensor
    out_ptr: Tensor
    out_dst: Tensor
    out_w: Tensor
    state_label: Tensor  # (S,) int64
    final: Tensor
    start: int


class FusedDenLogZ(torch.autograd.Function):
    """log Z(x) by the fused C++/CUDA extension (``pipeline/loss/csrc``): the same recursion
    as :class:`DenLogZ`, one pass over the arcs per frame and utterance."""

    @staticmethod
    def forward(ctx, log_probs: Tensor, lengths: Tensor,  # type: ignore[override]
                graph: _FusedGraph, ext) -> Tensor:
        lp = log_probs.detach().contiguous()
        keep = ctx.needs_input_grad[0]
        logz, alphas = ext.forward(lp, lengths, graph.in_ptr, graph.in_src, graph.in_w,
                                   graph.state_label, graph.final, graph.start, keep)
        ctx.graph, ctx.ext = graph, ext
        ctx.save_for_backward(lp, lengths, logz, alphas)
        return logz

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logz: Tensor):  # type: ignore[override]
        lp, lengths, logz, alphas = ctx.saved_tensors
        g = ctx.graph
        grad = ctx.ext.backward(lp, lengths, g.out_ptr, g.out_dst, g.out_w, g.state_label,
                                g.final, alphas, logz, grad_logz.double().contiguous())
        return grad, None, None, None


IMPLEMENTATIONS = ("auto", "fused", "torch")


class CtcCrfOutput(NamedTuple):
    """What :class:`CtcCrfLoss` returns.

    Attributes:
        loss: reduced loss (scalar; per_utt for reduction ``"none"``), differentiable.
        per_utt: (B,) float64 ``log Z - (1 + lambda) log p_CTC``, 0 for infeasible utterances.
        den_logz: (B,) float64 log Z(x), detached; 0 where infeasible.
        num_logp: (B,) float64 log p_CTC(l | x), detached; 0 where infeasible.
        feasible: (B,) bool; False when T_b < L_b + repeats in l_b or a value was not finite.
    """

    loss: Tensor
    per_utt: Tensor
    den_logz: Tensor
    num_logp: Tensor
    feasible: Tensor


class CtcCrfLoss(nn.Module):
    """CTC-CRF loss over a den graph.

    Args:
        den_graph: the den graph (``T(den) o LM``; any epsilon-free acceptor works).
        lamb: weight of the extra CTC term (0.01 WSJ, 0.1 SWBD).
        reduction: ``"mean"`` (sum over feasible utterances / their number), ``"sum"``
            or ``"none"``.
        implementation: den forward-backward by ``"fused"`` (the compiled extension,
            :mod:`pipeline.loss.den_fb_ext`), ``"torch"`` (:class:`DenLogZ`, the reference) or
            ``"auto"`` (fused when it is built, else torch with a warning).
    """

    def __init__(self, den_graph: DenGraph, lamb: float = 0.01, reduction: str = "mean",
                 implementation: str = "auto") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, "
                             f"got {implementation!r}")
        self.ext = None
        if implementation != "torch":
            from pipeline.loss import den_fb_ext

            self.ext = den_fb_ext.load()
            if self.ext is None and implementation == "fused":
                raise RuntimeError("the fused den forward-backward extension is not built "
                                   "(run 'make install' or 'python -m pipeline.loss.den_fb_ext')")
        self.implementation = "fused" if self.ext is not None else "torch"
        den_graph.validate()
        graph, state_label = state_labelled(den_graph)
        self.lamb = float(lamb)
        self.reduction = reduction
        self.num_units = graph.num_units
        self.num_states = graph.num_states
        self.start = graph.start
        arrays = {"src": graph.src, "dst": graph.dst, "arc_prob": np.exp(graph.weight),
                  "final_prob": np.exp(graph.final), "state_label": np.maximum(state_label, 0)}
        for name, arr in arrays.items():  # the graph is data, not state: kept out of checkpoints
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(arr)),
                                 persistent=False)
        self._cache: Dict[Tuple[torch.device, torch.dtype], _GraphTensors] = {}
        self._fused_cache: Dict[Tuple[torch.device, torch.dtype], _FusedGraph] = {}

    def fused_graph(self, device: torch.device, dtype: torch.dtype) -> _FusedGraph:
        """The den graph in the extension's form on ``device`` in ``dtype`` (cached)."""
        key = (torch.device(device), dtype)
        if key not in self._fused_cache:
            src, dst = self.src.cpu().numpy(), self.dst.cpu().numpy()
            prob = self.arc_prob.cpu().double().numpy()
            order = np.argsort(dst, kind="stable")

            def ptr(index: np.ndarray) -> np.ndarray:
                counts = np.bincount(index, minlength=self.num_states)
                return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)

            def put(arr: np.ndarray, dt: torch.dtype) -> Tensor:
                return torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=dt)
            self._fused_cache[key] = _FusedGraph(
                in_ptr=put(ptr(dst), torch.int32), in_src=put(src[order], torch.int32),
                in_w=put(prob[order], dtype), out_ptr=put(ptr(src), torch.int32),
                out_dst=put(dst, torch.int32), out_w=put(prob, dtype),
                state_label=put(self.state_label.cpu().numpy(), torch.int64),
                final=put(self.final_prob.cpu().double().numpy(), dtype), start=self.start)
        return self._fused_cache[key]

    def graph_tensors(self, device: torch.device, dtype: torch.dtype) -> _GraphTensors:
        """The den graph as sparse matrices on ``device`` in ``dtype`` (cached)."""
        key = (torch.device(device), dtype)
        if key not in self._cache:
            src, dst = self.src.to(device), self.dst.to(device)
            vals = self.arc_prob.to(device=device, dtype=dtype)
            size = (self.num_states, self.num_states)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR is beta"
                w = _csr32(torch.sparse_coo_tensor(torch.stack([src, dst]), vals, size))
                w_t = _csr32(torch.sparse_coo_tensor(torch.stack([dst, src]), vals, size))
                self._cache[key] = _GraphTensors(
                    trans_t=w_t, trans=w,
                    state_label=self.state_label.to(device),
                    final=self.final_prob.to(device=device, dtype=dtype),
                    start=self.start, num_states=self.num_states)
        return self._cache[key]

    def den_logz(self, log_probs: Tensor, input_lengths: Tensor) -> Tensor:
        """log Z(x): (B, T, K) log-probs, (B,) lengths -> (B,) (``-inf``: no den path)."""
        self._check_log_probs(log_probs, input_lengths)
        lengths = input_lengths.to(device=log_probs.device, dtype=torch.long)
        if self.ext is not None and (not log_probs.is_cuda or self.ext.built_with_cuda()):
            fused = self.fused_graph(log_probs.device, log_probs.dtype)
            return FusedDenLogZ.apply(log_probs, lengths, fused, self.ext)
        graph = self.graph_tensors(log_probs.device, log_probs.dtype)
        return DenLogZ.apply(log_probs, lengths, graph)

    def forward(self, log_probs: Tensor, input_lengths: Tensor, labels: Tensor,
                label_lengths: Tensor) -> CtcCrfOutput:
        """Compute the loss.

        Args:
            log_probs: (B, T, K) log_softmax outputs; column 0 is blank.
            input_lengths: (B,) valid frames per utterance (frames past it are ignored).
            labels: (B, L_max) padded or (sum L_b,) concatenated unit ids in ``1..K-1``.
            label_lengths: (B,) labels per utterance.

        Returns:
            :class:`CtcCrfOutput`.
        """
        padded = self._padded_labels(labels, label_lengths, log_probs.shape[0])
        den = self.den_logz(log_probs, input_lengths)
        ctc = ctc_nll(log_probs, padded, input_lengths, label_lengths)
        feasible = (input_lengths.cpu() >= required_frames(padded, label_lengths.cpu()))
        feasible = feasible.to(log_probs.device) & torch.isfinite(den) & torch.isfinite(ctc)
        per_utt = torch.where(feasible, den + (1.0 + self.lamb) * ctc, torch.zeros_like(den))
        if self.reduction == "mean":
            loss = per_utt.sum() / feasible.sum().clamp(min=1)
        elif self.reduction == "sum":
            loss = per_utt.sum()
        else:
            loss = per_utt
        zero = torch.zeros_like(den)
        return CtcCrfOutput(loss, per_utt, torch.where(feasible, den.detach(), zero),
                            torch.where(feasible, -ctc.detach(), zero), feasible)

    def _check_log_probs(self, log_probs: Tensor, input_lengths: Tensor) -> None:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, K), got shape {tuple(log_probs.shape)}")
        if log_probs.shape[-1] != self.num_units:
            raise ValueError(f"log_probs have {log_probs.shape[-1]} columns but the den graph "
                             f"has {self.num_units} units")
        if input_lengths.shape != log_probs.shape[:1]:
            raise ValueError("input_lengths must have shape (B,)")
        if input_lengths.numel() and (int(input_lengths.min()) < 0 or
                                      int(input_lengths.max()) > log_probs.shape[1]):
            raise ValueError(f"input_lengths outside 0..{log_probs.shape[1]}")

    def _padded_labels(self, labels: Tensor, label_lengths: Tensor, batch: int) -> Tensor:
        """Validate labels and return them padded, (B, L_max) int64 on the CPU."""
        lengths = label_lengths.cpu().long()
        if lengths.shape != (batch,) or (lengths < 0).any():
            raise ValueError("label_lengths must be (B,) and non-negative")
        labels = labels.cpu().long()
        if labels.dim() == 1:
            if labels.numel() != int(lengths.sum()):
                raise ValueError("concatenated labels must have sum(label_lengths) entries")
            padded = torch.zeros(batch, int(lengths.max()) if batch else 0, dtype=torch.long)
            for b, part in enumerate(torch.split(labels, lengths.tolist())):
                padded[b, :len(part)] = part
        elif labels.dim() == 2 and labels.shape[0] == batch and \
                labels.shape[1] >= (int(lengths.max()) if batch else 0):
            padded = labels
        else:
            raise ValueError("labels must be (B, L_max) padded or (sum L_b,) concatenated")
        valid = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        used = padded[valid]
        if used.numel() and (int(used.min()) < 1 or int(used.max()) >= self.num_units):
            raise ValueError(f"label ids must be in 1..{self.num_units - 1} (0 is blank), "
                             f"got {int(used.min())}..{int(used.max())}")
        return padded


def ctc_nll(log_probs: Tensor, labels: Tensor, input_lengths: Tensor,
            label_lengths: Tensor) -> Tensor:
    """``-log p_CTC(l | x)`` per utterance in float64 (blank 0), gradient back in the input's
    dtype; ``0`` (zero_infinity) where no alignment exists.

    Args:
        log_probs: (B, T, K) log_softmax outputs.
        labels: (B, L_max) padded unit ids; input_lengths, label_lengths: (B,).
    """
    dev = log_probs.device
    return F.ctc_loss(log_probs.double().transpose(0, 1), labels.to(dev), input_lengths.to(dev),
                      label_lengths.to(dev), blank=0, reduction="none", zero_infinity=True)


def required_frames(labels: Tensor, label_lengths: Tensor) -> Tensor:
    """Fewest frames CTC needs for each label sequence: L + number of adjacent repeats.

    Args:
        labels: (B, L_max) padded unit ids; label_lengths: (B,).

    Returns:
        (B,) int64.
    """
    if labels.shape[1] < 2:
        return label_lengths.long()
    pos = torch.arange(1, labels.shape[1])[None, :]
    repeats = (labels[:, 1:] == labels[:, :-1]) & (pos < label_lengths[:, None])
    return label_lengths.long() + repeats.sum(dim=1)
