"""What a network costs, computed from its layers (never typed by hand).

Four costs, by the names a search's ``budget:`` uses:

==========  ==========================================================================
params      trainable parameters of the derived network (output layer with K units
            included), exactly ``sum(p.numel())`` of :class:`pipeline.nas.model.TdnnNet`
macs        multiply-adds of the matrix products per second of audio: each layer's per
            output frame times its frame rate (100/s below the sub-sampling layer,
            100/3 /s from it on); biases, ReLU and LayerNorm are not counted
lookahead   right context in ms: the frames of the future a layer reads,
            ``dilation·(kernel−1)/2`` at its input rate, summed over layers
latency     CPU time per 10-ms input frame in µs, the sum of the layers' times in a
            lookup table measured on this machine (:mod:`pipeline.nas.latency`)
==========  ==========================================================================

Every block of a space keeps its input and output widths whatever op it chooses, so a
network's cost is a fixed part plus one term per block, and the expected cost under
independent per-block choice probabilities p is exactly ``fixed + Σ_b Σ_k p_bk C_bk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from pipeline.nas.ops import op_spec
from pipeline.nas.space import SearchSpace

INPUT_FRAME_MS = 10.0  # the features' frame shift (conf/fbank.conf)
COSTS = ("params", "macs", "lookahead", "latency")
UNITS = {
    "params": "parameters",
    "macs": "multiply-adds per second of audio",
    "lookahead": "ms of right context",
    "latency": "µs of CPU per 10-ms frame",
}
Layer = Tuple[str, int, int]


@dataclass(frozen=True)
class LayerCost:
    """One layer's parameters, multiply-adds per output frame and right context (frames at
    its input rate)."""

    params: int
    macs_per_frame: int
    right_context: int
    stride: int


def layer_cost(name: str, in_dim: int, out_dim: int) -> LayerCost:
    """The cost of op ``name`` mapping ``in_dim`` → ``out_dim`` channels."""
    s = op_spec(name)
    if s.skip:
        return LayerCost(0, 0, 0, 1)
    if s.hidden_pct is None:  # conv (in·out·k + out) and LayerNorm (2·out)
        return LayerCost(
            in_dim * out_dim * s.kernel + 3 * out_dim,
            in_dim * out_dim * s.kernel,
            s.right_context(),
            s.stride,
        )
    h = s.hidden(out_dim)  # conv (in·h·k + h), projection (h·out + out), LayerNorm (2·out)
    return LayerCost(
        in_dim * h * s.kernel + h + h * out_dim + 3 * out_dim,
        in_dim * h * s.kernel + h * out_dim,
        s.right_context(),
        s.stride,
    )


def layer_period(layers: Sequence[Layer]) -> List[int]:
    """Input frames per frame at each layer's input (1 until the sub-sampling layer)."""
    out, period = [], 1
    for name, _, _ in layers:
        out.append(period)
        period *= op_spec(name).stride
    return out


def network_costs(
    layers: Sequence[Layer], num_units: int, latency: Optional["LatencyLookup"] = None
) -> Dict[str, float]:
    """Every cost of the chain ``layers`` followed by ``Linear(width → K)``."""
    periods = layer_period(layers)
    out_period = periods[-1] * op_spec(layers[-1][0]).stride
    width = layers[-1][2]
    params = width * num_units + num_units
    macs = width * num_units * 1000.0 / (INPUT_FRAME_MS * out_period)
    lookahead = 0.0
    for (name, i, o), period in zip(layers, periods):
        c = layer_cost(name, i, o)
        params += c.params
        macs += c.macs_per_frame * 1000.0 / (INPUT_FRAME_MS * period * c.stride)
        lookahead += c.right_context * period * INPUT_FRAME_MS
    out = {"params": float(params), "macs": macs, "lookahead": lookahead}
    if latency is not None:
        out["latency"] = sum(latency.of(n, i, o, p) for (n, i, o), p in zip(layers, periods))
        out["latency"] += latency.output(width, num_units, out_period)
    return out


class LatencyLookup:
    """Measured µs per 10-ms input frame of a layer, keyed by op, widths and input period."""

    def __init__(self, entries: Mapping[str, float]) -> None:
        self.entries = dict(entries)

    @staticmethod
    def key(name: str, in_dim: int, out_dim: int, period: int) -> str:
        return f"{name}:{in_dim}:{out_dim}:{period}"

    def of(self, name: str, in_dim: int, out_dim: int, period: int) -> float:
        if name == "identity":
            return 0.0
        key = self.key(name, in_dim, out_dim, period)
        if key not in self.entries:
            raise KeyError(f"the latency table has no entry for {key}")
        return self.entries[key]

    def output(self, width: int, num_units: int, period: int) -> float:
        return self.of("output", width, num_units, period)


class CostModel:
    """The costs of every architecture of ``space`` with K = ``num_units``: a fixed part and
    one table per block (the blocks' choices are independent and their costs add up)."""

    def __init__(
        self, space: SearchSpace, num_units: int, latency: Optional[LatencyLookup] = None
    ) -> None:
        self.space, self.num_units = space, num_units
        self.names = [c for c in COSTS if c != "latency" or latency is not None]
        first = [b[0] for b in space.blocks]
        base = network_costs(space.layer_specs(first), num_units, latency)
        self.per_block: Dict[str, List[List[float]]] = {n: [] for n in self.names}
        for b, cands in enumerate(space.blocks):
            rows: Dict[str, List[float]] = {n: [] for n in self.names}
            for op in cands:
                ops = list(first)
                ops[b] = op
                c = network_costs(space.layer_specs(ops), num_units, latency)
                for n in self.names:
                    rows[n].append(c[n] - base[n])
            for n in self.names:
                self.per_block[n].append(rows[n])
        # the cost of the first candidates, less their own block terms (which are 0)
        self.fixed = {n: base[n] for n in self.names}

    def of(self, indices: Sequence[int]) -> Dict[str, float]:
        """Every cost of the architecture with candidate ``indices``."""
        return {
            n: self.fixed[n] + sum(t[k] for t, k in zip(self.per_block[n], indices))
            for n in self.names
        }

    def expected(self, name: str, probs: Sequence[Tensor]) -> Tensor:
        """``E[C] = fixed + Σ_b Σ_k p_bk C_bk``, differentiable in p."""
        total = torch.zeros((), dtype=probs[0].dtype, device=probs[0].device)
        for p, table in zip(probs, self.per_block[name]):
            total = total + (p * torch.tensor(table, dtype=p.dtype, device=p.device)).sum()
        return total + self.fixed[name]

    def extremes(self, name: str) -> Tuple[float, float]:
        """The cheapest and the dearest architecture's cost."""
        lo = self.fixed[name] + sum(min(t) for t in self.per_block[name])
        hi = self.fixed[name] + sum(max(t) for t in self.per_block[name])
        return lo, hi


def arch_costs(
    arch: Any, num_units: int, latency: Optional[LatencyLookup] = None
) -> Dict[str, Any]:
    """Every cost of an :class:`pipeline.nas.arch.Arch` (``value`` and ``unit`` per cost)."""
    costs = network_costs(arch.layer_specs(), num_units, latency)
    return {n: {"value": v, "unit": UNITS[n]} for n, v in costs.items()}
