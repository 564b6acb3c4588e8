"""Candidate operations of the search space, named by what they are (``tdnn_k5_d2``).

Every op maps (B, T, C_in) → (B, T', C_out) and knows its exact output length in integer
arithmetic, so masks and CTC lengths never depend on float rounding. A TDNN op is
Conv1d → ReLU → LayerNorm → Dropout (DESIGN §3), with "same" padding for stride 1.

Names (:func:`op_spec` reads them):

* ``tdnn_k{K}_d{D}`` (and ``_s{S}`` for a stride): the plain TDNN layer above.
* ``tdnn_k{K}_d{D}_w{P}``: a residual TDNN block with a hidden width of P % of its output
  width: ``LayerNorm(x + Linear(ReLU(Conv1d(x))))`` → Dropout, the conv mapping in → h
  channels (kernel K, dilation D), ``h = round(P·out/100)``; without the ``x +`` where
  in ≠ out. Its cost scales with P while the block's output width stays the same, so blocks
  of different widths chain without a change of shape (the inverted bottleneck that
  Single-Path NAS and Once-for-All make elastic). The residual is what lets a chain of them
  train: without it a fixed 4-block chain stayed on the all-blank plateau (held-out
  CTC-CRF loss 0.475 per frame after an epoch on the demo data, against 0.072 with it).
* ``identity``: a skip (in == out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn


class Tdnn(nn.Module):
    """Conv1d(kernel, dilation, stride) → ReLU → LayerNorm → Dropout.

    Args:
        in_dim, out_dim: channels.
        kernel, dilation, stride: of the convolution; padding keeps T for stride 1
            (``dilation·(kernel−1)/2`` each side) and gives ``ceil(T/stride)`` frames otherwise.
        dropout: dropout probability after the LayerNorm.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel: int,
        dilation: int = 1,
        stride: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"TDNN kernel must be odd, got {kernel}")
        self.kernel, self.dilation, self.stride = kernel, dilation, stride
        self.padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(
            in_dim, out_dim, kernel, stride=stride, dilation=dilation, padding=self.padding
        )
        self.norm = nn.LayerNorm(out_dim)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Exact frames out for (B,) integer input lengths (PyTorch's Conv1d formula)."""
        span = self.dilation * (self.kernel - 1)
        return (
            torch.div(lengths + 2 * self.padding - span - 1, self.stride, rounding_mode="floor") + 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C_in) → (B, T', C_out)."""
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.dropout(self.norm(torch.relu(y)))


class WideTdnn(nn.Module):
    """``LayerNorm(x + Linear(ReLU(Conv1d(x))))`` → Dropout, hidden width ``hidden``, stride 1,
    same padding; no residual where in ≠ out (the ``tdnn_k{K}_d{D}_w{P}`` ops)."""

    def __init__(
        self, in_dim: int, hidden: int, out_dim: int, kernel: int, dilation: int, dropout: float
    ) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"TDNN kernel must be odd, got {kernel}")
        self.kernel, self.dilation = kernel, dilation
        self.padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(in_dim, hidden, kernel, dilation=dilation, padding=self.padding)
        self.proj = nn.Linear(hidden, out_dim)
        self.norm = nn.LayerNorm(out_dim)
        self.dropout = nn.Dropout(dropout)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C_in) → (B, T, C_out)."""
        h = torch.relu(self.conv(x.transpose(1, 2)).transpose(1, 2))
        y = self.proj(h)
        if x.shape[-1] == y.shape[-1]:
            y = y + x
        return self.dropout(self.norm(y))


class Identity(nn.Module):
    """Skip: (B, T, C) → (B, T, C); only valid where in_dim == out_dim."""

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


OpFactory = Callable[[int, int, float], nn.Module]


def _tdnn(kernel: int, dilation: int, stride: int = 1) -> OpFactory:
    return lambda i, o, p: Tdnn(i, o, kernel, dilation, stride, p)


def _identity(i: int, o: int, p: float) -> nn.Module:
    if i != o:
        raise ValueError(f"identity needs equal widths, got {i} → {o}")
    return Identity()


# The fixed sub-sampling layer after block 3 (DESIGN §3): kernel 3, stride 3.
SUBSAMPLING_OP = "tdnn_k3_d1_s3"

# Registry: op name → factory(in_dim, out_dim, dropout). Search spaces name these keys.
OPS: Dict[str, OpFactory] = {
    "tdnn_k3_d1": _tdnn(3, 1),
    "tdnn_k3_d2": _tdnn(3, 2),
    "tdnn_k5_d1": _tdnn(5, 1),
    "tdnn_k5_d2": _tdnn(5, 2),
    "tdnn_k7_d1": _tdnn(7, 1),
    "tdnn_k7_d2": _tdnn(7, 2),
    SUBSAMPLING_OP: _tdnn(3, 1, 3),
    "identity": _identity,
}


_NAME = re.compile(r"^tdnn_k(\d+)_d(\d+)(?:_s(\d+))?(?:_w(\d+))?$")


@dataclass(frozen=True)
class OpSpec:
    """What an op name says: kernel, dilation, stride and hidden width (% of the output
    width; None: no hidden layer). ``identity`` is kernel 1 and has ``skip`` set."""

    kernel: int = 1
    dilation: int = 1
    stride: int = 1
    hidden_pct: Optional[int] = None
    skip: bool = False

    def hidden(self, out_dim: int) -> int:
        """Hidden channels of a ``_w`` op with ``out_dim`` outputs."""
        assert self.hidden_pct is not None
        return max(1, round(self.hidden_pct * out_dim / 100))

    def right_context(self) -> int:
        """Frames (at the op's input rate) it looks ahead: ``dilation·(kernel−1)/2``."""
        return self.dilation * (self.kernel - 1) // 2


def op_spec(name: str) -> OpSpec:
    """Read an op name (raises ValueError for one that is not an op)."""
    if name == "identity":
        return OpSpec(skip=True)
    m = _NAME.match(name)
    if m is None or (name not in OPS and (m.group(3) is not None or m.group(4) is None)):
        raise ValueError(
            f"unknown op '{name}' (known: {', '.join(sorted(OPS))}, or "
            "tdnn_k<K>_d<D>_w<P>: hidden width P % of the block's)"
        )
    k, d = int(m.group(1)), int(m.group(2))
    s, w = int(m.group(3) or 1), (int(m.group(4)) if m.group(4) else None)
    if k % 2 != 1 or d < 1 or (w is not None and not 1 <= w <= 1000):
        raise ValueError(f"op '{name}': the kernel must be odd, d >= 1 and P in 1..1000")
    return OpSpec(k, d, s, w)


def is_op(name: str) -> bool:
    """Whether ``name`` names an op."""
    try:
        op_spec(name)
    except ValueError:
        return False
    return True


def make_op(name: str, in_dim: int, out_dim: int, dropout: float = 0.5) -> nn.Module:
    """Build the op ``name`` mapping ``in_dim`` → ``out_dim`` channels.

    Raises:
        ValueError: an unknown op name, or identity between different widths.
    """
    spec = op_spec(name)
    if spec.hidden_pct is not None:
        hidden = spec.hidden(out_dim)
        return WideTdnn(in_dim, hidden, out_dim, spec.kernel, spec.dilation, dropout)
    return OPS[name](in_dim, out_dim, dropout)


def factor_grid(cands: Sequence[str]) -> Tuple[list, list, List[int], List[int]]:
    """A block's candidates as a grid: (shapes, widths, shape index per op, width index per
    op (-1: identity)). Raises ValueError unless every shape comes at every width."""
    shapes: list = []
    widths: list = []
    for c in cands:
        spec = op_spec(c)
        shape = "identity" if spec.skip else (spec.kernel, spec.dilation, spec.stride)
        if shape not in shapes:
            shapes.append(shape)
        if not spec.skip and spec.hidden_pct not in widths:
            widths.append(spec.hidden_pct)
    sidx, widx = [], []
    for c in cands:
        spec = op_spec(c)
        sidx.append(
            shapes.index("identity" if spec.skip else (spec.kernel, spec.dilation, spec.stride))
        )
        widx.append(-1 if spec.skip else widths.index(spec.hidden_pct))
    pairs = {(s, w) for s, w in zip(sidx, widx)}
    full = {(shapes.index(s), w) for s in shapes if s != "identity" for w in range(len(widths))}
    if len(pairs) != len(cands) or not full <= pairs or len(pairs - full) > 1:
        raise ValueError(
            "a factorized block needs every kernel/dilation at every width, once, plus at most "
            f"identity; got {list(cands)}"
        )
    return shapes, widths, sidx, widx
