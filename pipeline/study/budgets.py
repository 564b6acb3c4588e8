"""The architectures of a study under a budget that are not searched: random ones drawn within
it, and TDNN-D scaled to it.

* Random: architectures drawn uniformly from the space until ``random_archs`` distinct ones
  fit the budget (rejection sampling; the acceptance rate is written into each ``arch.json``).
* TDNN-D scaled: the hand design's shape (one op per block, below the sub-sampling layer
  contiguous context, above it dilated) at every uniform width and kernel the space offers;
  the largest (most parameters) that fits every target. Which one that is follows from the
  space and the budget alone.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from pipeline.errors import StnasError
from pipeline.nas.arch import Arch
from pipeline.nas.cost import CostModel
from pipeline.nas.latency import cached_table, load_table
from pipeline.nas.ops import op_spec
from pipeline.nas.space import SearchSpace
from pipeline.search.budget import Budget


def make_budget(
    space: SearchSpace, num_units: int, targets: Mapping[str, float], form: str = "hard"
) -> Budget:
    """The :class:`Budget` of ``targets`` in ``space`` (checked: raises naming the target)."""
    latency = None
    if "latency" in targets:
        latency = load_table(cached_table(space, num_units), space, num_units)
    return Budget.from_config(dict(targets), form, 1.0, CostModel(space, num_units, latency))


def budget_name(targets: Mapping[str, float]) -> str:
    """``params 70,000`` (for tables)."""
    return ", ".join(f"{k} {v:,.0f}" for k, v in targets.items())


def draw_within(
    space: SearchSpace, budget: Budget, n: int, seed: int
) -> Tuple[List[List[str]], Tuple[int, int]]:
    """``n`` distinct architectures drawn uniformly and kept when within ``budget``; the
    (accepted, drawn) counts."""
    rng = random.Random(f"study-random-{seed}")
    budget.acceptance = None
    drawn: List[Tuple[int, ...]] = []

    def draw() -> Tuple[int, ...]:
        return tuple(rng.randrange(len(b)) for b in space.blocks)

    inside = budget.share_within() * space.num_subgraphs
    n = min(n, int(round(inside))) if inside == inside else n
    while len(drawn) < n:
        path = budget.draw_within(draw)
        if path not in drawn:
            drawn.append(path)
    ops = [[space.blocks[b][k] for b, k in enumerate(p)] for p in drawn]
    return ops, budget.acceptance or (0, 0)


def _variant(
    space: SearchSpace, ops: Sequence[str], kernel: int, width: int
) -> Optional[List[str]]:
    """``ops`` with every TDNN at ``kernel`` and hidden width ``width`` %, each block's
    dilation the candidate's closest to the hand design's (None if a block has no such op)."""
    out = []
    for base, cands in zip(ops, space.blocks):
        want = op_spec(base)
        fits = [
            c
            for c in cands
            if not op_spec(c).skip
            and op_spec(c).kernel == kernel
            and (op_spec(c).hidden_pct or 100) == width
        ]
        if not fits:
            return None
        out.append(min(fits, key=lambda c: (abs(op_spec(c).dilation - want.dilation), c)))
    return out


def scaled_tdnn_d(space: SearchSpace, design: Arch, budget: Budget) -> List[str]:
    """TDNN-D's shape at the uniform kernel and width with the most parameters that fits.

    Raises:
        StnasError: no uniform variant of the design fits the budget.
    """
    kernels = sorted({op_spec(c).kernel for b in space.blocks for c in b if not op_spec(c).skip})
    widths = sorted(
        {op_spec(c).hidden_pct or 100 for b in space.blocks for c in b if not op_spec(c).skip}
    )
    best: Optional[Tuple[float, List[str]]] = None
    for k in kernels:
        for w in widths:
            ops = _variant(space, design.ops, k, w)
            if ops is None:
                continue
            idx = space.index_of(ops)
            if budget.fits(idx):
                params = budget.model.of(idx)["params"]
                if best is None or params > best[0]:
                    best = (params, ops)
    if best is None:
        raise StnasError(
            f"no uniform-width, uniform-kernel variant of {design.describe()} fits the budget "
            f"{budget_name(budget.targets)}"
        )
    return best[1]


def write_arch(path: Path, space: SearchSpace, ops: Sequence[str], **provenance: Any) -> None:
    """Write ``arch.json`` once (an existing file is kept: a resumed study keeps its draws)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        Arch.from_space(space, ops, **provenance).to_json(path)
