"""The supernet: every candidate op of every block, run in an explicit mode per call.

There are no global mode flags: each forward call is given a *choice* that says how the
blocks combine their candidates (paper §2–3, DESIGN §3):

* :class:`Path` — one op per block (uniform warm-up sampling, sampling from p, a weight step
  of ST-NAS, a fixed architecture). Only the chosen ops run, so only they get gradients.
* :class:`StraightThrough` — the ST-NAS arch step (paper Eq. 10). The forward value is
  exactly the sampled sub-network's output; every candidate k of a block also runs, without an
  autograd graph, and ``p_k`` receives ``<dL/dy, o_k>``. Memory ≈ one model + N feature maps.
* :class:`Mixture` — DARTS (weights = softmax(α)) and SNAS (weights = Gumbel-softmax(α, τ)):
  ``y = sum_k w_k o_k`` with every op in the graph (N× memory and time).

The architecture logits α live in :class:`ArchWeights`, a separate module, so that a
``DistributedDataParallel`` wrapper of the supernet only ever sees operation weights.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from pipeline.nas.model import TdnnNet, apply_layer, length_mask
from pipeline.nas.ops import factor_grid, make_op
from pipeline.nas.shared import SHARED, shared_candidates
from pipeline.nas.space import SearchSpace


@dataclass(frozen=True)
class Path:
    """One candidate index per block."""

    indices: Tuple[int, ...]


@dataclass(frozen=True)
class StraightThrough:
    """Sampled indices per block and the probabilities p (each (N_b,), in α's graph)."""

    indices: Tuple[int, ...]
    probs: Sequence[Tensor]


@dataclass(frozen=True)
class Mixture:
    """Mixture weights per block, each (N_b,) (softmax for DARTS, Gumbel-softmax for SNAS)."""

    weights: Sequence[Tensor]


Choice = Union[Path, StraightThrough, Mixture]


class StraightThroughSelect(torch.autograd.Function):
    """Forward: the sampled output. Backward: ``dL/dp_k = <dL/dy, o_k>`` for every k (Eq. 10)."""

    @staticmethod
    def forward(ctx, probs: Tensor, sampled: Tensor, *outputs: Tensor) -> Tensor:
        """probs (N,); sampled (B, T, C) with its graph; outputs: N detached (B, T, C) maps."""
        ctx.save_for_backward(*outputs)
        return sampled.view_as(sampled)

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        outputs = ctx.saved_tensors
        grad_p = torch.stack([(grad_y * o).sum() for o in outputs]).to(grad_y.dtype)
        return (grad_p, grad_y) + (None,) * len(outputs)


class ArchWeights(nn.Module):
    """The architecture logits α, initialised to 0 (uniform p).

    One logit per candidate op and block; or, in a ``factorized`` space, per block one logit
    per shape (kernel, dilation; identity is a shape) and one per width, with
    ``p(op) = p(shape) · p(width)`` (``p(identity) = p(shape identity)``): a block's 15 wide
    candidates then share 8 logits, and every step's gradient reaches the shape and the width
    of every candidate (FBNetV2 and TuNAS make such choices independently too).
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.sizes = [len(b) for b in space.blocks]
        self.factors: List[Tuple[List[int], List[int]]] = []  # per block: shape, width index
        if space.factorized:
            params = []
            for cands in space.blocks:
                shapes, widths, sidx, widx = factor_grid(cands)
                self.factors.append((sidx, widx))
                params += [torch.zeros(len(shapes)), torch.zeros(len(widths))]
            self.alphas = nn.ParameterList(nn.Parameter(t) for t in params)
        else:
            self.alphas = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in self.sizes)

    def probs(self) -> List[Tensor]:
        """p per block over its candidate ops, each (N_b,), in α's graph."""
        if not self.factors:
            return [a.softmax(dim=0) for a in self.alphas]
        out = []
        for b, (sidx, widx) in enumerate(self.factors):
            ps = self.alphas[2 * b].softmax(dim=0)
            pw = self.alphas[2 * b + 1].softmax(dim=0)
            pw1 = torch.cat([pw, pw.new_ones(1)])  # index -1: no width (identity)
            out.append(ps[sidx] * pw1[widx])
        return out

    def logits(self) -> List[Tensor]:
        """Per block, logits whose softmax is p (α itself when not factorized)."""
        if not self.factors:
            return list(self.alphas)
        return [p.clamp_min(1e-30).log() for p in self.probs()]

    def sample(
        self, generator: Optional[torch.Generator] = None, uniform: bool = False
    ) -> Tuple[int, ...]:
        """One op index per block, drawn from p (or uniformly) with ``generator``."""
        out = []
        probs = None if uniform else [p.detach().float().cpu() for p in self.probs()]
        for b, n in enumerate(self.sizes):
            p = torch.ones(n) if probs is None else probs[b]
            out.append(int(torch.multinomial(p, 1, generator=generator)))
        return tuple(out)

    def argmax(self) -> Tuple[int, ...]:
        """The most probable op of each block (ties: the first)."""
        return tuple(int(p.detach().argmax()) for p in self.probs())


class ChoiceBlock(nn.Module):
    """The candidate ops of one searchable block; all keep the frame count. With
    ``shared_taps`` the TDNN candidates share their weights (:mod:`pipeline.nas.shared`)."""

    def __init__(
        self,
        names: Sequence[str],
        in_dim: int,
        out_dim: int,
        dropout: float,
        shared_taps: bool = False,
    ) -> None:
        super().__init__()
        self.names = list(names)
        if shared_taps:
            self.candidates = shared_candidates(names, in_dim, out_dim, dropout)
        else:
            self.candidates = nn.ModuleList(make_op(n, in_dim, out_dim, dropout) for n in names)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.candidates[0].output_lengths(lengths)  # type: ignore[operator]


class Supernet(nn.Module):
    """All candidates of a :class:`SearchSpace`, sub-sampling layer and output layer.

    Args:
        space: the search space.
        num_units: K, output units including blank.
    """

    def __init__(self, space: SearchSpace, num_units: int) -> None:
        super().__init__()
        self.space = space
        self.num_units = num_units
        layers: List[nn.Module] = []
        self.block_layer: List[int] = []  # position in self.layers of each searchable block
        for i, (name, in_dim, out_dim) in enumerate(
            space.layer_specs([b[0] for b in space.blocks])
        ):
            if i == space.subsample_after:
                layers.append(make_op(name, in_dim, out_dim, space.dropout))
            else:
                self.block_layer.append(i)
                block = len(self.block_layer) - 1
                layers.append(
                    ChoiceBlock(
                        space.blocks[block], in_dim, out_dim, space.dropout, space.shared_taps
                    )
                )
        self.layers = nn.ModuleList(layers)
        self.output = nn.Linear(space.width, num_units)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) input frames → (B,) output frames (the same for every architecture)."""
        for layer in self.layers:
            lengths = layer.output_lengths(lengths)  # type: ignore[operator]
        return lengths

    def forward(self, feats: Tensor, lengths: Tensor, choice: Choice) -> Tuple[Tensor, Tensor]:
        """(B, T, D) features, (B,) lengths → (B, T', K) log-probs, (B,) output lengths."""
        self._check_choice(choice)
        x, block = feats * length_mask(lengths, feats.shape[1]).to(feats.dtype), 0
        for layer in self.layers:
            if not isinstance(layer, ChoiceBlock):
                x, lengths = apply_layer(layer, x, lengths)
                continue
            if isinstance(choice, Path):
                x, lengths = apply_layer(layer.candidates[choice.indices[block]], x, lengths)
            elif isinstance(choice, StraightThrough):
                x, lengths = self._straight_through(
                    layer, x, lengths, choice.indices[block], choice.probs[block]
                )
            else:
                w = choice.weights[block]
                out_lengths = layer.output_lengths(lengths)
                mask = length_mask(out_lengths, x.shape[1]).to(x.dtype)
                x = sum(w[k] * cand(x) for k, cand in enumerate(layer.candidates)) * mask
                lengths = out_lengths
            block += 1
        return self.output(x).log_softmax(dim=-1), lengths

    @staticmethod
    def _straight_through(
        layer: ChoiceBlock, x: Tensor, lengths: Tensor, sampled: int, probs: Tensor
    ) -> Tuple[Tensor, Tensor]:
        y, out_lengths = apply_layer(layer.candidates[sampled], x, lengths)
        with torch.no_grad():  # Eq. 10 needs every o_k, but no graph through them
            outs = [
                y.detach() if k == sampled else apply_layer(c, x, lengths)[0]
                for k, c in enumerate(layer.candidates)
            ]
        return StraightThroughSelect.apply(probs, y, *outs), out_lengths

    def _check_choice(self, choice: Choice) -> None:
        n = len(self.block_layer)
        if isinstance(choice, (Path, StraightThrough)):
            if len(choice.indices) != n:
                raise ValueError(f"choice has {len(choice.indices)} indices for {n} blocks")
            for b, (k, cands) in enumerate(zip(choice.indices, self.space.blocks)):
                if not 0 <= k < len(cands):
                    raise ValueError(f"block {b + 1}: index {k} outside 0..{len(cands) - 1}")
        elif isinstance(choice, Mixture):
            if len(choice.weights) != n:
                raise ValueError(f"mixture has {len(choice.weights)} weight vectors for {n} blocks")
        else:
            raise TypeError(f"unknown choice {type(choice).__name__}")

    @contextlib.contextmanager
    def frozen_weights(self) -> Iterator[None]:
        """Arch step: no weight gradients inside (inputs still pass gradients through)."""
        saved = [(p, p.requires_grad) for p in self.parameters()]
        for p, _ in saved:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in saved:
                p.requires_grad_(flag)

    def extract(self, indices: Sequence[int]) -> TdnnNet:
        """A standalone :class:`TdnnNet` of the given path, with this supernet's weights."""
        ops = [self.space.blocks[b][k] for b, k in enumerate(indices)]
        net = TdnnNet(self.space.layer_specs(ops), self.num_units, self.space.dropout)
        block = 0
        for target, layer in zip(net.layers, self.layers):
            if isinstance(layer, ChoiceBlock):
                layer = layer.candidates[indices[block]]
                block += 1
            target.load_state_dict(
                layer.standalone_state() if isinstance(layer, SHARED) else layer.state_dict()
            )
        net.output.load_state_dict(self.output.state_dict())
        return net.to(next(self.parameters()).device)
