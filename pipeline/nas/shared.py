"""Weights that a block's candidates share in the super-network (``shared_taps`` spaces).

* Plain TDNN candidates (``tdnn_k{K}_d{D}``) share one (out, in) matrix per time offset
  (offset ``j·d`` for tap j of a kernel-k, dilation-d candidate), one bias and one LayerNorm:
  k3 d1 is the centre of k5 d1, k3 d2 reuses k5 d1's ±2 taps (:class:`SharedTaps`).
* Wide candidates (``tdnn_k{K}_d{D}_w{P}``) share taps in the same way, at the largest hidden
  width of the block, and one projection and LayerNorm; a candidate of hidden width h uses
  the first h hidden channels (width slicing, as Single-Path NAS and Once-for-All do), so a
  0.5× candidate is the first half of the 1.5× one (:class:`SharedWideTaps`).

Every sampled path therefore trains the same features, and every candidate can be written
out as the plain op's state dict (``standalone_state``) for a derived network.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from pipeline.nas.ops import make_op, op_spec


def _offsets(shapes: Sequence[Tuple[int, int]]) -> List[int]:
    return sorted({j * d for k, d in shapes for j in range(-(k // 2), k // 2 + 1)})


class SharedTaps(nn.Module):
    """One (out, in) matrix per time offset of the block's candidates, one bias and one
    LayerNorm. Initialised as a Conv1d of the largest kernel would be."""

    def __init__(self, shapes: Sequence[Tuple[int, int]], in_dim: int, out_dim: int) -> None:
        super().__init__()
        offsets = _offsets(shapes)
        self.index = {o: i for i, o in enumerate(offsets)}
        bound = 1.0 / math.sqrt(in_dim * max(k for k, _ in shapes))
        self.weight = nn.Parameter(
            torch.empty(len(offsets), out_dim, in_dim).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))
        self.norm = nn.LayerNorm(out_dim)

    def kernel(self, k: int, d: int, rows: int = -1) -> Tensor:
        """(rows, in, k) Conv1d kernel of the kernel-k, dilation-d candidate (all rows: -1)."""
        rows = self.weight.shape[1] if rows < 0 else rows
        return torch.stack(
            [self.weight[self.index[j * d], :rows] for j in range(-(k // 2), k // 2 + 1)], dim=-1
        )


class SharedTdnn(nn.Module):
    """A TDNN candidate (Conv1d → ReLU → LayerNorm → Dropout, stride 1, same padding) whose
    weights are its block's :class:`SharedTaps`."""

    def __init__(self, taps: SharedTaps, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.taps, self.k, self.d = taps, kernel, dilation
        self.padding = dilation * (kernel // 2)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return lengths

    def forward(self, x: Tensor) -> Tensor:
        y = torch.nn.functional.conv1d(
            x.transpose(1, 2),
            self.taps.kernel(self.k, self.d),
            self.taps.bias,
            padding=self.padding,
            dilation=self.d,
        )
        return self.dropout(self.taps.norm(torch.relu(y.transpose(1, 2))))

    def standalone_state(self) -> Dict[str, Tensor]:
        """This candidate's weights as a plain :class:`pipeline.nas.ops.Tdnn` state dict."""
        return {
            "conv.weight": self.taps.kernel(self.k, self.d).detach().clone(),
            "conv.bias": self.taps.bias.detach().clone(),
            "norm.weight": self.taps.norm.weight.detach().clone(),
            "norm.bias": self.taps.norm.bias.detach().clone(),
        }


class SharedWideTaps(SharedTaps):
    """:class:`SharedTaps` at the block's largest hidden width, plus the shared projection
    (hidden → out) and the LayerNorm after it."""

    def __init__(
        self, shapes: Sequence[Tuple[int, int]], in_dim: int, hidden: int, out_dim: int
    ) -> None:
        super().__init__(shapes, in_dim, hidden)
        del self.norm
        self.proj = nn.Linear(hidden, out_dim)
        self.norm = nn.LayerNorm(out_dim)


class SharedWideTdnn(nn.Module):
    """A wide candidate (:class:`pipeline.nas.ops.WideTdnn`) of hidden width ``hidden``: the
    first ``hidden`` channels of its block's :class:`SharedWideTaps`."""

    def __init__(
        self, taps: SharedWideTaps, kernel: int, dilation: int, hidden: int, dropout: float
    ) -> None:
        super().__init__()
        self.taps, self.k, self.d, self.h = taps, kernel, dilation, hidden
        self.padding = dilation * (kernel // 2)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return lengths

    def forward(self, x: Tensor) -> Tensor:
        h = torch.nn.functional.conv1d(
            x.transpose(1, 2),
            self.taps.kernel(self.k, self.d, self.h),
            self.taps.bias[: self.h],
            padding=self.padding,
            dilation=self.d,
        )
        y = torch.nn.functional.linear(
            torch.relu(h.transpose(1, 2)), self.taps.proj.weight[:, : self.h], self.taps.proj.bias
        )
        if x.shape[-1] == y.shape[-1]:  # residual, as in WideTdnn
            y = y + x
        return self.dropout(self.taps.norm(y))

    def standalone_state(self) -> Dict[str, Tensor]:
        """This candidate's weights as a :class:`pipeline.nas.ops.WideTdnn` state dict."""
        t = self.taps
        return {
            "conv.weight": t.kernel(self.k, self.d, self.h).detach().clone(),
            "conv.bias": t.bias[: self.h].detach().clone(),
            "proj.weight": t.proj.weight[:, : self.h].detach().clone(),
            "proj.bias": t.proj.bias.detach().clone(),
            "norm.weight": t.norm.weight.detach().clone(),
            "norm.bias": t.norm.bias.detach().clone(),
        }


SHARED = (SharedTdnn, SharedWideTdnn)


def shared_candidates(
    names: Sequence[str], in_dim: int, out_dim: int, dropout: float
) -> nn.ModuleList:
    """The candidates of one block, the TDNN ones on shared weights (the others, identity,
    strided ops, on their own)."""
    specs = {n: op_spec(n) for n in names}
    plain = {
        n: (s.kernel, s.dilation)
        for n, s in specs.items()
        if not s.skip and s.stride == 1 and s.hidden_pct is None
    }
    wide = {
        n: (s.kernel, s.dilation, s.hidden(out_dim))
        for n, s in specs.items()
        if not s.skip and s.hidden_pct is not None
    }
    taps = SharedTaps(list(plain.values()), in_dim, out_dim) if plain else None
    wide_taps = (
        SharedWideTaps(
            [(k, d) for k, d, _ in wide.values()],
            in_dim,
            max(h for _, _, h in wide.values()),
            out_dim,
        )
        if wide
        else None
    )
    out: List[nn.Module] = []
    for n in names:
        if n in plain and taps is not None:
            out.append(SharedTdnn(taps, *plain[n], dropout))
        elif n in wide and wide_taps is not None:
            out.append(SharedWideTdnn(wide_taps, *wide[n], dropout))
        else:
            out.append(make_op(n, in_dim, out_dim, dropout))
    return nn.ModuleList(out)
