"""The derived acoustic model: a plain chain of TDNN layers and a linear output.

This module knows nothing about search: a :class:`TdnnNet` is built from a list of op names
(``Arch.build`` in :mod:`pipeline.nas.arch`) and is what retrain, decode and users load.

Padding: after every layer the frames past each utterance's length are set to 0, so a padded
utterance sees exactly the zero padding it would see alone and its outputs do not depend on
the batch it is in.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from pipeline.nas.ops import make_op


def length_mask(lengths: Tensor, frames: int) -> Tensor:
    """(B,) lengths → (B, frames, 1) float mask, 1 on valid frames."""
    steps = torch.arange(frames, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(-1)


def apply_layer(layer: nn.Module, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Run one op on (B, T, C) with (B,) lengths; zero the padding of its (B, T', C') output."""
    # every op defines output_lengths; torch types nn.Module attributes as Tensor | Module
    out_lengths = layer.output_lengths(lengths)  # type: ignore[operator]
    y = layer(x)
    return y * length_mask(out_lengths, y.shape[1]).to(y.dtype), out_lengths


class TdnnNet(nn.Module):
    """A chain of registered ops followed by ``Linear(width → K)`` and log-softmax.

    Args:
        layers: ``(op name, in_dim, out_dim)`` per layer, in order.
        num_units: K, output units including blank (column 0).
        dropout: dropout probability inside each op.
    """

    def __init__(
        self, layers: Sequence[Tuple[str, int, int]], num_units: int, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if num_units < 2:
            raise ValueError(f"num_units must be at least 2 (blank + one unit), got {num_units}")
        self.op_names: List[str] = [name for name, _, _ in layers]
        self.layers = nn.ModuleList(make_op(n, i, o, dropout) for n, i, o in layers)
        self.output = nn.Linear(layers[-1][2], num_units)
        self.num_units = num_units

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) input frames → (B,) output frames, exact integers."""
        for layer in self.layers:
            # every op defines output_lengths; torch types it as Tensor | Module
            lengths = layer.output_lengths(lengths)  # type: ignore[operator]
        return lengths

    def forward(self, feats: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, T, D) features, (B,) lengths → (B, T', K) log-probs, (B,) output lengths."""
        x = feats * length_mask(lengths, feats.shape[1]).to(feats.dtype)  # padding may be junk
        for layer in self.layers:  # apply_layer, spelt out so that torch.jit.script takes it
            # as in apply_layer; the ignore must end its line for torch.jit.script
            lengths = layer.output_lengths(lengths)  # type: ignore[operator]
            x = layer(x)
            x = x * length_mask(lengths, x.shape[1]).to(x.dtype)
        return self.output(x).log_softmax(dim=-1), lengths


def num_parameters(module: nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in module.parameters())
