"""The architecture a search derives: p at the epoch with the lowest held-out loss, its
argmax per block (under a hard budget: the most probable architecture within it), and the
:class:`~pipeline.nas.arch.Arch` that carries it with its costs."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from pipeline.nas.arch import Arch
from pipeline.search.strategies import Strategy


def best_epoch(history: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The epoch with the lowest held-out loss (ties: the earliest), the reference rule."""
    if not history:
        raise ValueError("no search epoch has ended")
    return min(history, key=lambda h: (h["held_out_loss"], h["epoch"]))


def arch_from_strategy(
    strategy: Strategy,
    indices: Sequence[int],
    history: Optional[Sequence[Dict[str, Any]]] = None,
    **provenance: Any,
) -> Arch:
    """The :class:`Arch` for derived ``indices``.

    With a search ``history`` (p and held-out loss per epoch) the architecture is the argmax
    of p at the best held-out epoch (:func:`best_epoch`), as in the reference implementation,
    and ``indices`` are ignored; without one, ``indices`` with the strategy's current p.
    """
    space = strategy.supernet.space
    probs = strategy.probabilities()
    if history:
        best = best_epoch(history)
        probs = best["probabilities"]
        if strategy.budget is not None:
            indices = list(strategy.budget.derive(probs))
        else:
            indices = [max(range(len(p)), key=lambda k: (p[k], -k)) for p in probs]
        provenance = {
            **provenance,
            "chosen_epoch": best["epoch"],
            "rule": "argmax of p at the epoch with the lowest held-out loss"
            + (
                ", within the budget"
                if strategy.budget is not None and strategy.budget.form == "hard"
                else ""
            ),
        }
    ops = [space.blocks[b][k] for b, k in enumerate(indices)]
    arch = Arch.from_space(space, ops, probs, strategy=strategy.name, **provenance)
    arch.history = [dict(h) for h in history] if history else None
    if strategy.budget is not None:
        arch.costs = strategy.budget.summary(indices)
    return arch
