"""CTC-CRF loss: ``log Z(x) - (1 + lambda) * log p_CTC(l | x)`` per utterance (paper §4).

CTC-CRF models ``log p(l|x) = log p_LM(l) + log p_CTC(l|x) - log Z(x)``. The numerator is
ordinary CTC (``torch.nn.functional.ctc_loss``, blank 0), computed in float64: in float32 its
gradient is off by 7e-3 on peaky random outputs at T = 1500 frames. ``log p_LM(l)`` is a constant per utterance
(the ``weight`` file) and is not part of the loss; adding it back gives the true negative
log-likelihood ``-log p(l|x) = log Z - log p_CTC - log p_LM`` that training reports. The denominator

    log Z(x) = log sum_{paths pi of den} exp( sum_t log y_t(label(pi_t)) + sum_t w(pi_t) + f(end) )

sums over every path of the den graph ``T(den) o phone-LM`` (:mod:`pipeline.lang.den_graph`)
with exactly ``T_b`` arcs for utterance b (arc weights w, final weights f, all natural-log).

The den forward-backward is :mod:`pipeline.loss.den` (the torch reference :class:`DenLogZ`) and
its fused C++/CUDA form (:mod:`pipeline.loss.den_fb_ext`).

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
from pipeline.loss import den_fb_ext
from pipeline.loss.den import DenLogZ, FusedDenLogZ, FusedGraph, GraphTensors, csr32

REDUCTIONS = ("mean", "sum", "none")


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

    # the den graph's buffers (registered by name in __init__)
    src: Tensor
    dst: Tensor
    arc_prob: Tensor
    final_prob: Tensor
    state_label: Tensor

    def __init__(
        self,
        den_graph: DenGraph,
        lamb: float = 0.01,
        reduction: str = "mean",
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
            )
        self.ext = None
        if implementation != "torch":
            self.ext = den_fb_ext.load()
            if self.ext is None and implementation == "fused":
                raise RuntimeError(
                    "the fused den forward-backward extension is not built "
                    "(run 'make install' or 'python -m pipeline.loss.den_fb_ext')"
                )
        self.implementation = "fused" if self.ext is not None else "torch"
        den_graph.validate()
        graph, state_label = state_labelled(den_graph)
        self.lamb = float(lamb)
        self.reduction = reduction
        self.num_units = graph.num_units
        self.num_states = graph.num_states
        self.start = graph.start
        arrays = {
            "src": graph.src,
            "dst": graph.dst,
            "arc_prob": np.exp(graph.weight),
            "final_prob": np.exp(graph.final),
            "state_label": np.maximum(state_label, 0),
        }
        for name, arr in arrays.items():  # the graph is data, not state: kept out of checkpoints
            self.register_buffer(
                name, torch.from_numpy(np.ascontiguousarray(arr)), persistent=False
            )
        self._cache: Dict[Tuple[torch.device, torch.dtype], GraphTensors] = {}
        self._fused_cache: Dict[Tuple[torch.device, torch.dtype], FusedGraph] = {}

    def fused_graph(self, device: torch.device, dtype: torch.dtype) -> FusedGraph:
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

            self._fused_cache[key] = FusedGraph(
                in_ptr=put(ptr(dst), torch.int32),
                in_src=put(src[order], torch.int32),
                in_w=put(prob[order], dtype),
                out_ptr=put(ptr(src), torch.int32),
                out_dst=put(dst, torch.int32),
                out_w=put(prob, dtype),
                state_label=put(self.state_label.cpu().numpy(), torch.int64),
                final=put(self.final_prob.cpu().double().numpy(), dtype),
                start=self.start,
            )
        return self._fused_cache[key]

    def graph_tensors(self, device: torch.device, dtype: torch.dtype) -> GraphTensors:
        """The den graph as sparse matrices on ``device`` in ``dtype`` (cached)."""
        key = (torch.device(device), dtype)
        if key not in self._cache:
            src, dst = self.src.to(device), self.dst.to(device)
            vals = self.arc_prob.to(device=device, dtype=dtype)
            size = (self.num_states, self.num_states)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR is beta"
                w = csr32(torch.sparse_coo_tensor(torch.stack([src, dst]), vals, size))
                w_t = csr32(torch.sparse_coo_tensor(torch.stack([dst, src]), vals, size))
                self._cache[key] = GraphTensors(
                    trans_t=w_t,
                    trans=w,
                    state_label=self.state_label.to(device),
                    final=self.final_prob.to(device=device, dtype=dtype),
                    start=self.start,
                    num_states=self.num_states,
                )
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

    def forward(
        self, log_probs: Tensor, input_lengths: Tensor, labels: Tensor, label_lengths: Tensor
    ) -> CtcCrfOutput:
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
        feasible = input_lengths.cpu() >= required_frames(padded, label_lengths.cpu())
        feasible = feasible.to(log_probs.device) & torch.isfinite(den) & torch.isfinite(ctc)
        per_utt = torch.where(feasible, den + (1.0 + self.lamb) * ctc, torch.zeros_like(den))
        if self.reduction == "mean":
            loss = per_utt.sum() / feasible.sum().clamp(min=1)
        elif self.reduction == "sum":
            loss = per_utt.sum()
        else:
            loss = per_utt
        zero = torch.zeros_like(den)
        return CtcCrfOutput(
            loss,
            per_utt,
            torch.where(feasible, den.detach(), zero),
            torch.where(feasible, -ctc.detach(), zero),
            feasible,
        )

    def _check_log_probs(self, log_probs: Tensor, input_lengths: Tensor) -> None:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, K), got shape {tuple(log_probs.shape)}")
        if log_probs.shape[-1] != self.num_units:
            raise ValueError(
                f"log_probs have {log_probs.shape[-1]} columns but the den graph "
                f"has {self.num_units} units"
            )
        if input_lengths.shape != log_probs.shape[:1]:
            raise ValueError("input_lengths must have shape (B,)")
        if input_lengths.numel() and (
            int(input_lengths.min()) < 0 or int(input_lengths.max()) > log_probs.shape[1]
        ):
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
                padded[b, : len(part)] = part
        elif (
            labels.dim() == 2
            and labels.shape[0] == batch
            and labels.shape[1] >= (int(lengths.max()) if batch else 0)
        ):
            padded = labels
        else:
            raise ValueError("labels must be (B, L_max) padded or (sum L_b,) concatenated")
        valid = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        used = padded[valid]
        if used.numel() and (int(used.min()) < 1 or int(used.max()) >= self.num_units):
            raise ValueError(
                f"label ids must be in 1..{self.num_units - 1} (0 is blank), "
                f"got {int(used.min())}..{int(used.max())}"
            )
        return padded


def ctc_nll(
    log_probs: Tensor, labels: Tensor, input_lengths: Tensor, label_lengths: Tensor
) -> Tensor:
    """``-log p_CTC(l | x)`` per utterance in float64 (blank 0), gradient back in the input's
    dtype; ``0`` (zero_infinity) where no alignment exists.

    Args:
        log_probs: (B, T, K) log_softmax outputs.
        labels: (B, L_max) padded unit ids; input_lengths, label_lengths: (B,).
    """
    dev = log_probs.device
    return F.ctc_loss(
        log_probs.double().transpose(0, 1),
        labels.to(dev),
        input_lengths.to(dev),
        label_lengths.to(dev),
        blank=0,
        reduction="none",
        zero_infinity=True,
    )


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
