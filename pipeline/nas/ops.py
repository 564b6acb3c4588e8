"""Candidate operations of the search space, named by what they are (``tdnn_k5_d2``).

Every op maps (B, T, C_in) → (B, T', C_out) and knows its exact output length in integer
arithmetic, so masks and CTC lengths never depend on float rounding. A TDNN op is
Conv1d → ReLU → LayerNorm → Dropout (DESIGN §3), with "same" padding for stride 1.
"""

from __future__ import annotations

from typing import Callable, Dict

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


def make_op(name: str, in_dim: int, out_dim: int, dropout: float = 0.5) -> nn.Module:
    """Build the registered op ``name`` mapping ``in_dim`` → ``out_dim`` channels.

    Raises:
        ValueError: an unknown op name, or identity between different widths.
    """
    if name not in OPS:
        raise ValueError(f"unknown op '{name}' (known: {', '.join(sorted(OPS))})")
    return OPS[name](in_dim, out_dim, dropout)
